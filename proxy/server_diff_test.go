package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// h1Server promises that, whatever bytes a client sends, its handler sees
// the requests and the client gets the responses a plain net/http server
// would give. These tests hold it to that by sending the same bytes to both
// and comparing.

// exchangeTimeout bounds one exchange, so that no input can hang a test or a
// fuzz iteration. net/http takes up to 500 ms (its rstAvoidanceDelay) to
// close some connections, so it has to be well above that.
const exchangeTimeout = 3 * time.Second

// lateEOF is how long after it sent its input a client waits for the
// server's end of stream before that counts as late. When net/http's server
// closes a connection on which the client may still be sending, it
// half-closes it and waits 500 ms before closing it for good: the client
// sees the end at once, unless the half-close was lost. Every other answer
// takes a millisecond or so, unless the machine is busy: compareServers
// tries again when an end of stream late on one side is all that differs.
const lateEOF = 400 * time.Millisecond

// seenRequest is what the recording handler saw of a request.
type seenRequest struct {
	Method, RequestURI, URL, Proto, Host string
	Header                               []string // "Name: value", by name
	ContentLength                        int64
	TransferEncoding                     []string
	Close                                bool
	Body, BodyErr                        string
}

// recordingHandler is the handler both servers run: it records each
// request and answers it as its path's first segment says, so that every
// way of writing a response (and so every framing) can be reached from the
// bytes a client sends. Its responses depend on nothing but the request.
type recordingHandler struct {
	mu     sync.Mutex
	idle   sync.Cond // signalled when active drops to 0
	active int       // handlers running
	seen   []seenRequest
}

func newRecordingHandler() *recordingHandler {
	r := &recordingHandler{}
	r.idle.L = &r.mu
	return r
}

func (rec *recordingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.active++
	rec.mu.Unlock()
	defer func() {
		rec.mu.Lock()
		rec.active--
		rec.mu.Unlock()
		rec.idle.Broadcast()
	}()

	mode, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	s := seenRequest{
		Method:           r.Method,
		RequestURI:       r.RequestURI,
		URL:              r.URL.String(),
		Proto:            r.Proto,
		Host:             r.Host,
		ContentLength:    r.ContentLength,
		TransferEncoding: r.TransferEncoding,
		Close:            r.Close,
	}
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		for _, v := range r.Header[k] {
			s.Header = append(s.Header, k+": "+v)
		}
	}
	if mode != "unread" && mode != "closebody" {
		b, err := io.ReadAll(r.Body)
		s.Body = string(b)
		if err != nil {
			s.BodyErr = err.Error()
		}
	}
	rec.mu.Lock()
	rec.seen = append(rec.seen, s)
	rec.mu.Unlock()

	h := w.Header // not called here: when it is first called matters to net/http
	flush := func() { http.NewResponseController(w).Flush() }
	switch mode {
	case "json":
		// As the proxy's flushWriter writes a response of known length.
		body := `{"jsonrpc":"2.0","id":1,"result":{}}`
		h().Set("Content-Type", "application/json")
		h().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
		flush()
	case "nolen":
		h().Set("Content-Type", "text/plain")
		io.WriteString(w, "no length given\n")
	case "stream":
		h().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			io.WriteString(w, "data: "+strconv.Itoa(i)+"\n\n")
			flush()
		}
	case "big":
		h().Set("Content-Type", "text/plain")
		w.Write(bytes.Repeat([]byte("0123456789"), 500))
	case "sniff":
		io.WriteString(w, "<html><body>sniffed</body></html>")
	case "204":
		w.WriteHeader(http.StatusNoContent)
		io.WriteString(w, "not sent")
	case "304":
		h().Set("Content-Type", "text/plain")
		h().Set("Etag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	case "early":
		h().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		h().Set("Content-Type", "text/plain")
		io.WriteString(w, "after hints")
	case "trailer":
		h().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body with trailers")
		h().Set("X-Checksum", "abc")
		h().Set(http.TrailerPrefix+"X-Undeclared", "def")
	case "short":
		h().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	case "close":
		h().Set("Connection", "close")
		io.WriteString(w, "closing")
	case "writes":
		// Small writes past the size net/http buffers before it commits.
		h().Set("Content-Type", "text/plain")
		for range 30 {
			w.Write(bytes.Repeat([]byte("w"), 100))
		}
	case "closebody":
		r.Body.Close()
		io.WriteString(w, "closed")
	case "slow":
		// Long enough for h1Server to watch the connection (lazyWatch),
		// and so to read a byte of what the client sent next.
		time.Sleep(2 * lazyWatch)
		io.WriteString(w, "slow")
	case "abort":
		io.WriteString(w, "partial")
		flush()
		panic(http.ErrAbortHandler)
	case "late":
		// A header set after WriteHeader, Header having been called before.
		h().Set("X-Early", "1")
		w.WriteHeader(http.StatusOK)
		h().Set("X-Late", "1")
		io.WriteString(w, "late")
	case "late2":
		// The same with Header first called after WriteHeader.
		w.WriteHeader(http.StatusOK)
		h().Set("X-Late", "1")
		io.WriteString(w, "late")
	case "reply":
		writeReply(w, r)
	default:
		io.WriteString(w, "ok")
	}
}

// writeReply answers with what the request asks for in its Reply-* headers:
// Reply-Status (a status code), Reply-X (header X, set before the status),
// Reply-Body, written Reply-Writes times (up to 100), each write flushed if
// Reply-Flush is set, and Reply-After-X (header X, set after the body: a
// trailer). The proxy forwards whatever headers and bodies its upstreams
// send, so the fuzzer gets to choose them too.
func writeReply(w http.ResponseWriter, r *http.Request) {
	var after []string
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		name, ok := strings.CutPrefix(k, "Reply-")
		if !ok || name == "Status" || name == "Body" || name == "Writes" || name == "Flush" {
			continue
		}
		if strings.HasPrefix(name, "After-") {
			after = append(after, k)
			continue
		}
		for _, v := range r.Header[k] {
			w.Header().Add(name, v)
		}
	}
	if code, err := strconv.Atoi(r.Header.Get("Reply-Status")); err == nil && code >= 100 && code <= 999 && code != http.StatusSwitchingProtocols {
		w.WriteHeader(code)
	}
	writes, err := strconv.Atoi(r.Header.Get("Reply-Writes"))
	if err != nil {
		writes = 1
	}
	for range min(writes, 100) {
		io.WriteString(w, r.Header.Get("Reply-Body"))
		if r.Header.Get("Reply-Flush") != "" {
			http.NewResponseController(w).Flush()
		}
	}
	for _, k := range after {
		for _, v := range r.Header[k] {
			w.Header().Add(strings.TrimPrefix(k, "Reply-After-"), v)
		}
	}
}

// wait waits, up to d, for the handlers running to return, and reports
// whether they did.
func (rec *recordingHandler) wait(d time.Duration) bool {
	expired := false
	t := time.AfterFunc(d, func() {
		rec.mu.Lock()
		expired = true
		rec.mu.Unlock()
		rec.idle.Broadcast()
	})
	defer t.Stop()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for rec.active > 0 && !expired {
		rec.idle.Wait()
	}
	return rec.active == 0
}

// take returns the requests seen since the last take.
func (rec *recordingHandler) take() []seenRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	s := rec.seen
	rec.seen = nil
	return s
}

// diffServer is one of the two servers compared, with its handler.
type diffServer struct {
	addr string
	rec  *recordingHandler
	mu   sync.Mutex // one exchange at a time, so that rec sees only its requests
}

// startDiffServers starts an h1Server and a plain net/http server with the
// same timeouts, each with a recordingHandler of its own.
func startDiffServers(tb testing.TB) (h1, std *diffServer) {
	tb.Helper()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		return ln
	}

	h1 = &diffServer{rec: newRecordingHandler()}
	hs := newH1Server(h1.rec, context.Background(), slog.New(slog.DiscardHandler))
	ln := listen()
	h1.addr = ln.Addr().String()
	go hs.Serve(ln)
	tb.Cleanup(func() { hs.Close() })

	std = &diffServer{rec: newRecordingHandler()}
	ss := &http.Server{
		Handler:           std.rec,
		ReadHeaderTimeout: hs.readHeaderTimeout,
		IdleTimeout:       hs.idleTimeout,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ln = listen()
	std.addr = ln.Addr().String()
	go ss.Serve(ln)
	tb.Cleanup(func() { ss.Close() })
	return h1, std
}

var dateHeader = regexp.MustCompile(`\r\nDate: [^\r\n]*`)

// exchange sends input on a new connection, closes its write side and
// reads the server's answer until the server closes it, then returns that
// answer, with Date values replaced, and the requests the handler saw. How
// the read ended shows at its end unless it was a timely EOF: "<reset>",
// "<timeout>", "<late EOF>" (see lateEOF); "<handler still running>" means
// what it says.
func (s *diffServer) exchange(input []byte) ([]byte, []seenRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := net.DialTimeout("tcp", s.addr, exchangeTimeout)
	if err != nil {
		return []byte("<dial: " + err.Error() + ">"), nil
	}
	c.SetDeadline(time.Now().Add(exchangeTimeout))
	start := time.Now()
	wrote := make(chan struct{})
	go func() {
		// Concurrently with the read: the server may answer, or stop
		// reading, before it has all of the input.
		defer close(wrote)
		c.Write(input)
		c.(*net.TCPConn).CloseWrite()
	}()
	out, err := io.ReadAll(c)
	c.Close()
	<-wrote
	var ne net.Error
	switch {
	case err == nil && time.Since(start) > lateEOF:
		out = append(out, "<late EOF>"...)
	case err == nil:
	case errors.Is(err, syscall.ECONNRESET):
		out = append(out, "<reset>"...)
	case errors.As(err, &ne) && ne.Timeout():
		out = append(out, "<timeout>"...)
	default:
		out = append(out, "<error>"...)
	}
	if !s.rec.wait(exchangeTimeout) {
		out = append(out, "<handler still running>"...)
	}
	return dateHeader.ReplaceAll(out, []byte("\r\nDate: <date>")), s.rec.take()
}

// serverReadBuffer is the size of both servers' connection read buffers: an
// input no longer than this, sent in one write, is read in one go.
const serverReadBuffer = 4 << 10

// compareServers sends input to both servers and reports any difference
// between their responses, byte for byte (Date values aside), and between
// the requests their handlers saw.
func compareServers(t *testing.T, h1, std *diffServer, input []byte) {
	t.Helper()
	var (
		h1Out, stdOut   []byte
		h1Seen, stdSeen []seenRequest
	)
	for range 3 {
		var wg sync.WaitGroup
		wg.Go(func() { h1Out, h1Seen = h1.exchange(input) })
		wg.Go(func() { stdOut, stdSeen = std.exchange(input) })
		wg.Wait()
		if len(input) > serverReadBuffer {
			// Whether a server that closes the connection has read all of
			// a long input by then, and so whether the client sees a
			// reset, is up to timing: compare what came before.
			stdOut = bytes.TrimSuffix(stdOut, []byte("<reset>"))
			h1Out = bytes.TrimSuffix(h1Out, []byte("<reset>"))
		}
		// A loaded machine can make an end of stream late once; a lost
		// half-close makes it late every time.
		late := []byte("<late EOF>")
		if bytes.Equal(h1Out, stdOut) || !bytes.Equal(bytes.TrimSuffix(h1Out, late), bytes.TrimSuffix(stdOut, late)) {
			break
		}
	}
	if d := cmp.Diff(string(stdOut), string(h1Out)); d != "" {
		t.Errorf("input %.1000q\nresponses differ (-net/http +h1Server):\n%s", input, d)
	}
	if d := cmp.Diff(stdSeen, h1Seen); d != "" {
		t.Errorf("input %.1000q\nrequests seen differ (-net/http +h1Server):\n%s", input, d)
	}
}

// rawPost is a plain HTTP/1.1 POST of body to path, with extra header lines.
func rawPost(path, body string, headers ...string) string {
	var b strings.Builder
	b.WriteString("POST " + path + " HTTP/1.1\r\nHost: example.com\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	return b.String() + "\r\n" + body
}

// diffCase is an input both servers must answer alike.
type diffCase struct{ name, input string }

// diffCases are TestServerMatchesNetHTTP's inputs and FuzzH1Server's seeds.
var diffCases = func() []diffCase {
	const body = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	cases := []diffCase{
		{"content-length 0", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"},
		{"connection close", rawPost("/json", body, "Connection: close") + rawPost("/json", body)},
		{"connection CLOSE", rawPost("/json", body, "Connection: CLOSE") + rawPost("/json", body)},
		{"keep-alive", rawPost("/json", body, "Connection: keep-alive") + rawPost("/nolen", body)},
		{"two pipelined", rawPost("/json", body) + rawPost("/stream", body)},
		{"three pipelined", rawPost("/json", body) + rawPost("/stream", "") + rawPost("/nolen", body)},
		{"pipelined after close response", rawPost("/close", body) + rawPost("/json", body)},
		{"pipelined after short response", rawPost("/short", body) + rawPost("/json", body)},
		{"pipelined after slow", rawPost("/slow", body) + rawPost("/json", body)},
		{"GET after slow", rawPost("/slow", body) + "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"one byte after slow", rawPost("/slow", "") + "G"},
		{"pipelined after abort", rawPost("/abort", body) + rawPost("/json", body)},
		{"stray CRLF", rawPost("/json", body) + "\r\n" + rawPost("/json", body)},
		{"stray LF CR", rawPost("/json", body) + "\n\r" + rawPost("/json", body)},
		{"four stray CRLF bytes", rawPost("/json", body) + "\r\n\r\n" + rawPost("/json", body)},
		{"six stray CRLF bytes", rawPost("/json", body) + "\r\n\r\n\r\n" + rawPost("/json", body)},
		{"six stray CRLF bytes then EOF", rawPost("/json", body) + "\r\n\r\n\r\n"},
		{"one byte after a request", rawPost("/json", body) + "0"},
		{"three bytes after a request", rawPost("/json", body) + "0\r\n"},
		{"four bytes after a request", rawPost("/json", body) + "0\r\n\r"},
		{"stray CRLF before first request", "\r\n" + rawPost("/json", body)},
		{"lower-case names", "POST /json HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n{}"},
		{"duplicate content-length", rawPost("/json", "{}", "Content-Length: 2")},
		{"conflicting content-length", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x"},
		{"content-length leading zeros", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 0002\r\n\r\n{}"},
		{"content-length plus", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\n{}"},
		{"content-length spaces", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: \t 2 \t\r\n\r\n{}"},
		{"content-length inner space", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n{}"},
		{"content-length negative", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: -2\r\n\r\n{}"},
		{"content-length 19 digits", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n{}"},
		{"content-length 18 digits", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000000000000\r\n\r\n{}"},
		{"chunked", "POST /json HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + rawPost("/json", body)},
		{"chunked and content-length", "POST /json HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
		{"expect 100-continue", rawPost("/json", body, "Expect: 100-continue")},
		{"expect other", rawPost("/json", body, "Expect: something")},
		{"GET", "GET /json HTTP/1.1\r\nHost: a\r\n\r\n" + rawPost("/json", body)},
		{"HEAD", "HEAD /nolen HTTP/1.1\r\nHost: a\r\n\r\nHEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"DELETE", "DELETE /json HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"},
		{"GET after POST", rawPost("/json", body) + "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"HTTP/1.0 after POST", rawPost("/json", body) + "POST /nolen HTTP/1.0\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"},
		{"POST after GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n" + rawPost("/stream", body)},
		{"HTTP/1.0", "POST /json HTTP/1.0\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"},
		{"HTTP/1.0 keep-alive", "POST /nolen HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}" +
			"POST /json HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}"},
		{"absolute-form", "POST http://example.com/json?q=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\n{}"},
		{"missing host", "POST /json HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"},
		{"empty host", rawPost("/json", "{}", "Host:")},
		{"two hosts", rawPost("/json", "{}", "Host: b")},
		{"host with port", "POST /json HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 2\r\n\r\n{}"},
		{"host with space", "POST /json HTTP/1.1\r\nHost: a b\r\nContent-Length: 2\r\n\r\n{}"},
		{"host with comma", "POST /json HTTP/1.1\r\nHost: a,b\r\nContent-Length: 2\r\n\r\n{}"},
		{"host with at", "POST /json HTTP/1.1\r\nHost: user@a\r\nContent-Length: 2\r\n\r\n{}"},
		{"host with unicode", "POST /json HTTP/1.1\r\nHost: h\u00e9llo.example\r\nContent-Length: 2\r\n\r\n{}"},
		{"obs-text value", rawPost("/json", "{}", "X-A: caf\xe9")},
		{"control byte value", rawPost("/json", "{}", "X-A: a\x01b")},
		{"DEL value", rawPost("/json", "{}", "X-A: a\x7fb")},
		{"NUL value", rawPost("/json", "{}", "X-A: a\x00b")},
		{"bare LF", "POST /json HTTP/1.1\nHost: a\nContent-Length: 2\n\n{}"},
		{"bare LF in one line", "POST /json HTTP/1.1\r\nHost: a\nContent-Length: 2\r\n\r\n{}"},
		{"bare CR", rawPost("/json", "{}", "X-A: a\rb")},
		{"obs-fold", rawPost("/json", "{}", "X-A: a", " b")},
		{"space before colon", rawPost("/json", "{}", "X-A : b")},
		{"empty name", rawPost("/json", "{}", ": b")},
		{"empty value", rawPost("/json", "{}", "X-A:")},
		{"lower-case method", "post /json HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"},
		{"bad escape in target", rawPost("/json/%zz", "{}")},
		{"fragment in target", rawPost("/json#frag", "{}")},
		{"query", rawPost("/json?a=1&b=%20", "{}")},
		{"double space", "POST /json  HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"},
		{"HTTP/1.2", "POST /json HTTP/1.2\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"},
		{"connection upgrade", rawPost("/json", "{}", "Connection: Upgrade", "Upgrade: websocket")},
		{"connection keep-alive, close", rawPost("/json", "{}", "Connection: keep-alive, close") + rawPost("/json", "{}")},
		{"head over 4 KiB", rawPost("/json", body, "X-Pad: "+strings.Repeat("p", 5000))},
		{"head of 4 KiB", rawPost("/json", body, "X-Pad: "+strings.Repeat("p", 4096-len(rawPost("/json", body, "X-Pad: "))+len(body)))},
		{"head of 4095 bytes", rawPost("/json", body, "X-Pad: "+strings.Repeat("p", 4095-len(rawPost("/json", body, "X-Pad: "))+len(body)))},
		{"head of 4097 bytes", rawPost("/json", body, "X-Pad: "+strings.Repeat("p", 4097-len(rawPost("/json", body, "X-Pad: "))+len(body)))},
		{"head over 4 KiB second", rawPost("/json", body) + rawPost("/json", body, "X-Pad: "+strings.Repeat("p", 5000))},
		{"head straddling buffer", rawPost("/json", strings.Repeat("b", 3000)) + rawPost("/json", body, "X-Pad: "+strings.Repeat("p", 2000))},
		{"truncated head", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Le"},
		{"truncated head after POST", rawPost("/json", body) + "POST /json HTTP/1.1\r\nHost: a\r\nContent-Le"},
		{"truncated body", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"},
		{"truncated unread body", "POST /unread HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"},
		{"body longer than content-length", "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcdef garbage\r\n\r\n"},
		{"large body", rawPost("/json", strings.Repeat("x", 100<<10))},
		{"unread body 300 KiB", rawPost("/unread", strings.Repeat("x", 300<<10)) + rawPost("/json", body)},
		{"unread body 256 KiB", rawPost("/unread", strings.Repeat("x", 256<<10)) + rawPost("/json", body)},
		{"closed body 256 KiB", rawPost("/closebody", strings.Repeat("x", 256<<10)) + rawPost("/json", body)},
		{"closed body 256 KiB - 1", rawPost("/closebody", strings.Repeat("x", 256<<10-1)) + rawPost("/json", body)},
		{"closed body 300 KiB", rawPost("/closebody", strings.Repeat("x", 300<<10)) + rawPost("/json", body)},
		{"unread body 256 KiB - 1", rawPost("/unread", strings.Repeat("x", 256<<10-1)) + rawPost("/json", body)},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{"reply headers", rawPost("/reply", "{}", "Reply-Status: 201", "Reply-X-A: 1", "Reply-Body: hi", "Reply-After-X-T: 2", "Reply-Trailer: X-T")},
		{"reply content-length", rawPost("/reply", "{}", "Reply-Content-Length: 2", "Reply-Body: hi") + rawPost("/json", "{}")},
		{"reply bad content-length", rawPost("/reply", "{}", "Reply-Content-Length: x", "Reply-Body: hi")},
		{"reply identity", rawPost("/reply", "{}", "Reply-Transfer-Encoding: identity", "Reply-Body: hi") + rawPost("/json", "{}")},
		{"reply 1xx", rawPost("/reply", "{}", "Reply-Status: 102", "Reply-Body: hi")},
		{"reply unknown status", rawPost("/reply", "{}", "Reply-Status: 599", "Reply-Body: hi")},
		{"reply 304 with body", rawPost("/reply", "{}", "Reply-Status: 304", "Reply-Content-Type: text/plain", "Reply-Body: hi")},
		{"reply 204 with length", rawPost("/reply", "{}", "Reply-Status: 204", "Reply-Content-Length: 0") + rawPost("/json", "{}")},
		{"reply 100", rawPost("/reply", "{}", "Reply-Status: 100", "Reply-Body: hi")},
		{"reply 600", rawPost("/reply", "{}", "Reply-Status: 600", "Reply-Body: hi")},
		{"reply 999", rawPost("/reply", "{}", "Reply-Status: 999")},
		{"reply chunked", rawPost("/reply", "{}", "Reply-Transfer-Encoding: chunked", "Reply-Body: hi") + rawPost("/json", "{}")},
		{"reply gzip", rawPost("/reply", "{}", "Reply-Transfer-Encoding: gzip", "Reply-Body: hi") + rawPost("/json", "{}")},
		{"reply chunked and length", rawPost("/reply", "{}", "Reply-Transfer-Encoding: chunked", "Reply-Content-Length: 2", "Reply-Body: hi")},
		{"reply unknown coding and length", rawPost("/reply", "{}", "Reply-Transfer-Encoding: x", "Reply-Content-Length: 1") + rawPost("/json", "{}")},
		{"reply unknown coding and short length", rawPost("/reply", "{}", "Reply-Transfer-Encoding: x", "Reply-Content-Length: 1", "Reply-Body: hi") + rawPost("/json", "{}")},
		{"reply identity and length", rawPost("/reply", "{}", "Reply-Transfer-Encoding: identity", "Reply-Content-Length: 2", "Reply-Body: hi") + rawPost("/json", "{}")},
		{"reply content-encoding", rawPost("/reply", "{}", "Reply-Content-Encoding: gzip", "Reply-Body: <html>")},
		{"reply empty content-type", rawPost("/reply", "{}", "Reply-Content-Type:", "Reply-Body: <html>")},
		{"reply own date", rawPost("/reply", "{}", "Reply-Date: yesterday", "Reply-Body: hi")},
		{"reply keep-alive", rawPost("/reply", "{}", "Reply-Connection: keep-alive", "Reply-Body: hi") + rawPost("/json", "{}")},
		{"reply close and keep-alive", rawPost("/reply", "{}", "Reply-Connection: keep-alive", "Reply-Connection: close") + rawPost("/json", "{}")},
		{"reply trailers", rawPost("/reply", "{}", "Reply-Trailer: X-A, Content-Length,x-b", "Reply-Trailer: X-C", "Reply-After-X-A: 1", "Reply-After-X-B: 2", "Reply-After-X-C: 3", "Reply-After-Content-Length: 9", "Reply-Body: hi")},
		{"reply trailer with length", rawPost("/reply", "{}", "Reply-Trailer: X-A", "Reply-Content-Length: 2", "Reply-After-X-A: 1", "Reply-Body: hi") + rawPost("/json", "{}")},
		{"reply trailer on 204", rawPost("/reply", "{}", "Reply-Status: 204", "Reply-Trailer: X-A", "Reply-After-X-A: 1") + rawPost("/json", "{}")},
		{"reply trailer prefix", rawPost("/reply", "{}", "Reply-After-Trailer:x: 1", "Reply-Body: hi")},
		{"reply many writes", rawPost("/reply", "{}", "Reply-Body: "+strings.Repeat("r", 300), "Reply-Writes: 20") + rawPost("/json", "{}")},
		{"reply many flushed writes", rawPost("/reply", "{}", "Reply-Body: "+strings.Repeat("r", 300), "Reply-Writes: 20", "Reply-Flush: 1", "Reply-Trailer: X-A", "Reply-After-X-A: 1")},
		{"reply flushed no body", rawPost("/reply", "{}", "Reply-Writes: 3", "Reply-Flush: 1", "Reply-Status: 201")},
		{"reply flushed 304", rawPost("/reply", "{}", "Reply-Body: hi", "Reply-Flush: 1", "Reply-Status: 304")},
		{"reply flushed length", rawPost("/reply", "{}", "Reply-Body: hi", "Reply-Writes: 2", "Reply-Flush: 1", "Reply-Content-Length: 3") + rawPost("/json", "{}")},
		// The connection keeps the map and values of the header snapshot
		// it takes at WriteHeader: the second and third responses must
		// send none of the first's headers, the empty value stays.
		{"reply snapshots on one connection", rawPost("/reply", "{}", "Reply-Status: 201", "Reply-X-A: 1", "Reply-X-A: 2", "Reply-X-B: 3", "Reply-X-E:", "Reply-Body: hi") +
			rawPost("/reply", "{}", "Reply-Status: 202", "Reply-X-C: 4", "Reply-Body: hi") + rawPost("/late", "{}")},
		{"reply connection close token", rawPost("/reply", "{}", "Connection: close", "Reply-Connection: x close") + rawPost("/json", "{}")},
	}
	for _, mode := range []string{"json", "nolen", "stream", "big", "sniff", "204", "304", "early", "trailer", "short", "close", "unread", "abort", "late", "late2", "writes", "closebody", "slow", "other"} {
		cases = append(cases,
			diffCase{mode + " with body", rawPost("/"+mode, body)},
			diffCase{mode + " without body", rawPost("/"+mode, "")})
	}
	return cases
}()

// TestServerMatchesNetHTTP sends each of diffCases to an h1Server and to a
// plain net/http server, and compares what their handlers saw and what the
// client got back.
func TestServerMatchesNetHTTP(t *testing.T) {
	h1, std := startDiffServers(t)
	for _, tc := range diffCases {
		t.Run(tc.name, func(t *testing.T) {
			compareServers(t, h1, std, []byte(tc.input))
		})
	}
}

// FuzzH1Server does the same with any bytes: h1Server decides for itself
// which requests it serves, where they end and how it answers them, and
// must do so exactly as net/http would, however odd the input.
func FuzzH1Server(f *testing.F) {
	for _, tc := range diffCases {
		f.Add([]byte(tc.input))
	}
	h1, std := startDiffServers(f)
	f.Fuzz(func(t *testing.T, input []byte) {
		compareServers(t, h1, std, input)
	})
}
