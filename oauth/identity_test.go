package oauth

import "testing"

// The table from fast-agent 0.10 (research note fast-agent-oauth.md §1.2):
// identity at HEAD and in 0.6.18–0.9.x (our legacy read fallback).
func TestIdentity(t *testing.T) {
	tests := []struct {
		in, want, legacy string
	}{
		{"https://huggingface.co/mcp?login", "https://huggingface.co", "https://huggingface.co"},
		{"https://huggingface.co/mcp/", "https://huggingface.co", "https://huggingface.co"},
		{"https://HuggingFace.CO/mcp?login#frag", "https://huggingface.co", "https://HuggingFace.CO"},
		{"HTTPS://HuggingFace.co:443/mcp", "https://huggingface.co", "https://HuggingFace.co:443"},
		{"http://localhost:80/mcp", "http://localhost", "http://localhost:80"},
		{"http://localhost:8000/mcp", "http://localhost:8000", "http://localhost:8000"},
		{"http://127.0.0.1:8001/sse", "http://127.0.0.1:8001", "http://127.0.0.1:8001"},
		{"https://example.com/api/mcp", "https://example.com/api", "https://example.com/api"},
		{"https://example.com/api/mcp//", "https://example.com/api", "https://example.com/api"},
		{"https://example.com/", "https://example.com", "https://example.com"},
		{"https://example.com", "https://example.com", "https://example.com"},
		{"https://example.com/mcp/sse", "https://example.com/mcp", "https://example.com/mcp"},
		{"https://example.com/sse/mcp", "https://example.com/sse", "https://example.com/sse"},
		{"https://example.com/MCP", "https://example.com/MCP", "https://example.com/MCP"},
		{"https://example.com/mcpserver", "https://example.com/mcpserver", "https://example.com/mcpserver"},
		{"https://example.com/v1/mcp;p?x=1", "https://example.com/v1", "https://example.com/v1"},
		{"https://user:pw@Example.com:8443/mcp", "https://user:pw@example.com:8443", "https://user:pw@Example.com:8443"},
		{"http://[::1]:3000/mcp", "http://[::1]:3000", "http://[::1]:3000"},
		{"example.com/mcp", "example.com", "example.com"},
		// Beyond the table: fast-agent's test file cases.
		{"HTTPS://EXAMPLE.COM/api/mcp", "https://example.com/api", "https://EXAMPLE.COM/api"},
		{"https://example.com:443/api/mcp", "https://example.com/api", "https://example.com:443/api"},
		{"https://example.com/nested/sse/?login#fragment", "https://example.com/nested", "https://example.com/nested"},
		{"http://127.0.0.1:9/sse", "http://127.0.0.1:9", "http://127.0.0.1:9"},
		{"https://example.com/a;x/mcp", "https://example.com/a;x", "https://example.com/a;x"},
		// The path as written, as Python's urlparse keeps it: not escaped,
		// not unescaped; one slash dropped after the suffix.
		{"https://example.com/ü/mcp", "https://example.com/ü", "https://example.com/ü"},
		{"https://example.com/a b/mcp", "https://example.com/a b", "https://example.com/a b"},
		{"https://example.com/a%20b/mcp", "https://example.com/a%20b", "https://example.com/a%20b"},
		{"https://example.com/api///mcp", "https://example.com/api/", "https://example.com/api/"},
		{"https://example.com//mcp", "https://example.com", "https://example.com"},
	}
	for _, tt := range tests {
		if got := Identity(tt.in); got != tt.want {
			t.Errorf("Identity(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := LegacyIdentity(tt.in); got != tt.legacy {
			t.Errorf("LegacyIdentity(%q) = %q, want %q", tt.in, got, tt.legacy)
		}
	}
}

func TestIdentityCandidates(t *testing.T) {
	if got := IdentityCandidates("https://example.com/mcp"); len(got) != 1 {
		t.Errorf("IdentityCandidates(canonical) = %q, want one key", got)
	}
	got := IdentityCandidates("https://Example.com:443/mcp")
	if len(got) != 2 || got[0] != "https://example.com" || got[1] != "https://Example.com:443" {
		t.Errorf("IdentityCandidates = %q, want canonical then legacy", got)
	}
}
