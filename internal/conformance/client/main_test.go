package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoginLink(t *testing.T) {
	const link = "http://localhost:4000/authorize?client_id=c&redirect_uri=http%3A%2F%2Flocalhost%3A3030%2Fcallback&state=s"
	tests := []struct {
		name, line, want string
	}{
		{"login line", "Open this link to authorize http://localhost:3000: " + link, link},
		{"named target", "Open this link to authorize hf: " + link, link},
		{"after a prefix", "[proxy] Open this link to authorize hf: " + link, link},
		{"quoted", `msg="Open this link to authorize hf: ` + link + `"`, link},
		{"https", "Open this link to authorize hf: https://as.example/authorize?x=1", "https://as.example/authorize?x=1"},
		{"other line", "time=… level=INFO msg=authorized server=http://localhost:3000", ""},
		{"no link", "Open this link to authorize hf:", ""},
		{"not http", "Open this link to authorize hf: file:///etc/passwd", ""},
		{"relative", "Open this link to authorize hf: /authorize?x=1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := loginLink(tt.line); got != tt.want {
				t.Errorf("loginLink(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestParseContext(t *testing.T) {
	tests := []struct {
		name, json string
		want       credentials
		wantErr    string
	}{
		{name: "absent"},
		{name: "no credentials", json: `{"name":"auth/metadata-default"}`},
		{
			name: "pre-registration",
			json: `{"name":"auth/pre-registration","client_id":"pre-registered-client","client_secret":"pre-registered-secret"}`,
			want: credentials{ClientID: "pre-registered-client", ClientSecret: "pre-registered-secret"},
		},
		{name: "public client", json: `{"client_id":"id"}`, want: credentials{ClientID: "id"}},
		{name: "bad JSON", json: `{"client_id":`, wantErr: "MCP_CONFORMANCE_CONTEXT"},
		{name: "secret only", json: `{"client_secret":"s"}`, wantErr: "client_secret without client_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseContext(tt.json)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseContext(%q) error = %v, want one containing %q", tt.json, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseContext(%q): %v", tt.json, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseContext(%q) (-want +got):\n%s", tt.json, diff)
			}
		})
	}
}

func TestProxyArgs(t *testing.T) {
	base := []string{"serve",
		"--url", "http://localhost:4000/mcp",
		"--listen", "127.0.0.1:5000",
		"--persist", "memory",
		"--redirect-port", "5001",
		"--client-metadata-url", "https://conformance-test.local/client-metadata.json",
		"--login-timeout", "25s",
		"--admin", "off",
	}
	tests := []struct {
		name  string
		creds credentials
		want  []string
	}{
		{"dynamic registration or CIMD", credentials{}, base},
		{"pre-registered", credentials{ClientID: "id", ClientSecret: "secret"},
			append(base[:len(base):len(base)], "--client-id", "id", "--client-secret", "secret")},
		{"public pre-registered", credentials{ClientID: "id"},
			append(base[:len(base):len(base)], "--client-id", "id")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := proxyArgs("http://localhost:4000/mcp", "127.0.0.1:5000", 5001, tt.creds)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("proxyArgs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocalURL(t *testing.T) {
	tests := []struct{ upstream, want string }{
		{"http://localhost:4000/mcp", "http://127.0.0.1:5000/mcp"},
		{"http://localhost:4000", "http://127.0.0.1:5000"},
		{"https://mcp.example/a%2Fb/mcp?login&x=1", "http://127.0.0.1:5000/a%2Fb/mcp?login&x=1"},
	}
	for _, tt := range tests {
		if got := localURL("127.0.0.1:5000", mustParse(t, tt.upstream)); got != tt.want {
			t.Errorf("localURL(%q) = %q, want %q", tt.upstream, got, tt.want)
		}
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name, serverURL, context, wantErr string
	}{
		{"relative server URL", "/mcp", "", `server URL "/mcp"`},
		{"bad context", "http://localhost:4000/mcp", "{", "MCP_CONFORMANCE_CONTEXT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"MCP_CONFORMANCE_CONTEXT": tt.context, "MCP_OAUTH_PROXY_BIN": "/nonexistent"}
			var out bytes.Buffer
			err := run(t.Context(), tt.serverURL, func(k string) string { return env[k] }, &out, testLogger(t))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
