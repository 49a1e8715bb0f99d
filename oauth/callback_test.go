package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
)

// listenRecorder is Callbacks.Listen for tests: it binds for real unless
// fail says otherwise, and records what was bound.
type listenRecorder struct {
	fail func(network, addr string) error

	mu    sync.Mutex
	binds []string // "network addr" of successful binds
}

func (r *listenRecorder) listen(network, addr string) (net.Listener, error) {
	if r.fail != nil {
		if err := r.fail(network, addr); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen(network, addr)
	if err == nil {
		r.mu.Lock()
		r.binds = append(r.binds, network+" "+addr)
		r.mu.Unlock()
	}
	return ln, err
}

func (r *listenRecorder) count(network string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.binds {
		if strings.HasPrefix(b, network+" ") {
			n++
		}
	}
	return n
}

// cbNew returns a Callbacks that binds through a recorder and logs
// to a buffer shown when the test fails. It also checks, at the end of the
// test, that no listener or paste reader goroutine is left.
func cbNew(t *testing.T) (*Callbacks, *listenRecorder) {
	t.Helper()
	cbCheckNoLeaks(t)
	var logs oauthtest.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	rec := &listenRecorder{}
	c := &Callbacks{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Listen: rec.listen,
	}
	return c, rec
}

// cbCheckNoLeaks fails the test if goroutines of this file's code outlive
// it. Registered first, it runs after every other cleanup. The tests in
// this file are not parallel, so no other test's goroutines are counted.
func cbCheckNoLeaks(t *testing.T) {
	t.Cleanup(func() {
		markers := []string{"oauth.(*Callbacks).listen.func", "oauth.(*Callbacks).ReadPastes"}
		deadline := time.Now().Add(10 * time.Second)
		for {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			leaked := ""
			for _, m := range markers {
				if strings.Contains(stacks, m) {
					leaked = m
				}
			}
			if leaked == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutine %s still running after the test:\n%s", leaked, stacks)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// cbFreePort returns a port that was free on 127.0.0.1 a moment ago.
func cbFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// cbExpectFree calls Expect on a free port, retrying when another process
// took the port in between, and closes the login at the end of the test.
func cbExpectFree(t *testing.T, c *Callbacks, path, state string) (*Pending, int) {
	t.Helper()
	for range 20 {
		port := cbFreePort(t)
		p, err := c.Expect(port, path, state)
		if err == nil {
			t.Cleanup(p.Close)
			return p, port
		}
		p.Close()
	}
	t.Fatal("no free port for the callback listener")
	return nil, 0
}

func cbExpect(t *testing.T, c *Callbacks, port int, path, state string) *Pending {
	t.Helper()
	p, err := c.Expect(port, path, state)
	if err != nil {
		t.Fatalf("Expect(%d, %q): %v", port, path, err)
	}
	t.Cleanup(p.Close)
	return p
}

type cbResponse struct {
	status int
	header http.Header
	body   string
}

// cbDo sends one request without keep-alive (so no idle connection outlives
// the test) and without any proxy from the environment.
func cbDo(t *testing.T, method, rawURL, host string) cbResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return cbResponse{res.StatusCode, res.Header, string(body)}
}

func cbGet(t *testing.T, port int, pathQuery string) cbResponse {
	t.Helper()
	return cbDo(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, pathQuery), fmt.Sprintf("localhost:%d", port))
}

func cbWait(t *testing.T, p *Pending) (*CallbackResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return p.Wait(ctx)
}

func cbAssertNotDelivered(t *testing.T, p *Pending) {
	t.Helper()
	select {
	case <-p.done:
		t.Errorf("login %s completed (res %+v, err %v), want still waiting", p.State(), p.res, p.err)
	default:
	}
}

const (
	cbStateA = "state-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	cbStateB = "state-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	cbStateC = "state-cccccccccccccccccccccccccccccccc"
)

func TestCallbackSuccess(t *testing.T) {
	c, _ := cbNew(t)
	p, port := cbExpectFree(t, c, "/callback", cbStateA)

	res := cbGet(t, port, "/callback?code=the-code&state="+cbStateA+"&iss=https%3A%2F%2Fas.example")
	if res.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body:\n%s", res.status, res.body)
	}
	if !strings.Contains(res.body, "close this tab") {
		t.Errorf("success page does not tell the user to close the tab:\n%s", res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	got, err := cbWait(t, p)
	if err != nil {
		t.Fatal(err)
	}
	want := &CallbackResult{Code: "the-code", State: cbStateA, Iss: "https://as.example"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Wait result (-want +got):\n%s", diff)
	}
}

func TestCallbackRoutesByState(t *testing.T) {
	c, rec := cbNew(t)
	pA, port := cbExpectFree(t, c, "/callback", cbStateA)
	pB := cbExpect(t, c, port, "/callback", cbStateB)
	pC := cbExpect(t, c, port, "other", cbStateC) // a missing slash is added

	if n := rec.count("tcp4"); n != 1 {
		t.Errorf("%d IPv4 binds for three logins on one port, want 1 (%q)", n, rec.binds)
	}

	if res := cbGet(t, port, "/callback?code=code-b&state="+cbStateB); res.status != http.StatusOK {
		t.Fatalf("status %d for login B, want 200", res.status)
	}
	cbAssertNotDelivered(t, pA)
	cbAssertNotDelivered(t, pC)
	if got, err := cbWait(t, pB); err != nil || got.Code != "code-b" {
		t.Errorf("login B: Wait = %+v, %v; want code-b", got, err)
	}

	// A login expects its own path.
	if res := cbGet(t, port, "/callback?code=code-c&state="+cbStateC); res.status != http.StatusBadRequest {
		t.Errorf("status %d for login C on /callback, want 400", res.status)
	}
	cbAssertNotDelivered(t, pC)
	if res := cbGet(t, port, "/other?code=code-c&state="+cbStateC); res.status != http.StatusOK {
		t.Errorf("status %d for login C on /other, want 200", res.status)
	}
	if got, err := cbWait(t, pC); err != nil || got.Code != "code-c" {
		t.Errorf("login C: Wait = %+v, %v; want code-c", got, err)
	}

	if res := cbGet(t, port, "/callback?code=code-a&state="+cbStateA); res.status != http.StatusOK {
		t.Errorf("status %d for login A, want 200", res.status)
	}
	if got, err := cbWait(t, pA); err != nil || got.Code != "code-a" {
		t.Errorf("login A: Wait = %+v, %v; want code-a", got, err)
	}
}

func TestCallbackRejects(t *testing.T) {
	c, _ := cbNew(t)
	p, port := cbExpectFree(t, c, "/callback", cbStateA)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	local := fmt.Sprintf("localhost:%d", port)

	tests := []struct {
		name, method, url, host string
		status                  int
		body                    string // a substring of the page
	}{
		{"unknown state", "GET", base + "/callback?code=x&state=" + cbStateB, local, 400, "No login is waiting"},
		{"missing state", "GET", base + "/callback?code=x", local, 400, "no state parameter"},
		{"empty state", "GET", base + "/callback?code=x&state=", local, 400, "no state parameter"},
		{"no code", "GET", base + "/callback?state=" + cbStateA, local, 400, "neither a code nor an error"},
		{"repeated code", "GET", base + "/callback?code=x&code=y&state=" + cbStateA, local, 400, "repeated"},
		{"malformed query", "GET", base + "/callback?code=%zz&state=" + cbStateA, local, 400, "malformed"},
		{"error for unknown state", "GET", base + "/callback?error=access_denied&state=" + cbStateB, local, 400, "No login is waiting"},
		{"error without state", "GET", base + "/callback?error=access_denied", local, 400, "no state parameter"},
		{"foreign host", "GET", base + "/callback?code=x&state=" + cbStateA, fmt.Sprintf("evil.example:%d", port), 403, "Forbidden"},
		{"foreign port", "GET", base + "/callback?code=x&state=" + cbStateA, fmt.Sprintf("localhost:%d", port+1), 403, "Forbidden"},
		{"no port in host", "GET", base + "/callback?code=x&state=" + cbStateA, "localhost", 403, "Forbidden"},
		{"other path", "GET", base + "/callbackx?code=x&state=" + cbStateA, local, 404, "not found"},
		{"root", "GET", base + "/?code=x&state=" + cbStateA, local, 404, "not found"},
		{"post", "POST", base + "/callback?code=x&state=" + cbStateA, local, 405, "Method Not Allowed"},
		{"head", "HEAD", base + "/callback?code=x&state=" + cbStateA, local, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := cbDo(t, tt.method, tt.url, tt.host)
			if res.status != tt.status {
				t.Errorf("status %d, want %d; body:\n%s", res.status, tt.status, res.body)
			}
			if !strings.Contains(res.body, tt.body) {
				t.Errorf("body does not contain %q:\n%s", tt.body, res.body)
			}
			cbAssertNotDelivered(t, p)
		})
	}

	// The login is unaffected by all of the above.
	if res := cbGet(t, port, "/callback?code=good&state="+cbStateA); res.status != http.StatusOK {
		t.Fatalf("status %d after the rejected requests, want 200", res.status)
	}
	if got, err := cbWait(t, p); err != nil || got.Code != "good" {
		t.Errorf("Wait = %+v, %v; want code good", got, err)
	}
}

func TestCallbackReusedState(t *testing.T) {
	c, _ := cbNew(t)
	p, port := cbExpectFree(t, c, "/callback", cbStateA)
	if res := cbGet(t, port, "/callback?code=first&state="+cbStateA); res.status != http.StatusOK {
		t.Fatalf("first response: status %d, want 200", res.status)
	}
	res := cbGet(t, port, "/callback?code=second&state="+cbStateA)
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "already received") {
		t.Errorf("second response: status %d, want 400 with \"already received\"; body:\n%s", res.status, res.body)
	}
	got, err := cbWait(t, p)
	if err != nil || got.Code != "first" {
		t.Errorf("Wait = %+v, %v; want the first code", got, err)
	}
}

func TestCallbackServerError(t *testing.T) {
	c, _ := cbNew(t)
	p, port := cbExpectFree(t, c, "/callback", cbStateA)
	res := cbGet(t, port, "/callback?error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&error_uri=https%3A%2F%2Fas.example%2Fhelp&state="+cbStateA)
	if res.status != http.StatusBadRequest {
		t.Errorf("status %d, want 400", res.status)
	}
	if strings.Contains(res.body, "<script>") {
		t.Errorf("error page contains raw <script>:\n%s", res.body)
	}
	for _, s := range []string{"access_denied", "&lt;script&gt;alert(1)&lt;/script&gt;"} {
		if !strings.Contains(res.body, s) {
			t.Errorf("error page does not contain %q:\n%s", s, res.body)
		}
	}
	got, err := cbWait(t, p)
	if got != nil {
		t.Errorf("Wait result = %+v, want nil", got)
	}
	cbErr, ok := errors.AsType[*CallbackError](err)
	if !ok {
		t.Fatalf("Wait error = %v, want *CallbackError", err)
	}
	want := &CallbackError{Code: "access_denied", Description: "<script>alert(1)</script>", URI: "https://as.example/help"}
	if diff := cmp.Diff(want, cbErr); diff != "" {
		t.Errorf("CallbackError (-want +got):\n%s", diff)
	}
}

func TestCallbackShutdown(t *testing.T) {
	c, rec := cbNew(t)
	pA, port := cbExpectFree(t, c, "/callback", cbStateA)
	pB := cbExpect(t, c, port, "/callback", cbStateB)

	pA.Close()
	if _, err := cbWait(t, pA); !errors.Is(err, errLoginClosed) {
		t.Errorf("Wait after Close = %v, want %v", err, errLoginClosed)
	}
	// B still pending: the listener keeps serving.
	if res := cbGet(t, port, "/callback?code=b&state="+cbStateB); res.status != http.StatusOK {
		t.Fatalf("status %d for the remaining login, want 200", res.status)
	}
	if _, err := cbWait(t, pB); err != nil {
		t.Fatal(err)
	}
	pB.Close()
	pB.Close() // idempotent

	// Close returns after the port is released.
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d not released after the last Close: %v", port, err)
	}
	ln.Close()
	if got := c.PendingLogins(); len(got) != 0 {
		t.Errorf("PendingLogins after Close = %+v, want none", got)
	}

	// A new login binds again.
	pC := cbExpect(t, c, port, "/callback", cbStateC)
	if n := rec.count("tcp4"); n != 2 {
		t.Errorf("%d IPv4 binds, want 2 (%q)", n, rec.binds)
	}
	if res := cbGet(t, port, "/callback?code=c&state="+cbStateC); res.status != http.StatusOK {
		t.Errorf("status %d after restart, want 200", res.status)
	}
	if _, err := cbWait(t, pC); err != nil {
		t.Error(err)
	}
}

// TestCallbackCloseWithUnusedConnection: a browser may open a connection
// it never uses next to the one that brings the code. The login ends (and
// the request waiting for it is replayed) only when Close returns, so Close
// must not wait out its shutdown bound (1 s by default, here an hour) for
// that connection. net/http alone would close it after 5 s: Close has to
// return well before.
func TestCallbackCloseWithUnusedConnection(t *testing.T) {
	c, _ := cbNew(t)
	c.ShutdownTimeout = time.Hour
	p, port := cbExpectFree(t, c, "/callback", cbStateA)
	unused, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer unused.Close()
	if res := cbGet(t, port, "/callback?code=the-code&state="+cbStateA); res.status != http.StatusOK {
		t.Fatalf("status %d, want 200", res.status)
	}
	if _, err := cbWait(t, p); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(4 * time.Second):
		unused.Close() // lets Close return before the test ends
		<-closed
		t.Fatal("Close waited for a connection that never sent a request")
	}
}

func TestWaitContext(t *testing.T) {
	c, _ := cbNew(t)
	p, _ := cbExpectFree(t, c, "/callback", cbStateA)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if got, err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %+v, %v; want %v", got, err, context.DeadlineExceeded)
	}
	// The login survives its caller's timeout until Close.
	if err := c.Deliver("?code=late&state=" + cbStateA); err != nil {
		t.Fatal(err)
	}
	if got, err := cbWait(t, p); err != nil || got.Code != "late" {
		t.Errorf("Wait = %+v, %v; want code late", got, err)
	}
}

func TestExpectCannotBind(t *testing.T) {
	t.Run("port taken", func(t *testing.T) {
		c, rec := cbNew(t)
		busy, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		port := busy.Addr().(*net.TCPAddr).Port

		p, err := c.Expect(port, "/callback", cbStateA)
		t.Cleanup(p.Close)
		if err == nil {
			t.Fatal("Expect on a taken port: no error")
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", port)) {
			t.Errorf("error %q does not name the address", err)
		}
		if len(rec.binds) != 0 {
			t.Errorf("binds %q, want none once 127.0.0.1 failed", rec.binds)
		}
		want := []PendingInfo{{State: cbStateA, Port: port, Path: "/callback", Started: p.started, Listening: false}}
		if diff := cmp.Diff(want, c.PendingLogins()); diff != "" {
			t.Errorf("PendingLogins (-want +got):\n%s", diff)
		}
		if err := c.Deliver(fmt.Sprintf("http://localhost:%d/callback?code=pasted&state=%s", port, cbStateA)); err != nil {
			t.Fatal(err)
		}
		if got, err := cbWait(t, p); err != nil || got.Code != "pasted" {
			t.Errorf("Wait = %+v, %v; want code pasted", got, err)
		}
	})
	t.Run("injected failure", func(t *testing.T) {
		c, _ := cbNew(t)
		errNoBind := errors.New("test: cannot bind")
		c.Listen = func(network, addr string) (net.Listener, error) { return nil, errNoBind }
		p, err := c.Expect(3030, "/callback", cbStateA)
		t.Cleanup(p.Close)
		if !errors.Is(err, errNoBind) {
			t.Errorf("Expect error = %v, want %v", err, errNoBind)
		}
		if err := c.Deliver("bare-code"); err != nil {
			t.Fatal(err)
		}
		want := &CallbackResult{Code: "bare-code", State: cbStateA}
		got, err := cbWait(t, p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Wait result (-want +got):\n%s", diff)
		}
	})
	t.Run("invalid port", func(t *testing.T) {
		c, rec := cbNew(t)
		p, err := c.Expect(0, "/callback", cbStateA)
		t.Cleanup(p.Close)
		if err == nil || !strings.Contains(err.Error(), "invalid port 0") {
			t.Errorf("Expect(0) error = %v, want invalid port", err)
		}
		if len(rec.binds) != 0 {
			t.Errorf("binds %q, want none", rec.binds)
		}
	})
}

func TestCallbackIPv6(t *testing.T) {
	c, rec := cbNew(t)
	p, port := cbExpectFree(t, c, "/callback", cbStateA)
	if rec.count("tcp6") == 0 {
		t.Skipf("::1 could not be bound (no IPv6 loopback?); binds: %q", rec.binds)
	}
	res := cbDo(t, http.MethodGet, fmt.Sprintf("http://[::1]:%d/callback?code=v6&state=%s", port, cbStateA), "")
	if res.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body:\n%s", res.status, res.body)
	}
	if got, err := cbWait(t, p); err != nil || got.Code != "v6" {
		t.Errorf("Wait = %+v, %v; want code v6", got, err)
	}
	p.Close()
	ln, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port))
	if err != nil {
		t.Fatalf("[::1]:%d not released after Close: %v", port, err)
	}
	ln.Close()
}

func TestPendingLogins(t *testing.T) {
	c, _ := cbNew(t)
	pA, port := cbExpectFree(t, c, "/callback", cbStateA)
	pB := cbExpect(t, c, port, "/cb", cbStateB)
	if err := c.Deliver("?code=x&state=" + cbStateB); err != nil {
		t.Fatal(err)
	}
	want := []PendingInfo{
		{State: cbStateA, Port: port, Path: "/callback", Started: pA.started, Listening: true},
		{State: cbStateB, Port: port, Path: "/cb", Started: pB.started, Listening: true, Completed: true},
	}
	if diff := cmp.Diff(want, c.PendingLogins()); diff != "" {
		t.Errorf("PendingLogins (-want +got):\n%s", diff)
	}
}

func TestExpectDuplicateStatePanics(t *testing.T) {
	c, _ := cbNew(t)
	c.Listen = func(string, string) (net.Listener, error) { return nil, errors.New("test: no network") }
	p, _ := c.Expect(3030, "/callback", cbStateA)
	defer p.Close()
	defer func() {
		if recover() == nil {
			t.Error("Expect with a pending state did not panic")
		}
	}()
	c.Expect(3030, "/callback", cbStateA)
}

func TestLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		port int
		want bool
	}{
		{"localhost:3030", 3030, true},
		{"LocalHost:3030", 3030, true},
		{"127.0.0.1:3030", 3030, true},
		{"[::1]:3030", 3030, true},
		{"localhost:3031", 3030, false},
		{"localhost", 3030, false},
		{"localhost", 80, true},
		{"[::1]", 80, true},
		{"127.0.0.2:3030", 3030, false},
		{"evil.example:3030", 3030, false},
		{"localhost.evil.example:3030", 3030, false},
		{"", 3030, false},
	}
	for _, tt := range tests {
		if got := loopbackHost(tt.host, tt.port); got != tt.want {
			t.Errorf("loopbackHost(%q, %d) = %v, want %v", tt.host, tt.port, got, tt.want)
		}
	}
}

func TestCallbackOrigin(t *testing.T) {
	c, _ := cbNew(t)
	p, port := cbExpectFree(t, c, "/callback", cbStateA)
	defer p.Close()
	get := func(origin string) cbResponse {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
			fmt.Sprintf("http://127.0.0.1:%d/callback?code=c&state=%s", port, cbStateA), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = fmt.Sprintf("localhost:%d", port)
		req.Header.Set("Origin", origin)
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return cbResponse{res.StatusCode, res.Header, string(body)}
	}
	for _, origin := range []string{"https://evil.example", "null", "http://localhost.evil.example:3030", "file://"} {
		if res := get(origin); res.status != http.StatusForbidden {
			t.Errorf("Origin %q: status %d, want 403", origin, res.status)
		}
		cbAssertNotDelivered(t, p)
	}
	// A page of this machine may send one (e.g. the status page's paste).
	if res := get(fmt.Sprintf("http://localhost:%d", port)); res.status != http.StatusOK {
		t.Errorf("loopback Origin: status %d, want 200", res.status)
	}
	if res, err := cbWait(t, p); err != nil || res.Code != "c" {
		t.Errorf("Wait = %+v, %v", res, err)
	}
}

func TestCallbackAllInterfaces(t *testing.T) {
	var binds []string
	c := &Callbacks{AllInterfaces: true, Listen: func(network, addr string) (net.Listener, error) {
		binds = append(binds, network+" "+addr)
		// Bind loopback for the test; the address asked for is what matters.
		return net.Listen("tcp4", "127.0.0.1"+addr[strings.LastIndexByte(addr, ':'):])
	}}
	port := cbFreePort(t)
	p, err := c.Expect(port, "/callback", cbStateA)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if want := []string{fmt.Sprintf("tcp :%d", port)}; !slices.Equal(binds, want) {
		t.Errorf("binds = %q, want %q", binds, want)
	}
	// The Host guard still applies.
	if res := cbDo(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/callback?code=c&state=%s", port, cbStateA), "evil.example"); res.status != http.StatusForbidden {
		t.Errorf("foreign Host: status %d, want 403", res.status)
	}
	if res := cbGet(t, port, "/callback?code=c&state="+cbStateA); res.status != http.StatusOK {
		t.Errorf("status %d, want 200", res.status)
	}
}
