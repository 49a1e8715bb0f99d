package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// startH1 serves h with an h1Server on a loopback port; set may adjust the
// server before it serves.
func startH1(t *testing.T, h http.Handler, set func(*h1Server)) (*h1Server, string) {
	t.Helper()
	return startH1Base(t, context.Background(), h, set)
}

// startH1Base is startH1 with base as the server's base context.
func startH1Base(t *testing.T, base context.Context, h http.Handler, set func(*h1Server)) (*h1Server, string) {
	t.Helper()
	s := newH1Server(h, base, slog.New(slog.DiscardHandler))
	if set != nil {
		set(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// rawConn is a client connection that writes requests as bytes and reads
// responses with net/http's parser.
type rawConn struct {
	t *testing.T
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, Conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		c.t.Fatal(err)
	}
}

// response reads the next response and its body.
func (c *rawConn) response() (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading a response body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection: the next read
// ends without data.
func (c *rawConn) closed() bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.br.Read(make([]byte, 1))
	return n == 0 && err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func postReq(path, body string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, len(body))
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// echo answers with the method, path and body it got.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
})

func TestPlainHead(t *testing.T) {
	const ok = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:7001\r\nContent-Length: 2\r\nConnection: keep-alive\r\nmcp-session-id: a b\t\r\n\r\n"
	if !plainHead([]byte(ok)) {
		t.Fatalf("plainHead refused %q", ok)
	}
	for _, tt := range []struct{ name, head string }{
		{"GET", "GET /mcp HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"lower-case method", "post /mcp HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"HTTP/1.0", "POST /mcp HTTP/1.0\r\nHost: h\r\n\r\n"},
		{"absolute form", "POST http://h/mcp HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"control byte in target", "POST /m\x01 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"non-ASCII target", "POST /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"no Host", "POST /mcp HTTP/1.1\r\nA: b\r\n\r\n"},
		{"two Hosts", "POST /mcp HTTP/1.1\r\nHost: h\r\nhost: h\r\n\r\n"},
		{"empty Host", "POST /mcp HTTP/1.1\r\nHost: \r\n\r\n"},
		{"Host with @", "POST /mcp HTTP/1.1\r\nHost: a@h\r\n\r\n"},
		{"Host with space", "POST /mcp HTTP/1.1\r\nHost: a h\r\n\r\n"},
		{"two Content-Lengths", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"},
		{"Content-Length sign", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n"},
		{"Content-Length list", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 1,1\r\n\r\n"},
		{"empty Content-Length", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n"},
		{"huge Content-Length", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n"},
		{"Transfer-Encoding", "POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"Expect", "POST /mcp HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"},
		{"Upgrade", "POST /mcp HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"},
		{"TE", "POST /mcp HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n"},
		{"Trailer", "POST /mcp HTTP/1.1\r\nHost: h\r\nTrailer: X\r\n\r\n"},
		{"HTTP2-Settings", "POST /mcp HTTP/1.1\r\nHost: h\r\nHTTP2-Settings: x\r\n\r\n"},
		{"Connection listing a header", "POST /mcp HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-A\r\n\r\n"},
		{"bare LF", "POST /mcp HTTP/1.1\r\nHost: h\nA: b\r\n\r\n"},
		{"bare CR", "POST /mcp HTTP/1.1\r\nHost: h\rA: b\r\n\r\n"},
		{"folded line", "POST /mcp HTTP/1.1\r\nHost: h\r\nA: b\r\n c\r\n\r\n"},
		{"space before colon", "POST /mcp HTTP/1.1\r\nHost: h\r\nA : b\r\n\r\n"},
		{"obs-text value", "POST /mcp HTTP/1.1\r\nHost: h\r\nA: \xff\r\n\r\n"},
		{"control byte in value", "POST /mcp HTTP/1.1\r\nHost: h\r\nA: \x7f\r\n\r\n"},
		{"empty name", "POST /mcp HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n"},
		{"cut short", "POST /mcp HTTP/1.1\r\nHost: h\r\n"},
	} {
		if plainHead([]byte(tt.head)) {
			t.Errorf("%s: plainHead accepted %q", tt.name, tt.head)
		}
	}
}

func TestServerKeepAliveAndPipelining(t *testing.T) {
	s, addr := startH1(t, echo, nil)
	c := dialRaw(t, addr)
	c.send(postReq("/a", "1"))
	if _, body := c.response(); body != "POST /a 1" {
		t.Fatalf("first response %q", body)
	}
	// Three at once, the stray CRLF some clients send after a POST between
	// two of them.
	c.send(postReq("/b", "22") + "\r\n" + postReq("/c", "") + postReq("/d", "4444"))
	for _, want := range []string{"POST /b 22", "POST /c ", "POST /d 4444"} {
		resp, body := c.response()
		if body != want || resp.ContentLength != int64(len(want)) {
			t.Errorf("got %q (length %d), want %q", body, resp.ContentLength, want)
		}
	}
	if n := s.handedOff.Load(); n != 0 {
		t.Errorf("%d connections handed to net/http, want 0", n)
	}
	c.send(postReq("/e", "5", "Connection: close"))
	if resp, body := c.response(); body != "POST /e 5" || !resp.Close {
		t.Errorf("got %q, Close %v; want the answer and Connection: close", body, resp.Close)
	}
	if !c.closed() {
		t.Error("connection open after Connection: close")
	}
}

// Whatever the loop does not serve itself, net/http's server does, and it
// keeps the connection from then on.
func TestServerHandsOff(t *testing.T) {
	for _, tt := range []struct {
		name, req, want string
	}{
		{"GET", "GET /g HTTP/1.1\r\nHost: h\r\n\r\n", "GET /g "},
		{"DELETE", "DELETE /d HTTP/1.1\r\nHost: h\r\n\r\n", "DELETE /d "},
		{"chunked", "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST /c abc"},
		{"HTTP/1.0", "POST /o HTTP/1.0\r\nHost: h\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx", "POST /o x"},
		{"long head", "POST /l HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 1\r\n\r\ny", "POST /l y"},
		{"obs-text", "POST /t HTTP/1.1\r\nHost: h\r\nX-A: \xe9\r\nContent-Length: 1\r\n\r\nz", "POST /t z"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, addr := startH1(t, echo, nil)
			c := dialRaw(t, addr)
			c.send(postReq("/first", "0"))
			if _, body := c.response(); body != "POST /first 0" {
				t.Fatalf("first response %q", body)
			}
			c.send(tt.req)
			if _, body := c.response(); body != tt.want {
				t.Errorf("got %q, want %q", body, tt.want)
			}
			c.send(postReq("/after", "1"))
			if _, body := c.response(); body != "POST /after 1" {
				t.Errorf("the request after: got %q", body)
			}
			if n := s.handedOff.Load(); n != 1 {
				t.Errorf("%d connections handed to net/http, want 1", n)
			}
		})
	}
}

func TestServerExpectContinue(t *testing.T) {
	_, addr := startH1(t, echo, nil)
	c := dialRaw(t, addr)
	c.send("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v; want 100 Continue", line, err)
	}
	c.br.ReadString('\n') // the empty line
	c.send("abc")
	if _, body := c.response(); body != "POST /x abc" {
		t.Errorf("got %q", body)
	}
}

// A request's context ends when its client goes away, also for a request
// without a body, and not when the client sends its next request early.
func TestServerClientGone(t *testing.T) {
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if r.URL.Path == "/quick" {
			return
		}
		started <- struct{}{}
		if r.URL.Path == "/pipelined" {
			time.Sleep(5 * lazyWatch) // the next request arrives meanwhile
			ended <- r.Context().Err()
			return
		}
		<-r.Context().Done()
		ended <- r.Context().Err()
	})
	_, addr := startH1(t, h, nil)
	for _, body := range []string{"", "{}"} {
		c := dialRaw(t, addr)
		c.send(postReq("/wait", body))
		<-started
		c.Close()
		select {
		case err := <-ended:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("body %q: context ended with %v", body, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("body %q: the request's context did not end when its client went away", body)
		}
	}

	c := dialRaw(t, addr)
	c.send(postReq("/pipelined", "{}"))
	<-started
	time.Sleep(2 * lazyWatch)
	c.send(postReq("/quick", "1"))
	if err := <-ended; err != nil {
		t.Errorf("a pipelined request ended the context of the one before: %v", err)
	}
	for range 2 {
		if resp, _ := c.response(); resp.StatusCode != http.StatusOK {
			t.Errorf("status %d", resp.StatusCode)
		}
	}
}

// The body of a request that the handler did not read is dropped, up to
// maxDiscard; beyond that the connection closes after the response.
func TestServerUnreadBody(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, addr := startH1(t, h, nil)
	c := dialRaw(t, addr)
	c.send(postReq("/", strings.Repeat("x", 100<<10)))
	if resp, body := c.response(); body != "ok" || resp.Close {
		t.Fatalf("got %q, Close %v", body, resp.Close)
	}
	c.send(postReq("/", "x"))
	if _, body := c.response(); body != "ok" {
		t.Fatalf("the request after an unread body: %q", body)
	}

	c = dialRaw(t, addr)
	// Written meanwhile: the server answers, and closes, before it has
	// read the whole body, so the write may fail.
	go io.WriteString(c, postReq("/", strings.Repeat("x", maxDiscard+1)))
	if resp, body := c.response(); body != "ok" || !resp.Close {
		t.Errorf("got %q, Close %v; want Connection: close", body, resp.Close)
	}
}

// A reader of a request body that outlives its handler (a transport still
// sending it) gets an error, never the next request's bytes.
func TestServerBodyAfterHandler(t *testing.T) {
	var mu sync.Mutex
	var kept io.Reader
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if kept == nil {
			kept = r.Body
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	_, addr := startH1(t, h, nil)
	c := dialRaw(t, addr)
	c.send(postReq("/", "first"))
	c.response()
	c.send(postReq("/", "second"))
	if _, body := c.response(); body != "second" {
		t.Errorf("second request's body %q", body)
	}
	mu.Lock()
	defer mu.Unlock()
	if n, err := kept.Read(make([]byte, 10)); n != 0 || !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Errorf("reading an old body: %d, %v; want ErrBodyReadAfterClose", n, err)
	}
}

func TestServerResponseFraming(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
			http.NewResponseController(w).Flush()
		case "/nolength":
			w.Write([]byte("<html>hi</html>"))
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				http.NewResponseController(w).Flush()
			}
		case "/big":
			w.Write(bytes.Repeat([]byte("b"), 5000))
		case "/short":
			w.Header().Set("Content-Length", "10")
			w.Write([]byte("12345"))
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/early":
			w.Header().Set("Link", "</a>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.Write([]byte("final"))
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			w.Write([]byte("data"))
			http.NewResponseController(w).Flush()
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "7")
		}
	})
	_, addr := startH1(t, h, nil)
	c := dialRaw(t, addr)
	for _, tt := range []struct {
		path, body, ctype string
		length            int64
		chunked           bool
	}{
		{path: "/length", body: "hello", ctype: "text/plain; charset=utf-8", length: 5}, // sniffed, as net/http does
		{path: "/nolength", body: "<html>hi</html>", ctype: "text/html; charset=utf-8", length: 15},
		{path: "/stream", body: "data: 0\n\ndata: 1\n\ndata: 2\n\n", ctype: "text/event-stream", length: -1, chunked: true},
		{path: "/big", body: strings.Repeat("b", 5000), ctype: "text/plain; charset=utf-8", length: -1, chunked: true},
		{path: "/nocontent", body: "", length: 0},
		{path: "/trailer", body: "data", length: -1, chunked: true, ctype: "text/plain; charset=utf-8"},
	} {
		c.send(postReq(tt.path, ""))
		resp, body := c.response()
		if body != tt.body || resp.ContentLength != tt.length || (len(resp.TransferEncoding) > 0) != tt.chunked ||
			resp.Header.Get("Content-Type") != tt.ctype || resp.Header.Get("Date") == "" {
			t.Errorf("%s: body %q length %d chunked %v type %q date %q; want %q %d %v %q and a date", tt.path, body,
				resp.ContentLength, resp.TransferEncoding, resp.Header.Get("Content-Type"), resp.Header.Get("Date"),
				tt.body, tt.length, tt.chunked, tt.ctype)
		}
		if tt.path == "/trailer" && (resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "7") {
			t.Errorf("trailers %v, want X-Sum and X-Late", resp.Trailer)
		}
	}

	c.send(postReq("/early", ""))
	resp, _ := c.response()
	if resp.StatusCode != http.StatusEarlyHints || resp.Header.Get("Link") == "" {
		t.Errorf("first answer %d %v, want 103 with its Link", resp.StatusCode, resp.Header)
	}
	if resp, body := c.response(); resp.StatusCode != http.StatusOK || body != "final" || resp.Header.Get("Link") != "" {
		t.Errorf("final answer %d %q %v", resp.StatusCode, body, resp.Header)
	}

	// A body shorter than its Content-Length: the connection closes, so
	// the client cannot take the next response for the rest.
	c.send(postReq("/short", ""))
	c.br.ReadString('!') // reads until the server closes
	if !c.closed() {
		t.Error("connection open after a response shorter than its Content-Length")
	}
}

// A panicking handler costs its connection only; http.ErrAbortHandler is
// not logged.
func TestServerPanic(t *testing.T) {
	logs := &syncBuffer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			w.Write([]byte("part"))
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ok")
	})
	_, addr := startH1(t, h, func(s *h1Server) { s.log = slog.New(slog.NewTextHandler(logs, nil)) })
	for _, path := range []string{"/panic", "/abort"} {
		c := dialRaw(t, addr)
		c.send(postReq(path, ""))
		io.ReadAll(c.br)
		if !c.closed() {
			t.Errorf("%s: connection open", path)
		}
	}
	c := dialRaw(t, addr)
	c.send(postReq("/", ""))
	if _, body := c.response(); body != "ok" {
		t.Errorf("after the panics: %q", body)
	}
	if got := logs.String(); !strings.Contains(got, "boom") || strings.Count(got, "panic serving") != 1 {
		t.Errorf("log %q: want the one panic, and not the abort", got)
	}
}

func TestServerTimeouts(t *testing.T) {
	s, addr := startH1(t, echo, func(s *h1Server) {
		s.readHeaderTimeout = 100 * time.Millisecond
		s.idleTimeout = 200 * time.Millisecond
	})
	c := dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\n")
	if !c.closed() {
		t.Error("connection open after its head took longer than readHeaderTimeout")
	}
	c = dialRaw(t, addr)
	c.send(postReq("/", ""))
	c.response()
	if !c.closed() {
		t.Error("connection open after idleTimeout")
	}
	// The sweeper that keeps the deadlines stops with the last connection.
	waitFor(t, "the sweeper to stop", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.sweeping
	})
}

// TestServerHandedOffHeadKeepsItsTimeout: a head that fills the loop's
// reader goes to net/http's server, which must not start a second
// readHeaderTimeout for it (a slow-header client would get twice the time).
func TestServerHandedOffHeadKeepsItsTimeout(t *testing.T) {
	// Wide margins: the server's deadline starts when it accepts, a little
	// after the dial, and a loaded machine may stretch that.
	const timeout = time.Second
	_, addr := startH1(t, echo, func(s *h1Server) { s.readHeaderTimeout = timeout })
	c := dialRaw(t, addr)
	start := time.Now()
	c.send("POST / HTTP/1.1\r\nHost: h\r\n")
	time.Sleep(timeout * 3 / 4)
	c.send("X-Pad: " + strings.Repeat("p", 6000) + "\r\n") // more than the reader holds
	// Past the head's timeout, within a second one started at the hand-off.
	time.Sleep(time.Until(start.Add(timeout * 3 / 2)))
	io.WriteString(c, "Content-Length: 0\r\n\r\n") // fails if the server has closed
	if !c.closed() {
		t.Errorf("a head handed off after %v was still read after %v: want the connection closed at readHeaderTimeout (%v)",
			timeout*3/4, timeout*3/2, timeout)
	}
}

// Shutdown closes idle connections at once and waits for running
// requests; then Serve returns ErrServerClosed.
func TestServerShutdown(t *testing.T) {
	release := make(chan struct{})
	running := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(running)
			<-release
		}
		io.WriteString(w, "ok")
	})
	s, addr := startH1(t, h, nil)
	idle := dialRaw(t, addr)
	idle.send(postReq("/", ""))
	idle.response()
	unused := dialRaw(t, addr)
	handedOff := dialRaw(t, addr)
	handedOff.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	handedOff.response()
	busy := dialRaw(t, addr)
	busy.send(postReq("/slow", ""))
	<-running

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	for name, c := range map[string]*rawConn{"idle": idle, "unused": unused, "handed off": handedOff} {
		if !c.closed() {
			t.Errorf("%s connection open during Shutdown", name)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if _, body := busy.response(); body != "ok" {
		t.Errorf("running request got %q", body)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
}

// TestServerBaseContext checks that request contexts end with the base
// context, and with its cause, which reaches them through the server
// rather than as their parent (newH1Server); and keep its deadline.
func TestServerBaseContext(t *testing.T) {
	running := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/wait" {
			close(running)
			<-ctx.Done()
		}
		_, hasDeadline := ctx.Deadline()
		fmt.Fprintf(w, "%v %v %v", ctx.Err(), context.Cause(ctx), hasDeadline)
	})

	base, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	_, addr := startH1Base(t, base, h, nil)
	idle := dialRaw(t, addr)
	idle.send(postReq("/", ""))
	if _, body := idle.response(); body != "<nil> <nil> false" {
		t.Fatalf("before the cancel: %q", body)
	}
	busy := dialRaw(t, addr)
	busy.send(postReq("/wait", ""))
	<-running
	cancel(errors.New("interrupt signal received"))
	want := "context canceled interrupt signal received false"
	if _, body := busy.response(); body != want {
		t.Errorf("a request running when the base context ended: %q", body)
	}
	// The server goes on serving (its Shutdown stops it), with request
	// contexts that have ended already.
	idle.send(postReq("/", ""))
	if _, body := idle.response(); body != want {
		t.Errorf("a request begun after the base context ended: %q", body)
	}

	withDeadline, cancel2 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel2()
	_, addr = startH1Base(t, withDeadline, h, nil)
	c := dialRaw(t, addr)
	c.send(postReq("/", ""))
	if _, body := c.response(); body != "<nil> <nil> true" {
		t.Errorf("with a deadline on the base context: %q", body)
	}
}

func TestServerShutdownTimeout(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	s, addr := startH1(t, h, nil)
	c := dialRaw(t, addr)
	c.send(postReq("/", ""))
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestWatchList checks the one timer that starts the client-gone watches of
// a server's requests: each listed request is watched once due, in order,
// unless it was taken off the list, its handler returned, or its
// connection moved on to another request.
// idle reports whether the list is empty and its timer stopped.
func (l *lazyList) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.running && l.head == nil && l.tail == nil
}

func TestWatchList(t *testing.T) {
	var l watchList
	type entry struct {
		r    *connReader
		ctx  context.Context
		peer net.Conn
	}
	newEntry := func() entry {
		c, peer := net.Pipe()
		t.Cleanup(func() { c.Close(); peer.Close() })
		r := &connReader{c: c}
		r.cond.L = &r.mu
		ctx, cancel := context.WithCancelCause(context.Background())
		r.begin(cancel)
		return entry{r, ctx, peer}
	}
	watching := func(e entry) bool {
		e.r.mu.Lock()
		defer e.r.mu.Unlock()
		return e.r.inRead
	}

	first, removed, last := newEntry(), newEntry(), newEntry()
	returned, movedOn := newEntry(), newEntry()
	l.add(first.r)
	time.Sleep(lazyWatch / 2)
	l.add(removed.r)
	l.add(movedOn.r)
	returned.r.abortPendingRead() // its handler returned: add lists nothing
	l.add(returned.r)
	l.add(last.r)
	l.remove(removed.r)
	movedOn.r.begin(func(error) {}) // the connection's next request

	waitFor(t, "the last request's watch", func() bool { return watching(last) })
	if !watching(first) {
		t.Error("the first request is not watched")
	}
	for name, e := range map[string]entry{"removed": removed, "returned": returned, "moved on": movedOn} {
		if watching(e) {
			t.Errorf("the %s request is watched", name)
		}
	}
	waitFor(t, "the list to stop its timer", l.idle)

	// A watched request ends when its client goes away.
	first.peer.Close()
	select {
	case <-first.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the watched request's context did not end when its client went away")
	}
	if last.ctx.Err() != nil {
		t.Error("the other watched request ended too")
	}

	// The list starts its timer again for the next request.
	again := newEntry()
	l.add(again.r)
	waitFor(t, "a watch after the list was empty", func() bool { return watching(again) })
}

// TestDateCache checks that responses get the Date net/http would give
// them, formatted anew only when the second changes.
func TestDateCache(t *testing.T) {
	var d dateCache
	t0 := time.Date(2026, 11, 26, 19, 0, 0, 100, time.FixedZone("CET", 3600))
	var last *cachedDate
	for i, tt := range []struct {
		at     time.Time
		want   string
		cached bool // from the entry the call before left
	}{
		{t0, "Thu, 26 Nov 2026 18:00:00 GMT", false},
		{t0.Add(900 * time.Millisecond), "Thu, 26 Nov 2026 18:00:00 GMT", true},
		{t0.Add(time.Second), "Thu, 26 Nov 2026 18:00:01 GMT", false},
		{t0, "Thu, 26 Nov 2026 18:00:00 GMT", false}, // the clock set back
	} {
		if got := d.get(tt.at); got != tt.want {
			t.Errorf("%d: get(%v) = %q, want %q", i, tt.at, got, tt.want)
		}
		if got := tt.at.UTC().Format(http.TimeFormat); got != tt.want {
			t.Errorf("%d: the test's own want is %q, net/http's format gives %q", i, tt.want, got)
		}
		if cur := d.p.Load(); (cur == last) != tt.cached {
			t.Errorf("%d: from the cache = %v, want %v", i, cur == last, tt.cached)
		}
		last = d.p.Load()
	}
}

func TestResponseAdoptHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*response)
		want bool
	}{
		{"fresh", func(*response) {}, true},
		{"header asked for", func(w *response) { w.Header() }, false},
		{"header set", func(w *response) { w.header.Set("X-A", "1") }, false},
		{"status written", func(w *response) { w.wroteHeader = true }, false},
	} {
		w := &response{header: http.Header{}}
		tc.set(w)
		h := http.Header{"Content-Type": {"application/json"}}
		if got := w.adoptHeader(h); got != tc.want {
			t.Errorf("%s: adoptHeader = %v, want %v", tc.name, got, tc.want)
		}
		if adopted := w.header.Get("Content-Type") != ""; adopted != tc.want {
			t.Errorf("%s: header adopted: %v, want %v", tc.name, adopted, tc.want)
		}
	}
}
