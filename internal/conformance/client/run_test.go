package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The test binary doubles as a fake mcp-oauth-proxy: run starts it with
// MCP_OAUTH_PROXY_BIN pointing here and fakeProxyEnv saying how to behave.
const (
	fakeProxyEnv     = "CONFORMANCE_TEST_FAKE_PROXY" // "proxy" or "fail"
	fakeAuthorizeEnv = "CONFORMANCE_TEST_AUTHORIZE_URL"
	fakeArgsFileEnv  = "CONFORMANCE_TEST_ARGS_FILE"
)

func TestMain(m *testing.M) {
	switch os.Getenv(fakeProxyEnv) {
	case "":
		os.Exit(m.Run())
	case "fail":
		fmt.Fprintln(os.Stderr, "fake proxy: refusing to start")
		os.Exit(3)
	default:
		if err := fakeProxy(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "fake proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// fakeProxy behaves like `mcp-oauth-proxy serve` as far as the client can
// tell: it holds the first request until a login completes on its callback
// listener, then forwards everything with a bearer token until SIGTERM.
func fakeProxy(args []string) error {
	if err := os.WriteFile(os.Getenv(fakeArgsFileEnv), must(json.Marshal(args)), 0o600); err != nil {
		return err
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	upstream := fs.String("url", "", "")
	listen := fs.String("listen", "", "")
	redirectPort := fs.Int("redirect-port", 0, "")
	for _, name := range []string{"persist", "client-metadata-url", "login-timeout", "client-id", "client-secret", "admin"} {
		fs.String(name, "", "")
	}
	if len(args) == 0 || args[0] != "serve" {
		return fmt.Errorf("want serve, got %q", args)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	target, err := url.Parse(*upstream)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	authorized := make(chan struct{})
	var once sync.Once
	callback := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *redirectPort), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" && r.URL.Query().Get("code") != "" {
			once.Do(func() { close(authorized) })
		}
	})}
	go callback.ListenAndServe()
	defer callback.Close()

	var prompt sync.Once
	link := os.Getenv(fakeAuthorizeEnv) + "?redirect_uri=" + url.QueryEscape(fmt.Sprintf("http://localhost:%d/callback", *redirectPort))
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
		r.Out.Header.Set("Authorization", "Bearer fake-token")
	}}
	srv := &http.Server{Addr: *listen, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prompt.Do(func() { fmt.Fprintf(os.Stderr, "Open this link to authorize fake: %s\n", link) })
		select {
		case <-authorized:
			rp.ServeHTTP(w, r)
		case <-time.After(20 * time.Second):
			http.Error(w, "login timed out", http.StatusBadGateway)
		}
	})}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	go srv.Serve(l)
	<-ctx.Done()
	return srv.Close()
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// testServer is the suite's test MCP server in miniature: one tool, and
// every request must carry the fake proxy's token.
func testServer(t *testing.T, calls *atomic.Int32) *httptest.Server {
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	server.AddTool(&mcp.Tool{Name: testTool, InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			calls.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "test"}}}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer fake-token" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestRunThroughFakeProxy(t *testing.T) {
	var calls atomic.Int32
	upstream := testServer(t, &calls)
	var authorizations atomic.Int32
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authorizations.Add(1)
		http.Redirect(w, r, r.URL.Query().Get("redirect_uri")+"?code=test-auth-code", http.StatusFound)
	}))
	t.Cleanup(as.Close)
	argsFile := filepath.Join(t.TempDir(), "args.json")
	t.Setenv(fakeProxyEnv, "proxy")
	t.Setenv(fakeAuthorizeEnv, as.URL+"/authorize")
	t.Setenv(fakeArgsFileEnv, argsFile)

	env := map[string]string{
		"MCP_OAUTH_PROXY_BIN":     must(os.Executable()),
		"MCP_CONFORMANCE_CONTEXT": `{"name":"auth/pre-registration","client_id":"pre-registered-client","client_secret":"pre-registered-secret"}`,
	}
	var out bytes.Buffer
	serverURL := upstream.URL + "/mcp"
	if err := run(t.Context(), serverURL, func(k string) string { return env[k] }, &out, testLogger(t)); err != nil {
		t.Fatalf("run: %v\nproxy output:\n%s", err, &out)
	}

	if got := calls.Load(); got != 1 {
		t.Errorf("tool called %d times, want 1", got)
	}
	if got := authorizations.Load(); got != 1 {
		t.Errorf("login link followed %d times, want 1", got)
	}
	if !strings.Contains(out.String(), "[proxy] Open this link to authorize fake: ") {
		t.Errorf("proxy output not copied; got:\n%s", &out)
	}
	var args []string
	if err := json.Unmarshal(must(os.ReadFile(argsFile)), &args); err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{}
	for i := 1; i+1 < len(args); i += 2 {
		flags[args[i]] = args[i+1]
	}
	for _, f := range []string{"--listen", "--redirect-port"} {
		if flags[f] == "" {
			t.Errorf("proxy started without %s: %q", f, args)
		}
		delete(flags, f) // free ports: any value
	}
	want := map[string]string{
		"--url":                 serverURL,
		"--persist":             "memory",
		"--client-metadata-url": cimdURL,
		"--login-timeout":       "25s",
		"--admin":               "off",
		"--client-id":           "pre-registered-client",
		"--client-secret":       "pre-registered-secret",
	}
	if diff := cmp.Diff(want, flags); diff != "" {
		t.Errorf("proxy flags (-want +got):\n%s", diff)
	}
}

func TestRunReportsProxyThatExits(t *testing.T) {
	t.Setenv(fakeProxyEnv, "fail")
	env := map[string]string{"MCP_OAUTH_PROXY_BIN": must(os.Executable())}
	var out bytes.Buffer
	err := run(t.Context(), "http://localhost:4000/mcp", func(k string) string { return env[k] }, &out, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "proxy exited (exit status 3) before listening") {
		t.Errorf("run error = %v, want the proxy's early exit", err)
	}
	if !strings.Contains(out.String(), "[proxy] fake proxy: refusing to start") {
		t.Errorf("proxy output not copied; got:\n%s", &out)
	}
}

func TestRunReportsMissingProxy(t *testing.T) {
	env := map[string]string{"MCP_OAUTH_PROXY_BIN": filepath.Join(t.TempDir(), "missing")}
	err := run(t.Context(), "http://localhost:4000/mcp", func(k string) string { return env[k] }, &bytes.Buffer{}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "MCP_OAUTH_PROXY_BIN") {
		t.Errorf("run error = %v, want one naming MCP_OAUTH_PROXY_BIN", err)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// testLogger logs through t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
