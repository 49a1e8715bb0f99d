package proxy

// Each test here runs its case against net/http's server too (startStd),
// as the control: the listener loop must behave as that server does.
// They were written by a review of the loop, one per difference it found.

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
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/shutdown"
)

// startStd serves h with net/http's server configured as newH1Server
// configures its embedded one: the behaviour h1Server aims to reproduce.
func startStd(t *testing.T, h http.Handler, set func(*http.Server)) (*http.Server, string) {
	t.Helper()
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if set != nil {
		set(s)
	}
	shutdown.CloseUnused(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return s, ln.Addr().String()
}

// startEither serves h with net/http's server or an h1Server, as impl
// says, and returns its Shutdown and address.
func startEither(t *testing.T, impl string, h http.Handler) (shutdown func(context.Context) error, addr string) {
	if impl == "net/http" {
		s, addr := startStd(t, h, nil)
		return s.Shutdown, addr
	}
	s, addr := startH1(t, h, nil)
	return s.Shutdown, addr
}

// eofWithin reports whether the server ends the connection (EOF or reset)
// within d.
func eofWithin(c net.Conn, br *bufio.Reader, d time.Duration) (bool, error) {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	if err == nil {
		return false, errors.New("unexpected data")
	}
	return !isTimeout(err), err
}

// A connection that sends nothing gets readHeaderTimeout, not idleTimeout,
// as with net/http, which applies it from the accept.
func TestServerFirstRequestHeaderTimeout(t *testing.T) {
	const rht, idle = 100 * time.Millisecond, 5 * time.Second
	_, stdAddr := startStd(t, echo, func(s *http.Server) { s.ReadHeaderTimeout, s.IdleTimeout = rht, idle })
	_, h1Addr := startH1(t, echo, func(s *h1Server) { s.readHeaderTimeout, s.idleTimeout = rht, idle })
	for _, tt := range []struct{ name, addr string }{{"net/http", stdAddr}, {"h1Server", h1Addr}} {
		c, err := net.Dial("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		closed, err := eofWithin(c, bufio.NewReader(c), 2*time.Second)
		if !closed {
			t.Errorf("%s: a connection that sent nothing is still open after %v (readHeaderTimeout %v): %v",
				tt.name, time.Since(start).Round(time.Millisecond), rht, err)
		}
	}
}

// A connection whose request head has not arrived whole is idle to
// Shutdown, which closes it at once, as net/http does.
func TestServerShutdownPartialHead(t *testing.T) {
	for _, impl := range []string{"net/http", "h1Server"} {
		t.Run(strings.ReplaceAll(impl, "/", "_"), func(t *testing.T) {
			shut, addr := startEither(t, impl, echo)
			for _, prefix := range []string{"", postReq("/", "x")} { // fresh, and after a request
				c := dialRaw(t, addr)
				if prefix != "" {
					c.send(prefix)
					c.response()
				}
				c.send("POST / HTTP/1.1\r\nHost: h\r\n") // head not finished
			}
			time.Sleep(50 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			if err := shut(ctx); err != nil {
				t.Errorf("Shutdown: %v after %v, want nil at once (connections with a partial head are closed)",
					err, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// The body a request with Connection: close left unsent is not waited for:
// the connection closes after the response, and Shutdown does not wait.
func TestServerConnectionCloseUnreadBody(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "denied") })
	_, stdAddr := startStd(t, h, nil)
	s, h1Addr := startH1(t, h, nil)
	for _, tt := range []struct{ name, addr string }{{"net/http", stdAddr}, {"h1Server", h1Addr}} {
		c := dialRaw(t, tt.addr)
		c.send("POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 100\r\n\r\n") // body not sent yet
		resp, body := c.response()
		if body != "denied" || !resp.Close {
			t.Fatalf("%s: %q close=%v", tt.name, body, resp.Close)
		}
		if closed, err := eofWithin(c.Conn, c.br, time.Second); !closed {
			t.Errorf("%s: connection still open 1s after a Connection: close response (%v)", tt.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("h1Server Shutdown: %v (its connection goroutine is blocked discarding the body)", err)
	}
}

// net/http half-closes a connection handed to it before it closes it, so
// the client gets a clean end, not a reset that can drop the response.
func TestServerHandOffCloseWrite(t *testing.T) {
	if _, ok := any(&replayConn{}).(interface{ CloseWrite() error }); !ok {
		t.Error("replayConn has no CloseWrite: net/http's closeWriteAndWait cannot half-close handed-off connections")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "no") })
	_, stdAddr := startStd(t, h, nil)
	_, h1Addr := startH1(t, h, nil)
	for _, tt := range []struct{ name, addr string }{{"net/http", stdAddr}, {"h1Server", h1Addr}} {
		c := dialRaw(t, tt.addr)
		// A chunked body (handed off) larger than maxDiscard, unread.
		go func() {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"+fmt.Sprintf("%x\r\n", 4<<20))
			c.Write(make([]byte, 600<<10)) // more than net/http reads (2 x 256 KiB)
		}()
		resp, body := c.response()
		if body != "no" || !resp.Close {
			t.Fatalf("%s: %q close=%v", tt.name, body, resp.Close)
		}
		start := time.Now()
		_, err := eofWithin(c.Conn, c.br, 2*time.Second)
		if took := time.Since(start); err != io.EOF || took > 400*time.Millisecond {
			t.Errorf("%s: after the response the client got %v after %v; want a clean EOF (FIN) at once", tt.name, err, took.Round(time.Millisecond))
		}
	}
}

// A response finished during Shutdown says Connection: close, as the
// connection closes after it.
func TestServerShutdownConnectionClose(t *testing.T) {
	for _, impl := range []string{"net/http", "h1Server"} {
		t.Run(strings.ReplaceAll(impl, "/", "_"), func(t *testing.T) {
			running, release := make(chan struct{}), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(running)
				<-release
				io.WriteString(w, "ok")
			})
			shut, addr := startEither(t, impl, h)
			c := dialRaw(t, addr)
			c.send(postReq("/", ""))
			<-running
			done := make(chan error, 1)
			go func() { done <- shut(context.Background()) }()
			time.Sleep(50 * time.Millisecond)
			close(release)
			resp, _ := c.response()
			if !resp.Close {
				t.Errorf("response finished during Shutdown has no Connection: close, yet the connection is closed after it")
			}
			<-done
		})
	}
}

// What reached the connection's buffer before a handler panicked is sent
// before the connection closes.
func TestServerPanicFlush(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 3000)) // > 2048: headers and one chunk go to the connection's buffer
		panic(http.ErrAbortHandler)
	})
	_, stdAddr := startStd(t, h, nil)
	_, h1Addr := startH1(t, h, nil)
	for _, tt := range []struct{ name, addr string }{{"net/http", stdAddr}, {"h1Server", h1Addr}} {
		c := dialRaw(t, tt.addr)
		c.send(postReq("/", ""))
		got, _ := io.ReadAll(c.br)
		if !strings.HasPrefix(string(got), "HTTP/1.1 200 OK\r\n") {
			t.Errorf("%s: client got %d bytes (%.20q); want the status line, headers and the chunk written before the panic", tt.name, len(got), got)
		}
	}
}

// The header sent is the header at WriteHeader, also when a value is
// changed in place afterwards.
func TestServerHeaderSnapshotDeep(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-A", "before")
		w.WriteHeader(200)
		w.Header()["X-A"][0] = "after"
		io.WriteString(w, "x")
	})
	_, stdAddr := startStd(t, h, nil)
	_, h1Addr := startH1(t, h, nil)
	for _, tt := range []struct{ name, addr string }{{"net/http", stdAddr}, {"h1Server", h1Addr}} {
		c := dialRaw(t, tt.addr)
		c.send(postReq("/", ""))
		resp, _ := c.response()
		if got := resp.Header.Get("X-A"); got != "before" {
			t.Errorf("%s: X-A %q, want the value at WriteHeader, %q", tt.name, got, "before")
		}
	}
}

// Requests pipelined at delays around lazyWatch, bodies read by goroutines
// that outlive their handlers, then a hand-off: every response in order.
func TestServerStressPipelineWatch(t *testing.T) {
	var wg sync.WaitGroup
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d time.Duration
		fmt.Sscanf(r.URL.Query().Get("d"), "%d", &d)
		if r.URL.Query().Get("late") == "1" && r.ContentLength > 0 {
			// A reader that outlives the handler.
			body := r.Body
			wg.Go(func() {
				time.Sleep(d)
				io.Copy(io.Discard, body)
			})
			time.Sleep(d)
			fmt.Fprintf(w, "%s", r.URL.Path)
			return
		}
		b, _ := io.ReadAll(r.Body)
		time.Sleep(d)
		fmt.Fprintf(w, "%s %s", r.URL.Path, b)
	})
	_, addr := startH1(t, h, func(s *h1Server) { s.log = slog.New(slog.DiscardHandler) })
	for i := range 30 {
		c := dialRaw(t, addr)
		var want []string
		var reqs []string
		for j := range 6 {
			d := time.Duration((i*7+j*3)%25) * time.Millisecond
			late := (i + j) % 3
			body := strings.Repeat(string(rune('a'+j)), j*100)
			path := fmt.Sprintf("/r%d", j)
			reqs = append(reqs, postReq(fmt.Sprintf("%s?d=%d&late=%d", path, d, late), body))
			if late == 1 && body != "" {
				want = append(want, path)
			} else {
				want = append(want, path+" "+body)
			}
		}
		reqs = append(reqs, "GET /g HTTP/1.1\r\nHost: h\r\n\r\n")
		want = append(want, "/g ")
		go func() {
			for _, r := range reqs {
				io.WriteString(c, r)
				time.Sleep(time.Duration(i%4) * 4 * time.Millisecond)
			}
		}()
		for k, w := range want {
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatalf("conn %d resp %d: %v", i, k, err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != w {
				t.Fatalf("conn %d resp %d: %q want %q", i, k, b, w)
			}
		}
		c.Close()
	}
	wg.Wait()
}

// Shutdown and Close before, during and twice: Serve returns
// ErrServerClosed and no goroutine is left.
func TestServerLifecycle(t *testing.T) {
	base := runtime.NumGoroutine()
	for i := range 20 {
		s := newH1Server(echo, context.Background(), slog.New(slog.DiscardHandler))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			s.Shutdown(context.Background())
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		var wg sync.WaitGroup
		for j := range 8 {
			wg.Go(func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(3 * time.Second))
				if j%2 == 0 {
					io.WriteString(c, postReq("/", "x")+"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
				} else {
					io.WriteString(c, postReq("/", "x"))
				}
				io.Copy(io.Discard, c)
			})
		}
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		switch i % 3 {
		case 0:
			go s.Close()
			s.Shutdown(context.Background())
		case 1:
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			s.Shutdown(ctx)
			cancel()
			s.Close()
		default:
			s.Close()
			s.Close()
		}
		select {
		case err := <-done:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return")
		}
		wg.Wait()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		t.Errorf("%d goroutines left, %d before", n, base)
	}
}

// An idle connection keeps nothing of its last request (the proxy's
// handler hangs the buffered body, up to 4 MiB, on it).
func TestServerIdleConnRetainsRequest(t *testing.T) {
	var mu sync.Mutex
	var ptrs []weak.Pointer[[1 << 20]byte]
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := new([1 << 20]byte)
		io.ReadFull(r.Body, buf[:])
		r.Body = io.NopCloser(bytes.NewReader(buf[:])) // as handler.buffer does
		mu.Lock()
		ptrs = append(ptrs, weak.Make(buf))
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	_, stdAddr := startStd(t, h, nil)
	_, h1Addr := startH1(t, h, nil)
	for _, tt := range []struct{ name, addr string }{{"net/http", stdAddr}, {"h1Server", h1Addr}} {
		c := dialRaw(t, tt.addr)
		c.send(postReq("/", strings.Repeat("x", 1<<20)))
		c.response()
		time.Sleep(50 * time.Millisecond)
		for range 3 {
			runtime.GC()
		}
		mu.Lock()
		alive := ptrs[len(ptrs)-1].Value() != nil
		mu.Unlock()
		if alive {
			t.Errorf("%s: the 1 MiB body buffer of a finished request is still reachable from the idle connection", tt.name)
		}
	}
}

// A read deadline the handler set through http.ResponseController ends
// with its request: the next request on the connection, sent after it
// passed, is served, as with net/http.
func TestServerHandlerReadDeadlineEnds(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
			t.Errorf("SetReadDeadline: %v", err)
		}
		io.WriteString(w, "ok")
	})
	_, stdAddr := startStd(t, h, nil)
	_, h1Addr := startH1(t, h, nil)
	for _, tt := range []struct{ name, addr string }{{"net/http", stdAddr}, {"h1Server", h1Addr}} {
		c := dialRaw(t, tt.addr)
		for i := range 2 {
			c.send(postReq("/", "{}"))
			if res, body := c.response(); res.StatusCode != http.StatusOK || body != "ok" {
				t.Errorf("%s: request %d: %d %q", tt.name, i, res.StatusCode, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
