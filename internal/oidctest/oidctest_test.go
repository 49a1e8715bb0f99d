package oidctest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oidctest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
)

const scope = "openid offline_access mcp:tools"

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// config is an x/oauth2 client of p; x/oauth2 stands for an independent
// client implementation.
func config(p *oidctest.Provider, clientID, secret, redirectURI string) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if secret != "" {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		RedirectURL:  redirectURI,
		Scopes:       strings.Fields(scope),
		Endpoint:     oauth2.Endpoint{AuthURL: p.AuthorizationEndpoint, TokenURL: p.TokenEndpoint, AuthStyle: style},
	}
}

// authorize runs the browser part for conf and returns the code.
func authorize(t *testing.T, p *oidctest.Provider, conf *oauth2.Config, verifier string, opts ...oauth2.AuthCodeOption) string {
	t.Helper()
	opts = append(opts, oauth2.S256ChallengeOption(verifier))
	loc, err := p.Authorize(testContext(t), conf.AuthCodeURL("state-1", opts...))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if q.Get("error") != "" || q.Get("state") != "state-1" || q.Get("code") == "" {
		t.Fatalf("authorization response = %s", loc.Redacted())
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != conf.RedirectURL {
		t.Fatalf("redirected to %s, want %s", got, conf.RedirectURL)
	}
	return q.Get("code")
}

func errorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// call posts a JSON-RPC request to the resource with tok.
func call(t *testing.T, res *oidctest.Resource, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost, res.Endpoint,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return r
}

func TestPublicClientCodeFlowRefreshAndResource(t *testing.T) {
	p := oidctest.NewProvider(t, oidctest.Options{Scopes: []string{"mcp:tools"}})
	res := oidctest.NewResource(t, p, oidctest.ResourceOptions{ChallengeScope: scope})
	ctx := testContext(t)

	r := call(t, res, "")
	wantChallenge := `Bearer resource_metadata="` + res.MetadataURL + `", scope="` + scope + `"`
	if r.StatusCode != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != wantChallenge {
		t.Fatalf("unauthenticated call = %s, WWW-Authenticate %q; want 401, %q", r.Status, r.Header.Get("WWW-Authenticate"), wantChallenge)
	}

	conf := config(p, p.PublicClientID, "", "http://localhost:3999/callback")
	verifier := oauth2.GenerateVerifier()
	code := authorize(t, p, conf, verifier, oauth2.SetAuthURLParam("resource", res.Endpoint))

	// zitadel verifies PKCE; a failed attempt leaves the code usable.
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); errorCode(err) != "invalid_grant" {
		t.Fatalf("exchange with a wrong verifier: %v; want invalid_grant", err)
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.Extra("scope") != scope || time.Until(tok.Expiry) < 4*time.Minute {
		t.Fatalf("token: refresh token %t, scope %v, expiry in %v", tok.RefreshToken != "", tok.Extra("scope"), time.Until(tok.Expiry))
	}
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); errorCode(err) != "invalid_grant" {
		t.Fatalf("second exchange of one code: %v; want invalid_grant", err)
	}

	if r := call(t, res, tok.AccessToken); r.StatusCode != http.StatusOK {
		t.Fatalf("call with the token = %s", r.Status)
	}
	reqs := res.Requests()
	if got, want := reqs[len(reqs)-1].Authorization, "Bearer "+redact.Fingerprint(tok.AccessToken); got != want || reqs[len(reqs)-1].Bearer() != redact.Fingerprint(tok.AccessToken) {
		t.Errorf("recorded Authorization = %q, want %q", got, want)
	}
	if reqs[0].Bearer() != "" {
		t.Errorf("Bearer() of a request without a token = %q", reqs[0].Bearer())
	}

	// Refresh rotates both tokens; the old ones die.
	tok2, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok2.AccessToken == tok.AccessToken || tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatal("the refresh did not rotate the tokens")
	}
	if r := call(t, res, tok.AccessToken); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("call with the replaced token = %s, want 401", r.Status)
	}
	if r := call(t, res, tok2.AccessToken); r.StatusCode != http.StatusOK {
		t.Errorf("call with the refreshed token = %s", r.Status)
	}
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if errorCode(err) != "invalid_grant" || p.RefreshTokenReuses() != 1 {
		t.Errorf("reusing a rotated refresh token: %v, %d reuses; want invalid_grant, 1", err, p.RefreshTokenReuses())
	}

	p.ExpireAccessTokens()
	r = call(t, res, tok2.AccessToken)
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("call with an expired token = %s, %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	if n := p.Logins(); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}

	var refreshes []oidctest.Request
	for _, r := range p.Requests() {
		if r.Endpoint == oidctest.EndpointToken && r.Params.Get("grant_type") == "refresh_token" {
			refreshes = append(refreshes, r)
		}
	}
	want := []oidctest.Request{
		{Endpoint: oidctest.EndpointToken, Method: "POST", Path: "/oauth/token", Status: 200, Params: url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {redact.Fingerprint(tok.RefreshToken)}, "client_id": {p.PublicClientID},
		}},
		{Endpoint: oidctest.EndpointToken, Method: "POST", Path: "/oauth/token", Status: 400, Error: "invalid_grant", Params: url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {redact.Fingerprint(tok.RefreshToken)}, "client_id": {p.PublicClientID},
		}},
	}
	if diff := cmp.Diff(want, refreshes); diff != "" {
		t.Errorf("refresh requests (-want +got):\n%s", diff)
	}
}

func TestPublicClientMustUseS256(t *testing.T) {
	p := oidctest.NewProvider(t, oidctest.Options{})
	conf := config(p, p.PublicClientID, "", "http://127.0.0.1:4000/callback")
	for name, opts := range map[string][]oauth2.AuthCodeOption{
		"none":  nil,
		"plain": {oauth2.SetAuthURLParam("code_challenge", "abc"), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
	} {
		t.Run(name, func(t *testing.T) {
			loc, err := p.Authorize(testContext(t), conf.AuthCodeURL("s", opts...))
			if err != nil {
				t.Fatal(err)
			}
			if got := loc.Query().Get("error"); got != "invalid_request" {
				t.Errorf("error = %q, want invalid_request (%s)", got, loc.Redacted())
			}
		})
	}
	if n := p.Logins(); n != 0 {
		t.Errorf("%d logins for refused requests", n)
	}
}

func TestConfidentialClientBasicAuth(t *testing.T) {
	const redirect = "http://localhost:4001/callback"
	p := oidctest.NewProvider(t, oidctest.Options{Scopes: []string{"mcp:tools"}, RedirectURIs: []string{redirect}})
	ctx := testContext(t)

	// A web client's redirect URI must match exactly, port included.
	other := config(p, p.ConfidentialClientID, p.ConfidentialClientSecret, "http://localhost:4002/callback")
	if _, err := p.Authorize(ctx, other.AuthCodeURL("s")); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("authorization with an unregistered port: %v; want zitadel's 400", err)
	}

	conf := config(p, p.ConfidentialClientID, p.ConfidentialClientSecret, redirect)
	verifier := oauth2.GenerateVerifier()
	code := authorize(t, p, conf, verifier)
	wrong := *conf
	wrong.ClientSecret = "wrong"
	if _, err := wrong.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("exchange with a wrong secret succeeded")
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	var n int
	for _, r := range p.Requests() {
		if r.Endpoint != oidctest.EndpointToken || r.Status != http.StatusOK {
			continue
		}
		n++
		if !strings.HasPrefix(r.Authorization, "Basic sha256:") || r.BasicClientID != p.ConfidentialClientID || r.Params.Has("client_secret") {
			t.Errorf("token request: Authorization %q, Basic client %q, form %v", r.Authorization, r.BasicClientID, r.Params)
		}
	}
	if n != 2 {
		t.Errorf("%d successful token requests, want 2", n)
	}
}

func TestResourceAudience(t *testing.T) {
	p := oidctest.NewProvider(t, oidctest.Options{})
	strict := oidctest.NewResource(t, p, oidctest.ResourceOptions{})
	lax := oidctest.NewResource(t, p, oidctest.ResourceOptions{IgnoreAudience: true})
	conf := config(p, p.PublicClientID, "", "http://localhost:4003/callback")
	verifier := oauth2.GenerateVerifier()
	code := authorize(t, p, conf, verifier) // no resource parameter
	tok, err := conf.Exchange(testContext(t), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	r := call(t, strict, tok.AccessToken)
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), "is not for "+strict.Endpoint) {
		t.Errorf("strict resource = %s, %q; want 401 naming the audience", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	if r := call(t, lax, tok.AccessToken); r.StatusCode != http.StatusOK {
		t.Errorf("resource ignoring the audience = %s", r.Status)
	}
}

func TestResourceMetadata(t *testing.T) {
	p := oidctest.NewProvider(t, oidctest.Options{})
	res := oidctest.NewResource(t, p, oidctest.ResourceOptions{Path: "/api/mcp", ScopesSupported: []string{"openid", "offline_access"}})
	if want := res.URL + "/.well-known/oauth-protected-resource/api/mcp"; res.MetadataURL != want {
		t.Errorf("MetadataURL = %q, want %q", res.MetadataURL, want)
	}
	r, err := http.Get(res.MetadataURL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(r.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"resource":                 res.Endpoint,
		"authorization_servers":    []any{p.Issuer},
		"bearer_methods_supported": []any{"header"},
		"scopes_supported":         []any{"openid", "offline_access"},
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if n := res.Count(oidctest.EndpointPRM); n != 1 {
		t.Errorf("Count(prm) = %d", n)
	}
}

func TestFollowLinkReachesCallback(t *testing.T) {
	p := oidctest.NewProvider(t, oidctest.Options{})
	got := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		io.WriteString(w, "done")
	}))
	defer cb.Close()
	conf := config(p, p.PublicClientID, "", cb.URL+"/callback")
	page, err := p.FollowLink(testContext(t), conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	q := <-got
	if page.StatusCode != http.StatusOK || string(body) != "done" || q.Get("state") != "st" || q.Get("code") == "" {
		t.Errorf("callback page %s %q, query state %q code %t", page.Status, body, q.Get("state"), q.Get("code") != "")
	}
	var path []string
	for _, r := range p.Requests() {
		path = append(path, r.Endpoint)
	}
	if diff := cmp.Diff([]string{oidctest.EndpointAuthorize, oidctest.EndpointLogin, oidctest.EndpointCallback}, path); diff != "" {
		t.Errorf("provider requests (-want +got):\n%s", diff)
	}
	if _, err := p.FollowLink(testContext(t), "http://127.0.0.1:1/authorize?x=1"); err == nil {
		t.Error("FollowLink accepted a link to another server")
	}
}
