package oauth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
)

// engineFixture is an engine in front of a fake authorization server and
// protected resource, with a user who follows every printed link.
type engineFixture struct {
	t      *testing.T
	as     *oauthtest.AuthServer
	rs     *oauthtest.ResourceServer
	store  *credStore
	stderr *oauthtest.Buffer
	engine *Engine
	srv    Server
	h      *Handler
	links  atomic.Int32
	skew   atomic.Int64 // added to the engine's clock
}

// advance moves the engine's clock ahead by d.
func (f *engineFixture) advance(d time.Duration) { f.skew.Add(int64(d)) }

type fixtureOptions struct {
	as      oauthtest.AuthServerOptions
	rs      oauthtest.ResourceOptions
	server  func(*Server)
	engine  func(*Engine)
	noUser  bool // nobody follows the links
	timeout time.Duration
}

func newEngineFixture(t *testing.T, o fixtureOptions) *engineFixture {
	t.Helper()
	f := &engineFixture{t: t, store: newCredStore(), stderr: new(oauthtest.Buffer)}
	f.as = oauthtest.NewAuthServer(t, o.as)
	f.rs = oauthtest.NewResourceServer(t, f.as, o.rs)
	f.engine = &Engine{Stderr: f.stderr, Logger: newTestLogger(testWriter{t}), LoginTimeout: o.timeout,
		Now: func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) }}
	if o.engine != nil {
		o.engine(f.engine)
	}
	t.Cleanup(f.engine.Close)
	f.srv = Server{Name: "upstream", URL: f.rs.Endpoint, Store: f.store, RedirectPort: freePort(t)}
	if o.server != nil {
		o.server(&f.srv)
	}
	f.h = f.engine.Handler(f.srv)
	if !o.noUser {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { f.follow(ctx) })
		t.Cleanup(func() { cancel(); wg.Wait() })
	}
	return f
}

// follow plays the user: it opens every link the engine prints.
func (f *engineFixture) follow(ctx context.Context) {
	for {
		link, err := f.stderr.NextLink(ctx)
		if err != nil {
			return
		}
		f.links.Add(1)
		res, err := f.as.FollowLink(ctx, link)
		if err != nil {
			if ctx.Err() == nil {
				f.t.Errorf("following the link: %v", err)
			}
			return
		}
		if res.StatusCode != http.StatusOK {
			f.t.Errorf("callback answered %s", res.Status)
		}
	}
}

// call sends an MCP request to the upstream with the handler's token,
// handling challenges as the proxy does, and returns the final status.
func (f *engineFixture) call(ctx context.Context, h *Handler, method string) (int, error) {
	for attempt := 0; ; attempt++ {
		tok, err := h.Token(ctx)
		if err != nil {
			return 0, err
		}
		res, err := f.post(ctx, tok, method)
		if err != nil {
			return 0, err
		}
		if (res.StatusCode != 401 && res.StatusCode != 403) || attempt == 4 {
			return res.StatusCode, nil
		}
		retry, err := h.Challenge(ctx, res, tok)
		if err != nil {
			return res.StatusCode, err
		}
		if !retry {
			return res.StatusCode, nil
		}
	}
}

func (f *engineFixture) post(ctx context.Context, tok, method string) (*http.Response, error) {
	body := `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":{}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.rs.Endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res, nil
}

func (f *engineFixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(f.t.Context(), 30*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

func (f *engineFixture) stored() *Token {
	f.t.Helper()
	tok, _, err := (&Credentials{Store: f.store}).Token(Identity(f.rs.Endpoint))
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func freePort(t *testing.T) int { return oauthtest.FreePort(t) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestEngineFullFlow(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		as: oauthtest.AuthServerOptions{IssueRefreshTokens: true},
		rs: oauthtest.ResourceOptions{ChallengeScope: "mcp:read"},
	})
	ctx := f.ctx()
	status, err := f.call(ctx, f.h, "initialize")
	if err != nil || status != http.StatusOK {
		t.Fatalf("call = %d, %v", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointRegister); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
	if n := f.as.Count(oauthtest.EndpointToken); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	var authz oauthtest.Request
	for _, r := range f.as.Requests() {
		switch r.Endpoint {
		case oauthtest.EndpointAuthorize:
			authz = r
		case oauthtest.EndpointToken:
			if got := r.Form.Get("resource"); got != f.rs.Endpoint {
				t.Errorf("token request resource = %q, want %q", got, f.rs.Endpoint)
			}
		}
	}
	q := authz.Query
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || len(q.Get("state")) < 20 {
		t.Errorf("authorization request lacks S256 or state: %v", q)
	}
	if q.Get("resource") != f.rs.Endpoint || q.Get("scope") != "mcp:read" {
		t.Errorf("authorization resource/scope = %q/%q", q.Get("resource"), q.Get("scope"))
	}
	if want := "http://localhost:" + strconv.Itoa(f.srv.RedirectPort) + "/callback"; q.Get("redirect_uri") != want {
		t.Errorf("redirect_uri = %q, want %q", q.Get("redirect_uri"), want)
	}
	line := f.stderr.String()
	if !strings.Contains(line, "Open this link to authorize upstream: "+f.as.AuthorizationEndpoint) {
		t.Errorf("login line = %q", line)
	}
	tok := f.stored()
	if tok == nil || tok.RefreshToken == "" || tok.ExpiresAt.IsZero() || tok.Scope != "mcp:read" {
		t.Fatalf("stored token = %+v", tok)
	}
	ids, _ := (&Credentials{Store: f.store}).Identities()
	if len(ids) != 1 || ids[0] != Identity(f.rs.Endpoint) {
		t.Errorf("index = %q", ids)
	}
	if ci, _, _ := (&Credentials{Store: f.store}).Client(Identity(f.rs.Endpoint)); ci == nil || ci.Issuer != f.as.Issuer {
		t.Errorf("stored client = %+v", ci)
	}
	// Further calls use the token without new logins.
	for range 5 {
		if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
			t.Fatalf("later call = %d, %v", status, err)
		}
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations, want 1", n)
	}
}

func TestEngineConcurrentFirstRequestsShareOneLogin(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{})
	ctx := f.ctx()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
				t.Errorf("call = %d, %v", status, err)
			}
		})
	}
	wg.Wait()
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations for 50 concurrent requests, want 1", n)
	}
	if n := f.links.Load(); n != 1 {
		t.Errorf("%d links printed, want 1", n)
	}
}

func TestEngineConcurrentRefreshIsSingle(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		as:     oauthtest.AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true, AccessTokenTTL: 30 * time.Second},
		engine: func(e *Engine) { e.RefreshMargin = 5 * time.Second },
	})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	before := f.as.Count(oauthtest.EndpointToken)
	// Pretend the 30 s token expired: the engine's clock moves 31 s ahead.
	f.advance(31 * time.Second)
	var wg sync.WaitGroup
	tokens := make(chan string, 50)
	for range 50 {
		wg.Go(func() {
			tok, err := f.h.Token(ctx)
			if err != nil {
				t.Error(err)
			}
			tokens <- tok
		})
	}
	wg.Wait()
	close(tokens)
	if n := f.as.Count(oauthtest.EndpointToken) - before; n != 1 {
		t.Errorf("%d refresh requests for 50 callers, want 1", n)
	}
	stored := f.stored()
	for tok := range tokens {
		if tok != stored.AccessToken {
			t.Errorf("a caller got a token other than the refreshed one")
			break
		}
	}
	if n := f.as.RefreshTokenReuses(); n != 0 {
		t.Errorf("a rotated refresh token was sent %d times again", n)
	}
}

func TestEngineRefreshesOnUnauthorized(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		as: oauthtest.AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true, RequireResource: true},
	})
	ctx := f.ctx()
	if status, _ := f.call(ctx, f.h, "initialize"); status != 200 {
		t.Fatalf("login call = %d", status)
	}
	first := f.stored()
	f.as.ExpireAccessTokens()
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("call after expiry = %d, %v", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations, want 1: a 401 with a refresh token must refresh first", n)
	}
	second := f.stored()
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Error("the rotated tokens were not saved")
	}
	var refresh oauthtest.Request
	for _, r := range f.as.Requests() {
		if r.Endpoint == oauthtest.EndpointToken && r.Form.Get("grant_type") == "refresh_token" {
			refresh = r
		}
	}
	if refresh.Form.Get("resource") != f.rs.Endpoint {
		t.Errorf("refresh resource = %q, want %q", refresh.Form.Get("resource"), f.rs.Endpoint)
	}
}

func TestEngineInvalidGrantLogsInAgain(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{IssueRefreshTokens: true}})
	ctx := f.ctx()
	if status, _ := f.call(ctx, f.h, "initialize"); status != 200 {
		t.Fatal("login failed")
	}
	f.as.RevokeRefreshTokens()
	f.as.ExpireAccessTokens()
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("call = %d, %v", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 2 {
		t.Errorf("%d authorizations, want 2 (invalid_grant → new login)", n)
	}
	if n := f.as.Count(oauthtest.EndpointRegister); n != 1 {
		t.Errorf("%d registrations, want 1 (the client is still good)", n)
	}
}

func TestEngineInvalidClientRegistersAgain(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{IssueRefreshTokens: true}})
	ctx := f.ctx()
	if status, _ := f.call(ctx, f.h, "initialize"); status != 200 {
		t.Fatal("login failed")
	}
	f.as.ForgetClients()
	f.as.ExpireAccessTokens()
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("call = %d, %v", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointRegister); n != 2 {
		t.Errorf("%d registrations, want 2 (invalid_client → register again)", n)
	}
}

func TestEngineStepUp(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		rs: oauthtest.ResourceOptions{
			ChallengeScope: "mcp:basic",
			RequiredScopes: func(r *http.Request, body []byte) []string {
				if oauthtest.JSONRPCMethod(body) == "tools/call" {
					return []string{"mcp:basic", "mcp:write"}
				}
				return nil
			},
		},
	})
	ctx := f.ctx()
	if status, _ := f.call(ctx, f.h, "tools/list"); status != 200 {
		t.Fatal("login failed")
	}
	if status, err := f.call(ctx, f.h, "tools/call"); status != 200 || err != nil {
		t.Fatalf("tools/call = %d, %v", status, err)
	}
	var scopes []string
	for _, r := range f.as.Requests() {
		if r.Endpoint == oauthtest.EndpointAuthorize {
			scopes = append(scopes, r.Query.Get("scope"))
		}
	}
	if len(scopes) != 2 || scopes[0] != "mcp:basic" || scopes[1] != "mcp:basic mcp:write" {
		t.Errorf("authorization scopes = %q, want [mcp:basic, mcp:basic mcp:write]", scopes)
	}
}

func TestEngineStepUpStopsWhenChallengeRepeats(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		// Like the conformance scope-retry-limit server: every authorized
		// request is refused for a scope, whatever the token holds.
		rs: oauthtest.ResourceOptions{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="mcp:admin"`)
			w.WriteHeader(http.StatusForbidden)
		})},
	})
	ctx := f.ctx()
	status, err := f.call(ctx, f.h, "tools/list")
	if status != http.StatusForbidden || err != nil {
		t.Fatalf("call = %d, %v; want the upstream's 403", status, err)
	}
	// One login for the 401, one step-up for mcp:admin; the repeated
	// challenge then goes to the client as it is.
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 2 {
		t.Errorf("%d authorizations, want 2", n)
	}
}

func TestEngineAdoptsTokenStoredByAnotherProcess(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true,
		as: oauthtest.AuthServerOptions{PreRegistered: map[string]string{"other-client": "secret"}}})
	ctx := f.ctx()
	if tok, _ := f.h.Token(ctx); tok != "" {
		t.Fatalf("Token = %q before any login", tok)
	}
	// Another process logs in meanwhile.
	at, _ := f.as.IssueTokens("other-client", "", f.rs.Endpoint)
	other := &Credentials{Store: f.store}
	if err := other.SaveToken(Identity(f.rs.Endpoint), &Token{AccessToken: at, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("call = %d, %v", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 0 || f.stderr.String() != "" {
		t.Errorf("a login ran (%d authorizations, stderr %q) although a fresh token was stored", n, f.stderr.String())
	}
}

func TestEngineLoginTimeoutThenFreshFlow(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true, timeout: 500 * time.Millisecond})
	ctx := f.ctx()
	status, err := f.call(ctx, f.h, "initialize")
	var le *LoginError
	if status != 401 || !errors.As(err, &le) || !errors.Is(err, ErrLoginTimeout) {
		t.Fatalf("call = %d, %v; want 401 and a login timeout", status, err)
	}
	// The link is dead once the login has timed out: its callback is closed.
	if le.LoginURL() != "" || strings.Contains(err.Error(), "open this link") || !strings.Contains(err.Error(), "try again") {
		t.Errorf("LoginURL = %q, error %q; want no link and a hint to try again", le.LoginURL(), err)
	}
	// The next request starts a fresh flow, which the user now completes.
	f.engine.LoginTimeout = 30 * time.Second
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.stderr.NextLink(ctx) // the timed-out flow's link
		link, err := f.stderr.NextLink(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		f.as.FollowLink(ctx, link)
	}()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("second call = %d, %v", status, err)
	}
	<-done
}

func TestEngineWaiterGivesUpButLoginContinues(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true})
	res, err := f.post(f.ctx(), "", "initialize")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(f.ctx(), 300*time.Millisecond)
	defer cancel()
	retry, err := f.h.Challenge(short, res, "")
	var le *LoginError
	if retry || !errors.As(err, &le) || !errors.Is(err, ErrLoginPending) {
		t.Fatalf("Challenge = %v, %v; want a pending login error", retry, err)
	}
	link, werr := f.stderr.NextLink(f.ctx())
	if werr != nil || le.LoginURL() != link {
		t.Fatalf("LoginURL = %q, printed %q (%v)", le.LoginURL(), link, werr)
	}
	if _, err := f.as.FollowLink(f.ctx(), link); err != nil {
		t.Fatal(err)
	}
	// The flow finished in the background; the token is there.
	deadline := time.Now().Add(20 * time.Second)
	for f.stored() == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if tok, _ := f.h.Token(f.ctx()); tok == "" {
		t.Error("no token after the background login finished")
	}
}

func TestEngineRefreshFailureKeepsToken(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		as:     oauthtest.AuthServerOptions{IssueRefreshTokens: true, AccessTokenTTL: 30 * time.Second},
		engine: func(e *Engine) { e.RefreshMargin = 10 * time.Second },
	})
	ctx := f.ctx()
	if status, _ := f.call(ctx, f.h, "initialize"); status != 200 {
		t.Fatal("login failed")
	}
	old := f.stored().AccessToken
	f.as.FailNext(oauthtest.EndpointToken, http.StatusBadGateway, "upstream down")
	// Inside the margin but not yet expired: the current token is used and
	// the refresh happens in the background.
	f.advance(25 * time.Second)
	tok, err := f.h.Token(ctx)
	if err != nil || tok != old {
		t.Fatalf("Token = %q, %v; want the current token while the AS is down", tok, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for f.as.Count(oauthtest.EndpointToken) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	tok, _ = f.h.Token(ctx)
	if tok != old {
		t.Error("the token changed although the refresh failed")
	}
	if n := f.as.Count(oauthtest.EndpointToken); n != 2 {
		t.Errorf("%d token requests, want 2: one login, one failed refresh, then backoff", n)
	}
}

func TestEnginePreRegisteredClients(t *testing.T) {
	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(method, func(t *testing.T) {
			f := newEngineFixture(t, fixtureOptions{
				as: oauthtest.AuthServerOptions{
					NoDCR:                    true,
					PreRegistered:            map[string]string{"pre-id": "pre-secret"},
					TokenEndpointAuthMethods: []string{method},
				},
				server: func(s *Server) { s.ClientID, s.ClientSecret = "pre-id", "pre-secret" },
			})
			if status, err := f.call(f.ctx(), f.h, "initialize"); status != 200 || err != nil {
				t.Fatalf("call = %d, %v", status, err)
			}
			if ci, _, _ := (&Credentials{Store: f.store}).Client(Identity(f.rs.Endpoint)); ci != nil {
				t.Errorf("a configured client was stored: %+v", ci)
			}
		})
	}
}

func TestEngineCIMD(t *testing.T) {
	const cimd = "https://client.example.com/mcp-oauth-proxy.json"
	f := newEngineFixture(t, fixtureOptions{
		as:     oauthtest.AuthServerOptions{CIMD: true},
		server: func(s *Server) { s.ClientMetadataURL = cimd },
	})
	if status, err := f.call(f.ctx(), f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("call = %d, %v", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointRegister); n != 0 {
		t.Errorf("%d registrations with CIMD, want 0", n)
	}
	for _, r := range f.as.Requests() {
		if r.Endpoint == oauthtest.EndpointAuthorize && r.Query.Get("client_id") != cimd {
			t.Errorf("client_id = %q, want the CIMD URL", r.Query.Get("client_id"))
		}
	}
}

func TestEngineResourceMismatchStopsBeforeAuthorizing(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{rs: oauthtest.ResourceOptions{PRMResource: "https://evil.example.com/mcp"}})
	status, err := f.call(f.ctx(), f.h, "initialize")
	if status != 401 || err == nil || !strings.Contains(err.Error(), "evil.example.com") {
		t.Fatalf("call = %d, %v; want an error naming the mismatching resource", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize) + f.as.Count(oauthtest.EndpointRegister); n != 0 {
		t.Errorf("%d requests reached the authorization server", n)
	}
}

func TestEngineChecksIss(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{
		IssParameter: true,
		EditRedirect: func(q url.Values) { q.Set("iss", "https://attacker.example") },
	}})
	status, err := f.call(f.ctx(), f.h, "initialize")
	if status != 401 || err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("call = %d, %v; want an issuer mismatch", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointToken); n != 0 {
		t.Errorf("the code was exchanged despite the wrong iss")
	}
}

// TestEngineNoPasteWhenPortBusy: with the callback port taken and nothing
// to paste into (no terminal, no status page), nothing could complete the
// login; it fails at once, saying why, rather than after the login timeout.
func TestEngineNoPasteWhenPortBusy(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	f := newEngineFixture(t, fixtureOptions{noUser: true, timeout: time.Minute, server: func(s *Server) { s.RedirectPort = port }})
	start := time.Now()
	status, err := f.call(f.ctx(), f.h, "initialize")
	if status != 401 || err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), "free the port") {
		t.Fatalf("call = %d, %v; want 401 and an error naming the taken port", status, err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("the login failed after %v, want at once rather than at its timeout", waited)
	}
}

func TestEnginePasteWhenPortBusy(t *testing.T) {
	port := freePort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := newEngineFixture(t, fixtureOptions{noUser: true, server: func(s *Server) { s.RedirectPort = port }})
	cb := f.engine.callbacks
	cb.PasteFrom("the test's paste")
	ctx := f.ctx()
	var user sync.WaitGroup
	defer user.Wait()
	user.Go(func() {
		link, err := f.stderr.NextLink(ctx)
		if err != nil {
			return
		}
		// The browser lands on a page that cannot load; the user pastes its URL.
		loc, err := oauthtest.Redirect(ctx, link)
		if err != nil {
			t.Error(err)
			return
		}
		if err := cb.Deliver(loc.String()); err != nil {
			t.Error(err)
		}
	})
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("call = %d, %v", status, err)
	}
	if !strings.Contains(f.stderr.String(), "Open this link") {
		t.Error("no link printed")
	}
}

func TestEngineLoginProbesUpstream(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{rs: oauthtest.ResourceOptions{PRM: oauthtest.PRMCustom, ChallengeScope: "mcp:x"}})
	tok, err := f.h.Login(f.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Scope != "mcp:x" || f.stored() == nil {
		t.Errorf("Login = %+v; stored %+v", tok, f.stored())
	}
	// A second Login runs a new flow even though a token is stored.
	if _, err := f.h.Login(f.ctx()); err != nil {
		t.Fatal(err)
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 2 {
		t.Errorf("%d authorizations, want 2", n)
	}
}

func TestEngineHandlersShareIdentity(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{})
	other := f.srv
	other.Name = "same-identity"
	other.URL = f.rs.Endpoint + "?x=1"
	h2 := f.engine.Handler(other)
	ctx := f.ctx()
	var wg sync.WaitGroup
	for _, h := range []*Handler{f.h, h2} {
		wg.Go(func() {
			if status, err := f.call(ctx, h, "initialize"); status != 200 || err != nil {
				t.Errorf("call = %d, %v", status, err)
			}
		})
	}
	wg.Wait()
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations for two servers of one identity, want 1", n)
	}
}

func TestEngineDoesNotLoginAgainForARefusedFreshToken(t *testing.T) {
	var refuse atomic.Bool
	f := newEngineFixture(t, fixtureOptions{rs: oauthtest.ResourceOptions{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	})}})
	ctx := f.ctx()
	refuse.Store(true)
	status, err := f.call(ctx, f.h, "initialize")
	if status != http.StatusUnauthorized || err != nil {
		t.Fatalf("call = %d, %v; want the upstream's 401", status, err)
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d logins, want 1: a freshly issued token the upstream refuses must not start another", n)
	}
}

func TestEnginePendingLinkAndLogout(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true})
	ctx := f.ctx()
	if link := f.h.PendingLink(); link != "" {
		t.Fatalf("PendingLink before any login = %q", link)
	}
	res, err := f.post(ctx, "", "initialize")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.h.Challenge(ctx, res, "")
		done <- err
	}()
	link, err := f.stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.h.PendingLink(); got != link {
		t.Errorf("PendingLink = %q, want the printed %q", got, link)
	}
	if _, err := f.as.FollowLink(ctx, link); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := f.h.PendingLink(); got != "" {
		t.Errorf("PendingLink after the login = %q", got)
	}
	if f.stored() == nil || f.h.Current() == nil {
		t.Fatal("no token after the login")
	}
	if err := f.h.Logout(); err != nil {
		t.Fatal(err)
	}
	if f.stored() != nil || f.h.Current() != nil {
		t.Error("Logout left a token")
	}
	if ids, _ := (&Credentials{Store: f.store}).Identities(); len(ids) != 0 {
		t.Errorf("Logout left the identity in the index: %q", ids)
	}
	if tok, _ := f.h.Token(ctx); tok != "" {
		t.Errorf("Token after Logout = %q", tok)
	}
}
