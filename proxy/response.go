package proxy

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// requestBody is the body of a request serverConn serves: the next n bytes of the
// connection's reader. Each request gets its own, so that a reader left
// over from an earlier request (a transport still sending it) can never
// read the next one's.
type requestBody struct {
	c      *serverConn
	mu     sync.Mutex
	n      int64 // bytes left
	closed bool
	err    error // a read error: what is left of the connection is lost
	kept   bool  // finish's result, once it has run
	ended  bool  // finish has run
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	case b.n == 0:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.c.br.Read(p)
	b.n -= int64(n)
	if b.n == 0 {
		// The client's next byte is no longer body: watch for it.
		b.c.cr.arm(b.c.watch)
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// Close drops the body, reading what is left of it if that is no more
// than maxDiscard, as net/http's server does; a longer rest closes the
// connection after the response.
func (b *requestBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.discardLocked()
		b.closed = true
	}
	return nil
}

// finish makes the connection ready for the next request, reading what is
// left of the body if that is no more than maxDiscard, and reports whether
// it is. Later calls, and Reads, find the body closed.
func (b *requestBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.discardLocked()
		b.closed = true
	}
	return b.n == 0 && b.err == nil
}

func (b *requestBody) discardLocked() {
	if b.n == 0 || b.n > maxDiscard || b.err != nil {
		return
	}
	n, err := b.c.br.Discard(int(b.n))
	b.n -= int64(n)
	if err != nil {
		b.err = err
	}
}

// bufferBeforeCommit is how much of a body response holds before it
// writes the headers, as net/http's server does: a response that ends
// within it gets a Content-Length, and its first bytes decide a missing
// Content-Type.
const bufferBeforeCommit = 2048

// response is the http.ResponseWriter of the request serverConn serves. It
// follows net/http's response, header for header, for the requests
// serverConn serves (HTTP/1.1, no Expect, not HEAD).
type response struct {
	c             *serverConn
	req           *http.Request
	body          *requestBody
	header        http.Header
	status        int
	wroteHeader   bool  // a final status is set
	committed     bool  // the status line and headers are in the buffer
	chunked       bool  // the body is sent chunked
	closeAfter    bool  // the connection closes after the response
	fullDuplex    bool  // EnableFullDuplex was called
	contentLength int64 // from the Content-Length header, or -1
	written       int64 // body bytes written by the handler
	pending       []byte
	trailers      []string // declared by a Trailer header
	exclude       map[string]bool
	err           error // the first write error
	scratch       [64]byte
}

func (w *response) reset(req *http.Request, body *requestBody) {
	w.req, w.body = req, body
	if w.header == nil {
		w.header = make(http.Header)
		w.exclude = make(map[string]bool)
		w.pending = make([]byte, 0, bufferBeforeCommit)
	} else {
		clear(w.header)
	}
	w.status = 0
	w.wroteHeader, w.committed, w.chunked, w.closeAfter, w.fullDuplex = false, false, false, false, false
	w.contentLength, w.written = -1, 0
	w.pending = w.pending[:0]
	w.trailers = w.trailers[:0]
	w.err = nil
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		w.c.srv.log.Debug("superfluous WriteHeader call", "code", code)
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response: its head goes out at once, the
		// final one follows.
		w.writeStatusLine(code)
		w.header.WriteSubset(w.c.bw, excludedNoBody)
		w.c.bw.WriteString("\r\n")
		w.noteErr(w.c.bw.Flush())
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.c.srv.log.Warn("invalid Content-Length in a response", "value", cl)
			w.header.Del("Content-Length")
		}
	}
}

var excludedNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	if !w.committed {
		if len(w.pending)+len(p) <= cap(w.pending) {
			w.pending = append(w.pending, p...)
			return n, nil
		}
		// As net/http's buffer: fill it, send it, then the rest.
		k := cap(w.pending) - len(w.pending)
		w.pending = append(w.pending, p[:k]...)
		p = p[k:]
		w.commit(w.pending, false)
		w.writeBody(w.pending)
		w.pending = w.pending[:0]
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return n, nil
}

func (w *response) writeBody(p []byte) {
	if len(p) == 0 {
		return
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	if w.chunked {
		bw.WriteString("\r\n")
	}
	w.noteErr(err)
}

func (w *response) noteErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

// FlushError sends what is written so far, for http.ResponseController.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.pending, false)
		w.writeBody(w.pending)
		w.pending = w.pending[:0]
	}
	w.noteErr(w.c.bw.Flush())
	return w.err
}

// Flush implements http.Flusher.
func (w *response) Flush() { w.FlushError() }

// SetReadDeadline and SetWriteDeadline are http.ResponseController's.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex is http.ResponseController's: the body is then left
// alone when the headers are written.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// finish ends the response after the handler returned and reports whether
// the connection can serve another request.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.pending, true)
		w.writeBody(w.pending)
		w.pending = w.pending[:0]
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		if t := w.finalTrailers(); t != nil {
			w.noteErr(t.Write(bw))
		}
		bw.WriteString("\r\n")
	}
	w.noteErr(bw.Flush())
	if w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		// Too short: the client would take the next response for the rest.
		w.closeAfter = true
	}
	return !w.closeAfter && w.err == nil
}

// commit writes the status line and headers into the connection's buffer,
// deciding the framing as net/http's server does. p is the start of the
// body; done says the handler has returned, so p is all of it.
func (w *response) commit(p []byte, done bool) {
	w.committed = true
	header := w.header
	clear(w.exclude)
	var (
		ctype, conn, te, date, clen string
	)
	for _, v := range header["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(textprotoTrim(k))
			if k != "" && !badTrailer[k] {
				w.trailers = append(w.trailers, k)
			}
		}
	}
	hasTrailers := len(header["Trailer"]) > 0
	for k := range header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.exclude[k] = true // sent after the body
			hasTrailers = true
		}
	}
	teValue := header.Get("Transfer-Encoding")
	hasTE := teValue != ""

	if _, hasCLKey := header["Content-Length"]; done && !hasTrailers && !hasTE && bodyAllowedForStatus(w.status) && !hasCLKey {
		w.contentLength = int64(len(p))
		clen = strconv.Itoa(len(p))
	}
	if w.req.Close || header.Get("Connection") == "close" {
		w.closeAfter = true
	}
	// As net/http: read what is left of the request body before
	// answering, since some clients send all of it before they read.
	if w.req.ContentLength != 0 && !w.closeAfter && !w.fullDuplex {
		if !w.body.finish() {
			w.closeAfter = true
			w.exclude["Connection"] = true
			conn = "close"
		}
	}
	code := w.status
	if bodyAllowedForStatus(code) {
		_, haveType := header["Content-Type"]
		if header.Get("Content-Encoding") == "" && !haveType && !hasTE && len(p) > 0 {
			ctype = http.DetectContentType(p)
		}
	} else {
		w.exclude["Content-Length"], w.exclude["Transfer-Encoding"] = true, true
		if code == http.StatusNotModified {
			w.exclude["Content-Type"] = true
		}
	}
	if _, ok := header["Date"]; !ok {
		date = time.Now().UTC().Format(http.TimeFormat)
	}
	hasCL := w.contentLength != -1
	if hasCL && hasTE && teValue != "identity" {
		w.c.srv.log.Warn("a response with both Transfer-Encoding and Content-Length", "transfer-encoding", teValue)
		w.exclude["Content-Length"] = true
		clen = ""
		w.contentLength, hasCL = -1, false
	}
	switch {
	case !bodyAllowedForStatus(code):
		w.exclude["Transfer-Encoding"] = true
	case hasCL:
		w.exclude["Transfer-Encoding"] = true
	case hasTE && teValue == "identity":
		w.closeAfter = true
		w.exclude["Transfer-Encoding"] = true
	default:
		w.chunked = true
		te = "chunked"
		if hasTE && teValue == "chunked" {
			w.exclude["Transfer-Encoding"] = true
		}
	}
	if w.chunked {
		w.exclude["Content-Length"] = true
		clen = ""
	}
	if w.closeAfter && !hasCloseToken(header.Get("Connection")) && code != http.StatusSwitchingProtocols {
		w.exclude["Connection"] = true
		conn = "close"
	}

	bw := w.c.bw
	w.writeStatusLine(code)
	w.noteErr(header.WriteSubset(bw, w.exclude))
	for _, kv := range [...][2]string{
		{"Content-Type", ctype}, {"Connection", conn}, {"Transfer-Encoding", te},
		{"Date", date}, {"Content-Length", clen},
	} {
		if kv[1] != "" {
			bw.WriteString(kv[0])
			bw.WriteString(": ")
			bw.WriteString(kv[1])
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	if text := http.StatusText(code); text != "" {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(code), 10))
		bw.WriteByte(' ')
		bw.WriteString(text)
		bw.WriteString("\r\n")
	} else {
		fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
	}
}

// finalTrailers are the trailers to send after a chunked body: those
// declared by a Trailer header and those set with http.TrailerPrefix.
func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.header {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.header[k] {
			t.Add(k, v)
		}
	}
	return t
}

// badTrailer are the headers net/http's server does not send as trailers.
var badTrailer = map[string]bool{
	"Authorization": true, "Cache-Control": true, "Connection": true, "Content-Encoding": true,
	"Content-Length": true, "Content-Range": true, "Content-Type": true, "Expect": true,
	"Host": true, "Keep-Alive": true, "Max-Forwards": true, "Pragma": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Proxy-Connection": true,
	"Range": true, "Realm": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Www-Authenticate": true,
}

func textprotoTrim(s string) string { return strings.Trim(s, " \t") }

// hasCloseToken reports whether a Connection value lists "close".
func hasCloseToken(v string) bool {
	return slices.ContainsFunc(strings.Split(v, ","), func(t string) bool {
		return strings.EqualFold(strings.TrimSpace(t), "close")
	})
}

// bodyAllowedForStatus reports whether a response with this status may
// have a body (RFC 9110 6.4.1).
func bodyAllowedForStatus(code int) bool {
	switch {
	case code >= 100 && code <= 199:
		return false
	case code == http.StatusNoContent, code == http.StatusNotModified:
		return false
	}
	return true
}
