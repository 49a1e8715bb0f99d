package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ignoreExtra lets cmp compare Token and ClientInfo values, whose
// unknown fields are unexported.
var ignoreExtra = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".extra" }, cmp.Ignore())

const testRedirectURI = "http://localhost:3030/callback"

// registrar is a fake RFC 7591 endpoint that records the bodies it got.
type registrar struct {
	mu     sync.Mutex
	bodies []map[string]any
	ctypes []string
	status int
	answer string
}

func (r *registrar) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		m = map[string]any{"<invalid>": string(b)}
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, m)
	r.ctypes = append(r.ctypes, req.Header.Get("Content-Type"))
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	fmt.Fprint(w, r.answer)
}

func (r *registrar) got() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bodies
}

func TestResolveClient(t *testing.T) {
	const cimdURL = "https://conformance-test.local/client-metadata.json"
	dcrAnswer := `{"client_id": "test-client-id", "client_secret": "test-client-secret", "client_name": "mcp-oauth-proxy",
		"redirect_uris": ["` + testRedirectURI + `"], "token_endpoint_auth_method": "client_secret_basic", "client_id_issued_at": 1700000000}`
	tests := []struct {
		name   string
		opts   ClientOptions
		meta   func(base string) *AuthServerMetadata // nil: default metadata with a registration endpoint
		stored *ClientInfo
		// want is the expected client; issuer is substituted for "ISSUER".
		want           *ClientInfo
		wantRegistered bool
		wantBodies     []map[string]any // DCR request bodies
		wantErr        string
	}{
		{
			name:   "configured client_id wins over everything",
			opts:   ClientOptions{ClientID: "pre-registered-client", ClientSecret: "pre-registered-secret", ClientMetadataURL: cimdURL, RedirectURI: testRedirectURI},
			stored: &ClientInfo{ClientID: "stored", RedirectURIs: []string{testRedirectURI}, Issuer: "ISSUER"},
			meta: func(base string) *AuthServerMetadata {
				m := asMetadata(base, base)
				m.ClientIDMetadataDocumentSupported = true
				return m
			},
			want: &ClientInfo{ClientID: "pre-registered-client", ClientSecret: "pre-registered-secret",
				RedirectURIs: []string{testRedirectURI}, Issuer: "ISSUER"},
		},
		{
			name: "CIMD when advertised",
			opts: ClientOptions{ClientMetadataURL: cimdURL, RedirectURI: testRedirectURI},
			meta: func(base string) *AuthServerMetadata {
				m := asMetadata(base, base)
				m.ClientIDMetadataDocumentSupported = true
				return m
			},
			stored: &ClientInfo{ClientID: "stored", RedirectURIs: []string{testRedirectURI}, Issuer: "ISSUER"},
			want: &ClientInfo{ClientID: cimdURL, TokenEndpointAuthMethod: "none",
				RedirectURIs: []string{testRedirectURI}, Issuer: "ISSUER"},
			wantRegistered: true,
		},
		{
			name: "CIMD URL with a root path is refused",
			opts: ClientOptions{ClientMetadataURL: "https://conformance-test.local/", RedirectURI: testRedirectURI},
			meta: func(base string) *AuthServerMetadata {
				m := asMetadata(base, base)
				m.ClientIDMetadataDocumentSupported = true
				return m
			},
			wantErr: "must be an https URL with a path",
		},
		{
			name: "CIMD URL over http is refused",
			opts: ClientOptions{ClientMetadataURL: "http://localhost/client.json", RedirectURI: testRedirectURI},
			meta: func(base string) *AuthServerMetadata {
				m := asMetadata(base, base)
				m.ClientIDMetadataDocumentSupported = true
				return m
			},
			wantErr: "must be an https URL with a path",
		},
		{
			name: "CIMD not advertised: dynamic registration",
			opts: ClientOptions{ClientMetadataURL: cimdURL, RedirectURI: testRedirectURI},
			want: &ClientInfo{ClientID: "test-client-id", ClientSecret: "test-client-secret", ClientName: "mcp-oauth-proxy",
				ClientIDIssuedAt: 1700000000, RedirectURIs: []string{testRedirectURI},
				TokenEndpointAuthMethod: "client_secret_basic", Issuer: "ISSUER"},
			wantRegistered: true,
			wantBodies: []map[string]any{{
				"client_name":                "mcp-oauth-proxy",
				"redirect_uris":              []any{testRedirectURI},
				"grant_types":                []any{"authorization_code", "refresh_token"},
				"response_types":             []any{"code"},
				"token_endpoint_auth_method": "none",
			}},
		},
		{
			name: "stored registration reused",
			opts: ClientOptions{RedirectURI: testRedirectURI},
			stored: &ClientInfo{ClientID: "stored", ClientSecret: "s", ClientSecretExpiresAt: 4102444800, // 2100-01-01
				RedirectURIs: []string{"http://127.0.0.1:3030/callback", testRedirectURI}, Issuer: "ISSUER"},
			want: &ClientInfo{ClientID: "stored", ClientSecret: "s", ClientSecretExpiresAt: 4102444800, // 2100-01-01
				RedirectURIs: []string{"http://127.0.0.1:3030/callback", testRedirectURI}, Issuer: "ISSUER"},
		},
		{
			name:   "stored registration with a trailing-slash issuer reused",
			opts:   ClientOptions{RedirectURI: testRedirectURI},
			stored: &ClientInfo{ClientID: "stored", RedirectURIs: []string{testRedirectURI}, Issuer: "ISSUER/"},
			want:   &ClientInfo{ClientID: "stored", RedirectURIs: []string{testRedirectURI}, Issuer: "ISSUER/"},
		},
		{
			name:   "stored registration without issuer (fast-agent before SDK 2.0) reused",
			opts:   ClientOptions{RedirectURI: testRedirectURI},
			stored: &ClientInfo{ClientID: "stored", RedirectURIs: []string{testRedirectURI}},
			want:   &ClientInfo{ClientID: "stored", RedirectURIs: []string{testRedirectURI}},
		},
		{
			name:   "stored registration of another issuer discarded",
			opts:   ClientOptions{RedirectURI: testRedirectURI, Scope: "mcp:read offline_access"},
			stored: &ClientInfo{ClientID: "stored", RedirectURIs: []string{testRedirectURI}, Issuer: "https://other.example.com"},
			want: &ClientInfo{ClientID: "test-client-id", ClientSecret: "test-client-secret", ClientName: "mcp-oauth-proxy",
				ClientIDIssuedAt: 1700000000, RedirectURIs: []string{testRedirectURI},
				TokenEndpointAuthMethod: "client_secret_basic", Issuer: "ISSUER"},
			wantRegistered: true,
			wantBodies: []map[string]any{{
				"client_name":                "mcp-oauth-proxy",
				"redirect_uris":              []any{testRedirectURI},
				"grant_types":                []any{"authorization_code", "refresh_token"},
				"response_types":             []any{"code"},
				"token_endpoint_auth_method": "none",
				"scope":                      "mcp:read offline_access",
			}},
		},
		{
			name:   "stored registration for another redirect URI discarded",
			opts:   ClientOptions{RedirectURI: testRedirectURI, ClientName: "custom"},
			stored: &ClientInfo{ClientID: "stored", RedirectURIs: []string{"http://localhost:3031/callback"}, Issuer: "ISSUER"},
			want: &ClientInfo{ClientID: "test-client-id", ClientSecret: "test-client-secret", ClientName: "mcp-oauth-proxy",
				ClientIDIssuedAt: 1700000000, RedirectURIs: []string{testRedirectURI},
				TokenEndpointAuthMethod: "client_secret_basic", Issuer: "ISSUER"},
			wantRegistered: true,
			wantBodies: []map[string]any{{
				"client_name":                "custom",
				"redirect_uris":              []any{testRedirectURI},
				"grant_types":                []any{"authorization_code", "refresh_token"},
				"response_types":             []any{"code"},
				"token_endpoint_auth_method": "none",
			}},
		},
		{
			name:           "stored registration with an expired secret discarded",
			opts:           ClientOptions{RedirectURI: testRedirectURI},
			stored:         &ClientInfo{ClientID: "stored", ClientSecret: "s", ClientSecretExpiresAt: 1, RedirectURIs: []string{testRedirectURI}, Issuer: "ISSUER"},
			wantRegistered: true,
			wantBodies:     []map[string]any{nil}, // body checked in other cases
		},
		{
			name:           "stored CIMD client discarded when the server no longer accepts documents",
			opts:           ClientOptions{RedirectURI: testRedirectURI},
			stored:         &ClientInfo{ClientID: cimdURL, RedirectURIs: []string{testRedirectURI}, Issuer: "ISSUER"},
			wantRegistered: true,
			wantBodies:     []map[string]any{nil},
		},
		{
			name: "no registration endpoint and nothing configured",
			opts: ClientOptions{ClientMetadataURL: cimdURL, RedirectURI: testRedirectURI},
			meta: func(base string) *AuthServerMetadata {
				m := asMetadata(base, base)
				m.RegistrationEndpoint = ""
				return m
			},
			stored:  &ClientInfo{ClientID: "stored", RedirectURIs: []string{"http://localhost:1/other"}, Issuer: "ISSUER"},
			wantErr: "offers no dynamic client registration and does not accept client metadata documents (client_metadata_url); configure a pre-registered client_id (and client_secret), or a client_metadata_url",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := newFakeSite(t)
			reg := &registrar{status: http.StatusCreated, answer: dcrAnswer}
			site.handle("/register", reg.ServeHTTP)
			issuer := site.URL()
			meta := asMetadata(issuer, issuer)
			if tt.meta != nil {
				meta = tt.meta(issuer)
			}
			disc := &Discovery{Issuer: issuer, Metadata: meta, Resource: issuer + "/mcp"}
			fix := func(ci *ClientInfo) *ClientInfo {
				if ci == nil {
					return nil
				}
				c := *ci
				c.Issuer = strings.Replace(c.Issuer, "ISSUER", issuer, 1)
				return &c
			}
			d := &Discoverer{Logger: testLogger(t)}
			got, registered, err := d.ResolveClient(t.Context(), disc, tt.opts, fix(tt.stored))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ResolveClient error = %v, want %q", err, tt.wantErr)
				}
				if len(reg.got()) != 0 {
					t.Errorf("registration requests: %v, want none", reg.got())
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveClient: %v", err)
			}
			if registered != tt.wantRegistered {
				t.Errorf("registered = %v, want %v", registered, tt.wantRegistered)
			}
			if tt.want != nil {
				if diff := cmp.Diff(fix(tt.want), got, ignoreExtra); diff != "" {
					t.Errorf("ResolveClient mismatch (-want +got):\n%s", diff)
				}
			} else if got.ClientID != "test-client-id" || got.Issuer != issuer {
				t.Errorf("ResolveClient = %+v, want the dynamic registration for %s", got, issuer)
			}
			bodies := reg.got()
			if len(bodies) != len(tt.wantBodies) {
				t.Fatalf("%d registration requests, want %d", len(bodies), len(tt.wantBodies))
			}
			for i, want := range tt.wantBodies {
				if want == nil {
					continue
				}
				if diff := cmp.Diff(want, bodies[i]); diff != "" {
					t.Errorf("registration body mismatch (-want +got):\n%s", diff)
				}
				if reg.ctypes[i] != "application/json" {
					t.Errorf("registration Content-Type = %q", reg.ctypes[i])
				}
			}
		})
	}
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		ctype   string
		answer  string
		want    *ClientInfo
		wantErr string
		regErr  *RegistrationError // without Endpoint
	}{
		{
			name:   "200 with the server's fields",
			status: 200, ctype: "application/json",
			answer: `{"client_id": "c1", "token_endpoint_auth_method": "none", "client_secret_expires_at": 0, "x_vendor": 1}`,
			want:   &ClientInfo{ClientID: "c1", TokenEndpointAuthMethod: "none", RedirectURIs: []string{testRedirectURI}},
		},
		{
			name:   "201 with redirect URIs",
			status: 201, ctype: "application/json; charset=utf-8",
			answer: `{"client_id": "c2", "client_secret": "s", "redirect_uris": ["http://127.0.0.1:3030/callback"]}`,
			want:   &ClientInfo{ClientID: "c2", ClientSecret: "s", RedirectURIs: []string{"http://127.0.0.1:3030/callback"}},
		},
		{
			name:   "OAuth error",
			status: 400, ctype: "application/json",
			answer: `{"error": "invalid_redirect_uri", "error_description": "loopback not allowed"}`,
			regErr: &RegistrationError{StatusCode: 400, Code: "invalid_redirect_uri", Description: "loopback not allowed"},
		},
		{
			name:   "HTML error page",
			status: 404, ctype: "text/html",
			answer: `<html>not found</html>`,
			regErr: &RegistrationError{StatusCode: 404},
		},
		{
			name:   "no client_id",
			status: 201, ctype: "application/json",
			answer:  `{"client_secret": "s"}`,
			wantErr: "has no client_id",
		},
		{
			name:   "garbage JSON",
			status: 201, ctype: "application/json",
			answer:  `{"client_id": `,
			wantErr: "invalid JSON",
		},
		{
			name:   "not JSON",
			status: 201, ctype: "text/html",
			answer:  `<html></html>`,
			wantErr: `content type "text/html"`,
		},
		{
			name:   "unusable auth method",
			status: 201, ctype: "application/json",
			answer:  `{"client_id": "c", "token_endpoint_auth_method": "private_key_jwt"}`,
			wantErr: `unsupported token_endpoint_auth_method "private_key_jwt"`,
		},
		{
			name:   "secret method without secret",
			status: 201, ctype: "application/json",
			answer:  `{"client_id": "c", "token_endpoint_auth_method": "client_secret_post"}`,
			wantErr: "without a client_secret",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := newFakeSite(t)
			site.handle("/reg", func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					t.Errorf("method %s, want POST", r.Method)
				}
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.answer)
			})
			endpoint := site.URL() + "/reg"
			d := &Discoverer{Logger: testLogger(t)}
			got, err := d.Register(t.Context(), endpoint, RegistrationRequest{RedirectURIs: []string{testRedirectURI}})
			switch {
			case tt.regErr != nil:
				var re *RegistrationError
				if !errors.As(err, &re) {
					t.Fatalf("Register error = %v, want a *RegistrationError", err)
				}
				want := *tt.regErr
				want.Endpoint = endpoint
				if diff := cmp.Diff(&want, re); diff != "" {
					t.Errorf("RegistrationError mismatch (-want +got):\n%s", diff)
				}
				if !strings.HasPrefix(err.Error(), "oauth: client registration at "+endpoint+" failed: ") {
					t.Errorf("error text %q does not name the endpoint", err)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), endpoint) {
					t.Fatalf("Register error = %v, want one naming %s and containing %q", err, endpoint, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got, ignoreExtra); diff != "" {
					t.Errorf("Register mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRegistrationErrorText(t *testing.T) {
	for _, tt := range []struct {
		err  *RegistrationError
		want string
	}{
		{&RegistrationError{Endpoint: "https://as/reg", StatusCode: 400, Code: "invalid_client_metadata", Description: "bad"},
			"oauth: client registration at https://as/reg failed: invalid_client_metadata: bad"},
		{&RegistrationError{Endpoint: "https://as/reg", StatusCode: 400, Code: "invalid_client_metadata"},
			"oauth: client registration at https://as/reg failed: invalid_client_metadata"},
		{&RegistrationError{Endpoint: "https://as/reg", StatusCode: 503},
			"oauth: client registration at https://as/reg failed: HTTP 503"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestRegisterRefusesInsecureEndpoint(t *testing.T) {
	d := &Discoverer{}
	if _, err := d.Register(t.Context(), "http://as.example.com/register", RegistrationRequest{}); err == nil ||
		!strings.Contains(err.Error(), "--allow-insecure-http") {
		t.Errorf("Register over plain http = %v, want a refusal", err)
	}
}
