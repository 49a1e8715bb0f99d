package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func start(t *testing.T, servers []proxy.Server, o proxy.Options) *proxy.Proxy {
	t.Helper()
	if o.Logger == nil {
		o.Logger, _ = newLogger(t)
	}
	p, err := proxy.Start(t.Context(), servers, o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

func TestStart(t *testing.T) {
	ctx := ctxTimeout(t)
	auth := &mcptest.Authorizer{}
	up, _ := upstream(t, mcptest.StreamableHandler(mcptest.NewServer(), false), auth.Verify)
	legacy, _ := upstream(t, mcptest.SSEHandler(mcptest.NewServer()), nil)
	fixed := freeAddr(t)
	p := start(t, []proxy.Server{
		{Name: "hf", Upstream: up.URL + "/mcp?login", Auth: auth},
		{Name: "legacy", Upstream: legacy.URL + "/sse", Transport: "sse", Listen: fixed},
		{Name: "root", Upstream: up.URL},
	}, proxy.Options{})

	infos := p.Listeners()
	if len(infos) != 3 {
		t.Fatalf("%d listeners, want 3", len(infos))
	}
	want := []proxy.ListenerInfo{
		{Name: "hf", Addr: infos[0].Addr, URL: "http://" + infos[0].Addr + "/mcp?login", Upstream: up.URL + "/mcp"},
		{Name: "legacy", Addr: fixed, URL: "http://" + fixed + "/sse", Upstream: legacy.URL + "/sse"},
		{Name: "root", Addr: infos[2].Addr, URL: "http://" + infos[2].Addr + "/", Upstream: up.URL},
	}
	if diff := cmp.Diff(want, infos); diff != "" {
		t.Errorf("Listeners (-want +got):\n%s", diff)
	}
	for _, info := range infos {
		if host, _, _ := net.SplitHostPort(info.Addr); host != "127.0.0.1" {
			t.Errorf("%s listens on %s, want 127.0.0.1", info.Name, info.Addr)
		}
	}

	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "v1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: infos[0].URL}, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", infos[0].URL, err)
	}
	callEcho(t, ctx, cs, "hf")
	cs.Close()
	cs, err = client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: infos[1].URL}, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", infos[1].URL, err)
	}
	callEcho(t, ctx, cs, "legacy")
	cs.Close()
}

func TestStartRefuses(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	free := freeAddr(t)
	tests := []struct {
		name    string
		servers []proxy.Server
		opts    proxy.Options
		wantErr string
	}{
		{"remote address", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp", Listen: "192.0.2.1:0"}}, proxy.Options{}, "not a loopback address"},
		{"every interface", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp", Listen: ":0"}}, proxy.Options{}, "not a loopback address"},
		{"host name", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp", Listen: "example.com:0"}}, proxy.Options{}, "not a loopback address"},
		{"bad address", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp", Listen: "127.0.0.1"}}, proxy.Options{}, `listen address "127.0.0.1"`},
		{"bad port", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp", Listen: "127.0.0.1:http"}}, proxy.Options{}, "invalid port"},
		{"relative upstream", []proxy.Server{{Name: "a", Upstream: "/mcp"}}, proxy.Options{}, "not an absolute http or https URL"},
		{"ftp upstream", []proxy.Server{{Name: "a", Upstream: "ftp://example.com/mcp"}}, proxy.Options{}, "not an absolute http or https URL"},
		{"upstream with credentials", []proxy.Server{{Name: "a", Upstream: "https://u:p@example.com/mcp"}}, proxy.Options{}, "credentials"},
		{"unknown transport", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp", Transport: "stdio"}}, proxy.Options{}, `transport "stdio"`},
		{"bad header", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp", Headers: map[string]string{"X-A": "a\nb"}}}, proxy.Options{}, `header "X-A"`},
		{"bad allowed host", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp"}}, proxy.Options{AllowedHosts: []string{"http://x/"}}, "allowed host"},
		{"duplicate name", []proxy.Server{{Name: "a", Upstream: "https://example.com/mcp"}, {Name: "a", Upstream: "https://example.com/mcp"}}, proxy.Options{}, "twice"},
		{"port in use", []proxy.Server{
			{Name: "first", Upstream: "https://example.com/mcp", Listen: free},
			{Name: "second", Upstream: "https://example.com/mcp", Listen: busy.Addr().String()},
		}, proxy.Options{}, `server "second"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := proxy.Start(t.Context(), tt.servers, tt.opts)
			if err == nil {
				p.Shutdown(context.Background())
				t.Fatalf("Start succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "proxy: ") {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	// The listener bound before the failure was released.
	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Errorf("the first listener was not closed: %v", err)
	} else {
		ln.Close()
	}
}

// TestShutdownWithUnusedConnection: a client that opened a connection and
// sent nothing on it (as HTTP clients do when they dial ahead) must not hold
// Shutdown up. net/http's Shutdown waits 5 s before it counts such a
// connection as idle, as long as Shutdown itself waits, so serve's Ctrl-C
// took 5 s and failed.
func TestShutdownWithUnusedConnection(t *testing.T) {
	up, _ := upstream(t, echoHandler(), nil)
	p := start(t, []proxy.Server{{Name: "s", Upstream: up.URL + "/mcp"}}, proxy.Options{})
	addr := p.Listeners()[0].Addr
	unused, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer unused.Close()
	// A used connection, idle between requests, next to it.
	if status, _, _ := post(t, p.Listeners()[0].URL, rpcBody(1, "ping"), nil); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v, want nil", err)
	}
	if n, err := unused.Read(make([]byte, 1)); err == nil {
		t.Errorf("the unused connection is still open (read %d bytes)", n)
	}
}

func TestShutdownWithOpenStreams(t *testing.T) {
	streaming := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: open\n\n")
		http.NewResponseController(w).Flush()
		streaming <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(up.Close)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	auth := &mcptest.Authorizer{Hold: hold} // a login that never ends
	authUp, rec := upstream(t, echoHandler(), auth.Verify)
	p := start(t, []proxy.Server{
		{Name: "stream", Upstream: up.URL + "/mcp"},
		{Name: "login", Upstream: authUp.URL + "/mcp", Auth: auth},
	}, proxy.Options{})
	infos := p.Listeners()

	req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodGet, infos[0].URL, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	<-streaming
	if line, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil || line != "data: open\n" {
		t.Fatalf("stream: %q, %v", line, err)
	}
	held := make(chan int, 1)
	go func() {
		status, _, _, err := tryPost(t.Context(), infos[1].URL, rpcBody(1, "ping"), nil)
		if err != nil {
			t.Error(err)
		}
		held <- status
	}()
	poll(t, "the request to be held for the login", func() bool { return rec.Count() == 1 && auth.Challenges() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v, want nil (open streams ended at once)", err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Log("stream ended with EOF")
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if status := <-held; status != http.StatusBadGateway {
		t.Errorf("held request answered %d, want 502", status)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, infos[0].URL, nil)
	if _, _, _, err := tryDo(req); err == nil {
		t.Errorf("the listener still accepts requests")
	}
}
