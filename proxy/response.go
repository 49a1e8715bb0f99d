package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// requestBody is the body of a request serverConn serves: the next n bytes
// of the connection's reader. Each request gets its own, so that a reader
// left over from an earlier request (a transport still sending it) can
// never read the next one's. It behaves as net/http's server's body does.
type requestBody struct {
	c          *serverConn
	mu         sync.Mutex
	n          int64 // bytes left
	sawEOF     bool  // the body ended, early or not
	err        error // a read error: what is left of the connection is lost
	closed     bool
	earlyClose bool // closed with more than maxDiscard left
	closing    bool // the request asked to close the connection: Close reads nothing
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *requestBody) readLocked(p []byte) (int, error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.c.br.Read(p)
	b.n -= int64(n)
	if b.n == 0 {
		b.sawEOF = true
		// The client's next byte is no longer body: watch for it.
		b.c.srv.watches.add(&b.c.cr)
		return n, io.EOF
	}
	if err != nil {
		b.sawEOF, b.err = true, err
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	return n, err
}

// Close drops the body, reading what is left of it unless that is more
// than maxDiscard; then the connection closes after the response.
func (b *requestBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.sawEOF || b.closing {
		return nil
	}
	if b.n > maxDiscard {
		b.earlyClose = true
		return nil
	}
	n, err := b.discardLocked(maxDiscard)
	if n == maxDiscard {
		b.earlyClose = true // as net/http, which stops looking for the end there
	}
	return err
}

func (b *requestBody) discardLocked(limit int64) (int64, error) {
	if b.sawEOF {
		return 0, nil // before buf, which escapes: the usual body was read
	}
	var buf [512]byte
	var total int64
	for total < limit {
		n, err := b.readLocked(buf[:min(int64(len(buf)), limit-total)])
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// abandon closes the body without reading any of it: the connection is
// closing. A read running meanwhile is waited for.
func (b *requestBody) abandon() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// beforeResponse reads what is left of the body before the response's
// headers go out, as net/http's server does, since some clients send all
// of it before they read. It reports whether the connection must close
// after the response, and whether that is because the rest was too long.
func (b *requestBody) beforeResponse() (closeAfter, tooBig bool) {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return !b.sawEOF, false
	case b.n >= maxDiscard:
		b.mu.Unlock()
		return true, true
	}
	n, err := b.discardLocked(maxDiscard + 1)
	b.mu.Unlock()
	switch {
	case err != nil:
		return true, false
	case n > maxDiscard:
		return true, true
	}
	return b.Close() != nil, false
}

// reusable reports, after the handler, whether the connection can serve
// another request: the body was read to its end.
func (b *requestBody) reusable() bool {
	b.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err == nil && !b.earlyClose && b.n == 0
}

// bufferBeforeChunking is the size of the response's own buffer, as in
// net/http's server: a response that ends within it gets a Content-Length,
// and its first bytes decide a missing Content-Type.
const bufferBeforeChunking = 2048

// response is the http.ResponseWriter of the request serverConn serves.
// It writes what net/http's server writes, byte for byte, for the requests
// serverConn serves (HTTP/1.1, no Expect, not HEAD).
type response struct {
	c             *serverConn
	req           *http.Request
	body          *requestBody
	header        http.Header
	calledHeader  bool        // Header was called
	snapshot      http.Header // the header as it was at WriteHeader: nil or snapMap
	snapMap       http.Header // kept, with snapVals, for the connection's next responses
	snapVals      []string
	status        int
	wroteHeader   bool  // a final status is set
	committed     bool  // the status line and headers are in the connection's buffer
	handlerDone   bool  // the handler returned
	chunked       bool  // the body is sent chunked
	closeAfter    bool  // the connection closes after the response
	tooBig        bool  // ... because the request body left was too long
	fullDuplex    bool  // EnableFullDuplex was called
	contentLength int64 // from the Content-Length header, or -1
	written       int64 // body bytes written by the handler
	buf           []byte
	trailers      []string // declared by a Trailer header
	exclude       map[string]bool
	err           error // the first write error
	scratch       [64]byte
}

func (w *response) reset(req *http.Request, body *requestBody) {
	if w.header == nil {
		w.header = make(http.Header)
		w.exclude = make(map[string]bool)
		w.buf = make([]byte, 0, bufferBeforeChunking)
	} else {
		clear(w.header)
	}
	*w = response{
		c: w.c, req: req, body: body, header: w.header, exclude: w.exclude,
		snapMap: w.snapMap, snapVals: w.snapVals,
		buf: w.buf[:0], trailers: w.trailers[:0], contentLength: -1,
	}
}

// release drops what the response holds of its request once it is
// served, so that an idle connection keeps none of it (the proxy's handler
// hangs the buffered body on the request).
func (w *response) release() {
	w.req, w.body, w.snapshot = nil, nil, nil
	clear(w.header)
	clear(w.trailers)
	if len(w.snapMap) > maxKeptSnapshot || cap(w.snapVals) > maxKeptSnapshot {
		w.snapMap, w.snapVals = nil, nil // an odd response's, not worth keeping
	} else {
		clear(w.snapMap) // what they hold goes with the request
		clear(w.snapVals)
	}
}

// maxKeptSnapshot bounds the header snapshot a connection keeps for its
// next responses, in keys and in values.
const maxKeptSnapshot = 32

// takeSnapshot makes snapshot a copy of the header, as http.Header.Clone
// would, in the map and values array the connection keeps: ReverseProxy
// asks for the header map before every WriteHeader, and a clone per
// response cost three allocations.
func (w *response) takeSnapshot() {
	n := 0
	for _, vv := range w.header {
		n += len(vv)
	}
	if w.snapMap == nil {
		w.snapMap = make(http.Header, len(w.header))
	} else {
		clear(w.snapMap)
	}
	if w.snapVals == nil || cap(w.snapVals) < n {
		w.snapVals = make([]string, n) // not nil: an empty value stays empty
	}
	vals := w.snapVals[:n]
	for k, vv := range w.header {
		if vv == nil {
			// As Clone: a nil value stays nil, to tell a header not to
			// send from an empty one.
			w.snapMap[k] = nil
			continue
		}
		m := copy(vals, vv)
		w.snapMap[k] = vals[:m:m]
		vals = vals[m:]
	}
	w.snapshot = w.snapMap
}

// Header returns the header map. Asked for between WriteHeader and the
// headers' write, it keeps a snapshot of the header first, so that what
// changes after WriteHeader is not sent, as with net/http.
func (w *response) Header() http.Header {
	if w.wroteHeader && !w.committed && w.snapshot == nil {
		w.takeSnapshot()
	}
	w.calledHeader = true
	return w.header
}

// adoptHeader makes h the header, as if the handler had set each of its
// entries, and reports whether it could: only while the handler has
// neither asked for the header nor written. Nothing else may hold h. It
// saves the fast path a copy of the answer's header, and WriteHeader the
// snapshot of a header the handler could change.
func (w *response) adoptHeader(h http.Header) bool {
	if w.calledHeader || w.wroteHeader || len(w.header) > 0 {
		return false
	}
	w.header = h
	return true
}

// flushingResponse writes to the response and flushes each write, as
// flushWriter does through http.ResponseController.
type flushingResponse response

func (f *flushingResponse) Write(p []byte) (int, error) {
	w := (*response)(f)
	n, err := w.Write(p)
	if err == nil {
		w.FlushError() // as flushWriter: a failed flush shows in the next write
	}
	return n, err
}

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
	if w.calledHeader {
		// The handler may hold the map and change it: what is sent is
		// the header as it is now.
		w.takeSnapshot()
	}
	if cl := w.header.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.c.srv.log.Warn("invalid Content-Length in a response", "value", cl)
			w.header.Del("Content-Length") // but not from the snapshot, as net/http
		}
	}
}

var excludedNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

// Write buffers p as net/http's bufio.Writer in front of its chunk writer
// does, so that the chunks are the same.
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
	nn := 0
	for len(p) > cap(w.buf)-len(w.buf) && w.err == nil {
		var n int
		if len(w.buf) == 0 {
			// A large write with an empty buffer goes through at once.
			n = len(p)
			w.writeChunk(p)
		} else {
			n = copy(w.buf[len(w.buf):cap(w.buf)], p)
			w.buf = w.buf[:len(w.buf)+n]
			w.flushBuf()
		}
		nn += n
		p = p[n:]
	}
	if w.err != nil {
		return nn, w.err
	}
	w.buf = append(w.buf, p...)
	return nn + len(p), nil
}

func (w *response) flushBuf() {
	if len(w.buf) > 0 && w.err == nil {
		w.writeChunk(w.buf)
	}
	w.buf = w.buf[:0]
}

// writeChunk is net/http's chunkWriter.Write: p goes to the connection's
// buffer, as a chunk if the body is chunked, after the headers.
func (w *response) writeChunk(p []byte) {
	if !w.committed {
		w.commit(p)
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.noteErr(err)
		w.c.rwc.Close()
	}
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
	w.flushBuf()
	if !w.committed {
		w.commit(nil)
	}
	w.noteErr(w.c.bw.Flush())
	return w.err
}

// Flush implements http.Flusher.
func (w *response) Flush() { w.FlushError() }

// SetReadDeadline is http.ResponseController's. As with net/http's server,
// the deadline ends with the request.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.handlerDeadline.Store(true)
	return w.c.rwc.SetReadDeadline(t)
}

// SetWriteDeadline is http.ResponseController's.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex is http.ResponseController's: the body is then left
// alone when the headers are written.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// finish ends the response after the handler returned and reports whether
// the connection can serve another request, and whether it should linger
// (half-closed, as net/http's server does) before it closes because the
// client may still be sending a body.
func (w *response) finish() (keep, linger bool) {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.flushBuf()
	if !w.committed {
		w.commit(nil)
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
	reusable := w.body.reusable()
	switch {
	case w.closeAfter:
		keep = false
	case w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written:
		// Too short: the client would take the next response for the rest.
		keep = false
	case w.err != nil:
		keep = false
	default:
		keep = reusable
	}
	w.body.mu.Lock()
	early := w.body.earlyClose
	w.body.mu.Unlock()
	return keep, !keep && (w.tooBig || early)
}

// commit writes the status line and headers into the connection's buffer,
// deciding the framing as net/http's server does. p is the start of the
// body; after the handler returned, all of it.
func (w *response) commit(p []byte) {
	w.committed = true
	header := w.header
	if w.snapshot != nil {
		header = w.snapshot
	}
	clear(w.exclude)
	var ctype, conn, te, date, clen string

	hasTrailers := false
	for k := range header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.exclude[k] = true // sent after the body
			hasTrailers = true
		}
	}
	for _, v := range header["Trailer"] {
		hasTrailers = true
		for k := range strings.SplitSeq(v, ",") {
			if k = textproto.TrimString(k); k != "" && httpguts.ValidTrailerHeader(k) {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
			}
		}
	}
	teValue := header.Get("Transfer-Encoding")
	hasTE := teValue != ""

	if _, ok := header["Content-Length"]; w.handlerDone && !hasTrailers && !hasTE && bodyAllowedForStatus(w.status) && !ok {
		w.contentLength = int64(len(p))
		clen = strconv.Itoa(len(p))
	}
	// As net/http: no keep-alive once the server is shutting down.
	keepAlives := !w.c.srv.closing.Load()
	if w.req.Close || header.Get("Connection") == "close" || !keepAlives {
		w.closeAfter = true
	}
	if w.req.ContentLength != 0 && !w.closeAfter && !w.fullDuplex {
		closeAfter, tooBig := w.body.beforeResponse()
		w.closeAfter = w.closeAfter || closeAfter
		if tooBig {
			w.tooBig = true
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
		date = w.c.srv.date.get(time.Now())
	}
	hasCL := w.contentLength != -1
	if hasCL && hasTE && teValue != "identity" {
		w.c.srv.log.Warn("a response with both Transfer-Encoding and Content-Length", "transfer-encoding", teValue)
		w.exclude["Content-Length"] = true
		clen = ""
		hasCL = false // but w.contentLength stays: as net/http, the connection then closes
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
	if w.closeAfter && (!keepAlives || !hasToken(header.Get("Connection"), "close")) && code != http.StatusSwitchingProtocols {
		w.exclude["Connection"] = true
		conn = "close"
	}

	bw := w.c.bw
	w.writeStatusLine(code)
	w.noteErr(writeHeader(bw, header, w.exclude))
	for _, kv := range [...][2]string{ // in net/http's order
		{"Date", date}, {"Content-Length", clen},
		{"Content-Type", ctype}, {"Connection", conn}, {"Transfer-Encoding", te},
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

// hasToken reports whether v, a comma- or space-separated list, has token
// in it, ignoring case, as net/http's check of a Connection header does.
func hasToken(v, token string) bool {
	for i := 0; i+len(token) <= len(v); i++ {
		if !strings.EqualFold(v[i:i+len(token)], token) {
			continue
		}
		if (i == 0 || isTokenBoundary(v[i-1])) && (i+len(token) == len(v) || isTokenBoundary(v[i+len(token)])) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

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
