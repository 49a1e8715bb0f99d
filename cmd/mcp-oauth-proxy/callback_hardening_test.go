package main

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

// Bad input at the login callback of `auth login`: responses without a
// state, for an unknown state, with repeated parameters or for a foreign
// Host are refused with a page saying why and leave the login waiting;
// the user's denial ends it cleanly; a callback replayed after the login
// and a code replayed into a new login are refused. Nothing bad is ever
// stored.
func TestHardeningCallbackBadInput(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	kc := newFakeKeychain()
	port := strconv.Itoa(freePort(t))
	base := "http://localhost:" + port + "/callback"
	ctx := hardContext(t)
	tokensKey := oauth.TokensKey(oauth.Identity(rs.Endpoint))
	login := func() (*oauthtest.Buffer, func() cliResult, string) {
		stderr, wait := startCLI(t, kc, "auth", "login", rs.Endpoint, "--redirect-port", port)
		link, err := stderr.NextLink(ctx)
		if err != nil {
			t.Fatalf("no login link: %v", err)
		}
		return stderr, wait, link
	}

	// 1. Malformed and foreign responses leave the login waiting.
	_, wait, link := login()
	state := hardState(t, link)
	for _, tt := range []struct {
		name   string
		query  string
		host   string
		status int
		want   string
	}{
		{"no query", "", "", 400, "no state parameter"},
		{"no state", "code=stolen-code", "", 400, "no state parameter"},
		{"unknown state", "code=stolen-code&state=not-" + state, "", 400, "No login is waiting"},
		{"repeated state", "code=stolen-code&state=" + state + "&state=" + state, "", 400, "repeated"},
		{"repeated code", "code=a&code=b&state=" + state, "", 400, "repeated"},
		{"neither code nor error", "state=" + state, "", 400, "neither a code nor an error"},
		{"foreign Host", "code=stolen-code&state=" + state, "evil.example:" + port, 403, "only answers requests for localhost"},
	} {
		status, body := hardGet(t, ctx, base+"?"+tt.query, func(r *http.Request) {
			if tt.host != "" {
				r.Host = tt.host
			}
		})
		if status != tt.status || !strings.Contains(body, tt.want) || !strings.Contains(body, "<!doctype html>") {
			t.Errorf("%s: %d, want %d and a page saying %q:\n%s", tt.name, status, tt.status, tt.want, body)
		}
	}
	if n := as.Count(oauthtest.EndpointToken); n != 0 {
		t.Fatalf("a refused callback led to %d token requests", n)
	}

	// 2. The user denies: the page says so, auth login fails, nothing is stored.
	as.DenyNext("The user said no")
	res, err := as.FollowLink(ctx, link)
	if err != nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback with access_denied: %v %v", res, err)
	}
	r := wait()
	if r.code == 0 || !strings.Contains(r.stderr, "access_denied") {
		t.Errorf("auth login after a denial: exit %d\n%s", r.code, r.stderr)
	}
	if v, ok := kc.entry(tokensKey); ok {
		t.Errorf("a denied login stored %q", v)
	}

	// 3. A good login; then its callback is replayed: refused, no second exchange.
	_, wait, link = login()
	loc, err := oauthtest.Redirect(ctx, link)

	if err != nil {
		t.Fatal(err)
	}
	if status, body := hardGet(t, ctx, loc.String(), nil); status != http.StatusOK {
		r := wait()
		t.Fatalf("the real callback: %d %s\n%s", status, body, r.stderr)
	}
	if r := wait(); r.code != 0 {
		t.Fatalf("auth login: exit %d\n%s", r.code, r.stderr)
	}
	stored, _ := kc.entry(tokensKey)
	// With no login waiting, nothing listens any more.
	if res, err := http.Get(loc.String()); err == nil {
		res.Body.Close()
		t.Errorf("replayed callback after the login: HTTP %d; want nothing listening", res.StatusCode)
	}

	// 4. While another login waits on the port, the old callback is
	// refused, and its code, replayed with the new state, is exchanged in
	// vain: the login fails and the stored token stays as it was.
	_, wait, link = login()
	if status, body := hardGet(t, ctx, loc.String(), nil); status != http.StatusBadRequest || !strings.Contains(body, "No login is waiting") {
		t.Errorf("replayed callback: %d %s", status, body)
	}
	if n := as.Count(oauthtest.EndpointToken); n != 1 {
		t.Errorf("%d code exchanges, want 1", n)
	}
	used := loc.Query().Get("code")
	replay := base + "?" + url.Values{"code": {used}, "state": {hardState(t, link)}}.Encode()
	if status, body := hardGet(t, ctx, replay, nil); status != http.StatusOK {
		t.Fatalf("delivering the replayed code: %d %s", status, body)
	}
	if r := wait(); r.code == 0 || !strings.Contains(r.stderr, "invalid_grant") {
		t.Errorf("auth login with a replayed code: exit %d\n%s", r.code, r.stderr)
	}
	if now, _ := kc.entry(tokensKey); now != stored {
		t.Errorf("a failed login changed the stored token:\n%s\n→\n%s", stored, now)
	}
	if v, _ := kc.entry(oauth.IndexKey); !strings.Contains(v, oauth.Identity(rs.Endpoint)) {
		t.Errorf("a failed login dropped the identity from the index: %s", v)
	}
}
