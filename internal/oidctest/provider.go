package oidctest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Options configures a Provider. The zero value gives a provider whose
// public client may redirect to http://localhost:<any port>/callback or
// http://127.0.0.1:<any port>/callback, with 5-minute access tokens.
type Options struct {
	// RedirectURIs are registered for both clients; nil means
	// http://localhost/callback and http://127.0.0.1/callback. zitadel
	// matches them exactly, except that for the public (native) client a
	// loopback URI matches with any port (RFC 8252 §7.3). The confidential
	// client therefore needs the exact URI, port included.
	RedirectURIs []string
	// Scopes are allowed for both clients besides the OpenID Connect ones
	// (openid, profile, email, phone, address, offline_access); zitadel
	// silently drops any other requested scope.
	Scopes []string
	// AccessTokenLifetime is the lifetime of access tokens; 0 means 5
	// minutes. zitadel announces it as whole seconds in expires_in, so a
	// lifetime under 2 s may be announced as none.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime is the lifetime of refresh tokens, renewed by
	// each rotation; 0 means 5 hours.
	RefreshTokenLifetime time.Duration
}

// Provider is a zitadel OpenID provider (github.com/zitadel/oidc/v3/pkg/op)
// on 127.0.0.1, with two clients and a test user who is logged in at once:
// following the authorization link redirects to the client with a code and
// no page in between. All the protocol work (authorization request
// validation, redirect URI rules, PKCE verification, client
// authentication, token responses, refresh, introspection) is zitadel's.
// The storage behind it (see op.Storage) requires PKCE S256 of public
// clients, redeems a code once, and rotates refresh tokens: a refresh
// token is replaced by each use and the access token issued with it dies.
//
// Refresh tokens are issued only when the scope includes offline_access,
// and zitadel refuses an authorization request without any scope.
// zitadel ignores the RFC 8707 resource parameter; the provider records
// those of the authorization request as audiences of the access tokens,
// which introspection reports.
//
// It is closed when the test ends. Its methods are safe for concurrent use.
type Provider struct {
	// Issuer is the issuer URL, http://127.0.0.1:<port>; the metadata is at
	// Issuer + "/.well-known/openid-configuration".
	Issuer                string
	AuthorizationEndpoint string
	TokenEndpoint         string
	IntrospectionEndpoint string

	// PublicClientID is a native client: token_endpoint_auth_method none,
	// PKCE S256 required, grant types authorization_code and
	// refresh_token.
	PublicClientID string
	// ConfidentialClientID and ConfidentialClientSecret are a web client
	// using client_secret_basic (or client_secret_post), with the same
	// grant types. The secret holds characters that must be form-encoded
	// in Basic credentials (RFC 6749 §2.3.1).
	ConfidentialClientID     string
	ConfidentialClientSecret string
	// ResourceClientID and ResourceClientSecret authenticate resource
	// servers at the introspection endpoint.
	ResourceClientID     string
	ResourceClientSecret string

	// Subject is the test user's subject.
	Subject string

	// OP is the zitadel provider itself.
	OP *op.Provider

	t       testing.TB
	srv     *httptest.Server
	storage *storage
	rec     recorder
}

// NewProvider starts a Provider; it is closed when the test ends.
func NewProvider(t testing.TB, opts Options) *Provider {
	t.Helper()
	p, err := newProvider(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newProvider(t testing.TB, opts Options) (*Provider, error) {
	redirects := opts.RedirectURIs
	if redirects == nil {
		redirects = []string{"http://localhost/callback", "http://127.0.0.1/callback"}
	}
	atLife, rtLife := opts.AccessTokenLifetime, opts.RefreshTokenLifetime
	if atLife <= 0 {
		atLife = 5 * time.Minute
	}
	if rtLife <= 0 {
		rtLife = 5 * time.Hour
	}
	grants := []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	public := &client{
		id: "public-" + randomString(6), appType: op.ApplicationTypeNative, authMethod: oidc.AuthMethodNone,
		redirectURIs: slices.Clone(redirects), grantTypes: grants, scopes: slices.Clone(opts.Scopes),
	}
	confidential := &client{
		id: "confidential-" + randomString(6), secret: randomString(12) + "/+=:&%", appType: op.ApplicationTypeWeb,
		authMethod: oidc.AuthMethodBasic, redirectURIs: slices.Clone(redirects), grantTypes: grants, scopes: slices.Clone(opts.Scopes),
	}
	resource := &client{
		id: "resource-" + randomString(6), secret: randomString(16), appType: op.ApplicationTypeWeb,
		authMethod: oidc.AuthMethodBasic,
	}
	st, err := newStorage([]*client{public, confidential, resource}, atLife, rtLife)
	if err != nil {
		return nil, err
	}

	p := &Provider{
		PublicClientID:           public.id,
		ConfidentialClientID:     confidential.id,
		ConfidentialClientSecret: confidential.secret,
		ResourceClientID:         resource.id,
		ResourceClientSecret:     resource.secret,
		Subject:                  st.user.subject,
		t:                        t,
		storage:                  st,
	}
	p.srv = httptest.NewUnstartedServer(p)
	p.Issuer = "http://" + p.srv.Listener.Addr().String()

	config := &op.Config{
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedScopes:       append(slices.Clone(op.DefaultSupportedScopes), opts.Scopes...),
	}
	if _, err := rand.Read(config.CryptoKey[:]); err != nil {
		return nil, fmt.Errorf("oidctest: crypto key: %w", err)
	}
	p.OP, err = op.NewProvider(config, st, op.StaticIssuer(p.Issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, fmt.Errorf("oidctest: zitadel provider: %w", err)
	}
	p.AuthorizationEndpoint = p.OP.AuthorizationEndpoint().Absolute(p.Issuer)
	p.TokenEndpoint = p.OP.TokenEndpoint().Absolute(p.Issuer)
	p.IntrospectionEndpoint = p.OP.IntrospectionEndpoint().Absolute(p.Issuer)

	p.srv.Start()
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p, nil
}

// endpoint names the provider endpoint at path.
func (p *Provider) endpoint(path string) string {
	e := p.OP.Endpoints()
	switch path {
	case oidc.DiscoveryEndpoint:
		return EndpointDiscovery
	case e.Authorization.Relative():
		return EndpointAuthorize
	case e.Authorization.Relative() + "/callback":
		return EndpointCallback
	case loginPath:
		return EndpointLogin
	case e.Token.Relative():
		return EndpointToken
	case e.Introspection.Relative():
		return EndpointIntrospect
	case e.Revocation.Relative():
		return EndpointRevoke
	case e.Userinfo.Relative():
		return EndpointUserinfo
	case e.JwksURI.Relative():
		return EndpointKeys
	}
	return EndpointOther
}

// ServeHTTP records the request and passes it to zitadel, or to the
// automatic login.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	endpoint := p.endpoint(r.URL.Path)
	tw := p.rec.start(w, r, endpoint)
	defer func() {
		status, oauthErr := tw.finish()
		p.t.Logf("oidctest: OP %s %s → %d %s", r.Method, r.URL.Path, status, oauthErr)
	}()
	switch endpoint {
	case EndpointLogin:
		p.login(tw, r)
		return
	case EndpointAuthorize:
		// zitadel drops the RFC 8707 resource; keep it for the tokens'
		// audience.
		if err := r.ParseForm(); err == nil && len(r.Form["resource"]) > 0 {
			r = r.WithContext(context.WithValue(r.Context(), resourcesKey{}, slices.Clone(r.Form["resource"])))
		}
	}
	p.OP.ServeHTTP(tw, r)
}

// login logs the test user in without a page: it completes the auth
// request and sends the browser back to zitadel, which redirects to the
// client with the code.
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	if err := p.storage.completeLogin(id); err != nil {
		http.Error(w, "oidctest: login: "+err.Error(), http.StatusBadRequest)
		return
	}
	callback := p.OP.AuthorizationEndpoint().Relative() + "/callback?id=" + url.QueryEscape(id)
	http.Redirect(w, r, callback, http.StatusFound)
}

// Requests returns a copy of every request received, in arrival order.
func (p *Provider) Requests() []Request { return p.rec.all() }

// Count returns how many requests reached endpoint (an Endpoint constant).
func (p *Provider) Count(endpoint string) int { return p.rec.count(endpoint) }

// Logins returns how many times the test user logged in: one per
// authorization link followed to the end.
func (p *Provider) Logins() int {
	n, _ := p.storage.counts()
	return n
}

// RefreshTokenReuses returns how many times a refresh token was presented
// again after rotation replaced it (each refused with invalid_grant).
func (p *Provider) RefreshTokenReuses() int {
	_, n := p.storage.counts()
	return n
}

// ExpireAccessTokens makes every access token issued so far expire now, as
// if its lifetime had passed; refresh tokens stay valid.
func (p *Provider) ExpireAccessTokens() { p.storage.expireAccessTokens() }

// RevokeRefreshTokens revokes every refresh token issued so far; using one
// gets invalid_grant.
func (p *Provider) RevokeRefreshTokens() { p.storage.revokeRefreshTokens() }

// Authorize plays the browser on link, an authorization request URL: it
// follows the provider's redirects (to the login, back to zitadel) and
// returns the URL the provider finally redirects to, which is not visited:
// the client's redirect URI with code and state, or with an error.
func (p *Provider) Authorize(ctx context.Context, link string) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("oidctest: login link %q: %w", link, err)
	}
	base := *u
	base.RawQuery, base.Fragment = "", ""
	if base.String() != p.AuthorizationEndpoint {
		return nil, fmt.Errorf("oidctest: login link %q does not point at the authorization endpoint %s", link, p.AuthorizationEndpoint)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 10 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("oidctest: %w", err)
		}
		res, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("oidctest: authorization: %w", err)
		}
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		res.Body.Close()
		if res.StatusCode < 300 || res.StatusCode > 399 {
			return nil, fmt.Errorf("oidctest: %s answered %s, not a redirect: %s", u.Path, res.Status, strings.TrimSpace(string(body)))
		}
		loc, err := res.Location()
		if err != nil {
			return nil, fmt.Errorf("oidctest: %s redirected without a usable Location: %w", u.Path, err)
		}
		if loc.Scheme+"://"+loc.Host != p.Issuer {
			return loc, nil
		}
		u = loc
	}
	return nil, errors.New("oidctest: more than 10 redirects within the provider")
}

// FollowLink plays the user who opens link: Authorize, then a GET of the
// redirect URI it ends on, which must be on a loopback host (the client's
// callback server), following its redirects there. It returns the final
// response, whose body is read and need not be closed. An error redirect
// is followed too: the client's callback shows the error.
func (p *Provider) FollowLink(ctx context.Context, link string) (*http.Response, error) {
	loc, err := p.Authorize(ctx, link)
	if err != nil {
		return nil, err
	}
	if !isLoopback(loc) {
		return nil, fmt.Errorf("oidctest: refusing to follow a redirect to %s, which is not on a loopback host", loc.Redacted())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("oidctest: %w", err)
	}
	c := &http.Client{CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 || !isLoopback(r.URL) {
			return errors.New("stopped: too many redirects or one leaving loopback")
		}
		return nil
	}}
	res, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oidctest: callback: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("oidctest: callback: reading the answer: %w", err)
	}
	res.Body = io.NopCloser(strings.NewReader(string(body)))
	return res, nil
}

func isLoopback(u *url.URL) bool {
	_, ok := op.HTTPLoopbackOrLocalhost(u.String())
	return ok
}
