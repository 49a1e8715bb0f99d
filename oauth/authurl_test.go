package oauth

import (
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAuthRequestURL(t *testing.T) {
	const verifier = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r-wW1gFWFOEjXk"
	challenge := s256Challenge(verifier)
	tests := []struct {
		name     string
		req      AuthRequest
		wantBase string
		want     url.Values
	}{
		{
			name: "all parameters",
			req: AuthRequest{Endpoint: "https://as.example.com/authorize", ClientID: "test-client-id", RedirectURI: testRedirectURI,
				Scope: "mcp:basic mcp:write", Resource: "http://localhost:32819/mcp", State: "st", Verifier: verifier},
			wantBase: "https://as.example.com/authorize",
			want: url.Values{
				"response_type":         {"code"},
				"client_id":             {"test-client-id"},
				"redirect_uri":          {testRedirectURI},
				"state":                 {"st"},
				"code_challenge":        {challenge},
				"code_challenge_method": {"S256"},
				"scope":                 {"mcp:basic mcp:write"},
				"resource":              {"http://localhost:32819/mcp"},
			},
		},
		{
			name: "no scope, no resource",
			req: AuthRequest{Endpoint: "http://127.0.0.1:9/authorize", ClientID: "c", RedirectURI: testRedirectURI,
				State: "st", Verifier: verifier},
			wantBase: "http://127.0.0.1:9/authorize",
			want: url.Values{
				"response_type":         {"code"},
				"client_id":             {"c"},
				"redirect_uri":          {testRedirectURI},
				"state":                 {"st"},
				"code_challenge":        {challenge},
				"code_challenge_method": {"S256"},
			},
		},
		{
			name: "offline_access asks for consent",
			req: AuthRequest{Endpoint: "https://as.example.com/authorize", ClientID: "c", RedirectURI: testRedirectURI,
				Scope: "mcp:basic offline_access", State: "st", Verifier: verifier},
			wantBase: "https://as.example.com/authorize",
			want: url.Values{
				"response_type":         {"code"},
				"client_id":             {"c"},
				"redirect_uri":          {testRedirectURI},
				"state":                 {"st"},
				"code_challenge":        {challenge},
				"code_challenge_method": {"S256"},
				"scope":                 {"mcp:basic offline_access"},
				"prompt":                {"consent"},
			},
		},
		{
			name: "a configured prompt is kept with offline_access",
			req: AuthRequest{Endpoint: "https://as.example.com/authorize", ClientID: "c", RedirectURI: testRedirectURI,
				Scope: "offline_access", State: "st", Verifier: verifier, Params: map[string]string{"prompt": "select_account consent"}},
			wantBase: "https://as.example.com/authorize",
			want: url.Values{
				"response_type":         {"code"},
				"client_id":             {"c"},
				"redirect_uri":          {testRedirectURI},
				"state":                 {"st"},
				"code_challenge":        {challenge},
				"code_challenge_method": {"S256"},
				"scope":                 {"offline_access"},
				"prompt":                {"select_account consent"},
			},
		},
		{
			name: "endpoint query kept, clashing parameters replaced",
			req: AuthRequest{Endpoint: "https://as.example.com/oauth2/authorize?tenant=x&audience=a+b&response_type=token", ClientID: "c",
				RedirectURI: testRedirectURI, Scope: "no_offline_access_here", State: "st", Verifier: verifier},
			wantBase: "https://as.example.com/oauth2/authorize",
			want: url.Values{
				"tenant":                {"x"},
				"audience":              {"a b"},
				"response_type":         {"code"},
				"client_id":             {"c"},
				"redirect_uri":          {testRedirectURI},
				"state":                 {"st"},
				"code_challenge":        {challenge},
				"code_challenge_method": {"S256"},
				"scope":                 {"no_offline_access_here"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.req.URL()
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("URL() = %q: %v", raw, err)
			}
			if base := strings.SplitN(raw, "?", 2)[0]; base != tt.wantBase {
				t.Errorf("URL() base = %q, want %q", base, tt.wantBase)
			}
			if diff := cmp.Diff(tt.want, u.Query()); diff != "" {
				t.Errorf("URL() query mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// s256Challenge is RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))).
func s256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestAuthRequestChallengeIsS256(t *testing.T) {
	v := NewVerifier()
	u, err := url.Parse(AuthRequest{Endpoint: "https://as/authorize", Verifier: v}.URL())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.Query().Get("code_challenge"), s256Challenge(v); got != want {
		t.Errorf("code_challenge = %q, want BASE64URL(SHA256(verifier)) = %q", got, want)
	}
}

func TestNewVerifierAndState(t *testing.T) {
	verifierRE := regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
	stateRE := regexp.MustCompile(`^[A-Za-z0-9_-]{22,}$`) // ≥128 bits, URL-safe
	seen := map[string]bool{}
	for range 100 {
		v, s := NewVerifier(), NewState()
		if !verifierRE.MatchString(v) {
			t.Errorf("NewVerifier() = %q, not an RFC 7636 verifier", v)
		}
		if !stateRE.MatchString(s) {
			t.Errorf("NewState() = %q, want ≥22 URL-safe characters", s)
		}
		if seen[v] || seen[s] {
			t.Fatalf("repeated value %q / %q", v, s)
		}
		seen[v], seen[s] = true, true
	}
}

// Further parameters are added, and never replace the flow's own.
func TestAuthRequestParams(t *testing.T) {
	r := AuthRequest{Endpoint: "https://as.example/authorize", ClientID: "cid", RedirectURI: "http://localhost:3030/callback",
		Scope: "a", Resource: "https://mcp.example/", State: "st", Verifier: NewVerifier(),
		Params: map[string]string{"access_type": "offline", "audience": "https://api", "state": "evil", "client_id": "evil"}}
	u, err := url.Parse(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, want := range map[string]string{"access_type": "offline", "audience": "https://api", "state": "st", "client_id": "cid"} {
		if got := q[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want [%q]", k, got, want)
		}
	}
}
