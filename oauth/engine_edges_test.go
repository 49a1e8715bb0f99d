package oauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

// wantFirstLoginOnly checks that the authorization server saw one
// authorization request: the fixture's first login.
func wantFirstLoginOnly(t *testing.T, f *engineFixture) {
	t.Helper()
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations, want the first login only", n)
	}
}

// refreshNow starts the proactive refresh Token starts for a current token
// inside the refresh margin, and returns it. It calls what Token calls
// rather than Token itself: a refresh that fails at once would be over
// before a test could look for it.
func refreshNow(t *testing.T, h *Handler) *flight {
	t.Helper()
	h.load()
	cur := h.st.current.Load()
	if cur == nil || cur.RefreshToken == "" || !cur.ExpiresWithin(h.e.now(), h.margin(cur)) {
		t.Fatalf("no refreshable token inside the refresh margin: %+v", cur)
	}
	fl := h.startRefresh(cur, false)
	if fl == nil {
		t.Fatal("no refresh started")
	}
	return fl
}

// heldRefresh arms a fixture's authorization server to hold the next token
// response until release is closed; entered is closed when it arrives.
type heldRefresh struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newHeldRefresh() *heldRefresh {
	return &heldRefresh{entered: make(chan struct{}), release: make(chan struct{})}
}

func (hr *heldRefresh) edit(map[string]any) {
	if hr.armed.CompareAndSwap(true, false) {
		close(hr.entered)
		<-hr.release
	}
}

// startHeldRefresh logs f in, then makes Token start a background refresh
// that the authorization server holds, and returns its flight.
func startHeldRefresh(t *testing.T, f *engineFixture, hr *heldRefresh) *flight {
	t.Helper()
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	hr.armed.Store(true)
	f.advance(time.Hour - 30*time.Second) // inside the refresh margin, not expired
	fl := refreshNow(t, f.h)
	select {
	case <-hr.entered:
	case <-ctx.Done():
		t.Fatal("the refresh never reached the token endpoint")
	}
	return fl
}

func TestEngineRefreshOvertakenByLoginIsDiscarded(t *testing.T) {
	hr := newHeldRefresh()
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{
		IssueRefreshTokens: true, RotateRefreshTokens: true, EditTokenResponse: hr.edit}})
	ctx := f.ctx()
	fl := startHeldRefresh(t, f, hr)

	// A step-up login completes while the refresh of the old token waits.
	forbidden := &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{
		"Www-Authenticate": {`Bearer error="insufficient_scope", scope="mcp:extra"`}}}
	if retry, err := f.h.Challenge(ctx, forbidden, f.h.Current().AccessToken); !retry || err != nil {
		t.Fatalf("step-up = %v, %v", retry, err)
	}
	login := f.h.Current()
	if !strings.Contains(login.Scope, "mcp:extra") {
		t.Fatalf("step-up token scope %q lacks mcp:extra", login.Scope)
	}
	close(hr.release)
	<-fl.done

	if cur := f.h.Current(); cur != login {
		t.Errorf("current token = %+v, want the step-up login's %+v", cur, login)
	}
	if st := f.stored(); st == nil || st.AccessToken != login.AccessToken || st.RefreshToken != login.RefreshToken {
		t.Errorf("stored token = %+v, want the step-up login's", st)
	}
	if fl.err != nil || fl.tok != login {
		t.Errorf("refresh flight = %+v, %v; want the login's token for its waiters", fl.tok, fl.err)
	}
}

func TestEngineLogoutDuringRefreshStaysLoggedOut(t *testing.T) {
	hr := newHeldRefresh()
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{
		IssueRefreshTokens: true, EditTokenResponse: hr.edit}})
	fl := startHeldRefresh(t, f, hr)
	if err := f.h.Logout(); err != nil {
		t.Fatal(err)
	}
	close(hr.release)
	<-fl.done

	if fl.err == nil {
		t.Errorf("refresh after logout succeeded with %+v", fl.tok)
	}
	if f.h.Current() != nil || f.stored() != nil {
		t.Errorf("a logged-out token came back: current %+v, stored %+v", f.h.Current(), f.stored())
	}
	if ids, _ := (&Credentials{Store: f.store}).Identities(); len(ids) != 0 {
		t.Errorf("index after logout = %q", ids)
	}
}

// deadRefreshServer answers every token request with invalid_grant and
// everything else with 404, so discovery falls back to the default
// endpoints at its origin. It counts token requests.
func deadRefreshServer(t *testing.T) (port int, tokenRequests *atomic.Int32) {
	t.Helper()
	tokenRequests = new(atomic.Int32)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant"}`)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().(*net.TCPAddr).Port, tokenRequests
}

// TestEngineInvalidGrantDropsLegacyRecord stores a login under fast-agent's
// legacy key (host as written, LOCALHOST) and has its refresh token
// rejected: the next login must not read the dead record back as another
// process's token, whether or not deleting it works.
func TestEngineInvalidGrantDropsLegacyRecord(t *testing.T) {
	for _, deleteFails := range []bool{false, true} {
		t.Run("deleteFails="+strconv.FormatBool(deleteFails), func(t *testing.T) {
			port, tokenRequests := deadRefreshServer(t)
			upstream := "http://LOCALHOST:" + strconv.Itoa(port) + "/mcp"
			legacy := LegacyIdentity(upstream)
			if legacy == Identity(upstream) {
				t.Fatalf("no legacy key for %s", upstream)
			}
			st := newCredStore()
			st.m[TokensKey(legacy)] = []byte(`{"access_token":"dead-access","token_type":"Bearer","expires_in":3600,"scope":null,"refresh_token":"dead-refresh"}`)
			redirectPort := freePort(t)
			st.m[ClientInfoKey(legacy)] = []byte(`{"client_id":"cid","redirect_uris":["http://localhost:` +
				strconv.Itoa(redirectPort) + `/callback"]}`)
			if deleteFails {
				st.failDelete = TokensKey(legacy)
			}

			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var links atomic.Int32
			e := &Engine{Logger: newTestLogger(testWriter{t}), Prompt: func(string, string) {
				links.Add(1)
				cancel() // the link is what this test waits for
			}}
			defer e.Close()
			h := e.Handler(Server{Name: "up", URL: upstream, Store: st, RedirectPort: redirectPort})
			if tok, _ := h.Token(ctx); tok != "dead-access" {
				t.Fatalf("Token = %q, want the legacy record's", tok)
			}
			unauthorized := &http.Response{StatusCode: http.StatusUnauthorized,
				Header: http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}}
			retry, err := h.Challenge(ctx, unauthorized, "dead-access")
			var le *LoginError
			if retry || !errors.As(err, &le) || !errors.Is(err, ErrLoginPending) {
				t.Errorf("Challenge = %v, %v; want a pending login", retry, err)
			}
			if n := links.Load(); n != 1 {
				t.Errorf("%d login links, want 1", n)
			}
			if n := tokenRequests.Load(); n != 1 {
				t.Errorf("%d token requests, want 1 refresh", n)
			}
			if cur := h.Current(); cur != nil {
				t.Errorf("current token = %+v, want none", cur)
			}
			_, stillThere := st.m[TokensKey(legacy)]
			if stillThere != deleteFails {
				t.Errorf("legacy token record present = %v, want %v", stillThere, deleteFails)
			}
		})
	}
}

func TestEngineStepUpForGrantedScopesDoesNotLogIn(t *testing.T) {
	st := newCredStore()
	const upstream = "http://127.0.0.1:1/mcp"
	c := &Credentials{Store: st}
	if err := c.SaveToken(Identity(upstream), &Token{AccessToken: "at", Scope: "read write"}); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Logger: newTestLogger(testWriter{t}), Prompt: func(string, string) { t.Error("a login started") }}
	defer e.Close()
	// The server grants neither offline_access nor anything it does not
	// want to; asking for "read" again must not cost a login per request.
	h := e.Handler(Server{Name: "up", URL: upstream, Store: st, Scope: "read write offline_access"})
	for _, tt := range []struct {
		challenge string
		want      bool
	}{
		{`Bearer error="insufficient_scope", scope="read"`, false},
		{`Bearer error="insufficient_scope", scope="read write"`, false},
	} {
		res := &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{"Www-Authenticate": {tt.challenge}}}
		retry, err := h.Challenge(t.Context(), res, "at")
		if retry != tt.want || err != nil {
			t.Errorf("Challenge(%s) = %v, %v; want %v, nil", tt.challenge, retry, err, tt.want)
		}
	}
}

func TestEngineRefreshWithoutClientBacksOff(t *testing.T) {
	port, tokenRequests := deadRefreshServer(t)
	upstream := "http://127.0.0.1:" + strconv.Itoa(port) + "/mcp"
	st := newCredStore()
	c := &Credentials{Store: st}
	// A refresh token but no client registration and no client_id.
	if err := c.SaveToken(Identity(upstream), &Token{AccessToken: "at", RefreshToken: "rt",
		ExpiresAt: time.Now().Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	logs := new(oauthtest.Buffer)
	e := &Engine{Logger: newTestLogger(logs)}
	defer e.Close()
	h := e.Handler(Server{Name: "up", URL: upstream, Store: st})
	ctx := t.Context()
	fl := refreshNow(t, h)
	<-fl.done
	if fl.err == nil {
		t.Fatal("refresh without a client succeeded")
	}
	gets := st.getCalls()
	for range 20 {
		if tok, _ := h.Token(ctx); tok != "at" {
			t.Fatalf("Token = %q, want the current token kept", tok)
		}
	}
	if n := st.getCalls() - gets; n != 0 {
		t.Errorf("%d store reads by 20 Token calls after a failed refresh, want 0 (backing off)", n)
	}
	if n := tokenRequests.Load(); n != 0 {
		t.Errorf("%d token requests without a client", n)
	}
	if !strings.Contains(logs.String(), "token refresh failed") {
		t.Errorf("the failure was not logged:\n%s", logs.String())
	}
}

// TestEnginePastedBareCodeWithIss: with a server that sends iss (RFC 9207)
// a pasted bare code cannot be checked, so it is refused with a request
// for the whole address and the login goes on waiting for it.
func TestEnginePastedBareCodeWithIss(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true, as: oauthtest.AuthServerOptions{IssParameter: true}})
	ctx := f.ctx()
	done := make(chan error, 1)
	go func() {
		_, err := f.call(ctx, f.h, "initialize")
		done <- err
	}()
	link, err := f.stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := oauthtest.Redirect(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.engine.callbacks.Deliver(loc.Query().Get("code")); err == nil || !strings.Contains(err.Error(), "whole address") {
		t.Errorf("Deliver(bare code) = %v, want a request for the whole address", err)
	}
	if err := f.engine.callbacks.Deliver(loc.String()); err != nil {
		t.Fatalf("Deliver(whole address) = %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.h.Current() == nil {
		t.Error("no token after the pasted address")
	}
}

// TestEngineLoginProbeOfAnOpenStream: an SSE upstream that opens its stream
// without asking for authorization must not hold the probe of `auth login`
// until the stream ends.
func TestEngineLoginProbeOfAnOpenStream(t *testing.T) {
	closed := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: endpoint\ndata: /messages?sessionId=1\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // open until the client goes
		close(closed)
	}))
	defer srv.Close()
	logs := new(oauthtest.Buffer)
	e := &Engine{Logger: newTestLogger(logs)}
	defer e.Close()
	h := e.Handler(Server{Name: "up", URL: srv.URL + "/sse", Transport: "sse", Store: newCredStore()})
	probed := make(chan struct{})
	go func() {
		h.probe(t.Context())
		close(probed)
	}()
	// Well under the probe's own 30 s limit, well over what it needs.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	select {
	case <-probed:
	case <-ctx.Done():
		t.Fatal("the probe is still reading the event stream")
	}
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("the probe left the stream open")
	}
	if !strings.Contains(logs.String(), "did not ask for authorization") {
		t.Errorf("probe log = %q", logs.String())
	}
}

// TestEngineLoginProbeErrorHidesQuery: the upstream URL's query may carry
// an API key; the probe's failure is logged without it.
func TestEngineLoginProbeErrorHidesQuery(t *testing.T) {
	logs := new(oauthtest.Buffer)
	e := &Engine{Logger: newTestLogger(logs)}
	defer e.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := "http://" + ln.Addr().String() + "/mcp?api_key=SECRET"
	ln.Close() // nothing listens: the probe fails to connect
	h := e.Handler(Server{Name: "up", URL: upstream, Store: newCredStore()})
	h.probe(t.Context())
	out := logs.String()
	if !strings.Contains(out, "cannot reach the upstream") || !strings.Contains(out, "/mcp") || strings.Contains(out, "SECRET") {
		t.Errorf("probe log = %q, want the failure with the URL and without its query", out)
	}
}

// TestEngineRefreshAfterRestartFindsTheRealServer: a server that names its
// resource metadata only in its challenge. After a restart the first
// refresh comes before any 401; it must still go to the authorization
// server, never with the refresh token to the MCP server's own origin.
func TestEngineRefreshAfterRestartFindsTheRealServer(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		as: oauthtest.AuthServerOptions{IssueRefreshTokens: true},
		rs: oauthtest.ResourceOptions{PRM: oauthtest.PRMCustom},
	})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	// A new process on the same store, an hour later: inside the margin.
	restarted := &Engine{Stderr: f.stderr, Logger: newTestLogger(testWriter{t}),
		Now: func() time.Time { return time.Now().Add(time.Hour - 30*time.Second) }}
	t.Cleanup(restarted.Close)
	h := restarted.Handler(f.srv)
	fl := refreshNow(t, h)
	<-fl.done
	if fl.err != nil {
		t.Fatalf("refresh after restart: %v", fl.err)
	}
	for _, r := range f.rs.Requests() {
		if strings.HasSuffix(r.Path, "/token") {
			t.Errorf("the MCP server got %s %s", r.Method, r.Path)
		}
	}
	if n := f.as.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes at the authorization server, want 1", n)
	}
	wantFirstLoginOnly(t, f)
}

// The refresh token never goes to a token endpoint of another issuer than
// the one the client was registered with, whatever discovery found.
func TestEngineRefreshOnlyAtTheRegisteringIssuer(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{IssueRefreshTokens: true}})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	// Discovery that went wrong: the MCP server's origin as the
	// authorization server.
	f.h.st.mu.Lock()
	f.h.st.disc = &Discovery{Issuer: f.rs.URL, Resource: f.rs.Endpoint,
		Metadata: &AuthServerMetadata{Issuer: f.rs.URL, TokenEndpoint: f.rs.URL + "/token"}}
	f.h.st.mu.Unlock()
	f.advance(time.Hour - 30*time.Second)
	fl := refreshNow(t, f.h)
	<-fl.done
	if fl.err == nil || !strings.Contains(fl.err.Error(), "not refreshing") {
		t.Errorf("refresh = %v, want it refused", fl.err)
	}
	for _, r := range f.rs.Requests() {
		if strings.HasSuffix(r.Path, "/token") {
			t.Errorf("the MCP server got %s %s", r.Method, r.Path)
		}
	}
	f.h.st.mu.Lock()
	defer f.h.st.mu.Unlock()
	if f.h.st.disc != nil {
		t.Error("the wrong discovery is still cached")
	}
}

// TestEngineRefreshIssuerSpellings: the client records the issuer as
// discovery named it, which the metadata may spell otherwise: with a
// trailing slash in the resource metadata (Python servers write one), or
// as a path under the MCP origin for a 2025-03-26 server without resource
// metadata. The refresh goes ahead; it used to be refused every time, and
// each expiry cost a browser login.
func TestEngineRefreshIssuerSpellings(t *testing.T) {
	tests := []struct {
		name string
		opts func(f **engineFixture) fixtureOptions
	}{
		{"trailing slash in the resource metadata", func(f **engineFixture) fixtureOptions {
			return fixtureOptions{
				as: oauthtest.AuthServerOptions{IssueRefreshTokens: true},
				rs: oauthtest.ResourceOptions{EditPRM: func(doc map[string]any) {
					doc["authorization_servers"] = []string{(*f).as.Issuer + "/"}
				}},
			}
		}},
		{"2025-03-26 server, metadata issuer under the origin", func(**engineFixture) fixtureOptions {
			return fixtureOptions{
				as: oauthtest.AuthServerOptions{IssueRefreshTokens: true, EndpointPrefix: "/oauth",
					EditMetadata: func(doc map[string]any) { doc["issuer"] = doc["issuer"].(string) + "/oauth" }},
				rs: oauthtest.ResourceOptions{PRM: oauthtest.PRMNone, SameOrigin: true},
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f *engineFixture
			f = newEngineFixture(t, tt.opts(&f))
			ctx := f.ctx()
			if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
				t.Fatalf("login call = %d, %v", status, err)
			}
			f.advance(time.Hour - 30*time.Second)
			fl := refreshNow(t, f.h)
			<-fl.done
			if fl.err != nil {
				t.Fatalf("refresh: %v", fl.err)
			}
			if n := f.as.CountGrant("refresh_token"); n != 1 {
				t.Errorf("%d refreshes at the authorization server, want 1", n)
			}
			wantRefreshAtExpiry(t, f, 2)
		})
	}
}

// wantRefreshAtExpiry expires the access tokens at the server, later than
// the last login or refresh, and checks that the next call is answered
// after a refresh (the server's count of refreshes reaching want), not
// after another browser login.
func wantRefreshAtExpiry(t *testing.T, f *engineFixture, want int) {
	t.Helper()
	f.advance(2 * freshLogin)
	f.as.ExpireAccessTokens()
	if status, err := f.call(f.ctx(), f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("call after the expiry = %d, %v", status, err)
	}
	if n := f.as.CountGrant("refresh_token"); n != want {
		t.Errorf("%d refreshes at the authorization server, want %d", n, want)
	}
	wantFirstLoginOnly(t, f)
}

// TestEngineOtherSchemeNotAuthorized: a 401 that asks only for another
// scheme (Basic, an API key) goes to the client as it is, without
// discovery or a registration at a server that never asked for OAuth.
func TestEngineOtherSchemeNotAuthorized(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{})
	for _, challenge := range [][]string{{`Basic realm="x"`}, {`ApiKey header="X-Api-Key"`, `Basic realm="y"`}} {
		res := &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{"Www-Authenticate": challenge}}
		retry, err := f.h.Challenge(f.ctx(), res, "")
		if retry || err != nil {
			t.Errorf("Challenge(%q) = %v, %v; want false, nil", challenge, retry, err)
		}
	}
	if reqs := f.rs.Requests(); len(reqs) != 0 {
		t.Errorf("the MCP server got %d requests, want none: %+v", len(reqs), reqs)
	}
	if n := f.as.Count(oauthtest.EndpointMetadata) + f.as.Count(oauthtest.EndpointRegister) + f.as.Count(oauthtest.EndpointAuthorize); n != 0 {
		t.Errorf("the authorization server got %d requests, want none", n)
	}
}

// TestEngineUsesFastAgentsRegistration: fast-agent registers its client
// with http://127.0.0.1:PORT/callback; the proxy, whose redirect URI is
// localhost, logs in with that registration and its redirect URI instead
// of registering again (and overwriting it), and its own registrations
// list both spellings, so that fast-agent can use them too.
func TestEngineUsesFastAgentsRegistration(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{})
	theirs := fmt.Sprintf("http://127.0.0.1:%d/callback", f.srv.RedirectPort)
	ci, err := (&Discoverer{}).Register(f.ctx(), f.as.RegistrationEndpoint, RegistrationRequest{
		ClientName: "fast-agent", RedirectURIs: []string{theirs}, TokenEndpointAuthMethod: "none",
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"}})
	if err != nil {
		t.Fatal(err)
	}
	ci.Issuer = f.as.Issuer
	if err := (&Credentials{Store: f.store}).SaveClient(Identity(f.srv.URL), ci); err != nil {
		t.Fatal(err)
	}
	if status, err := f.call(f.ctx(), f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointRegister); n != 1 {
		t.Errorf("%d registrations, want fast-agent's only", n)
	}
	for _, r := range f.as.Requests() {
		if r.Endpoint == oauthtest.EndpointAuthorize && r.Query.Get("redirect_uri") != theirs {
			t.Errorf("authorization request with redirect_uri %q, want %q", r.Query.Get("redirect_uri"), theirs)
		}
	}

	// A registration of our own lists both.
	f.as.ForgetClients()
	if err := f.h.Logout(); err != nil { // forgets the registration too
		t.Fatal(err)
	}
	if status, err := f.call(f.ctx(), f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("second login call = %d, %v", status, err)
	}
	stored, _, err := (&Credentials{Store: f.store}).Client(Identity(f.srv.URL))
	if err != nil || stored == nil {
		t.Fatalf("stored client = %v, %v", stored, err)
	}
	want := f.srv.redirectURIs() // ours, then theirs
	if !slices.Equal(stored.RedirectURIs, want) {
		t.Errorf("registered redirect URIs %q, want %q", stored.RedirectURIs, want)
	}
}

// TestEngineShortLivedTokenRefreshedOnce: a token that lives no longer
// than the refresh margin is refreshed halfway through its life, not on
// every request from the moment it is issued.
func TestEngineShortLivedTokenRefreshedOnce(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{
		IssueRefreshTokens: true, RotateRefreshTokens: true, AccessTokenTTL: 45 * time.Second}})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	calls := func(n int) {
		t.Helper()
		for range n {
			if status, err := f.call(ctx, f.h, "ping"); status != 200 || err != nil {
				t.Fatalf("call = %d, %v", status, err)
			}
		}
	}
	calls(5)
	if n := f.as.CountGrant("refresh_token"); n != 0 {
		t.Errorf("%d refreshes of a token in the first half of its life, want 0", n)
	}
	f.advance(25 * time.Second) // 20 s left: inside half of 45 s
	calls(1)
	deadline := time.Now().Add(20 * time.Second)
	for f.as.CountGrant("refresh_token") < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	calls(5) // the refreshed token is again in the first half of its life
	if n := f.as.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	wantFirstLoginOnly(t, f)
}

// otherProcess returns an engine of its own on the fixture's clock, as a
// second process (fast-agent, another proxy) sharing the store would be.
func (f *engineFixture) otherProcess() *Engine {
	e := &Engine{Stderr: f.stderr, Logger: newTestLogger(testWriter{f.t}), Now: f.engine.Now}
	f.t.Cleanup(e.Close)
	return e
}

// TestEngineRefreshSharesRotationWithOtherProcesses: two processes share the
// keychain (the proxy and fast-agent, or two proxies) and the server
// rotates refresh tokens. When one has refreshed, the other uses its
// result instead of redeeming the old refresh token a second time.
func TestEngineRefreshSharesRotationWithOtherProcesses(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{
		IssueRefreshTokens: true, RotateRefreshTokens: true}})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	other := f.otherProcess()
	b := other.Handler(f.srv)
	if _, err := b.Token(ctx); err != nil { // b reads the login's token
		t.Fatal(err)
	}

	waitRefresh := func(h *Handler) *flight {
		t.Helper()
		fl := refreshNow(t, h)
		<-fl.done
		return fl
	}
	f.advance(time.Hour - 30*time.Second)
	if fl := waitRefresh(f.h); fl.err != nil {
		t.Fatalf("first process's refresh: %v", fl.err)
	}
	if fl := waitRefresh(b); fl.err != nil {
		t.Fatalf("second process's refresh: %v", fl.err)
	}

	if n := f.as.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want 1: the second process must use the first one's", n)
	}
	if a, bt := f.h.Current(), b.Current(); a == nil || bt == nil || a.AccessToken != bt.AccessToken {
		t.Errorf("current tokens differ: %+v and %+v", a, bt)
	}
	if st := f.stored(); st == nil || st.AccessToken != f.h.Current().AccessToken {
		t.Errorf("stored token = %+v, want the refreshed one", st)
	}
	if status, err := f.call(ctx, b, "tools/list"); status != 200 || err != nil {
		t.Errorf("second process's call = %d, %v", status, err)
	}
	wantFirstLoginOnly(t, f)
}

// TestEngineAdoptedTokenKeepsTheRefreshToken: fast-agent before 0.10
// stores a refreshed token without its refresh token (null). This process
// uses that token, and keeps refreshing with the refresh token it holds
// instead of sending the user to a browser login at the next expiry.
func TestEngineAdoptedTokenKeepsTheRefreshToken(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{IssueRefreshTokens: true}})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	client, _, err := (&Credentials{Store: f.store}).Client(Identity(f.srv.URL))
	if err != nil || client == nil {
		t.Fatalf("stored client = %v, %v", client, err)
	}
	f.as.ExpireAccessTokens()
	theirs, _ := f.as.IssueTokens(client.ClientID, "", f.rs.Endpoint)
	if err := (&Credentials{Store: f.store}).SaveToken(Identity(f.srv.URL),
		&Token{AccessToken: theirs, TokenType: "Bearer", ExpiresIn: 3600}); err != nil {
		t.Fatal(err)
	}
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("call after the other process's refresh = %d, %v", status, err)
	}
	if cur := f.h.Current(); cur == nil || cur.AccessToken != theirs || cur.RefreshToken == "" {
		t.Fatalf("current = %+v, want the other process's token with our refresh token", cur)
	}
	wantRefreshAtExpiry(t, f, 1)
}

// TestEngineLoginElsewhereEndsTheWait: while serve's login waits for the
// user, auth login (another process, its own callback port) logs in. The
// requests waiting for serve's login go on with that token, instead of
// waiting until serve's login times out.
func TestEngineLoginElsewhereEndsTheWait(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true, timeout: time.Minute})
	ctx := f.ctx()
	done := make(chan error, 1)
	go func() {
		status, err := f.call(ctx, f.h, "initialize")
		if err == nil && status != 200 {
			err = fmt.Errorf("status %d", status)
		}
		done <- err
	}()
	if _, err := f.stderr.NextLink(ctx); err != nil { // serve's login waits
		t.Fatal(err)
	}
	other := &Engine{Stderr: new(oauthtest.Buffer), Logger: newTestLogger(testWriter{t})}
	t.Cleanup(other.Close)
	srv := f.srv
	srv.RedirectPort = freePort(t)
	go func() {
		link, err := other.Stderr.(*oauthtest.Buffer).NextLink(ctx)
		if err == nil {
			_, err = f.as.FollowLink(ctx, link)
		}
		if err != nil && ctx.Err() == nil {
			t.Error(err)
		}
	}()
	if _, err := other.Handler(srv).Login(ctx); err != nil {
		t.Fatalf("the other process's login: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the waiting request: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting request still waits for serve's own login")
	}
	if f.h.Current() == nil || f.h.Current().AccessToken != f.stored().AccessToken {
		t.Errorf("current = %+v, want the stored token", f.h.Current())
	}
}

// flakyKeychain is a keychain backend whose next Get fails once when
// failNext is set, as a keychain that stops answering does.
type flakyKeychain struct {
	mu       sync.Mutex
	m        map[string]string
	failNext bool
}

func (k *flakyKeychain) Get(service, user string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failNext {
		k.failNext = false
		return "", errors.New("keychain locked")
	}
	v, ok := k.m[service+"\x00"+user]
	if !ok {
		return "", store.ErrNotFound
	}
	return v, nil
}

func (k *flakyKeychain) Set(service, user, password string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[service+"\x00"+user] = password
	return nil
}

func (k *flakyKeychain) Delete(service, user string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, service+"\x00"+user)
	return nil
}

// TestEngineRefreshAfterTheKeychainFails: once the keychain fails, the
// process keeps its values in memory, where the client registration is
// not. The token is still refreshed with the registration it was obtained
// with, rather than a browser login and a new registration.
func TestEngineRefreshAfterTheKeychainFails(t *testing.T) {
	kc := &flakyKeychain{m: map[string]string{}}
	f := newEngineFixture(t, fixtureOptions{
		as:     oauthtest.AuthServerOptions{IssueRefreshTokens: true},
		server: func(s *Server) { s.Store = &store.Keychain{Backend: kc, Logger: newTestLogger(testWriter{t})} },
	})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	kc.mu.Lock()
	kc.failNext = true
	kc.mu.Unlock()
	f.advance(time.Hour - 30*time.Second)
	fl := refreshNow(t, f.h)
	<-fl.done
	if fl.err != nil {
		t.Fatalf("refresh after the keychain failed: %v", fl.err)
	}
	if n := f.as.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	if n := f.as.Count(oauthtest.EndpointRegister); n != 1 {
		t.Errorf("%d registrations, want the login's only", n)
	}
	wantFirstLoginOnly(t, f)
}

// slowSaves is a store whose token writes land late, as another process's
// save does while this one's refresh is refused.
type slowSaves struct {
	Store
	key   string
	delay time.Duration
}

func (s slowSaves) Set(key string, value []byte) error {
	if key == s.key {
		time.Sleep(s.delay)
	}
	return s.Store.Set(key, value)
}

// TestEngineRefreshRaceWithRotation: two processes refresh the same token
// at a server that rotates refresh tokens. The second is refused
// (invalid_grant) while the first is still saving its result; it waits
// for that save and uses the token, rather than dropping its own and
// leaving the user a browser login.
func TestEngineRefreshRaceWithRotation(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{
		IssueRefreshTokens: true, RotateRefreshTokens: true}})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	winnerEngine := f.otherProcess()
	srv := f.srv
	srv.Store = slowSaves{Store: f.store, key: TokensKey(Identity(f.srv.URL)), delay: 300 * time.Millisecond}
	winner := winnerEngine.Handler(srv)
	if _, err := winner.Token(ctx); err != nil { // it reads the login's token
		t.Fatal(err)
	}
	f.advance(time.Hour - 30*time.Second)
	won := refreshNow(t, winner)
	for f.as.CountGrant("refresh_token") < 1 {
		time.Sleep(time.Millisecond) // the winner has redeemed the refresh token
	}
	lost := refreshNow(t, f.h)
	<-lost.done
	<-won.done
	if won.err != nil || lost.err != nil {
		t.Fatalf("refreshes: %v, %v; want both to end with the winner's token", won.err, lost.err)
	}
	w, l, stored := winner.Current(), f.h.Current(), f.stored()
	if w == nil || l == nil || stored == nil || l.AccessToken != w.AccessToken || stored.AccessToken != w.AccessToken {
		t.Errorf("winner %+v, loser %+v, stored %+v; want the winner's token everywhere", w, l, stored)
	}
	if n := f.as.CountGrant("refresh_token"); n != 2 {
		t.Errorf("%d refresh requests, want 2 (the second refused)", n)
	}
	wantFirstLoginOnly(t, f)
}

// A token this process could not save leaves an older record in the store;
// that record is not mistaken for another process's newer one.
func TestEngineRefreshAfterAFailedSave(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{
		IssueRefreshTokens: true, RotateRefreshTokens: true}})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	f.store.mu.Lock()
	f.store.failSet = TokensKey(Identity(f.rs.Endpoint))
	f.store.mu.Unlock()
	for i := range 2 {
		f.advance(time.Hour - 30*time.Second)
		fl := refreshNow(t, f.h)
		<-fl.done
		if fl.err != nil {
			t.Fatalf("refresh %d: %v", i+1, fl.err)
		}
	}
	if n := f.as.CountGrant("refresh_token"); n != 2 {
		t.Errorf("%d refreshes, want 2", n)
	}
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Errorf("call = %d, %v", status, err)
	}
	wantFirstLoginOnly(t, f)
}

// TestEngineForgottenClientRegisteredAgain: an authorization server that
// has forgotten the stored client shows an error page and never redirects.
// After that login times out, the next one registers again instead of
// showing the same dead client_id forever; but not after every login that
// times out.
func TestEngineForgottenClientRegisteredAgain(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true})
	ctx := f.ctx()
	follow := func(wantStatus int) {
		link, err := f.stderr.NextLink(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		res, err := f.as.FollowLink(ctx, link)
		switch {
		case wantStatus == http.StatusOK && (err != nil || res.StatusCode != http.StatusOK):
			t.Errorf("following the link: %v, %v; want the callback's 200", res, err)
		case wantStatus != http.StatusOK && (err == nil || !strings.Contains(err.Error(), strconv.Itoa(wantStatus))):
			t.Errorf("following the link: %v; want the authorization server's %d", err, wantStatus)
		}
	}
	// Each user is waited for: the callback page may reach the browser
	// after the replayed request, and the test's end cancels ctx.
	var user sync.WaitGroup
	defer user.Wait()
	user.Go(func() { follow(http.StatusOK) })
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("first login: %d, %v", status, err)
	}
	user.Wait()

	f.as.ForgetClients()
	f.as.ExpireAccessTokens()
	f.advance(time.Minute)                            // the token is no longer "just issued"
	f.engine.LoginTimeout = time.Second               // for the login nobody can complete
	user.Go(func() { follow(http.StatusBadRequest) }) // the error page: no redirect
	if _, err := f.call(ctx, f.h, "tools/list"); !errors.Is(err, ErrLoginTimeout) {
		t.Fatalf("login with the forgotten client = %v, want a timeout", err)
	}
	user.Wait()

	f.engine.LoginTimeout = 30 * time.Second
	user.Go(func() { follow(http.StatusOK) })
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("login after the timeout: %d, %v", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointRegister); n != 2 {
		t.Errorf("%d registrations, want 2", n)
	}

	// Logins nobody completes drop the registration at most once a day,
	// unless one completes in between: mostly the user just did not follow
	// the link, and each drop costs a registration at the authorization
	// server.
	login := func(step string, follows bool) {
		f.as.ExpireAccessTokens()
		f.advance(time.Minute) // the token is no longer "just issued"
		f.engine.LoginTimeout = 30 * time.Second
		if follows {
			user.Go(func() { follow(http.StatusOK) })
		} else {
			f.engine.LoginTimeout = time.Second
			user.Go(func() {
				if _, err := f.stderr.NextLink(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		status, err := f.call(ctx, f.h, "tools/list")
		user.Wait()
		switch {
		case follows && (status != 200 || err != nil):
			t.Fatalf("%s: login = %d, %v; want 200", step, status, err)
		case !follows && !errors.Is(err, ErrLoginTimeout):
			t.Fatalf("%s: ignored login = %v, want a timeout", step, err)
		}
	}
	registrations := func(step string, want int) {
		t.Helper()
		if n := f.as.Count(oauthtest.EndpointRegister); n != want {
			t.Errorf("%s: %d registrations, want %d", step, n, want)
		}
	}
	login("A", false) // drops the registration: the last login completed
	login("B", false) // registers anew
	login("C", false) // keeps it: dropped less than a day ago
	login("D", true)
	registrations("after three ignored logins and one completed", 3)
	login("E", false) // drops it: a login completed since
	login("F", false) // registers anew
	registrations("after a completed login and two ignored ones", 4)
	f.advance(clientDropInterval + time.Hour)
	login("G", false) // drops it: a day passed
	login("H", true)  // registers anew
	registrations("a day later", 5)
}

// TestEngineStepUpRefusedIsNotAskedAgainAtOnce: the authorization server
// refuses a scope the resource asks for; each later request gets the 403
// instead of another login link, until the cool-down ends.
func TestEngineStepUpRefusedIsNotAskedAgainAtOnce(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true,
		as: oauthtest.AuthServerOptions{ScopesSupported: []string{"mcp:basic"}, StrictScopes: true},
		rs: oauthtest.ResourceOptions{ChallengeScope: "mcp:basic",
			RequiredScopes: func(r *http.Request, body []byte) []string {
				if oauthtest.JSONRPCMethod(body) == "tools/call" {
					return []string{"mcp:basic", "mcp:admin"}
				}
				return nil
			}},
	})
	ctx := f.ctx()
	userCtx, stop := context.WithCancel(ctx)
	var user sync.WaitGroup
	user.Go(func() { // follows every link; the refused one ends on an error page
		for {
			link, err := f.stderr.NextLink(userCtx)
			if err != nil {
				return
			}
			f.as.FollowLink(userCtx, link)
		}
	})
	t.Cleanup(func() { stop(); user.Wait() })
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	if status, err := f.call(ctx, f.h, "tools/call"); status != http.StatusForbidden || err == nil {
		t.Errorf("first tools/call = %d, %v; want 403 and the failed step-up", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 2 {
		t.Fatalf("%d authorizations, want the login and one step-up", n)
	}
	for i := range 3 {
		if status, err := f.call(ctx, f.h, "tools/call"); status != http.StatusForbidden || err != nil {
			t.Errorf("tools/call %d = %d, %v; want the upstream's 403", i+2, status, err)
		}
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 2 {
		t.Errorf("%d authorizations after three more refused calls, want still 2", n)
	}
	f.advance(stepUpCooldown + time.Second)
	f.call(ctx, f.h, "tools/call")
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 3 {
		t.Errorf("%d authorizations after the cool-down, want a new step-up (3)", n)
	}
}

// loggedInForStepUp returns a fixture whose user followed the first login
// link only, with a 1 s login timeout from then on, and a 403 asking for a
// scope the login did not get.
func loggedInForStepUp(t *testing.T) (*engineFixture, *http.Response) {
	t.Helper()
	f := newEngineFixture(t, fixtureOptions{noUser: true,
		as: oauthtest.AuthServerOptions{IssueRefreshTokens: true}})
	ctx := f.ctx()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		if link, err := f.stderr.NextLink(ctx); err == nil {
			f.as.FollowLink(ctx, link)
		}
	}()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	<-followed
	f.engine.LoginTimeout = time.Second // for the step-up nobody follows
	return f, &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{
		"Www-Authenticate": {`Bearer error="insufficient_scope", scope="mcp:extra"`}}}
}

// A step-up the user ignores times out; the client registration stays,
// since the token in use needs it to refresh.
func TestEngineIgnoredStepUpKeepsTheClient(t *testing.T) {
	f, forbidden := loggedInForStepUp(t)
	ctx := f.ctx()
	if _, err := f.h.Challenge(ctx, forbidden, f.h.Current().AccessToken); !errors.Is(err, ErrLoginTimeout) {
		t.Fatalf("ignored step-up = %v, want a timeout", err)
	}
	if f.store.raw(ClientInfoKey(Identity(f.rs.Endpoint))) == "" {
		t.Error("the client registration was deleted")
	}
	f.advance(time.Hour - 30*time.Second)
	fl := refreshNow(t, f.h)
	<-fl.done
	if fl.err != nil {
		t.Errorf("refresh after the ignored step-up: %v", fl.err)
	}
}

// failOnce fails the next POST to a /token path, once armed.
type failOnce struct {
	armed atomic.Bool
	base  http.RoundTripper
}

func (fo *failOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") && fo.armed.CompareAndSwap(true, false) {
		return nil, errors.New("connection reset (simulated)")
	}
	return fo.base.RoundTrip(r)
}

// Another process rotated the refresh token; this process's first attempt
// to use its record fails on the network. The next attempt still uses
// that record, never the old refresh token the server has rotated away.
func TestEngineRotatedByAnotherProcessAfterATransientFailure(t *testing.T) {
	fail := &failOnce{base: http.DefaultTransport}
	f := newEngineFixture(t, fixtureOptions{
		as: oauthtest.AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true},
		engine: func(e *Engine) {
			e.HTTPClient = &http.Client{Transport: fail, Timeout: 10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	t0 := f.h.Current()
	other := &Engine{Stderr: f.stderr, Logger: newTestLogger(testWriter{t})}
	t.Cleanup(other.Close)
	b := other.Handler(f.srv)
	unauthorized := &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}}
	if ok, err := b.Challenge(ctx, unauthorized, t0.AccessToken); !ok || err != nil {
		t.Fatalf("the other process's refresh = %v, %v", ok, err)
	}

	f.advance(time.Hour - 30*time.Second) // both tokens inside the margin here
	fail.armed.Store(true)
	fl := refreshNow(t, f.h)
	<-fl.done
	if fl.err == nil {
		t.Fatal("the refresh did not meet the simulated failure")
	}
	f.advance(5 * time.Second)
	if ok, err := f.h.Challenge(ctx, unauthorized, t0.AccessToken); !ok || err != nil {
		t.Errorf("refresh after the failure = %v, %v", ok, err)
	}
	wantFirstLoginOnly(t, f)
	if st := f.stored(); st == nil || st.AccessToken != f.h.Current().AccessToken {
		t.Errorf("stored %+v, want the current token", st)
	}
}

// An upstream that refuses every token it has just issued, with refresh
// tokens issued: the refresh after the login is refused too, and that
// does not start another login on every request.
func TestEngineRefusedFreshTokensWithRefreshTokens(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		as: oauthtest.AuthServerOptions{IssueRefreshTokens: true},
		rs: oauthtest.ResourceOptions{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		})}})
	ctx := f.ctx()
	for i := range 3 {
		if status, err := f.call(ctx, f.h, "initialize"); status != http.StatusUnauthorized || err != nil {
			t.Errorf("call %d = %d, %v; want the upstream's 401", i+1, status, err)
		}
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d logins for three refused calls, want 1", n)
	}
}

// The step-up cool-down counts from the failure: a step-up the user
// ignores until the login times out is not asked for again at once.
func TestEngineStepUpCooldownFromTheTimeout(t *testing.T) {
	f, forbidden := loggedInForStepUp(t)
	f.engine.LoginTimeout = 3 * time.Second // time for the clock to move first
	ctx := f.ctx()
	ignored := make(chan struct{})
	go func() { // the link is ignored while the (engine) clock runs to the timeout
		defer close(ignored)
		if _, err := f.stderr.NextLink(ctx); err == nil {
			f.advance(stepUpCooldown)
		}
	}()
	if _, err := f.h.Challenge(ctx, forbidden, f.h.Current().AccessToken); !errors.Is(err, ErrLoginTimeout) {
		t.Fatalf("ignored step-up = %v, want a timeout", err)
	}
	<-ignored
	if ok, err := f.h.Challenge(ctx, forbidden, f.h.Current().AccessToken); ok || err != nil {
		t.Errorf("step-up right after the timeout = %v, %v; want the 403 passed on", ok, err)
	}
	if n := strings.Count(f.stderr.String(), "Open this link"); n != 2 {
		t.Errorf("%d login links, want the login's and one step-up's", n)
	}
}

// heldGetStore holds one Get of key, once armed, until release is closed.
type heldGetStore struct {
	*credStore
	key              string
	armed            atomic.Bool
	entered, release chan struct{}
}

func (s *heldGetStore) Get(key string) ([]byte, error) {
	b, err := s.credStore.Get(key)
	if key == s.key && s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return b, err
}

// A logout while a login is adopting a token another process stored: the
// adoption loses, and the logged-out identity stays logged out.
func TestEngineLogoutDuringAdoption(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true, timeout: time.Second})
	id := Identity(f.rs.Endpoint)
	hs := &heldGetStore{credStore: f.store, key: TokensKey(id), entered: make(chan struct{}), release: make(chan struct{})}
	srv := f.srv
	srv.Store = hs
	h := f.engine.Handler(srv)
	creds := &Credentials{Store: f.store}
	if err := creds.SaveToken(id, &Token{AccessToken: "A", ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	h.load() // this process has A, expired
	if err := creds.SaveToken(id, &Token{AccessToken: "B", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err) // another process logs in
	}

	hs.armed.Store(true)
	ctx, cancel := context.WithCancel(f.ctx())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Challenge(ctx, &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}}, "A")
	}()
	<-hs.entered // the login has read B
	h.st.mu.Lock()
	login := h.st.login
	h.st.mu.Unlock()
	if err := h.Logout(); err != nil {
		t.Fatal(err)
	}
	close(hs.release)
	cancel()
	<-done
	<-login.done // adopted, or on to a link nobody follows until the timeout
	if cur := h.Current(); cur != nil {
		t.Errorf("after the logout, current = %+v", cur)
	}
}
