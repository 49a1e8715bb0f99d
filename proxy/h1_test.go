package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// connCounter counts the connections an httptest server accepted.
type connCounter struct{ n atomic.Int32 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.n.Add(1)
	}
}

func newTestH1(t *testing.T) *h1Transport {
	t.Helper()
	tr := newTransport().(*h1Transport)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// roundTrip sends a request with body (none when empty) and returns the
// status and the body read to its end.
func roundTrip(t *testing.T, rt http.RoundTripper, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	}
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return res.StatusCode, string(b)
}

func TestH1ReusesConnections(t *testing.T) {
	var conns connCounter
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+string(b))
	}))
	up.Config.ConnState = conns.hook
	up.Start()
	t.Cleanup(up.Close)
	tr := newTestH1(t)

	var got []string
	for _, method := range []string{"POST", "GET", "POST", "HEAD", "DELETE"} {
		body := ""
		if method == "POST" {
			body = `{"jsonrpc":"2.0"}`
		}
		status, b := roundTrip(t, tr, method, up.URL+"/mcp", body)
		got = append(got, method+" "+http.StatusText(status)+" "+b)
	}
	want := []string{
		`POST OK POST {"jsonrpc":"2.0"}`,
		"GET OK GET ",
		`POST OK POST {"jsonrpc":"2.0"}`,
		"HEAD OK ",
		"DELETE OK DELETE ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if n := conns.n.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests, want 1", n)
	}
}

func TestH1ReplacesClosedIdleConnection(t *testing.T) {
	var conns connCounter
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = conns.hook
	up.Start()
	t.Cleanup(up.Close)
	tr := newTestH1(t)

	if status, _ := roundTrip(t, tr, "POST", up.URL, "1"); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	// The upstream closes the idle connection; the close reaches the proxy's
	// side before the next request.
	up.CloseClientConnections()
	waitFor(t, "the idle connection to be seen closed", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, cs := range tr.idle {
			for _, c := range cs {
				if c.alive() {
					return false
				}
			}
		}
		return true
	})
	// A POST is not retried after a failure, so it must not be written to
	// the closed connection.
	if status, b := roundTrip(t, tr, "POST", up.URL, "2"); status != http.StatusOK || b != "ok" {
		t.Errorf("POST after the upstream closed the idle connection: %d %q", status, b)
	}
	if n := conns.n.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// rawUpstream runs a TCP server that answers with handle for each
// connection, numbered from 0.
func rawUpstream(t *testing.T, handle func(i int, c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(i, c, bufio.NewReader(c))
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// readRequest reads one request and its body.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func TestH1RetriesOnlyIdempotentRequests(t *testing.T) {
	tests := []struct {
		method  string
		body    string
		wantErr bool
	}{
		{"GET", "", false},
		{"POST", "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			// The first connection answers one request and then closes
			// when the next arrives, without answering it: a keep-alive
			// race the check of idle connections cannot see. Later
			// connections answer everything.
			var conns atomic.Int32
			url := rawUpstream(t, func(i int, c net.Conn, br *bufio.Reader) {
				conns.Add(1)
				for n := 0; ; n++ {
					if _, err := readRequest(br); err != nil {
						return
					}
					if i == 0 && n == 1 {
						return
					}
					io.WriteString(c, okResponse)
				}
			})
			tr := newTestH1(t)
			if status, _ := roundTrip(t, tr, tt.method, url, tt.body); status != http.StatusOK {
				t.Fatalf("first request: %d", status)
			}
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, url, strings.NewReader(tt.body))
			if tt.body == "" {
				req.Body = nil
			}
			res, err := tr.RoundTrip(req)
			if err == nil {
				res.Body.Close()
			}
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("second %s: err = %v, want an error: %v", tt.method, err, tt.wantErr)
			}
			wantConns := int32(1)
			if !tt.wantErr {
				wantConns = 2
			}
			if n := conns.Load(); n != wantConns {
				t.Errorf("%d connections, want %d", n, wantConns)
			}
		})
	}
}

func TestH1ClosesUnreadAndCloseConnections(t *testing.T) {
	var conns connCounter
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, strings.Repeat("x", 100<<10))
	}))
	up.Config.ConnState = conns.hook
	up.Start()
	t.Cleanup(up.Close)
	tr := newTestH1(t)

	// A body closed before its end: the connection cannot be reused.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", up.URL+"/big", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Read(make([]byte, 10))
	res.Body.Close()
	if _, err := res.Body.Read(make([]byte, 10)); err == nil {
		t.Error("read after Close succeeded")
	}
	roundTrip(t, tr, "GET", up.URL+"/close", "")
	roundTrip(t, tr, "GET", up.URL+"/big", "")
	if n := conns.n.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (none reusable before the last)", n)
	}
	tr.mu.Lock()
	idle := len(tr.idle[strings.TrimPrefix(up.URL, "http://")])
	tr.mu.Unlock()
	if idle != 1 {
		t.Errorf("%d idle connections, want 1", idle)
	}
}

// wantCanceled waits for the error of a round trip whose context was
// cancelled.
func wantCanceled(t *testing.T, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not end with its context")
	}
}

func TestH1ContextEndsWait(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			http.NewResponseController(w).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(release)
		up.Close()
	})
	tr := newTestH1(t)

	// While waiting for the headers.
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", up.URL+"/slow", strings.NewReader("x"))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	wantCanceled(t, errc)

	// While reading a stream.
	ctx, cancel = context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", up.URL+"/stream", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); line != "data: 1\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	if _, err := io.ReadAll(br); !errors.Is(err, context.Canceled) {
		t.Errorf("reading the stream: err = %v, want context.Canceled", err)
	}
}

// A round trip ties its connection to its context only after lazyWatch:
// a context that ends sooner still ends the round trip, one that had ended
// before sends nothing, and a round trip that outlived lazyWatch and ended
// normally leaves its connection reusable.
func TestH1LazyContextTie(t *testing.T) {
	var conns connCounter
	var requests atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/hang":
			<-r.Context().Done()
		case "/slow":
			time.Sleep(3 * lazyWatch)
		}
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = conns.hook
	up.Start()
	t.Cleanup(up.Close)
	tr := newTestH1(t)

	t.Run("ended before", func(t *testing.T) {
		roundTrip(t, tr, "GET", up.URL+"/fast", "") // an idle connection to reuse
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		before := requests.Load()
		req, _ := http.NewRequestWithContext(ctx, "GET", up.URL+"/fast", nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if n := requests.Load() - before; n != 0 {
			t.Errorf("the upstream got %d requests, want none", n)
		}
	})
	t.Run("ends within lazyWatch", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", up.URL+"/hang", nil)
			_, err := tr.RoundTrip(req)
			errc <- err
		}()
		time.Sleep(lazyWatch / 10)
		cancel()
		wantCanceled(t, errc)
	})
	t.Run("outlives lazyWatch", func(t *testing.T) {
		conns0 := conns.n.Load()
		for range 2 {
			if status, body := roundTrip(t, tr, "GET", up.URL+"/slow", ""); status != http.StatusOK || body != "ok" {
				t.Fatalf("answer %d %q", status, body)
			}
		}
		if n := conns.n.Load() - conns0; n > 1 {
			t.Errorf("%d connections for two sequential slow requests, want at most 1", n)
		}
	})
	waitFor(t, "the transport's list to empty and stop its timer", tr.watches.idle)
}

func TestH1InformationalResponses(t *testing.T) {
	url := rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+okResponse)
		}
	})
	tr := newTestH1(t)
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
		got = append(got, http.StatusText(code)+": "+hdr.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", url, nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != "ok" {
		t.Errorf("answer %d %q, want 200 ok", res.StatusCode, b)
	}
	if diff := cmp.Diff([]string{"Early Hints: </style.css>; rel=preload"}, got); diff != "" {
		t.Errorf("1xx responses (-want +got):\n%s", diff)
	}
}

// TestStatusBelow100: an upstream status of 000–099 reaches the client as
// a 502 (ReverseProxy would panic on it), with either transport, and its
// connection is not reused.
func TestStatusBelow100(t *testing.T) {
	for _, tc := range []struct {
		name string
		tr   http.RoundTripper
	}{
		{"h1", nil},
		{"net/http", http.DefaultTransport.(*http.Transport).Clone()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int32
			url := rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
				conns.Add(1)
				for {
					if _, err := readRequest(br); err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			h, err := newHandler(Server{Name: "t", Upstream: url + "/mcp"}, Options{Transport: tc.tr}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, clientRequest(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
				if rec.Code != http.StatusBadGateway {
					t.Errorf("status %d, want 502", rec.Code)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d upstream connections for two requests, want 2: one answered 099 must not be reused", n)
			}
			if tc.tr != nil {
				return
			}
			// The transport alone refuses the answer and drops its connection.
			tr := newTestH1(t)
			for range 2 {
				req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/mcp", nil)
				if res, err := tr.RoundTrip(req); err == nil {
					res.Body.Close()
					t.Errorf("h1Transport passed on status %d, want an error", res.StatusCode)
				}
			}
			if n := conns.Load(); n != 4 {
				t.Errorf("%d upstream connections after two more round trips, want 4", n)
			}
		})
	}
}

func TestH1RefusesHugeHeaders(t *testing.T) {
	url := rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Junk: " + strings.Repeat("j", 1000) + "\r\n"
		for range maxResponseHeaderBytes/len(line) + 2 {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	tr := newTestH1(t)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if res, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "too large") {
		if res != nil {
			res.Body.Close()
		}
		t.Errorf("err = %v, want response headers too large", err)
	}
}

func TestH1DropsConnectionsAfterIdleTimeout(t *testing.T) {
	closed := make(chan struct{}, 1)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	tr := newTestH1(t)
	tr.idleTimeout = 20 * time.Millisecond
	roundTrip(t, tr, "GET", up.URL, "")
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle connection was not closed after the idle timeout")
	}
}

func TestH1PassesOnWhatItDoesNotHandle(t *testing.T) {
	tr := newTestH1(t)
	big := strings.Repeat("b", maxDirectBody+1)
	tests := []struct {
		name   string
		method string // POST when empty
		url    string
		header http.Header
		body   string
		stream bool // body without GetBody
		want   bool
	}{
		{name: "plain http", url: "http://127.0.0.1:1/mcp", want: true},
		{name: "small body", url: "http://127.0.0.1:1/mcp", body: "{}", want: true},
		{name: "https", url: "https://127.0.0.1:1/mcp"},
		{name: "large body", url: "http://127.0.0.1:1/mcp", body: big},
		{name: "streamed body", url: "http://127.0.0.1:1/mcp", body: "{}", stream: true},
		{name: "upgrade", url: "http://127.0.0.1:1/", header: http.Header{"Upgrade": {"websocket"}}},
		{name: "expect", url: "http://127.0.0.1:1/", body: "{}", header: http.Header{"Expect": {"100-continue"}}},
		{name: "connect", method: http.MethodConnect, url: "http://127.0.0.1:1/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != "" {
				req.Body = io.NopCloser(strings.NewReader(tt.body))
				req.ContentLength = int64(len(tt.body))
				if !tt.stream {
					req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tt.body)), nil }
				}
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			if got := tr.handles(req); got != tt.want {
				t.Errorf("handles = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestH1ProxyFromEnvironment(t *testing.T) {
	tr := newTestH1(t)
	tr.fallback.Proxy = func(req *http.Request) (*url.URL, error) {
		if req.URL.Hostname() == "proxied.example" {
			return url.Parse("http://proxy.example:3128")
		}
		return nil, nil
	}
	for host, want := range map[string]bool{"proxied.example": false, "direct.example": true} {
		req, _ := http.NewRequest("GET", "http://"+host+"/mcp", nil)
		for range 2 { // the second answer comes from the cache
			if got := tr.handles(req); got != want {
				t.Errorf("handles(%s) = %v, want %v", host, got, want)
			}
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
