package proxy_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

// These tests put go-sdk on both sides: its client, which knows nothing of
// OAuth, talks to the proxy; the upstream is a go-sdk server behind a bearer
// check that accepts only the fake engine's current token.

func callEcho(t *testing.T, ctx context.Context, cs *mcp.ClientSession, text string) {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: mcptest.EchoArgs{Text: text}})
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	if got := toolText(res); got != text {
		t.Errorf("echo = %q, want %q", got, text)
	}
}

func toolText(res *mcp.CallToolResult) string {
	if res == nil || len(res.Content) != 1 {
		return ""
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); ok {
		return tc.Text
	}
	return ""
}

func TestStreamableHTTP(t *testing.T) {
	tests := []struct {
		name     string
		json     bool
		version  string
		sessions bool
	}{
		{"sse answers 2025-11-25", false, "2025-11-25", true},
		{"json answers 2025-11-25", true, "2025-11-25", true},
		{"sse answers 2025-03-26", false, "2025-03-26", true},
		{"json answers latest", true, "", false},
		{"sse answers latest", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxTimeout(t)
			auth := &mcptest.Authorizer{}
			server := mcptest.NewServer()
			up, rec := upstream(t, mcptest.StreamableHandler(server, tt.json), auth.Verify)
			local, lb := serve(t, proxy.Server{Upstream: up.URL + "/mcp?login", Auth: auth}, proxy.Options{})

			listChanged := make(chan struct{}, 1)
			client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "v1"}, &mcp.ClientOptions{
				ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
					select {
					case listChanged <- struct{}{}:
					default:
					}
				},
			})
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: local.URL + "/mcp?login"},
				&mcp.ClientSessionOptions{ProtocolVersion: tt.version})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			callEcho(t, ctx, cs, "before")
			callEcho(t, ctx, cs, "after")
			if got := auth.Logins(); got != 1 {
				t.Errorf("logins = %d, want 1", got)
			}

			if tt.sessions {
				id := cs.ID()
				if id == "" {
					t.Fatal("no session id")
				}
				// The standalone GET stream carries server notifications.
				poll(t, "the GET stream", func() bool {
					for _, r := range rec.Requests() {
						if r.Method == http.MethodGet && r.Status == 0 && r.Header.Get("Mcp-Session-Id") == id {
							return true
						}
					}
					return false
				})
				mcp.AddTool(server, &mcp.Tool{Name: "late"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
					return &mcp.CallToolResult{}, nil, nil
				})
				select {
				case <-listChanged:
				case <-ctx.Done():
					t.Fatal("no tools/list_changed notification over the GET stream")
				}
			}
			if err := cs.Close(); err != nil {
				t.Errorf("close: %v", err)
			}

			var sawDelete bool
			for _, r := range rec.Requests() {
				if r.RawQuery != "login" {
					t.Errorf("%s %s?%s: the ?login query was lost", r.Method, r.Path, r.RawQuery)
				}
				if r.Status != 0 && r.Status != http.StatusUnauthorized {
					t.Errorf("%s refused with %d", r.Method, r.Status)
				}
				if r.Method == http.MethodDelete {
					sawDelete = true
					if r.Header.Get("Mcp-Session-Id") != cs.ID() {
						t.Errorf("DELETE without the session id")
					}
				}
				if r.Method == http.MethodPost && !bytes.Contains(r.Body, []byte(`"initialize"`)) &&
					!bytes.Contains(r.Body, []byte(`"server/discover"`)) && r.Header.Get("Mcp-Protocol-Version") == "" {
					t.Errorf("POST %s without MCP-Protocol-Version", r.Body)
				}
			}
			if tt.sessions && !sawDelete {
				t.Errorf("no DELETE reached the upstream")
			}
			if strings.Contains(lb.String(), "level=ERROR") {
				t.Errorf("errors logged:\n%s", lb)
			}
		})
	}
}

// TestReloginMidSession uses a token from an earlier login, then has it
// revoked: the next tool call is held through a new login and replayed.
func TestReloginMidSession(t *testing.T) {
	ctx := ctxTimeout(t)
	auth := &mcptest.Authorizer{}
	auth.SetToken()
	up, rec := upstream(t, mcptest.StreamableHandler(mcptest.NewServer(), false), auth.Verify)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})

	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "v1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: local.URL + "/mcp"},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	callEcho(t, ctx, cs, "one")
	if auth.Challenges() != 0 {
		t.Errorf("challenges = %d before the revocation, want 0", auth.Challenges())
	}
	auth.Revoke()
	callEcho(t, ctx, cs, "two")
	callEcho(t, ctx, cs, "three")
	if auth.Logins() != 1 {
		t.Errorf("logins = %d, want 1", auth.Logins())
	}
	var refused int
	for _, r := range rec.Requests() {
		if r.Status == http.StatusUnauthorized {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("upstream refused %d requests, want 1", refused)
	}
}

func TestStepUpMCP(t *testing.T) {
	ctx := ctxTimeout(t)
	auth := &mcptest.Authorizer{Grantable: []string{"admin"}}
	up, _ := upstream(t, mcptest.StreamableHandler(mcptest.NewServer(), true), auth.Verify)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "v1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: local.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	if got := toolText(res); got != "admin ok" {
		t.Errorf("admin = %q", got)
	}
	if auth.Logins() != 2 { // the first login, then the step-up
		t.Errorf("logins = %d, want 2", auth.Logins())
	}
}

func TestBigToolResult(t *testing.T) {
	const size = 10 << 20
	for _, jsonResponse := range []bool{false, true} {
		name := "sse"
		if jsonResponse {
			name = "json"
		}
		t.Run(name, func(t *testing.T) {
			// Not waitFor: under the race detector on a busy 2-core
			// machine the SDK alone takes 15 s or more to encode and
			// decode 10 MiB.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			auth := &mcptest.Authorizer{}
			auth.SetToken()
			up, _ := upstream(t, mcptest.StreamableHandler(mcptest.NewServer(), jsonResponse), auth.Verify)
			local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
			client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "v1"}, nil)
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: local.URL + "/mcp", DisableStandaloneSSE: true}, nil)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer cs.Close()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "big", Arguments: mcptest.BigArgs{Size: size}})
			if err != nil {
				t.Fatalf("big: %v", err)
			}
			if got := toolText(res); len(got) != size || strings.Trim(got, "x") != "" {
				t.Errorf("got %d bytes, want %d x's", len(got), size)
			}
		})
	}
}

// absoluteEndpoint makes a go-sdk SSE handler announce its endpoint as an
// absolute URL on origin.
func absoluteEndpoint(h http.Handler, origin *string) http.Handler {
	return mcptest.AbsoluteEndpoint(h, func(*http.Request) string { return *origin })
}

func TestLegacySSE(t *testing.T) {
	for _, absolute := range []bool{false, true} {
		name := "relative endpoint"
		if absolute {
			name = "absolute endpoint"
		}
		t.Run(name, func(t *testing.T) {
			ctx := ctxTimeout(t)
			auth := &mcptest.Authorizer{}
			var origin string
			h := mcptest.SSEHandler(mcptest.NewServer())
			if absolute {
				h = absoluteEndpoint(h, &origin)
			}
			up, rec := upstream(t, h, auth.Verify)
			origin = up.URL
			local, _ := serve(t, proxy.Server{Upstream: up.URL + "/sse", Transport: "sse", Auth: auth}, proxy.Options{})

			client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "v1"}, nil)
			cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: local.URL + "/sse"}, nil)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			callEcho(t, ctx, cs, "legacy")
			if err := cs.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if auth.Logins() != 1 {
				t.Errorf("logins = %d, want 1", auth.Logins())
			}
			// Every POST went through the proxy (a direct one would lack the
			// token and be refused) to the session endpoint.
			var posts int
			for _, r := range rec.Requests() {
				if r.Method == http.MethodPost {
					posts++
					if r.Status != 0 || r.Path != "/sse" || !strings.HasPrefix(r.RawQuery, "sessionid=") {
						t.Errorf("POST %s?%s: status %d", r.Path, r.RawQuery, r.Status)
					}
				}
			}
			if posts < 2 { // initialize, initialized, tools/call
				t.Errorf("upstream got %d POSTs", posts)
			}
		})
	}
}
