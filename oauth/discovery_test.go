package oauth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeSite is an HTTP server on 127.0.0.1 that answers configured paths,
// 404s the rest, and records every request.
type fakeSite struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	paths  []string
	hdrs   []http.Header
}

func newFakeSite(t *testing.T) *fakeSite {
	t.Helper()
	s := &fakeSite{t: t, routes: map[string]http.HandlerFunc{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeSite) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.Path)
	s.hdrs = append(s.hdrs, r.Header.Clone())
	h := s.routes[r.URL.Path]
	s.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

// URL is the site's base URL, http://127.0.0.1:port.
func (s *fakeSite) URL() string { return s.srv.URL }

func (s *fakeSite) handle(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[path] = h
}

// json answers path with status and body as application/json.
func (s *fakeSite) json(path string, status int, body string) {
	s.handle(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})
}

// trap fails the test when path is requested.
func (s *fakeSite) trap(path, why string) {
	s.handle(path, func(w http.ResponseWriter, r *http.Request) {
		s.t.Errorf("unexpected request for %s: %s", r.URL.Path, why)
		http.NotFound(w, r)
	})
}

func (s *fakeSite) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}

func (s *fakeSite) headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.hdrs...)
}

// asMetadataJSON returns RFC 8414 metadata for issuer with endpoints under
// endpointBase, plus the extra JSON members given.
func asMetadataJSON(issuer, endpointBase string, extra ...string) string {
	members := []string{
		fmt.Sprintf(`"issuer": %q`, issuer),
		fmt.Sprintf(`"authorization_endpoint": %q`, endpointBase+"/authorize"),
		fmt.Sprintf(`"token_endpoint": %q`, endpointBase+"/token"),
		fmt.Sprintf(`"registration_endpoint": %q`, endpointBase+"/register"),
		`"response_types_supported": ["code"]`,
		`"grant_types_supported": ["authorization_code", "refresh_token"]`,
		`"code_challenge_methods_supported": ["S256"]`,
		`"token_endpoint_auth_methods_supported": ["none"]`,
	}
	seen := map[string]bool{}
	for _, e := range extra {
		seen[strings.SplitN(e, ":", 2)[0]] = true
	}
	var out []string
	for _, m := range members {
		if !seen[strings.SplitN(m, ":", 2)[0]] {
			out = append(out, m)
		}
	}
	return "{" + strings.Join(append(out, extra...), ", ") + "}"
}

func asMetadata(issuer, endpointBase string) *AuthServerMetadata {
	return &AuthServerMetadata{
		Issuer:                            issuer,
		AuthorizationEndpoint:             endpointBase + "/authorize",
		TokenEndpoint:                     endpointBase + "/token",
		RegistrationEndpoint:              endpointBase + "/register",
		ResponseTypesSupported:            []string{"code"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		TokenEndpointAuthMethodsSupported: []string{"none"},
	}
}

func prmJSON(resource string, servers ...string) string {
	q := make([]string, len(servers))
	for i, s := range servers {
		q[i] = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf(`{"resource": %q, "authorization_servers": [%s]}`, resource, strings.Join(q, ", "))
}

const (
	prmPath     = "/.well-known/oauth-protected-resource"
	oauthASPath = "/.well-known/oauth-authorization-server"
	oidcPath    = "/.well-known/openid-configuration"
)

// discoveryCase sets up an MCP site and an AS site, runs Discover and
// checks the result and the exact requests each site saw.
type discoveryCase struct {
	name string
	// setup configures the sites and returns the MCP endpoint and the
	// challenge to discover with.
	setup func(t *testing.T, mcp, as *fakeSite) (serverURL string, ch *BearerChallenge)
	// want is the expected result (nil when an error is expected).
	want func(mcp, as *fakeSite) *Discovery
	// wantErr are substrings of the expected error.
	wantErr func(mcp, as *fakeSite) []string
	// wantMCP and wantAS are the paths requested from each site, in order.
	wantMCP, wantAS []string
	d               Discoverer
}

func TestDiscover(t *testing.T) {
	tests := []discoveryCase{
		{
			name: "metadata-default: header URL, root AS metadata",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				mcp.trap(prmPath, "root PRM with a header URL")
				as.json(oauthASPath, 200, asMetadataJSON(as.URL(), as.URL()))
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + prmPath + "/mcp"}
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath + "/mcp",
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp", AuthorizationServers: []string{as.URL()}},
					Resource:            mcp.URL() + "/mcp",
					Issuer:              as.URL(),
					Metadata:            asMetadata(as.URL(), as.URL()),
					MetadataURL:         as.URL() + oauthASPath,
				}
			},
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "header URL is used exclusively",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json("/custom/metadata/location.json", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				mcp.trap(prmPath+"/mcp", "well-known PRM with a header URL")
				mcp.trap(prmPath, "well-known PRM with a header URL")
				as.json(oauthASPath, 200, asMetadataJSON(as.URL(), as.URL()))
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + "/custom/metadata/location.json"}
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + "/custom/metadata/location.json",
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp", AuthorizationServers: []string{as.URL()}},
					Resource:            mcp.URL() + "/mcp",
					Issuer:              as.URL(),
					Metadata:            asMetadata(as.URL(), as.URL()),
					MetadataURL:         as.URL() + oauthASPath,
				}
			},
			wantMCP: []string{"/custom/metadata/location.json"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "header URL 404 means no PRM, not well-known probing",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.trap(prmPath+"/mcp", "well-known PRM with a header URL")
				mcp.trap(prmPath, "well-known PRM with a header URL")
				mcp.json(oauthASPath, 200, asMetadataJSON(mcp.URL(), mcp.URL()))
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + "/gone.json"}
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					Resource:    mcp.URL() + "/mcp",
					Issuer:      mcp.URL(),
					Metadata:    asMetadata(mcp.URL(), mcp.URL()),
					MetadataURL: mcp.URL() + oauthASPath,
				}
			},
			wantMCP: []string{"/gone.json", oauthASPath},
		},
		{
			name: "metadata-var1: path-inserted PRM without header, OIDC fallback",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				mcp.trap(prmPath, "root PRM after a path-inserted hit")
				as.json(oidcPath, 200, asMetadataJSON(as.URL(), as.URL(), `"jwks_uri": "https://x/jwks"`, `"subject_types_supported": ["public"]`))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				m := asMetadata(as.URL(), as.URL())
				m.JWKSURI = "https://x/jwks"
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath + "/mcp",
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp", AuthorizationServers: []string{as.URL()}},
					Resource:            mcp.URL() + "/mcp",
					Issuer:              as.URL(),
					Metadata:            m,
					MetadataURL:         as.URL() + oidcPath,
				}
			},
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath, oidcPath},
		},
		{
			name: "metadata-var2: root PRM, path issuer at path-inserted RFC 8414",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath, 200, fmt.Sprintf(`{"resource": %q, "authorization_servers": [%q], "scopes_supported": ["a", "b"]}`, mcp.URL(), as.URL()+"/tenant1"))
				as.trap(oauthASPath, "root AS metadata for a path issuer")
				as.trap(oidcPath, "root OIDC metadata for a path issuer")
				as.json(oauthASPath+"/tenant1", 200, asMetadataJSON(as.URL()+"/tenant1", as.URL()+"/tenant1"))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath,
					ResourceMetadata: &ProtectedResourceMetadata{Resource: mcp.URL(), AuthorizationServers: []string{as.URL() + "/tenant1"},
						ScopesSupported: []string{"a", "b"}},
					Resource:    mcp.URL(),
					Issuer:      as.URL() + "/tenant1",
					Metadata:    asMetadata(as.URL()+"/tenant1", as.URL()+"/tenant1"),
					MetadataURL: as.URL() + oauthASPath + "/tenant1",
				}
			},
			wantMCP: []string{prmPath + "/mcp", prmPath},
			wantAS:  []string{oauthASPath + "/tenant1"},
		},
		{
			name: "path issuer at path-inserted OIDC",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()+"/tenant1/"))
				as.trap(oauthASPath, "root AS metadata for a path issuer")
				as.trap(oidcPath, "root OIDC metadata for a path issuer")
				as.json(oidcPath+"/tenant1", 200, asMetadataJSON(as.URL()+"/tenant1/", as.URL()+"/t"))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath + "/mcp",
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp", AuthorizationServers: []string{as.URL() + "/tenant1/"}},
					Resource:            mcp.URL() + "/mcp",
					Issuer:              as.URL() + "/tenant1/",
					Metadata:            asMetadata(as.URL()+"/tenant1/", as.URL()+"/t"),
					MetadataURL:         as.URL() + oidcPath + "/tenant1",
				}
			},
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath + "/tenant1", oidcPath + "/tenant1"},
		},
		{
			name: "metadata-var3: custom PRM via header, path issuer at appended OIDC",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json("/custom/metadata/location.json", 200, prmJSON(mcp.URL()+"/mcp", as.URL()+"/tenant1"))
				as.trap(oauthASPath, "root AS metadata for a path issuer")
				as.trap(oidcPath, "root OIDC metadata for a path issuer")
				as.json("/tenant1"+oidcPath, 200, asMetadataJSON(as.URL()+"/tenant1", as.URL()+"/tenant1"))
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + "/custom/metadata/location.json"}
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + "/custom/metadata/location.json",
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp", AuthorizationServers: []string{as.URL() + "/tenant1"}},
					Resource:            mcp.URL() + "/mcp",
					Issuer:              as.URL() + "/tenant1",
					Metadata:            asMetadata(as.URL()+"/tenant1", as.URL()+"/tenant1"),
					MetadataURL:         as.URL() + "/tenant1" + oidcPath,
				}
			},
			wantMCP: []string{"/custom/metadata/location.json"},
			wantAS:  []string{oauthASPath + "/tenant1", oidcPath + "/tenant1", "/tenant1" + oidcPath},
		},
		{
			name: "2025-03-26 backcompat: metadata at the MCP origin, endpoints under /oauth",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(oauthASPath, 200, asMetadataJSON(mcp.URL()+"/oauth", mcp.URL()+"/oauth"))
				return mcp.URL() + "/mcp", &BearerChallenge{Error: "invalid_token"}
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					Resource:    mcp.URL() + "/mcp",
					Issuer:      mcp.URL(),
					Metadata:    asMetadata(mcp.URL()+"/oauth", mcp.URL()+"/oauth"),
					MetadataURL: mcp.URL() + oauthASPath,
				}
			},
			wantMCP: []string{prmPath + "/mcp", prmPath, oauthASPath},
		},
		{
			name: "2025-03-26 endpoint fallback: default endpoints at the MCP origin",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				return mcp.URL() + "/v1/mcp/", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					Resource: mcp.URL() + "/v1/mcp/",
					Issuer:   mcp.URL(),
					Metadata: &AuthServerMetadata{
						Issuer:                mcp.URL(),
						AuthorizationEndpoint: mcp.URL() + "/authorize",
						TokenEndpoint:         mcp.URL() + "/token",
						RegistrationEndpoint:  mcp.URL() + "/register",
					},
				}
			},
			wantMCP: []string{prmPath + "/v1/mcp", prmPath, oauthASPath, oidcPath},
		},
		{
			name: "MCP server at the root probes only the root PRM",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath, 200, prmJSON(mcp.URL()+"/", as.URL()))
				as.json(oauthASPath, 200, asMetadataJSON(as.URL(), as.URL()))
				return mcp.URL() + "/", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath,
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL() + "/", AuthorizationServers: []string{as.URL()}},
					Resource:            mcp.URL() + "/",
					Issuer:              as.URL(),
					Metadata:            asMetadata(as.URL(), as.URL()),
					MetadataURL:         as.URL() + oauthASPath,
				}
			},
			wantMCP: []string{prmPath},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "PRM without authorization servers uses the MCP origin",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, fmt.Sprintf(`{"resource": %q}`, mcp.URL()+"/mcp"))
				mcp.json(oidcPath, 200, asMetadataJSON(mcp.URL(), mcp.URL()))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath + "/mcp",
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp"},
					Resource:            mcp.URL() + "/mcp",
					Issuer:              mcp.URL(),
					Metadata:            asMetadata(mcp.URL(), mcp.URL()),
					MetadataURL:         mcp.URL() + oidcPath,
				}
			},
			wantMCP: []string{prmPath + "/mcp", oauthASPath, oidcPath},
		},
		{
			name: "PRM resource is a parent path and is sent verbatim",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/api/mcp", 200, prmJSON(strings.ToUpper(mcp.URL()[:4])+mcp.URL()[4:]+"/api", as.URL()))
				as.json(oauthASPath, 200, asMetadataJSON(as.URL(), as.URL()))
				return mcp.URL() + "/api/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				res := strings.ToUpper(mcp.URL()[:4]) + mcp.URL()[4:] + "/api"
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath + "/api/mcp",
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: res, AuthorizationServers: []string{as.URL()}},
					Resource:            res,
					Issuer:              as.URL(),
					Metadata:            asMetadata(as.URL(), as.URL()),
					MetadataURL:         as.URL() + oauthASPath,
				}
			},
			wantMCP: []string{prmPath + "/api/mcp"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "second authorization server when the first has no metadata",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()+"/first", as.URL()+"/second"))
				as.json(oauthASPath+"/second", 200, asMetadataJSON(as.URL()+"/second", as.URL()+"/second"))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath + "/mcp",
					ResourceMetadata: &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp",
						AuthorizationServers: []string{as.URL() + "/first", as.URL() + "/second"}},
					Resource:    mcp.URL() + "/mcp",
					Issuer:      as.URL() + "/second",
					Metadata:    asMetadata(as.URL()+"/second", as.URL()+"/second"),
					MetadataURL: as.URL() + oauthASPath + "/second",
				}
			},
			wantMCP: []string{prmPath + "/mcp"},
			wantAS: []string{oauthASPath + "/first", oidcPath + "/first", "/first" + oidcPath,
				oauthASPath + "/second"},
		},
		{
			name: "PRM but no AS metadata: default endpoints at the first server's origin",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()+"/tenant1", as.URL()+"/tenant2"))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath + "/mcp",
					ResourceMetadata: &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp",
						AuthorizationServers: []string{as.URL() + "/tenant1", as.URL() + "/tenant2"}},
					Resource: mcp.URL() + "/mcp",
					Issuer:   as.URL() + "/tenant1",
					Metadata: &AuthServerMetadata{
						Issuer:                as.URL() + "/tenant1",
						AuthorizationEndpoint: as.URL() + "/authorize",
						TokenEndpoint:         as.URL() + "/token",
						RegistrationEndpoint:  as.URL() + "/register",
					},
				}
			},
			wantMCP: []string{prmPath + "/mcp"},
			wantAS: []string{oauthASPath + "/tenant1", oidcPath + "/tenant1", "/tenant1" + oidcPath,
				oauthASPath + "/tenant2", oidcPath + "/tenant2", "/tenant2" + oidcPath},
		},
		{
			name: "3xx and unusable well-known answers mean next",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.handle(prmPath+"/mcp", func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "/elsewhere", http.StatusFound)
				})
				mcp.trap("/elsewhere", "redirect followed")
				mcp.handle(prmPath, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html")
					fmt.Fprint(w, "<html>app</html>")
				})
				mcp.json(oauthASPath, 200, `{"issuer": "x", "token_endpoint": "https://x/token"}`) // no authorization_endpoint
				mcp.json(oidcPath, 200, asMetadataJSON(mcp.URL(), mcp.URL()))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					Resource:    mcp.URL() + "/mcp",
					Issuer:      mcp.URL(),
					Metadata:    asMetadata(mcp.URL(), mcp.URL()),
					MetadataURL: mcp.URL() + oidcPath,
				}
			},
			wantMCP: []string{prmPath + "/mcp", prmPath, oauthASPath, oidcPath},
		},
		{
			name: "garbage JSON at a well-known URL means next",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, `{"resource": `)
				mcp.json(prmPath, 200, prmJSON(mcp.URL(), as.URL()))
				as.json(oauthASPath, 200, `[1, 2]`)
				as.json(oidcPath, 200, asMetadataJSON(as.URL(), as.URL()))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath,
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL(), AuthorizationServers: []string{as.URL()}},
					Resource:            mcp.URL(),
					Issuer:              as.URL(),
					Metadata:            asMetadata(as.URL(), as.URL()),
					MetadataURL:         as.URL() + oidcPath,
				}
			},
			wantMCP: []string{prmPath + "/mcp", prmPath},
			wantAS:  []string{oauthASPath, oidcPath},
		},
		{
			name: "code_challenge_methods_supported absent is accepted",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				as.json(oauthASPath, 200, fmt.Sprintf(`{"issuer": %q, "authorization_endpoint": %q, "token_endpoint": %q}`,
					as.URL(), as.URL()+"/a", as.URL()+"/t"))
				return mcp.URL() + "/mcp", nil
			},
			want: func(mcp, as *fakeSite) *Discovery {
				return &Discovery{
					ResourceMetadataURL: mcp.URL() + prmPath + "/mcp",
					ResourceMetadata:    &ProtectedResourceMetadata{Resource: mcp.URL() + "/mcp", AuthorizationServers: []string{as.URL()}},
					Resource:            mcp.URL() + "/mcp",
					Issuer:              as.URL(),
					Metadata:            &AuthServerMetadata{Issuer: as.URL(), AuthorizationEndpoint: as.URL() + "/a", TokenEndpoint: as.URL() + "/t"},
					MetadataURL:         as.URL() + oauthASPath,
				}
			},
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "resource mismatch is refused before any AS request",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON("https://evil.example.com/mcp", as.URL()))
				as.trap(oauthASPath, "AS contacted after a resource mismatch")
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + prmPath + "/mcp"}
			},
			wantErr: func(mcp, as *fakeSite) []string {
				return []string{"https://evil.example.com/mcp", mcp.URL() + "/mcp", mcp.URL() + prmPath + "/mcp"}
			},
			wantMCP: []string{prmPath + "/mcp"},
		},
		{
			name: "resource with a sibling path prefix is refused",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/api123/mcp", 200, prmJSON(mcp.URL()+"/api", as.URL()))
				return mcp.URL() + "/api123/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"does not cover", mcp.URL() + "/api123/mcp"} },
			wantMCP: []string{prmPath + "/api123/mcp"},
		},
		{
			name: "resource on another port is refused",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(as.URL()+"/mcp", as.URL()))
				return mcp.URL() + "/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"does not cover"} },
			wantMCP: []string{prmPath + "/mcp"},
		},
		{
			name: "PKCE without S256 is refused",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				as.json(oauthASPath, 200, asMetadataJSON(as.URL(), as.URL(), `"code_challenge_methods_supported": ["plain"]`))
				return mcp.URL() + "/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"S256", as.URL() + oauthASPath} },
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "response types without code are refused",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				as.json(oauthASPath, 200, asMetadataJSON(as.URL(), as.URL(), `"response_types_supported": ["token"]`))
				return mcp.URL() + "/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"authorization code flow"} },
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "5xx PRM is an error",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 503, `{}`)
				return mcp.URL() + "/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"HTTP 503", mcp.URL() + prmPath + "/mcp"} },
			wantMCP: []string{prmPath + "/mcp"},
		},
		{
			name: "5xx at the header URL is an error",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json("/prm", 500, `{}`)
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + "/prm"}
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"HTTP 500", mcp.URL() + "/prm"} },
			wantMCP: []string{"/prm"},
		},
		{
			name: "5xx AS metadata is an error",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				as.json(oauthASPath, 502, `bad gateway`)
				return mcp.URL() + "/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"HTTP 502", as.URL() + oauthASPath} },
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "garbage JSON at the header URL is an error",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json("/prm", 200, `{"resource": "x",`)
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + "/prm"}
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"invalid JSON", mcp.URL() + "/prm"} },
			wantMCP: []string{"/prm"},
		},
		{
			name: "header PRM without resource is an error",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json("/prm", 200, `{"authorization_servers": ["https://as.example.com"]}`)
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + "/prm"}
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"no resource", mcp.URL() + "/prm"} },
			wantMCP: []string{"/prm"},
		},
		{
			name: "oversized PRM is an error",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				big := fmt.Sprintf(`{"resource": %q, "resource_name": %q}`, mcp.URL()+"/mcp", strings.Repeat("x", maxJSONBody))
				mcp.json(prmPath+"/mcp", 200, big)
				return mcp.URL() + "/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"larger than 1 MiB", mcp.URL() + prmPath + "/mcp"} },
			wantMCP: []string{prmPath + "/mcp"},
		},
		{
			name: "plain-http authorization server is refused",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", "http://as.example.com"))
				return mcp.URL() + "/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"http://as.example.com", "--allow-insecure-http"} },
			wantMCP: []string{prmPath + "/mcp"},
		},
		{
			name: "plain-http endpoint in metadata is refused",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				as.json(oauthASPath, 200, asMetadataJSON(as.URL(), as.URL(), `"token_endpoint": "http://evil.example.com/token"`))
				return mcp.URL() + "/mcp", nil
			},
			wantErr: func(mcp, as *fakeSite) []string {
				return []string{"http://evil.example.com/token", "token_endpoint", "--allow-insecure-http"}
			},
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "javascript: authorization endpoint is refused even when insecure http is allowed",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
				as.json(oauthASPath, 200, asMetadataJSON(as.URL(), as.URL(), `"authorization_endpoint": "javascript:alert(1)"`))
				return mcp.URL() + "/mcp", nil
			},
			d:       Discoverer{AllowInsecureHTTP: true},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"javascript:alert(1)", "authorization_endpoint"} },
			wantMCP: []string{prmPath + "/mcp"},
			wantAS:  []string{oauthASPath},
		},
		{
			name: "file: resource_metadata is refused",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				return mcp.URL() + "/mcp", &BearerChallenge{ResourceMetadata: "file:///etc/passwd"}
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"file:///etc/passwd", "resource_metadata"} },
		},
		{
			name: "javascript: server URL is refused",
			setup: func(t *testing.T, mcp, as *fakeSite) (string, *BearerChallenge) {
				return "javascript:alert(1)", nil
			},
			wantErr: func(mcp, as *fakeSite) []string { return []string{"javascript:alert(1)"} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mcp, as := newFakeSite(t), newFakeSite(t)
			serverURL, ch := tt.setup(t, mcp, as)
			d := tt.d
			d.Logger = testLogger(t)
			got, err := d.Discover(t.Context(), serverURL, ch)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Discover = %+v, want an error", got)
				}
				for _, s := range tt.wantErr(mcp, as) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("Discover error = %q, want it to contain %q", err, s)
					}
				}
				if !strings.HasPrefix(err.Error(), "oauth: ") {
					t.Errorf("Discover error = %q, want an oauth: prefix", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Discover: %v", err)
				}
				if diff := cmp.Diff(tt.want(mcp, as), got); diff != "" {
					t.Errorf("Discover mismatch (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.wantMCP, mcp.requests()); diff != "" {
				t.Errorf("MCP server requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantAS, as.requests()); diff != "" {
				t.Errorf("authorization server requests (-want +got):\n%s", diff)
			}
		})
	}
}

// testLogger sends log records to t.Log, so a failing test shows what
// discovery did.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestDiscoverHeaders(t *testing.T) {
	for _, tt := range []struct {
		version, want string
	}{{"", "2025-11-25"}, {"2025-06-18", "2025-06-18"}} {
		mcp, as := newFakeSite(t), newFakeSite(t)
		mcp.json(prmPath+"/mcp", 200, prmJSON(mcp.URL()+"/mcp", as.URL()))
		as.json(oidcPath, 200, asMetadataJSON(as.URL(), as.URL()))
		d := &Discoverer{ProtocolVersion: tt.version, Logger: testLogger(t)}
		if _, err := d.Discover(t.Context(), mcp.URL()+"/mcp", nil); err != nil {
			t.Fatal(err)
		}
		all := append(mcp.headers(), as.headers()...)
		if len(all) != 3 {
			t.Errorf("%d requests, want 3", len(all))
		}
		for i, h := range all {
			if got := h.Get("MCP-Protocol-Version"); got != tt.want {
				t.Errorf("request %d: MCP-Protocol-Version = %q, want %q", i, got, tt.want)
			}
			if got := h.Get("Accept"); got != "application/json" {
				t.Errorf("request %d: Accept = %q, want application/json", i, got)
			}
		}
	}
}

// hostRouter sends every connection to addr, whatever host the URL names,
// so tests can use non-loopback host names.
func hostRouter(addr string) *http.Client {
	var dialer net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}}
}

func TestDiscoverInsecureHTTP(t *testing.T) {
	site := newFakeSite(t)
	site.json(prmPath+"/mcp", 200, prmJSON("http://mcp.example.com/mcp", "http://as.example.com"))
	site.json(oauthASPath, 200, asMetadataJSON("http://as.example.com", "http://as.example.com"))
	client := hostRouter(strings.TrimPrefix(site.URL(), "http://"))

	d := &Discoverer{HTTPClient: client, Logger: testLogger(t)}
	if _, err := d.Discover(t.Context(), "http://mcp.example.com/mcp", nil); err == nil || !strings.Contains(err.Error(), "--allow-insecure-http") {
		t.Errorf("Discover without AllowInsecureHTTP = %v, want a refusal", err)
	}
	if got := site.requests(); len(got) != 0 {
		t.Errorf("requests without AllowInsecureHTTP: %q, want none", got)
	}

	d.AllowInsecureHTTP = true
	got, err := d.Discover(t.Context(), "http://mcp.example.com/mcp", nil)
	if err != nil {
		t.Fatalf("Discover with AllowInsecureHTTP: %v", err)
	}
	if got.Issuer != "http://as.example.com" || got.Metadata.TokenEndpoint != "http://as.example.com/token" {
		t.Errorf("Discover = issuer %q, token endpoint %q", got.Issuer, got.Metadata.TokenEndpoint)
	}
}

func TestDiscoverDoesNotFollowRedirects(t *testing.T) {
	mcp := newFakeSite(t)
	mcp.handle("/prm", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/real-prm", http.StatusTemporaryRedirect)
	})
	mcp.trap("/real-prm", "redirect followed")
	mcp.json(oauthASPath, 200, asMetadataJSON(mcp.URL(), mcp.URL()))
	// A caller's client that would follow redirects is overridden.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
	d := &Discoverer{HTTPClient: client, Logger: testLogger(t)}
	got, err := d.Discover(t.Context(), mcp.URL()+"/mcp", &BearerChallenge{ResourceMetadata: mcp.URL() + "/prm"})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceMetadata != nil {
		t.Errorf("ResourceMetadata = %+v, want none", got.ResourceMetadata)
	}
	if client.CheckRedirect == nil {
		t.Error("the caller's client was modified")
	}
}

func TestDiscoverNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	d := &Discoverer{Logger: testLogger(t)}
	_, err := d.Discover(t.Context(), base+"/mcp", nil)
	if err == nil || !strings.Contains(err.Error(), base+prmPath+"/mcp") {
		t.Errorf("Discover against a closed port = %v, want an error naming the PRM URL", err)
	}
}

func TestDiscoverLogsRequests(t *testing.T) {
	mcp := newFakeSite(t)
	var buf bytes.Buffer
	d := &Discoverer{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if _, err := d.Discover(t.Context(), mcp.URL()+"/mcp", nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"url=" + mcp.URL() + prmPath + "/mcp", "status=404", "default endpoints"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestMetadataURLs(t *testing.T) {
	tests := []struct {
		issuer string
		want   []string
	}{
		{"https://as.example.com", []string{
			"https://as.example.com/.well-known/oauth-authorization-server",
			"https://as.example.com/.well-known/openid-configuration",
		}},
		{"https://as.example.com/", []string{
			"https://as.example.com/.well-known/oauth-authorization-server",
			"https://as.example.com/.well-known/openid-configuration",
		}},
		{"https://AS.example.com:443/tenant1/?x=1", []string{
			"https://as.example.com/.well-known/oauth-authorization-server/tenant1",
			"https://as.example.com/.well-known/openid-configuration/tenant1",
			"https://as.example.com/tenant1/.well-known/openid-configuration",
		}},
		{"http://127.0.0.1:8080/a/b", []string{
			"http://127.0.0.1:8080/.well-known/oauth-authorization-server/a/b",
			"http://127.0.0.1:8080/.well-known/openid-configuration/a/b",
			"http://127.0.0.1:8080/a/b/.well-known/openid-configuration",
		}},
	}
	for _, tt := range tests {
		got, err := MetadataURLs(tt.issuer)
		if err != nil {
			t.Errorf("MetadataURLs(%q): %v", tt.issuer, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("MetadataURLs(%q) mismatch (-want +got):\n%s", tt.issuer, diff)
		}
	}
	if _, err := MetadataURLs("as.example.com"); err == nil {
		t.Error("MetadataURLs of a relative URL succeeded")
	}
}

func TestCanonicalResource(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://mcp.example.com/mcp", "https://mcp.example.com/mcp"},
		{"HTTPS://MCP.Example.COM:443/Server/MCP?x=1#frag", "https://mcp.example.com/Server/MCP"},
		{"https://mcp.example.com", "https://mcp.example.com"},
		{"https://mcp.example.com/", "https://mcp.example.com/"},
		{"https://mcp.example.com:8443", "https://mcp.example.com:8443"},
		{"http://localhost:80/mcp", "http://localhost/mcp"},
		{"http://[::1]:3000/mcp", "http://[::1]:3000/mcp"},
		{"https://user:pw@mcp.example.com/a%20b", "https://mcp.example.com/a%20b"},
		{"mcp.example.com", "mcp.example.com"},
	}
	for _, tt := range tests {
		if got := CanonicalResource(tt.in); got != tt.want {
			t.Errorf("CanonicalResource(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestResourceMatches(t *testing.T) {
	tests := []struct {
		upstream, resource string
		want               bool
	}{
		{"https://h.example/mcp", "https://h.example/mcp", true},
		{"https://h.example/mcp", "https://H.EXAMPLE/mcp", true},
		{"https://h.example/mcp", "HTTPS://h.example:443/mcp", true},
		{"https://h.example/api/mcp", "https://h.example/api", true},
		{"https://h.example/api/mcp", "https://h.example/api/", true},
		{"https://h.example/api/mcp", "https://h.example", true},
		{"https://h.example/api/mcp", "https://h.example/", true},
		{"https://h.example/mcp/", "https://h.example/mcp", true},
		{"https://h.example/api123/mcp", "https://h.example/api", false},
		{"https://h.example/api", "https://h.example/api/mcp", false},
		{"https://h.example/mcp", "https://evil.example.com/mcp", false},
		{"https://h.example/mcp", "http://h.example/mcp", false},
		{"https://h.example/mcp", "https://h.example:8443/mcp", false},
		{"https://h.example/mcp", "/mcp", false},
		{"https://h.example/mcp", "%zz", false},
	}
	for _, tt := range tests {
		u := mustParseURL(t, tt.upstream)
		if got := resourceMatches(u, tt.resource); got != tt.want {
			t.Errorf("resourceMatches(%q, %q) = %v, want %v", tt.upstream, tt.resource, got, tt.want)
		}
	}
}

func mustParseURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDiscoverErrorsHideTheQuery(t *testing.T) {
	mcp := newFakeSite(t)
	mcp.json(prmPath+"/mcp", 200, prmJSON("https://evil.example.com/mcp", "https://as.example.com"))
	d := &Discoverer{Logger: testLogger(t)}
	_, err := d.Discover(t.Context(), mcp.URL()+"/mcp?api_key=SECRET", nil)
	if err == nil || !strings.Contains(err.Error(), mcp.URL()+"/mcp") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("Discover error = %v, want one naming the MCP URL without its query", err)
	}
	if diff := cmp.Diff([]string{prmPath + "/mcp"}, mcp.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
