package oauthtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`
	toolsList  = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	toolsCall  = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t"}}`
)

// mcpPost posts a JSON-RPC body with an optional Authorization header.
func mcpPost(t *testing.T, endpoint, authorization, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestChallengeAndMetadata(t *testing.T) {
	tests := []struct {
		name      string
		opts      ResourceOptions
		prmPath   string // "" for none
		resource  func(rs *ResourceServer) string
		challenge func(rs *ResourceServer) string
	}{
		{
			name:     "path inserted",
			prmPath:  "/.well-known/oauth-protected-resource/mcp",
			resource: func(rs *ResourceServer) string { return rs.Endpoint },
			challenge: func(rs *ResourceServer) string {
				return `Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="` + rs.URL + `/.well-known/oauth-protected-resource/mcp"`
			},
		},
		{
			name:     "deeper path with scope",
			opts:     ResourceOptions{Path: "/api/v1/mcp", ChallengeScope: "mcp:basic", ScopesSupported: []string{"mcp:basic", "mcp:write"}},
			prmPath:  "/.well-known/oauth-protected-resource/api/v1/mcp",
			resource: func(rs *ResourceServer) string { return rs.Endpoint },
			challenge: func(rs *ResourceServer) string {
				return `Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="` + rs.URL + `/.well-known/oauth-protected-resource/api/v1/mcp", scope="mcp:basic"`
			},
		},
		{
			name:     "root, not in the challenge",
			opts:     ResourceOptions{PRM: PRMRoot, OmitResourceMetadata: true},
			prmPath:  "/.well-known/oauth-protected-resource",
			resource: func(rs *ResourceServer) string { return rs.URL },
			challenge: func(*ResourceServer) string {
				return `Bearer error="invalid_token", error_description="Missing Authorization header"`
			},
		},
		{
			name:     "custom",
			opts:     ResourceOptions{PRM: PRMCustom},
			prmPath:  "/custom/metadata/location.json",
			resource: func(rs *ResourceServer) string { return rs.Endpoint },
			challenge: func(rs *ResourceServer) string {
				return `Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="` + rs.URL + `/custom/metadata/location.json"`
			},
		},
		{
			name:     "mismatched resource",
			opts:     ResourceOptions{PRMResource: "https://evil.example.com/mcp"},
			prmPath:  "/.well-known/oauth-protected-resource/mcp",
			resource: func(*ResourceServer) string { return "https://evil.example.com/mcp" },
			challenge: func(rs *ResourceServer) string {
				return `Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="` + rs.URL + `/.well-known/oauth-protected-resource/mcp"`
			},
		},
		{
			name:    "none",
			opts:    ResourceOptions{PRM: PRMNone, ChallengeScope: `odd "scope"`},
			prmPath: "",
			challenge: func(*ResourceServer) string {
				return `Bearer error="invalid_token", error_description="Missing Authorization header", scope="odd \"scope\""`
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := NewAuthServer(t, AuthServerOptions{IssuerPath: "/tenant1"})
			rs := NewResourceServer(t, as, tt.opts)
			resp, body := mcpPost(t, rs.Endpoint, "", initialize)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("POST without a token: %s", resp.Status)
			}
			if diff := cmp.Diff(tt.challenge(rs), resp.Header.Get("WWW-Authenticate")); diff != "" {
				t.Errorf("WWW-Authenticate (-want +got):\n%s", diff)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(body), &v); err != nil || v["error"] != "invalid_token" {
				t.Errorf("401 body %q, want a JSON invalid_token error", body)
			}

			probes := []string{"/.well-known/oauth-protected-resource" + rs.opts.Path, "/.well-known/oauth-protected-resource", "/custom/metadata/location.json"}
			for _, p := range probes {
				resp, doc := get(t, rs.URL+p)
				if p != tt.prmPath {
					if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized {
						t.Errorf("GET %s: %s, want 404 (or 401 outside /.well-known)", p, resp.Status)
					}
					continue
				}
				want := map[string]any{
					"resource":                 tt.resource(rs),
					"authorization_servers":    []any{as.Issuer},
					"bearer_methods_supported": []any{"header"},
				}
				if tt.opts.ScopesSupported != nil {
					want["scopes_supported"] = []any{"mcp:basic", "mcp:write"}
				}
				if diff := cmp.Diff(want, doc); diff != "" {
					t.Errorf("GET %s (-want +got):\n%s", p, diff)
				}
			}
			want := ""
			if tt.prmPath != "" {
				want = rs.URL + tt.prmPath
			}
			if rs.MetadataURL() != want {
				t.Errorf("MetadataURL() = %q, want %q", rs.MetadataURL(), want)
			}
			if tt.resource != nil && rs.Resource() != tt.resource(rs) {
				t.Errorf("Resource() = %q, want %q", rs.Resource(), tt.resource(rs))
			}
			if n := rs.Count(EndpointPRM); n != min(1, len(tt.prmPath)) {
				t.Errorf("Count(prm) = %d", n)
			}
		})
	}
}

func TestBearerCheck(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{PreRegistered: map[string]string{"c": ""}})
	other := NewAuthServer(t, AuthServerOptions{PreRegistered: map[string]string{"c": ""}})
	var (
		mu      sync.Mutex
		reached []string
	)
	rs := NewResourceServer(t, as, ResourceOptions{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		reached = append(reached, r.Header.Get("Authorization"))
		fmt.Fprint(w, "upstream")
	})})
	expired, _ := as.IssueTokens("c", "", "")
	foreign, _ := other.IssueTokens("c", "", "")
	as.ExpireAccessTokens()
	valid, _ := as.IssueTokens("c", "", "") // after the expiry sweep

	tests := []struct {
		authorization string
		status        int
		description   string
	}{
		{"", 401, "Missing Authorization header"},
		{"Basic Yzp4", 401, "Missing Authorization header"},
		{"Bearer", 401, "Missing Authorization header"},
		{"Bearer junk", 401, "Invalid or expired token"},
		{"Bearer " + expired, 401, "Invalid or expired token"},
		{"Bearer " + foreign, 401, "Invalid or expired token"},
		{"Bearer " + valid, 200, ""},
		{"bearer " + valid, 200, ""},
	}
	for _, tt := range tests {
		resp, body := mcpPost(t, rs.Endpoint, tt.authorization, toolsList)
		if resp.StatusCode != tt.status || (tt.status == 200) != (body == "upstream") {
			t.Errorf("Authorization %q: %s %q, want %d", tt.authorization, resp.Status, body, tt.status)
		}
		if tt.description != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error_description="`+tt.description+`"`) {
			t.Errorf("Authorization %q: WWW-Authenticate %q, want %q", tt.authorization, resp.Header.Get("WWW-Authenticate"), tt.description)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"Bearer " + valid, "bearer " + valid}, reached); diff != "" {
		t.Errorf("requests that reached the handler (-want +got):\n%s", diff)
	}
	var seen []string
	for _, r := range rs.Requests() {
		seen = append(seen, r.BearerToken())
	}
	if diff := cmp.Diff([]string{"", "", "", "junk", expired, foreign, valid, valid}, seen); diff != "" {
		t.Errorf("recorded bearer tokens (-want +got):\n%s", diff)
	}

	if resp, _ := mcpPost(t, rs.Endpoint+"?access_token="+valid, "", toolsList); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("token in the query: %s, want 400", resp.Status)
	}
}

func TestStepUp(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{PreRegistered: map[string]string{"c": ""}})
	rs := NewResourceServer(t, as, ResourceOptions{
		ChallengeScope: "mcp:basic",
		Unprotected: func(_ *http.Request, body []byte) bool {
			m := JSONRPCMethod(body)
			return m == "initialize" || strings.HasPrefix(m, "notifications/")
		},
		RequiredScopes: func(_ *http.Request, body []byte) []string {
			if JSONRPCMethod(body) == "tools/call" {
				return []string{"mcp:write"}
			}
			return nil
		},
	})
	basic, _ := as.IssueTokens("c", "mcp:basic", rs.Endpoint)
	both, _ := as.IssueTokens("c", "mcp:basic mcp:write", rs.Endpoint)
	prm := rs.MetadataURL()

	tests := []struct {
		name, token, body string
		status            int
		challenge         string
	}{
		{"initialize needs no token", "", initialize, 200, ""},
		{"notification needs no token", "", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, 202, ""},
		{"list without token", "", toolsList, 401, `Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="` + prm + `", scope="mcp:basic"`},
		{"list with basic", basic, toolsList, 200, ""},
		{"call with basic", basic, toolsCall, 403, `Bearer error="insufficient_scope", error_description="Insufficient scope", resource_metadata="` + prm + `", scope="mcp:basic mcp:write"`},
		{"call with both", both, toolsCall, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := ""
			if tt.token != "" {
				auth = "Bearer " + tt.token
			}
			resp, body := mcpPost(t, rs.Endpoint, auth, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s, want %d", resp.Status, body, tt.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate (-want +got):\n%s", cmp.Diff(tt.challenge, got))
			}
		})
	}
	reqs := rs.Requests()
	if got := reqs[4]; got.Status != 403 || got.Error != "insufficient_scope" {
		t.Errorf("recorded %+v, want 403 insufficient_scope", got)
	}
}

func TestAudience(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{PreRegistered: map[string]string{"c": ""}})
	check := func(t *testing.T, rs *ResourceServer, resource string, want int) {
		t.Helper()
		tok, _ := as.IssueTokens("c", "", resource)
		if resp, body := mcpPost(t, rs.Endpoint, "Bearer "+tok, toolsList); resp.StatusCode != want {
			t.Errorf("token for %q: %s %s, want %d", resource, resp.Status, body, want)
		}
	}
	rs := NewResourceServer(t, as, ResourceOptions{})
	check(t, rs, rs.Endpoint, 200)
	check(t, rs, "", 200)
	check(t, rs, rs.URL, 401)
	check(t, rs, "https://elsewhere.example/mcp", 401)

	root := NewResourceServer(t, as, ResourceOptions{PRM: PRMRoot})
	check(t, root, root.URL, 200)
	check(t, root, root.Endpoint, 401)

	evil := NewResourceServer(t, as, ResourceOptions{PRMResource: "https://evil.example.com/mcp"})
	check(t, evil, "https://evil.example.com/mcp", 401)
	check(t, evil, evil.Endpoint, 200)

	sameOrigin := NewResourceServer(t, as, ResourceOptions{PRMResource: "placeholder"})
	sameOrigin.Update(func(o *ResourceOptions) { o.PRMResource = sameOrigin.URL })
	check(t, sameOrigin, sameOrigin.URL, 200)

	lax := NewResourceServer(t, as, ResourceOptions{IgnoreAudience: true})
	check(t, lax, "https://elsewhere.example/mcp", 200)
}

// TestSameOrigin is the 2025-03-26 layout: no PRM, no metadata, the AS
// endpoints at the MCP server's origin.
func TestSameOrigin(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{Metadata: MetadataNone})
	rs := NewResourceServer(t, as, ResourceOptions{PRM: PRMNone, SameOrigin: true})
	if rs.URL != as.URL || as.AuthorizationEndpoint != as.URL+"/authorize" {
		t.Fatalf("rs.URL %s, as.URL %s, authorize %s", rs.URL, as.URL, as.AuthorizationEndpoint)
	}
	resp, _ := mcpPost(t, rs.Endpoint, "", initialize)
	if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token", error_description="Missing Authorization header"`; resp.StatusCode != 401 || got != want {
		t.Errorf("%s %q, want 401 %q", resp.Status, got, want)
	}
	for _, p := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server"} {
		if resp, _ := get(t, rs.URL+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
	_, tok := login(t, as, "")
	if resp, body := mcpPost(t, rs.Endpoint, "Bearer "+tok["access_token"].(string), initialize); resp.StatusCode != 200 {
		t.Errorf("with a token: %s %s", resp.Status, body)
	}
	// Each fake records only its own requests.
	if n, m := as.Count(EndpointToken), rs.Count(EndpointToken); n != 1 || m != 0 {
		t.Errorf("token requests: AS %d, RS %d; want 1 and 0", n, m)
	}
	if n := rs.Count(EndpointMCP); n != 2 {
		t.Errorf("RS Count(mcp) = %d, want 2", n)
	}
}

func TestSetAuthServer(t *testing.T) {
	as1 := NewAuthServer(t, AuthServerOptions{PreRegistered: map[string]string{"c": ""}})
	as2 := NewAuthServer(t, AuthServerOptions{PreRegistered: map[string]string{"c": ""}})
	rs := NewResourceServer(t, as1, ResourceOptions{})
	tok1, _ := as1.IssueTokens("c", "", "")
	tok2, _ := as2.IssueTokens("c", "", "")
	rs.SetAuthServer(as2)
	if resp, _ := mcpPost(t, rs.Endpoint, "Bearer "+tok1, toolsList); resp.StatusCode != 401 {
		t.Errorf("old AS token after migration: %s, want 401", resp.Status)
	}
	if resp, _ := mcpPost(t, rs.Endpoint, "Bearer "+tok2, toolsList); resp.StatusCode != 200 {
		t.Errorf("new AS token after migration: %s, want 200", resp.Status)
	}
	if _, doc := get(t, rs.MetadataURL()); !cmp.Equal(doc["authorization_servers"], []any{as2.Issuer}) {
		t.Errorf("authorization_servers = %v, want [%s]", doc["authorization_servers"], as2.Issuer)
	}
}

func TestEchoHandler(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{PreRegistered: map[string]string{"c": ""}})
	rs := NewResourceServer(t, as, ResourceOptions{})
	tok, _ := as.IssueTokens("c", "", "")
	auth := "Bearer " + tok
	tests := []struct {
		body   string
		status int
		want   string
	}{
		{initialize, 200, `{"id":1,"jsonrpc":"2.0","result":{"capabilities":{},"protocolVersion":"2025-06-18","serverInfo":{"name":"oauthtest","version":"0.0.0"}}}`},
		{toolsCall, 200, `{"id":3,"jsonrpc":"2.0","result":{"method":"tools/call","params":{"name":"t"}}}`},
		{`{"jsonrpc":"2.0","id":"p","method":"ping"}`, 200, `{"id":"p","jsonrpc":"2.0","result":{}}`},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, 202, ``},
		{`not json`, 400, `{"error":{"code":-32700,"message":"Parse error"},"id":null,"jsonrpc":"2.0"}`},
	}
	for _, tt := range tests {
		resp, body := mcpPost(t, rs.Endpoint, auth, tt.body)
		if resp.StatusCode != tt.status || body != tt.want {
			t.Errorf("POST %s: %d %s, want %d %s", tt.body, resp.StatusCode, body, tt.status, tt.want)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, rs.Endpoint, nil)
	req.Header.Set("Authorization", auth)
	if resp, _ := doJSON(t, req); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %s, want 405", resp.Status)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, rs.URL+"/other", strings.NewReader(toolsList))
	req.Header.Set("Authorization", auth)
	if resp, _ := doJSON(t, req); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /other: %s, want 404", resp.Status)
	}
}

// TestStreamingHandler checks that a handler behind the guard can stream:
// the first event arrives while the handler is still running.
func TestStreamingHandler(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{PreRegistered: map[string]string{"c": ""}})
	release := make(chan struct{})
	rs := NewResourceServer(t, as, ResourceOptions{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message\ndata: {}\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})})
	tok, _ := as.IssueTokens("c", "", "")
	req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, rs.URL+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "event: message\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if got := rs.Requests()[0]; got.Status != 200 || got.Path != "/sse" {
		t.Errorf("recorded %+v while streaming, want status 200 for /sse", got)
	}
	close(release)
}

func TestJSONRPCMethod(t *testing.T) {
	for body, want := range map[string]string{
		toolsCall: "tools/call",
		`[{"jsonrpc":"2.0","id":1,"method":"x"}]`: "",
		`{"jsonrpc":"2.0","id":1,"result":{}}`:    "",
		``:                                        "",
	} {
		if got := JSONRPCMethod([]byte(body)); got != want {
			t.Errorf("JSONRPCMethod(%q) = %q, want %q", body, got, want)
		}
	}
}
