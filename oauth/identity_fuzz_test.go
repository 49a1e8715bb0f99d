package oauth

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzIdentity checks the identity function on arbitrary input: it never
// panics, the canonical key of a URL with a host never carries the query
// or fragment (which may hold keys) and does not depend on them, and the
// candidates always start with the canonical key.
func FuzzIdentity(f *testing.F) {
	for _, s := range []string{
		"https://huggingface.co/mcp?login",
		"HTTPS://HuggingFace.co:443/mcp",
		"http://[::1]:3000/mcp",
		"https://user:pw@Example.com:8443/mcp",
		"https://example.com/v1/mcp;p?x=1#frag",
		"example.com/mcp",
		"https://example.com/mcp/sse//",
		"http://%41:80/",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id := Identity(raw)
		legacy := LegacyIdentity(raw)
		cands := IdentityCandidates(raw)
		if len(cands) == 0 || cands[0] != id {
			t.Fatalf("IdentityCandidates(%q) = %q, want %q first", raw, cands, id)
		}
		if len(cands) == 2 && cands[1] != legacy || len(cands) > 2 {
			t.Fatalf("IdentityCandidates(%q) = %q, want at most the legacy key after %q", raw, cands, id)
		}
		if strings.HasSuffix(id, "/") && !strings.Contains(raw, "//mcp") && !strings.Contains(raw, "//sse") {
			t.Errorf("Identity(%q) = %q ends with a slash", raw, id) // only "/api//mcp" keeps one
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.Hostname() == "" {
			return
		}
		if strings.ContainsAny(id, "?#") {
			t.Errorf("Identity(%q) = %q keeps a query or fragment", raw, id)
		}
		if !strings.HasPrefix(id, strings.ToLower(u.Scheme)+"://") {
			t.Errorf("Identity(%q) = %q does not start with the lower-cased scheme", raw, id)
		}
		// The query and fragment never change the key.
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			if got := Identity(raw[:i]); got != id {
				t.Errorf("Identity(%q) = %q but without query and fragment %q", raw, id, got)
			}
		}
		// The key of an http(s) URL is a URL again, with the same host.
		if scheme := strings.ToLower(u.Scheme); scheme != "http" && scheme != "https" {
			return
		}
		if v, err := url.Parse(id); err != nil || v.Hostname() != strings.ToLower(u.Hostname()) {
			t.Errorf("Identity(%q) = %q does not parse back to host %q (%v)", raw, id, strings.ToLower(u.Hostname()), err)
		}
	})
}
