package oauthtest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// MetadataMode says where an AuthServer serves its metadata document.
// Modes may be combined with |, except MetadataNone. The zero value means
// MetadataOAuth.
type MetadataMode uint8

const (
	// MetadataOAuth serves RFC 8414 metadata at
	// /.well-known/oauth-authorization-server followed by the issuer path.
	MetadataOAuth MetadataMode = 1 << iota
	// MetadataOIDCInserted serves OpenID Provider metadata at
	// /.well-known/openid-configuration followed by the issuer path.
	MetadataOIDCInserted
	// MetadataOIDCAppended serves OpenID Provider metadata at the issuer
	// path followed by /.well-known/openid-configuration. Without an issuer
	// path it is the same URL as MetadataOIDCInserted.
	MetadataOIDCAppended
	// MetadataNone serves no metadata: the endpoints are the 2025-03-26
	// defaults /authorize, /token and /register at the origin.
	MetadataNone
)

// AuthServerOptions configures an AuthServer. The zero value is an AS
// whose issuer is its origin, with RFC 8414 metadata, S256 PKCE, dynamic
// client registration of public clients ("none"), no refresh tokens and
// one-hour access tokens.
type AuthServerOptions struct {
	// IssuerPath is appended to the origin to form the issuer, e.g.
	// "/tenant1". It must start with "/" and not end with one. "" makes
	// the origin the issuer.
	IssuerPath string
	// Metadata says where the metadata is served; see MetadataMode.
	Metadata MetadataMode
	// EndpointPrefix is put between the issuer and the endpoint names:
	// "/oauth" serves <issuer>/oauth/authorize and so on.
	EndpointPrefix string
	// EditMetadata, if set, may change every metadata document before it
	// is sent, e.g. to announce a wrong issuer.
	EditMetadata func(doc map[string]any)

	// CodeChallengeMethods is code_challenge_methods_supported. Nil means
	// ["S256"]. An empty non-nil slice leaves the field out of the
	// metadata and makes PKCE optional (an AS without PKCE support).
	// Supported values are "S256" and "plain".
	CodeChallengeMethods []string
	// TokenEndpointAuthMethods is token_endpoint_auth_methods_supported.
	// Nil means ["none"]. The first is the method dynamic registration
	// assigns, whatever the client asked for. Supported values are
	// "none", "client_secret_post" and "client_secret_basic".
	TokenEndpointAuthMethods []string
	// NoDCR removes the registration endpoint.
	NoDCR bool
	// CIMD advertises client_id_metadata_document_supported and accepts
	// any https URL with a path as a client_id (a public client that may
	// use any loopback redirect URI). The document is never fetched.
	CIMD bool
	// PreRegistered maps client IDs to secrets of clients that exist from
	// the start. "" is a public client ("none"); a client with a secret
	// authenticates with any secret method in TokenEndpointAuthMethods, or
	// either one when none is listed. Any loopback redirect URI is
	// accepted for them.
	PreRegistered map[string]string
	// ScopesSupported is scopes_supported; nil leaves it out.
	ScopesSupported []string
	// StrictScopes rejects authorization requests for scopes outside
	// ScopesSupported with error=invalid_scope. Otherwise any scope is
	// granted as requested.
	StrictScopes bool

	// IssueRefreshTokens adds a refresh_token to token responses.
	IssueRefreshTokens bool
	// RotateRefreshTokens issues a new refresh token on each refresh and
	// invalidates the one used. Presenting a rotated-out refresh token
	// again revokes the whole grant (all its tokens), as real servers do,
	// and is counted by RefreshTokenReuses. Without rotation a refresh
	// response has no refresh_token and the old one stays valid.
	RotateRefreshTokens bool
	// AccessTokenTTL is the lifetime of access tokens (expires_in). Zero
	// means one hour; a negative value issues tokens that never expire
	// and leaves expires_in out.
	AccessTokenTTL time.Duration
	// EditTokenResponse, if set, may change every successful token
	// response before it is sent (e.g. delete "scope" or set "token_type"
	// to "bearer"). The tokens stay valid whatever it does.
	EditTokenResponse func(resp map[string]any)

	// IssParameter advertises authorization_response_iss_parameter_supported
	// and adds iss=<issuer> to every authorization redirect (RFC 9207).
	IssParameter bool
	// EditRedirect, if set, may change the query parameters of every
	// authorization redirect (code, state, iss, error, …) before it is
	// sent, to test a client's callback checks.
	EditRedirect func(q url.Values)
	// RequireResource rejects authorization and token requests without
	// an RFC 8707 resource parameter with error=invalid_target.
	RequireResource bool

	// Now is the clock for token expiry; nil means time.Now.
	Now func() time.Time
}

// AuthServer is a fake OAuth 2.1 authorization server listening on
// 127.0.0.1. It auto-approves every valid authorization request, keeps
// every request it receives, and can be told to fail, deny or forget.
// All methods are safe for concurrent use.
type AuthServer struct {
	URL    string // origin, e.g. http://127.0.0.1:PORT
	Issuer string // URL + IssuerPath

	AuthorizationEndpoint string
	TokenEndpoint         string
	RegistrationEndpoint  string // "" with NoDCR

	t      testing.TB
	opts   AuthServerOptions
	srv    *httptest.Server
	close  sync.Once
	routes map[string]string // path → endpoint name
	oidc   map[string]bool   // metadata paths that serve the OpenID flavour
	rec    recorder
	extra  atomic.Pointer[http.Handler] // a ResourceServer sharing the origin

	mu      sync.Mutex
	clients map[string]*client
	codes   map[string]*authCode
	access  map[string]*accessToken
	refresh map[string]*refreshToken
	fail    map[string][]injected
	deny    []string
	reuses  int
}

type client struct {
	id, secret    string
	method        string   // token endpoint auth method; "" for pre-registered clients with a secret
	redirectURIs  []string // exact URIs; nil accepts any loopback URI
	preRegistered bool
}

// grant ties together what one authorization produced, so that
// revocation reaches every token derived from it.
type grant struct {
	clientID string
	revoked  bool
}

type authCode struct {
	grant       *grant
	redirectURI string
	challenge   string
	method      string
	scopes      []string
	resource    string
	expiry      time.Time
	used        bool
}

type accessToken struct {
	grant    *grant
	scopes   []string
	resource string
	expiry   time.Time // zero: never
	expired  bool
}

type refreshToken struct {
	grant    *grant
	scopes   []string
	resource string
	rotated  bool
	revoked  bool
}

type injected struct {
	status int
	body   string
}

// NewAuthServer starts an AuthServer configured by opts; it is closed when
// the test ends. Bad options fail the test.
func NewAuthServer(t testing.TB, opts AuthServerOptions) *AuthServer {
	t.Helper()
	if err := opts.validate(); err != nil {
		t.Fatal(err)
	}
	s := &AuthServer{
		t:       t,
		opts:    opts,
		routes:  map[string]string{},
		oidc:    map[string]bool{},
		clients: map[string]*client{},
		codes:   map[string]*authCode{},
		access:  map[string]*accessToken{},
		refresh: map[string]*refreshToken{},
		fail:    map[string][]injected{},
	}
	for id, secret := range opts.PreRegistered {
		s.clients[id] = &client{id: id, secret: secret, preRegistered: true}
		if secret == "" {
			s.clients[id].method = "none"
		}
	}
	base := opts.IssuerPath + opts.EndpointPrefix
	mode := opts.Metadata
	if mode == 0 {
		mode = MetadataOAuth
	}
	if mode&MetadataOAuth != 0 {
		s.routes["/.well-known/oauth-authorization-server"+opts.IssuerPath] = EndpointMetadata
	}
	if mode&MetadataOIDCInserted != 0 {
		s.routes["/.well-known/openid-configuration"+opts.IssuerPath] = EndpointMetadata
		s.oidc["/.well-known/openid-configuration"+opts.IssuerPath] = true
	}
	if mode&MetadataOIDCAppended != 0 {
		s.routes[opts.IssuerPath+"/.well-known/openid-configuration"] = EndpointMetadata
		s.oidc[opts.IssuerPath+"/.well-known/openid-configuration"] = true
	}
	if len(s.oidc) > 0 {
		s.routes[base+"/jwks"] = EndpointJWKS
	}
	s.routes[base+"/authorize"] = EndpointAuthorize
	s.routes[base+"/token"] = EndpointToken
	if !opts.NoDCR {
		s.routes[base+"/register"] = EndpointRegister
	}

	// The fields are set before serving starts: handlers read them, and
	// requests may come from another process (no happens-before edge the
	// race detector could see otherwise).
	s.srv = httptest.NewUnstartedServer(s)
	s.URL = "http://" + s.srv.Listener.Addr().String()
	s.Issuer = s.URL + opts.IssuerPath
	s.AuthorizationEndpoint = s.URL + base + "/authorize"
	s.TokenEndpoint = s.URL + base + "/token"
	if !opts.NoDCR {
		s.RegistrationEndpoint = s.URL + base + "/register"
	}
	s.srv.Start()
	t.Cleanup(s.Close)
	return s
}

func (o *AuthServerOptions) validate() error {
	for name, p := range map[string]string{"IssuerPath": o.IssuerPath, "EndpointPrefix": o.EndpointPrefix} {
		if p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "?#")) {
			return fmt.Errorf("oauthtest: AuthServerOptions.%s %q must start with / and not end with one", name, p)
		}
	}
	if o.Metadata&MetadataNone != 0 {
		if o.Metadata != MetadataNone {
			return fmt.Errorf("oauthtest: AuthServerOptions.Metadata: MetadataNone cannot be combined with other modes")
		}
		if o.IssuerPath != "" || o.EndpointPrefix != "" {
			return fmt.Errorf("oauthtest: AuthServerOptions: MetadataNone serves the endpoints at the origin; IssuerPath and EndpointPrefix must be empty")
		}
	}
	for _, m := range o.CodeChallengeMethods {
		if m != "S256" && m != "plain" {
			return fmt.Errorf("oauthtest: AuthServerOptions.CodeChallengeMethods: unsupported method %q", m)
		}
	}
	for _, m := range o.TokenEndpointAuthMethods {
		if m != "none" && m != "client_secret_post" && m != "client_secret_basic" {
			return fmt.Errorf("oauthtest: AuthServerOptions.TokenEndpointAuthMethods: unsupported method %q", m)
		}
	}
	if o.TokenEndpointAuthMethods != nil && len(o.TokenEndpointAuthMethods) == 0 {
		return fmt.Errorf("oauthtest: AuthServerOptions.TokenEndpointAuthMethods is empty; use nil for the default")
	}
	return nil
}

// Close shuts the server down, cutting open connections. It is called
// when the test ends; calling it earlier simulates an unreachable AS.
func (s *AuthServer) Close() {
	s.close.Do(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// Client returns an HTTP client for the server (httptest's).
func (s *AuthServer) Client() *http.Client { return s.srv.Client() }

func (s *AuthServer) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

func (s *AuthServer) codeChallengeMethods() []string {
	if s.opts.CodeChallengeMethods == nil {
		return []string{"S256"}
	}
	return s.opts.CodeChallengeMethods
}

func (s *AuthServer) authMethods() []string {
	if s.opts.TokenEndpointAuthMethods == nil {
		return []string{"none"}
	}
	return s.opts.TokenEndpointAuthMethods
}

func (s *AuthServer) ttl() time.Duration {
	if s.opts.AccessTokenTTL == 0 {
		return time.Hour
	}
	return s.opts.AccessTokenTTL
}

// ServeHTTP routes a request to an endpoint, or to a ResourceServer
// sharing the origin.
func (s *AuthServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	endpoint, ok := s.routes[r.URL.Path]
	if !ok {
		if h := s.extra.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		endpoint = EndpointOther
	}
	body, err := readBody(r)
	tw := s.rec.start(w, r, endpoint, body, s.now())
	defer func() { s.t.Logf("oauthtest: AS %s %s → %d %s", r.Method, r.URL.Path, tw.status, tw.errCode) }()
	if err != nil {
		writeError(tw, http.StatusRequestEntityTooLarge, "invalid_request", err.Error())
		return
	}
	if f, ok := s.takeFailure(endpoint); ok {
		tw.Header().Set("Content-Type", "application/json")
		tw.WriteHeader(f.status)
		fmt.Fprint(tw, f.body)
		return
	}
	switch endpoint {
	case EndpointMetadata:
		s.serveMetadata(tw, r)
	case EndpointJWKS:
		writeJSON(tw, http.StatusOK, map[string]any{"keys": []any{}})
	case EndpointAuthorize:
		s.serveAuthorize(tw, r)
	case EndpointToken:
		s.serveToken(tw, r, body)
	case EndpointRegister:
		s.serveRegister(tw, r, body)
	default:
		http.NotFound(tw, r)
	}
}

// Requests returns a copy of every request received, in arrival order.
func (s *AuthServer) Requests() []Request { return s.rec.all() }

// Count returns how many requests reached endpoint (an Endpoint constant).
func (s *AuthServer) Count(endpoint string) int { return s.rec.count(endpoint) }

// CountGrant returns how many token requests of grantType (e.g.
// "refresh_token") the server has received.
func (s *AuthServer) CountGrant(grantType string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Endpoint == EndpointToken && r.Form.Get("grant_type") == grantType {
			n++
		}
	}
	return n
}

// FailNext makes the next request to endpoint ("metadata", "authorize",
// "token", "register", "jwks") answer status with body as
// application/json instead of doing its work. Calls queue up: two calls
// fail the next two requests.
func (s *AuthServer) FailNext(endpoint string, status int, body string) {
	switch endpoint {
	case EndpointMetadata, EndpointAuthorize, EndpointToken, EndpointRegister, EndpointJWKS:
	default:
		s.t.Fatalf("oauthtest: FailNext: unknown AS endpoint %q", endpoint)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[endpoint] = append(s.fail[endpoint], injected{status, body})
}

func (s *AuthServer) takeFailure(endpoint string) (injected, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.fail[endpoint]
	if len(q) == 0 {
		return injected{}, false
	}
	s.fail[endpoint] = q[1:]
	return q[0], true
}

// DenyNext makes the user deny the next valid authorization request: the
// redirect carries error=access_denied and error_description=description
// instead of a code. Calls queue up.
func (s *AuthServer) DenyNext(description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = append(s.deny, description)
}

// RevokeRefreshTokens makes every refresh token issued so far invalid
// (invalid_grant). Access tokens stay valid.
func (s *AuthServer) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rt := range s.refresh {
		rt.revoked = true
	}
}

// ExpireAccessTokens makes every access token issued so far expired.
func (s *AuthServer) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, at := range s.access {
		at.expired = true
	}
}

// ForgetClients deletes every client registered dynamically or through
// CIMD, and revokes their tokens: the token endpoint then answers
// invalid_client and the authorization endpoint refuses the client_id.
// Pre-registered clients are kept.
func (s *AuthServer) ForgetClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	forgotten := map[string]bool{}
	for id, c := range s.clients {
		if !c.preRegistered {
			delete(s.clients, id)
			forgotten[id] = true
		}
	}
	for _, at := range s.access {
		if forgotten[at.grant.clientID] {
			at.grant.revoked = true
		}
	}
	for _, rt := range s.refresh {
		if forgotten[rt.grant.clientID] {
			rt.grant.revoked = true
		}
	}
}

// RefreshTokenReuses returns how many times a rotated-out refresh token
// was presented (each of which revoked its grant). A correct client
// never causes one.
func (s *AuthServer) RefreshTokenReuses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reuses
}

// TokenInfo describes a valid access token.
type TokenInfo struct {
	ClientID string
	Scopes   []string
	Resource string    // the RFC 8707 resource it was issued for; "" if none
	Expiry   time.Time // zero when it never expires
}

// Introspect reports whether accessToken was issued by this server and is
// neither expired nor revoked, and describes it.
func (s *AuthServer) Introspect(accessToken string) (TokenInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[accessToken]
	if !ok || at.expired || at.grant.revoked || (!at.expiry.IsZero() && !s.now().Before(at.expiry)) {
		return TokenInfo{}, false
	}
	return TokenInfo{
		ClientID: at.grant.clientID,
		Scopes:   slices.Clone(at.scopes),
		Resource: at.resource,
		Expiry:   at.expiry,
	}, true
}

// Valid reports whether accessToken is valid (see Introspect) and returns
// its scopes.
func (s *AuthServer) Valid(accessToken string) (scopes []string, ok bool) {
	info, ok := s.Introspect(accessToken)
	return info.Scopes, ok
}

// IssueTokens issues tokens to clientID as if it had just completed an
// authorization for scope (space-separated) and resource, without any
// request, so that a test can start with stored credentials. The refresh
// token is "" unless IssueRefreshTokens is set. An unknown client fails
// the test; call it from the test goroutine.
func (s *AuthServer) IssueTokens(clientID, scope, resource string) (accessToken, refreshToken string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[clientID] == nil {
		s.t.Fatalf("oauthtest: IssueTokens: unknown client %q", clientID)
	}
	resp := s.issueLocked(&grant{clientID: clientID}, strings.Fields(scope), resource, true)
	refreshToken, _ = resp["refresh_token"].(string)
	return resp["access_token"].(string), refreshToken
}

// issueLocked creates an access token (and a refresh token when withRefresh
// and enabled) and returns the token response.
func (s *AuthServer) issueLocked(g *grant, scopes []string, resource string, withRefresh bool) map[string]any {
	at := "at-" + rand.Text()
	tok := &accessToken{grant: g, scopes: scopes, resource: resource}
	resp := map[string]any{"access_token": at, "token_type": "Bearer"}
	if ttl := s.ttl(); ttl > 0 {
		tok.expiry = s.now().Add(ttl)
		resp["expires_in"] = int64(math.Ceil(ttl.Seconds()))
	}
	s.access[at] = tok
	if len(scopes) > 0 {
		resp["scope"] = strings.Join(scopes, " ")
	}
	if withRefresh && s.opts.IssueRefreshTokens {
		rt := "rt-" + rand.Text()
		s.refresh[rt] = &refreshToken{grant: g, scopes: scopes, resource: resource}
		resp["refresh_token"] = rt
	}
	return resp
}

// writeJSON writes v with the headers RFC 6749 asks of token responses.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings, numbers and slices are written
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

// writeError writes an RFC 6749 §5.2 error and records its code.
func writeError(w http.ResponseWriter, status int, code, description string) {
	setError(w, code)
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func setError(w http.ResponseWriter, code string) {
	if tw, ok := w.(*trackingWriter); ok {
		tw.setError(code)
	}
}
