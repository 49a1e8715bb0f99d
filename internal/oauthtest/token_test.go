package oauthtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// TestRoundTripWithOAuth2 drives registration, authorization, exchange and
// refresh by hand with golang.org/x/oauth2, as a client would.
func TestRoundTripWithOAuth2(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true, IssParameter: true})
	ctx := context.WithValue(testContext(t), oauth2.HTTPClient, as.Client())
	reg := register(t, as)
	clientID := reg["client_id"].(string)
	conf := &oauth2.Config{
		ClientID:    clientID,
		Endpoint:    oauth2.Endpoint{AuthURL: as.AuthorizationEndpoint, TokenURL: as.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: testRedirect,
		Scopes:      []string{"mcp:read", "mcp:write"},
	}
	const resource = "https://mcp.example.com/mcp"
	verifier := oauth2.GenerateVerifier()

	loc, err := Redirect(ctx, conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource)))
	if err != nil {
		t.Fatal(err)
	}
	cb := loc.Query()
	if cb.Get("state") != "state-1" || cb.Get("iss") != as.Issuer || cb.Get("code") == "" {
		t.Fatalf("callback query %v, want state-1, iss %s and a code", cb, as.Issuer)
	}
	tok, err := conf.Exchange(ctx, cb.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Extra("scope") != "mcp:read mcp:write" || tok.ExpiresIn != 3600 {
		t.Errorf("token = %+v scope %v, want Bearer, a refresh token, both scopes, 3600 s", tok, tok.Extra("scope"))
	}
	info, ok := as.Introspect(tok.AccessToken)
	if !ok {
		t.Fatal("the issued access token is not valid")
	}
	if diff := cmp.Diff(TokenInfo{ClientID: clientID, Scopes: []string{"mcp:read", "mcp:write"}, Resource: resource, Expiry: info.Expiry}, info); diff != "" || info.Expiry.IsZero() {
		t.Errorf("Introspect (-want +got):\n%s", diff)
	}

	// x/oauth2 refreshes a stale token (without resource; the grant keeps its own).
	stale := *tok
	stale.Expiry = time.Now().Add(-time.Minute)
	fresh, err := conf.TokenSource(ctx, &stale).Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Errorf("refresh gave %+v, want a new access and a rotated refresh token", fresh)
	}
	if info, ok := as.Introspect(fresh.AccessToken); !ok || info.Resource != resource {
		t.Errorf("refreshed token: %+v %v, want valid for %s", info, ok, resource)
	}
	if as.RefreshTokenReuses() != 0 {
		t.Errorf("RefreshTokenReuses = %d before any reuse", as.RefreshTokenReuses())
	}

	// The rotated-out refresh token is sent again: the grant dies.
	_, err = conf.TokenSource(ctx, &stale).Token()
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.ErrorCode != "invalid_grant" {
		t.Fatalf("reusing a rotated refresh token: %v, want invalid_grant", err)
	}
	if as.RefreshTokenReuses() != 1 {
		t.Errorf("RefreshTokenReuses = %d, want 1", as.RefreshTokenReuses())
	}
	for _, at := range []string{tok.AccessToken, fresh.AccessToken} {
		if _, ok := as.Valid(at); ok {
			t.Errorf("access token still valid after refresh token reuse")
		}
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token(); err == nil {
		t.Errorf("the newest refresh token still works after reuse was detected")
	}

	var endpoints []string
	for _, r := range as.Requests() {
		endpoints = append(endpoints, r.Endpoint)
	}
	if diff := cmp.Diff([]string{"register", "authorize", "token", "token", "token", "token"}, endpoints); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	exch := as.Requests()[2].Form
	want := url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "code_verifier": {verifier},
		"redirect_uri": {testRedirect}, "resource": {resource}, "client_id": {clientID},
	}
	if diff := cmp.Diff(want, exch); diff != "" {
		t.Errorf("exchange form (-want +got):\n%s", diff)
	}
}

func TestExchangeErrors(t *testing.T) {
	const resource = "https://mcp.example.com/mcp"
	tests := []struct {
		name       string
		opts       AuthServerOptions
		authorize  url.Values // extra authorization parameters
		exchange   url.Values // changes to the token request (nil value: delete)
		wantStatus int
		wantError  string
	}{
		{name: "ok", wantStatus: 200},
		{name: "wrong verifier", exchange: url.Values{"code_verifier": {"x" + testVerifier[1:]}}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "no verifier", exchange: url.Values{"code_verifier": nil}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "short verifier", exchange: url.Values{"code_verifier": {"abc"}}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "other redirect_uri", exchange: url.Values{"redirect_uri": {"http://127.0.0.1:3031/callback"}}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "no redirect_uri", exchange: url.Values{"redirect_uri": nil}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "unknown code", exchange: url.Values{"code": {"code-made-up"}}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "resource differs", authorize: url.Values{"resource": {resource}}, exchange: url.Values{"resource": {resource + "/"}}, wantStatus: 400, wantError: "invalid_target"},
		{name: "resource required", opts: AuthServerOptions{RequireResource: true}, authorize: url.Values{"resource": {resource}}, wantStatus: 400, wantError: "invalid_target"},
		{name: "resource given", opts: AuthServerOptions{RequireResource: true}, authorize: url.Values{"resource": {resource}}, exchange: url.Values{"resource": {resource}}, wantStatus: 200},
		{name: "no grant_type", exchange: url.Values{"grant_type": nil}, wantStatus: 400, wantError: "invalid_request"},
		{name: "password grant", exchange: url.Values{"grant_type": {"password"}}, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "repeated parameter", exchange: url.Values{"code_verifier": {testVerifier, testVerifier}}, wantStatus: 400, wantError: "invalid_request"},
		{name: "PKCE optional", opts: AuthServerOptions{CodeChallengeMethods: []string{}}, authorize: url.Values{"code_challenge": nil, "code_challenge_method": nil}, exchange: url.Values{"code_verifier": nil}, wantStatus: 200},
		{name: "verifier without challenge", opts: AuthServerOptions{CodeChallengeMethods: []string{}}, authorize: url.Values{"code_challenge": nil, "code_challenge_method": nil}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "plain", opts: AuthServerOptions{CodeChallengeMethods: []string{"plain"}}, authorize: url.Values{"code_challenge": {testVerifier}, "code_challenge_method": {"plain"}}, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := NewAuthServer(t, tt.opts)
			id := register(t, as)["client_id"].(string)
			cb := authorize(t, as, id, tt.authorize)
			if cb.Get("code") == "" {
				t.Fatalf("authorization failed: %v", cb)
			}
			resp, v := exchange(t, as, id, cb.Get("code"), tt.exchange)
			if resp.StatusCode != tt.wantStatus || v["error"] != nonEmpty(tt.wantError) {
				t.Fatalf("exchange: %s %v, want %d %q", resp.Status, v, tt.wantStatus, tt.wantError)
			}
			if tt.wantError != "" && v["error_description"] == "" {
				t.Errorf("error without error_description: %v", v)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
		})
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{})
	id := register(t, as)["client_id"].(string)
	code := authorize(t, as, id, nil).Get("code")
	resp, tok := exchange(t, as, id, code, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first exchange: %s %v", resp.Status, tok)
	}
	resp, v := exchange(t, as, id, code, nil)
	if resp.StatusCode != http.StatusBadRequest || v["error"] != "invalid_grant" {
		t.Errorf("second exchange: %s %v, want invalid_grant", resp.Status, v)
	}
	if _, ok := as.Valid(tok["access_token"].(string)); ok {
		t.Errorf("the token of a replayed code is still valid")
	}
}

func TestCodeFromAnotherClient(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{})
	a, b := register(t, as)["client_id"].(string), register(t, as)["client_id"].(string)
	code := authorize(t, as, a, nil).Get("code")
	if resp, v := exchange(t, as, b, code, nil); v["error"] != "invalid_grant" {
		t.Errorf("exchange by another client: %s %v, want invalid_grant", resp.Status, v)
	}
}

func TestClientAuthentication(t *testing.T) {
	type presentation struct {
		name   string
		edit   func(form url.Values, r *http.Request, id, secret string)
		method string // the method it is; "" for a malformed one
	}
	presentations := []presentation{
		{"none", func(f url.Values, _ *http.Request, id, _ string) { f.Set("client_id", id) }, "none"},
		{"post", func(f url.Values, _ *http.Request, id, s string) { f.Set("client_id", id); f.Set("client_secret", s) }, "client_secret_post"},
		{"basic", func(_ url.Values, r *http.Request, id, s string) {
			r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(s))
		}, "client_secret_basic"},
		{"post, wrong secret", func(f url.Values, _ *http.Request, id, s string) {
			f.Set("client_id", id)
			f.Set("client_secret", s+"x")
		}, ""},
		{"basic, wrong secret", func(_ url.Values, r *http.Request, id, s string) { r.SetBasicAuth(id, s+"x") }, ""},
		{"basic, empty secret", func(_ url.Values, r *http.Request, id, _ string) { r.SetBasicAuth(id, "") }, ""},
		{"basic and post", func(f url.Values, r *http.Request, id, s string) { f.Set("client_secret", s); r.SetBasicAuth(id, s) }, ""},
		{"bearer header", func(f url.Values, r *http.Request, id, _ string) {
			f.Set("client_id", id)
			r.Header.Set("Authorization", "Bearer x")
		}, ""},
		{"nothing", func(url.Values, *http.Request, string, string) {}, ""},
	}
	for _, method := range []string{"none", "client_secret_post", "client_secret_basic"} {
		for _, p := range presentations {
			t.Run(method+"/"+p.name, func(t *testing.T) {
				as := NewAuthServer(t, AuthServerOptions{TokenEndpointAuthMethods: []string{method}})
				reg := register(t, as)
				id, _ := reg["client_id"].(string)
				secret, _ := reg["client_secret"].(string)
				code := authorize(t, as, id, nil).Get("code")
				form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {testVerifier}}
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, as.TokenEndpoint, nil)
				if err != nil {
					t.Fatal(err)
				}
				p.edit(form, req, id, secret)
				resp, v := postForm(t, as.TokenEndpoint, form, func(r *http.Request) {
					if h := req.Header.Get("Authorization"); h != "" {
						r.Header.Set("Authorization", h)
					}
				})
				switch {
				case p.method == method:
					if resp.StatusCode != http.StatusOK {
						t.Errorf("%s: %v, want 200", resp.Status, v)
					}
				case p.name == "basic and post":
					if resp.StatusCode != http.StatusBadRequest || v["error"] != "invalid_request" {
						t.Errorf("%s %v, want 400 invalid_request", resp.Status, v)
					}
				default:
					if resp.StatusCode != http.StatusUnauthorized || v["error"] != "invalid_client" {
						t.Errorf("%s %v, want 401 invalid_client", resp.Status, v)
					}
					if tried := req.Header.Get("Authorization") != ""; tried != (resp.Header.Get("WWW-Authenticate") != "") {
						t.Errorf("WWW-Authenticate %q after an Authorization header: %v", resp.Header.Get("WWW-Authenticate"), tried)
					}
				}
			})
		}
	}
}

// TestPreRegisteredBasic checks RFC 6749 §2.3.1: Basic credentials are
// form-urlencoded first, as x/oauth2 does.
func TestPreRegisteredBasic(t *testing.T) {
	const id, secret = "pre-registered-client", "se+cret/with:odd&chars"
	as := NewAuthServer(t, AuthServerOptions{NoDCR: true, PreRegistered: map[string]string{id: secret}, TokenEndpointAuthMethods: []string{"client_secret_basic"}})
	ctx := context.WithValue(testContext(t), oauth2.HTTPClient, as.Client())
	for _, tt := range []struct {
		name    string
		style   oauth2.AuthStyle
		secret  string
		wantErr string
	}{
		{"header", oauth2.AuthStyleInHeader, secret, ""},
		{"params", oauth2.AuthStyleInParams, secret, "invalid_client"},
		{"wrong secret", oauth2.AuthStyleInHeader, "nope", "invalid_client"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := &oauth2.Config{ClientID: id, ClientSecret: tt.secret, RedirectURL: testRedirect,
				Endpoint: oauth2.Endpoint{TokenURL: as.TokenEndpoint, AuthStyle: tt.style}}
			code := authorize(t, as, id, nil).Get("code")
			_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(testVerifier))
			var code2 string
			if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
				code2 = re.ErrorCode
			} else if err != nil {
				t.Fatal(err)
			}
			if code2 != tt.wantErr {
				t.Errorf("exchange error %q (%v), want %q", code2, err, tt.wantErr)
			}
		})
	}
	// A raw, unencoded secret with "+" decodes to a space: wrong.
	code := authorize(t, as, id, nil).Get("code")
	resp, v := exchange(t, as, "", code, url.Values{"client_id": nil})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no credentials: %s %v, want 401", resp.Status, v)
	}
	resp, v = postForm(t, as.TokenEndpoint, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {testVerifier}},
		func(r *http.Request) { r.SetBasicAuth(id, secret) })
	if resp.StatusCode != http.StatusUnauthorized || v["error"] != "invalid_client" {
		t.Errorf("unencoded Basic secret: %s %v, want 401 invalid_client", resp.Status, v)
	}
}

func refreshForm(id, rt string, extra url.Values) url.Values {
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {id}}
	for k, vs := range extra {
		f[k] = vs
	}
	return f
}

func TestRefresh(t *testing.T) {
	t.Run("without rotation", func(t *testing.T) {
		as := NewAuthServer(t, AuthServerOptions{IssueRefreshTokens: true})
		id, tok := login(t, as, "a b")
		rt := tok["refresh_token"].(string)
		for i := range 2 {
			resp, v := postForm(t, as.TokenEndpoint, refreshForm(id, rt, nil), nil)
			if resp.StatusCode != http.StatusOK || v["refresh_token"] != nil || v["scope"] != "a b" {
				t.Errorf("refresh %d: %s %v, want 200, no new refresh token, scope a b", i, resp.Status, v)
			}
		}
		resp, v := postForm(t, as.TokenEndpoint, refreshForm(id, rt, url.Values{"scope": {"b"}}), nil)
		if resp.StatusCode != http.StatusOK || v["scope"] != "b" {
			t.Errorf("narrowing refresh: %s %v, want scope b", resp.Status, v)
		}
		resp, v = postForm(t, as.TokenEndpoint, refreshForm(id, rt, url.Values{"scope": {"a c"}}), nil)
		if v["error"] != "invalid_scope" {
			t.Errorf("widening refresh: %s %v, want invalid_scope", resp.Status, v)
		}
		resp, v = postForm(t, as.TokenEndpoint, refreshForm(id, rt, url.Values{"resource": {"https://other.example/mcp"}}), nil)
		if v["error"] != nil {
			t.Errorf("refresh adding a resource to a grant without one: %s %v", resp.Status, v)
		}
		as.RevokeRefreshTokens()
		resp, v = postForm(t, as.TokenEndpoint, refreshForm(id, rt, nil), nil)
		if resp.StatusCode != http.StatusBadRequest || v["error"] != "invalid_grant" {
			t.Errorf("after RevokeRefreshTokens: %s %v, want invalid_grant", resp.Status, v)
		}
		if _, ok := as.Valid(tok["access_token"].(string)); !ok {
			t.Errorf("RevokeRefreshTokens revoked an access token")
		}
	})
	t.Run("rotation chain", func(t *testing.T) {
		as := NewAuthServer(t, AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true})
		id, tok := login(t, as, "")
		rt := tok["refresh_token"].(string)
		for i := range 3 {
			resp, v := postForm(t, as.TokenEndpoint, refreshForm(id, rt, nil), nil)
			next, _ := v["refresh_token"].(string)
			if resp.StatusCode != http.StatusOK || next == "" || next == rt {
				t.Fatalf("refresh %d: %s %v, want a rotated refresh token", i, resp.Status, v)
			}
			rt = next
		}
		if n := as.RefreshTokenReuses(); n != 0 {
			t.Errorf("RefreshTokenReuses = %d for a correct chain", n)
		}
		// Another client cannot use it.
		other := register(t, as)["client_id"].(string)
		if _, v := postForm(t, as.TokenEndpoint, refreshForm(other, rt, nil), nil); v["error"] != "invalid_grant" {
			t.Errorf("refresh by another client: %v, want invalid_grant", v)
		}
		if _, v := postForm(t, as.TokenEndpoint, refreshForm(id, rt, nil), nil); v["error"] != nil {
			t.Errorf("refresh after a foreign attempt: %v", v)
		}
	})
	t.Run("no refresh tokens", func(t *testing.T) {
		as := NewAuthServer(t, AuthServerOptions{})
		_, tok := login(t, as, "")
		if _, ok := tok["refresh_token"]; ok {
			t.Errorf("refresh_token issued without IssueRefreshTokens: %v", tok)
		}
	})
	t.Run("resource", func(t *testing.T) {
		const resource = "https://mcp.example.com/mcp"
		as := NewAuthServer(t, AuthServerOptions{IssueRefreshTokens: true, RequireResource: true})
		id := register(t, as)["client_id"].(string)
		cb := authorize(t, as, id, url.Values{"resource": {resource}})
		_, tok := exchange(t, as, id, cb.Get("code"), url.Values{"resource": {resource}})
		rt := tok["refresh_token"].(string)
		for _, tt := range []struct {
			resource []string
			want     any
		}{
			{nil, "invalid_target"},
			{[]string{resource + "/"}, "invalid_target"},
			{[]string{resource}, nil},
		} {
			resp, v := postForm(t, as.TokenEndpoint, refreshForm(id, rt, url.Values{"resource": tt.resource}), nil)
			if v["error"] != tt.want {
				t.Errorf("refresh with resource %q: %s %v, want error %v", tt.resource, resp.Status, v, tt.want)
			}
		}
	})
}

func TestExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	as := NewAuthServer(t, AuthServerOptions{AccessTokenTTL: 90 * time.Second, Now: clock})
	_, tok := login(t, as, "")
	if tok["expires_in"] != float64(90) {
		t.Errorf("expires_in = %v, want 90", tok["expires_in"])
	}
	at := tok["access_token"].(string)
	if info, ok := as.Introspect(at); !ok || !info.Expiry.Equal(clock().Add(90*time.Second)) {
		t.Errorf("Introspect = %+v %v", info, ok)
	}
	advance(89 * time.Second)
	if _, ok := as.Valid(at); !ok {
		t.Errorf("expired early")
	}
	advance(time.Second)
	if _, ok := as.Valid(at); ok {
		t.Errorf("valid after its expiry")
	}

	forever := NewAuthServer(t, AuthServerOptions{AccessTokenTTL: -1, Now: clock})
	_, tok = login(t, forever, "")
	if _, ok := tok["expires_in"]; ok {
		t.Errorf("expires_in present with a negative TTL: %v", tok)
	}
	advance(1000 * time.Hour)
	if _, ok := forever.Valid(tok["access_token"].(string)); !ok {
		t.Errorf("a token without expiry expired")
	}
	forever.ExpireAccessTokens()
	if _, ok := forever.Valid(tok["access_token"].(string)); ok {
		t.Errorf("valid after ExpireAccessTokens")
	}
}

func TestForgetClients(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{IssueRefreshTokens: true, PreRegistered: map[string]string{"pre": ""}})
	id, tok := login(t, as, "")
	preAT, _ := as.IssueTokens("pre", "x", "")
	as.ForgetClients()

	if _, ok := as.Valid(tok["access_token"].(string)); ok {
		t.Errorf("a forgotten client's access token is valid")
	}
	if _, ok := as.Valid(preAT); !ok {
		t.Errorf("a pre-registered client's token was revoked")
	}
	resp, v := postForm(t, as.TokenEndpoint, refreshForm(id, tok["refresh_token"].(string), nil), nil)
	if resp.StatusCode != http.StatusUnauthorized || v["error"] != "invalid_client" {
		t.Errorf("refresh by a forgotten client: %s %v, want 401 invalid_client", resp.Status, v)
	}
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {testRedirect}, "code_challenge": {testS256}, "code_challenge_method": {"S256"}}
	if resp, _ := get(t, as.AuthorizationEndpoint+"?"+q.Encode()); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("authorize for a forgotten client: %s, want 400", resp.Status)
	}
	if cb := authorize(t, as, "pre", nil); cb.Get("code") == "" {
		t.Errorf("pre-registered client refused after ForgetClients: %v", cb)
	}
}

func TestIssueTokens(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{IssueRefreshTokens: true, PreRegistered: map[string]string{"pre": ""}})
	at, rt := as.IssueTokens("pre", "a b", "https://mcp.example.com/mcp")
	info, ok := as.Introspect(at)
	if diff := cmp.Diff(TokenInfo{ClientID: "pre", Scopes: []string{"a", "b"}, Resource: "https://mcp.example.com/mcp", Expiry: info.Expiry}, info); !ok || diff != "" {
		t.Errorf("Introspect (-want +got), ok=%v:\n%s", ok, diff)
	}
	resp, v := postForm(t, as.TokenEndpoint, refreshForm("pre", rt, nil), nil)
	if resp.StatusCode != http.StatusOK || v["scope"] != "a b" {
		t.Errorf("refreshing an issued token: %s %v", resp.Status, v)
	}
	if as.Count(EndpointAuthorize) != 0 {
		t.Errorf("IssueTokens made requests")
	}
}

func TestEditTokenResponse(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{EditTokenResponse: func(resp map[string]any) {
		delete(resp, "scope")
		resp["token_type"] = "bearer"
	}})
	_, tok := login(t, as, "a")
	if _, hasScope := tok["scope"]; hasScope || tok["token_type"] != "bearer" {
		t.Errorf("token response %v, want no scope and token_type bearer", tok)
	}
	if scopes, ok := as.Valid(tok["access_token"].(string)); !ok || fmt.Sprint(scopes) != "[a]" {
		t.Errorf("Valid = %v %v, want [a] true", scopes, ok)
	}
}

func TestFailNext(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{})
	as.FailNext(EndpointToken, http.StatusInternalServerError, `{"error":"server_error"}`)
	as.FailNext(EndpointToken, http.StatusOK, `{"access_token": garbage`)
	as.FailNext(EndpointMetadata, http.StatusServiceUnavailable, "")
	id := register(t, as)["client_id"].(string)

	var got []string
	for range 2 {
		code := authorize(t, as, id, nil).Get("code")
		resp, err := http.PostForm(as.TokenEndpoint, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {testVerifier}, "client_id": {id}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", resp.StatusCode, b))
	}
	want := []string{`500 {"error":"server_error"}`, `200 {"access_token": garbage`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("injected token answers (-want +got):\n%s", diff)
	}
	_, tok := login(t, as, "")
	if _, ok := as.Valid(tok["access_token"].(string)); !ok {
		t.Errorf("the third token request failed: %v", tok)
	}
	if resp, _ := get(t, as.URL+"/.well-known/oauth-authorization-server"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("metadata: %s, want 503", resp.Status)
	}
	if resp, _ := get(t, as.URL+"/.well-known/oauth-authorization-server"); resp.StatusCode != http.StatusOK {
		t.Errorf("metadata after the failure: %s, want 200", resp.Status)
	}
	var statuses []int
	for _, r := range as.Requests() {
		if r.Endpoint == EndpointToken {
			statuses = append(statuses, r.Status)
		}
	}
	if diff := cmp.Diff([]int{500, 200, 200}, statuses); diff != "" {
		t.Errorf("recorded token statuses (-want +got):\n%s", diff)
	}
}

// fatalRecorder records Fatalf instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func TestFailNextUnknownEndpoint(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	as := NewAuthServer(rec, AuthServerOptions{})
	as.FailNext("tokens", 500, "")
	if rec.fatal != `oauthtest: FailNext: unknown AS endpoint "tokens"` {
		t.Errorf("Fatalf(%q)", rec.fatal)
	}
}
