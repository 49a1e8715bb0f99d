package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

var _ proxy.Authorizer = (*mcptest.Authorizer)(nil)

// waitFor is how long a test waits for something that should happen soon.
const waitFor = 15 * time.Second

// logBuffer collects the proxy's logs for assertions.
type logBuffer = oauthtest.Buffer

func newLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proxy logs:\n%s", lb)
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// serve starts the proxy handler for s on an httptest server and returns the
// server and the proxy's logs.
func serve(t *testing.T, s proxy.Server, o proxy.Options) (*httptest.Server, *logBuffer) {
	t.Helper()
	log, lb := newLogger(t)
	if o.Logger == nil {
		o.Logger = log
	}
	if s.Name == "" {
		s.Name = "test"
	}
	h, err := proxy.NewHandler(s, o)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, lb
}

// upstream starts an upstream: h behind a Bearer check with verify (nil
// accepts everything).
func upstream(t *testing.T, h http.Handler, verify func(string) ([]string, bool)) (*httptest.Server, *mcptest.Bearer) {
	t.Helper()
	b := &mcptest.Bearer{Next: h, Verify: verify, ToolScopes: map[string]string{"admin": "admin"}}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return srv, b
}

// echoHandler answers a JSON-RPC request with a result holding its body, so
// tests can compare what the upstream got.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var msg struct {
			ID json.RawMessage `json:"id"`
		}
		json.Unmarshal(body, &msg)
		if msg.ID == nil {
			msg.ID = json.RawMessage("null")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"len":%d}}`, msg.ID, len(body))
	})
}

// rpcBody is a JSON-RPC request body with the given id.
func rpcBody(id int, method string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":{}}`, id, method)
}

// post sends body to url and returns the status, headers and body.
func post(t *testing.T, url, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	status, h, b, err := tryPost(t.Context(), url, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return status, h, b
}

// tryPost is post for goroutines other than the test's.
func tryPost(ctx context.Context, url, body string, hdr map[string]string) (int, http.Header, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return tryDo(req)
}

func do(t *testing.T, req *http.Request) (int, http.Header, string) {
	t.Helper()
	status, h, b, err := tryDo(req)
	if err != nil {
		t.Fatal(err)
	}
	return status, h, b
}

func tryDo(req *http.Request) (int, http.Header, string, error) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, "", fmt.Errorf("%s %s: reading body: %w", req.Method, req.URL, err)
	}
	return res.StatusCode, res.Header, string(b), nil
}

// rpcErr is the JSON-RPC error the proxy answers with.
type rpcErr struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			LoginURL string `json:"loginURL"`
		} `json:"data"`
	} `json:"error"`
}

func parseRPCErr(t *testing.T, body string) rpcErr {
	t.Helper()
	var e rpcErr
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("body is not a JSON-RPC error: %v\n%s", err, body)
	}
	if e.JSONRPC != "2.0" || e.Error.Code == 0 || e.Error.Message == "" {
		t.Errorf("not a JSON-RPC 2.0 error: %s", body)
	}
	return e
}

// poll calls cond until it returns true or waitFor passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statuses returns the statuses Bearer answered itself (0: passed on).
func statuses(b *mcptest.Bearer) []int {
	var s []int
	for _, r := range b.Requests() {
		s = append(s, r.Status)
	}
	return s
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	t.Cleanup(cancel)
	return ctx
}
