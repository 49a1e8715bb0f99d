package redact

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fp(s string) string { return Fingerprint(s) }

func TestHeaderValue(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"Authorization", "Bearer tok-123456789", "Bearer " + fp("tok-123456789")},
		{"authorization", "bearer tok-123456789", "bearer " + fp("tok-123456789")},
		{"Authorization", "Basic dXNlcjpwYXNz", "Basic " + fp("dXNlcjpwYXNz")},
		{"Authorization", "tok-123456789", fp("tok-123456789")},
		{"X-HF-Authorization", "Bearer hf_abcdefgh", "Bearer " + fp("hf_abcdefgh")},
		{"Proxy-Authorization", "Basic cHJveHk6cHc=", "Basic " + fp("cHJveHk6cHc=")},
		{"Cookie", "sid=abc; theme=dark", "sid=" + fp("abc") + "; theme=" + fp("dark")},
		{"Set-Cookie", "sid=abc; Path=/; HttpOnly", "sid=" + fp("abc") + "; Path=/; HttpOnly"},
		{"X-Api-Key", "k-123", fp("k-123")},
		{"X-Auth-Token", "t-123", fp("t-123")},
		{"Location", "http://localhost:3030/callback?code=c-1&state=s-1&iss=x",
			"http://localhost:3030/callback?code=" + fp("c-1") + "&state=" + fp("s-1") + "&iss=x"},
		{"Location", "/mcp?session=1", "/mcp?session=1"},
		{"Content-Type", "application/json", "application/json"},
		{"Mcp-Session-Id", "abc", "abc"},
		{"WWW-Authenticate", `Bearer resource_metadata="https://x/.well-known/oauth-protected-resource"`,
			`Bearer resource_metadata="https://x/.well-known/oauth-protected-resource"`},
	}
	for _, tt := range tests {
		if got := HeaderValue(tt.name, tt.value); got != tt.want {
			t.Errorf("HeaderValue(%q, %q) = %q, want %q", tt.name, tt.value, got, tt.want)
		}
	}
}

func TestHeader(t *testing.T) {
	h := http.Header{
		"Authorization": {"Bearer secret-access"},
		"Accept":        {"application/json", "text/event-stream"},
	}
	got := Header(h)
	want := http.Header{
		"Authorization": {"Bearer " + fp("secret-access")},
		"Accept":        {"application/json", "text/event-stream"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Header (-want +got):\n%s", diff)
	}
	if h.Get("Authorization") != "Bearer secret-access" {
		t.Error("Header changed its argument")
	}
}

func TestQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"login", "login"},
		{"a=1&b=2", "a=1&b=2"},
		{"code=abc&state=xyz&iss=https%3A%2F%2Fas", "code=" + fp("abc") + "&state=" + fp("xyz") + "&iss=https%3A%2F%2Fas"},
		{"grant_type=authorization_code&code=c1&code_verifier=v1&redirect_uri=http%3A%2F%2Flocalhost%3A3030%2Fcallback&client_id=cid",
			"grant_type=authorization_code&code=" + fp("c1") + "&code_verifier=" + fp("v1") + "&redirect_uri=http%3A%2F%2Flocalhost%3A3030%2Fcallback&client_id=cid"},
		{"grant_type=refresh_token&refresh_token=r%2B1&client_secret=s1",
			"grant_type=refresh_token&refresh_token=" + fp("r+1") + "&client_secret=" + fp("s1")},
		{"ACCESS_TOKEN=a&Id-Token=b&token=c", "ACCESS_TOKEN=" + fp("a") + "&Id-Token=" + fp("b") + "&token=" + fp("c")},
		{"code=&state", "code=&state"},
		{"code=%zz", "code=" + fp("%zz")},
		{"code_challenge=ch&code_challenge_method=S256", "code_challenge=ch&code_challenge_method=S256"},
		{"api_key=k1&apiKey=k2", "api_key=" + fp("k1") + "&apiKey=" + fp("k2")},
		{"sessionId=s1", "sessionId=" + fp("s1")},
	}
	for _, tt := range tests {
		if got := Query(tt.in); got != tt.want {
			t.Errorf("Query(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRequestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://example.com/mcp?login", "https://example.com/mcp?login"},
		{"https://u:pw@example.com/t?code=c&x=1#frag", "https://u:xxxxx@example.com/t?code=" + fp("c") + "&x=1"},
		{"http://127.0.0.1:1/token", "http://127.0.0.1:1/token"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RequestURL(u); got != tt.want {
			t.Errorf("RequestURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := URLString(tt.in); got != tt.want {
			t.Errorf("URLString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := URLString("http://[::1:bad"); got != "<invalid URL>" {
		t.Errorf("URLString(bad) = %q", got)
	}
}

func TestIsSecret(t *testing.T) {
	for _, name := range []string{"code", "CODE", "code_verifier", "state", "access_token", "Refresh-Token",
		"id_token", "client_secret", "token", "registration_access_token",
		// API keys and tokens in hosted MCP servers' URLs and in bodies.
		"tavilyApiKey", "exaApiKey", "key", "x-api-key", "accessToken", "auth_token", "clientSecret", "sig", "db_password"} {
		if !IsSecretField(name) {
			t.Errorf("IsSecretField(%q) = false", name)
		}
	}
	for _, name := range []string{"code_challenge", "token_type", "token_endpoint", "grant_type", "client_id",
		"expires_in", "scope", "redirect_uri", "resource", "method", "id", "max_tokens", "tokens", "input_tokens",
		"client_secret_expires_at", "token_endpoint_auth_method", "keys", "monkey", strings.Repeat("x", 65) + "token"} {
		if IsSecretField(name) {
			t.Errorf("IsSecretField(%q) = true", name)
		}
	}
}

// API keys in hosted MCP servers' URLs (Tavily's, Exa's) and in bodies are
// hidden whatever they are called, as long as the name says key or token.
func TestSecretsByTheirNamesEnding(t *testing.T) {
	if got, want := URLString("https://mcp.tavily.com/mcp/?tavilyApiKey=tvly-S&x=1"), "https://mcp.tavily.com/mcp/?tavilyApiKey="+fp("tvly-S")+"&x=1"; got != want {
		t.Errorf("URLString = %q, want %q", got, want)
	}
	for in, want := range map[string]string{
		"exaApiKey=e-S&x=1":                      "exaApiKey=" + fp("e-S") + "&x=1",
		`{"accessToken": "a-S", "max_tokens": 5`: `{"accessToken": "` + fp("a-S") + `", "max_tokens": 5`,
		"see https://h/mcp?key=k-S for details":  "see https://h/mcp?key=" + fp("k-S") + " for details",
		"max_tokens=5&token_type=Bearer":         "max_tokens=5&token_type=Bearer",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}
