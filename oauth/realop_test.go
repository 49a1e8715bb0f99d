package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oidctest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

// These tests run the engine against zitadel's OpenID provider
// (internal/oidctest), a server library we did not write, rather than
// against our own fake.

// realScope is what the protected resource asks for: zitadel issues
// refresh tokens only for offline_access, and refuses an empty scope.
const realScope = "openid offline_access mcp:tools"

type realOP struct {
	t      *testing.T
	p      *oidctest.Provider
	res    *oidctest.Resource
	store  *store.Memory
	stderr *oauthtest.Buffer
	engine *oauth.Engine
	srv    oauth.Server
	h      *oauth.Handler
	skew   atomic.Int64 // added to the engine's clock
	links  atomic.Int32
}

type realOPOptions struct {
	provider oidctest.Options
	// confidential makes the engine use the provider's confidential
	// client instead of its public one.
	confidential bool
	// noScope leaves the scope out of the resource's challenge, so that
	// the engine requests none; the callback then shows zitadel's error.
	noScope bool
}

func newRealOP(t *testing.T, o realOPOptions) *realOP {
	t.Helper()
	f := &realOP{t: t, store: new(store.Memory), stderr: new(oauthtest.Buffer)}
	port := freeLoopbackPort(t)
	if o.provider.Scopes == nil {
		o.provider.Scopes = []string{"mcp:tools"}
	}
	if o.confidential {
		// A web client's redirect URI must be registered exactly, port
		// included; the public (native) client's default registration,
		// http://localhost/callback, matches any port.
		o.provider.RedirectURIs = []string{"http://localhost:" + strconv.Itoa(port) + "/callback"}
	}
	f.p = oidctest.NewProvider(t, o.provider)
	ropts := oidctest.ResourceOptions{ChallengeScope: realScope}
	if o.noScope {
		ropts.ChallengeScope = ""
	}
	f.res = oidctest.NewResource(t, f.p, ropts)
	f.engine = &oauth.Engine{
		Stderr: f.stderr,
		Logger: slog.New(slog.NewTextHandler(newLogWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) },
	}
	t.Cleanup(f.engine.Close)
	f.srv = oauth.Server{
		Name:         "zitadel",
		URL:          f.res.Endpoint,
		Store:        f.store,
		ClientID:     f.p.PublicClientID, // zitadel has no dynamic registration
		RedirectPort: port,
	}
	if o.confidential {
		f.srv.ClientID, f.srv.ClientSecret = f.p.ConfidentialClientID, f.p.ConfidentialClientSecret
	}
	f.h = f.engine.Handler(f.srv)

	// The user opens every link the engine prints.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			link, err := f.stderr.NextLink(ctx)
			if err != nil {
				return
			}
			f.links.Add(1)
			page, err := f.p.FollowLink(ctx, link)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("following the login link: %v", err)
				}
				return
			}
			if page.StatusCode != http.StatusOK && !o.noScope {
				body, _ := io.ReadAll(page.Body)
				t.Errorf("the engine's callback answered %s: %s", page.Status, body)
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return f
}

func (f *realOP) ctx() context.Context {
	ctx, cancel := context.WithTimeout(f.t.Context(), 30*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

// call sends an MCP request through the handler as the proxy does: the
// handler's token, and on 401 or 403 its Challenge, then a replay.
func (f *realOP) call(ctx context.Context, method string) (int, error) {
	for attempt := 0; ; attempt++ {
		tok, err := f.h.Token(ctx)
		if err != nil {
			return 0, err
		}
		res, err := f.post(ctx, tok, method)
		if err != nil {
			return 0, err
		}
		if (res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden) || attempt == 3 {
			return res.StatusCode, nil
		}
		retry, err := f.h.Challenge(ctx, res, tok)
		if err != nil || !retry {
			return res.StatusCode, err
		}
	}
}

func (f *realOP) post(ctx context.Context, tok, method string) (*http.Response, error) {
	body := `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":{}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.res.Endpoint, strings.NewReader(body))
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

// storedRecord returns the raw token record under oauth:tokens:<identity>.
func (f *realOP) storedRecord() map[string]any {
	f.t.Helper()
	key := "oauth:tokens:" + oauth.Identity(f.res.Endpoint)
	raw, err := f.store.Get(key)
	if err != nil {
		f.t.Fatalf("reading %s: %v", key, err)
	}
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		f.t.Fatalf("%s: %v", key, err)
	}
	return rec
}

// stored returns the stored token as the engine reads it.
func (f *realOP) stored() *oauth.Token {
	f.t.Helper()
	tok, _, err := (&oauth.Credentials{Store: f.store}).Token(oauth.Identity(f.res.Endpoint))
	if err != nil || tok == nil {
		f.t.Fatalf("stored token = %v, %v", tok, err)
	}
	return tok
}

// tokenRequests returns the provider's token endpoint requests of a grant.
func (f *realOP) tokenRequests(grant string) []oidctest.Request {
	var out []oidctest.Request
	for _, r := range f.p.Requests() {
		if r.Endpoint == oidctest.EndpointToken && r.Params.Get("grant_type") == grant {
			out = append(out, r)
		}
	}
	return out
}

// lastMCP returns the last request the resource received at its endpoint.
func (f *realOP) lastMCP() oidctest.Request {
	f.t.Helper()
	var last oidctest.Request
	for _, r := range f.res.Requests() {
		if r.Endpoint == oidctest.EndpointMCP {
			last = r
		}
	}
	return last
}

// checkOneLogin fails unless exactly one browser login happened.
func (f *realOP) checkOneLogin() {
	f.t.Helper()
	if links, logins, authz := f.links.Load(), f.p.Logins(), f.p.Count(oidctest.EndpointAuthorize); links != 1 || logins != 1 || authz != 1 {
		f.t.Errorf("%d links printed, %d logins, %d authorization requests; want one of each", links, logins, authz)
	}
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// logWriter sends log lines to t.Log until the test ends; background
// refreshes may log later.
type logWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func newLogWriter(t *testing.T) *logWriter {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func TestRealOPFlowAndRefresh(t *testing.T) {
	f := newRealOP(t, realOPOptions{provider: oidctest.Options{AccessTokenLifetime: 2 * time.Minute}})
	ctx := f.ctx()

	// 401 → Challenge → link → the user follows it → callback → replay.
	if status, err := f.call(ctx, "initialize"); status != http.StatusOK || err != nil {
		t.Fatalf("first call = %d, %v; want 200 after the login", status, err)
	}
	f.checkOneLogin()
	redirectURI := "http://localhost:" + strconv.Itoa(f.srv.RedirectPort) + "/callback"
	if want := "Open this link to authorize zitadel: " + f.p.AuthorizationEndpoint + "?"; !strings.Contains(f.stderr.String(), want) {
		t.Errorf("stderr = %q, want a line containing %q", f.stderr.String(), want)
	}
	var authz oidctest.Request
	for _, r := range f.p.Requests() {
		if r.Endpoint == oidctest.EndpointAuthorize {
			authz = r
		}
	}
	q := authz.Params
	if q.Get("client_id") != f.p.PublicClientID || q.Get("redirect_uri") != redirectURI ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("scope") != realScope || q.Get("resource") != f.res.Endpoint || authz.Status != http.StatusFound {
		t.Errorf("authorization request %v answered %d", q, authz.Status)
	}
	codes := f.tokenRequests("authorization_code")
	if len(codes) != 1 || codes[0].Status != http.StatusOK || codes[0].Params.Get("code_verifier") == "" ||
		codes[0].Params.Get("resource") != f.res.Endpoint || codes[0].Params.Get("redirect_uri") != redirectURI {
		t.Errorf("code exchanges = %+v; want one, with verifier, resource and redirect_uri, answered 200", codes)
	}

	rec := f.storedRecord()
	exp, ok := rec["expires_at"].(float64)
	if !ok || rec["access_token"] == "" || rec["refresh_token"] == nil || rec["refresh_token"] == "" || rec["scope"] != realScope {
		t.Fatalf("stored record = %v; want access_token, refresh_token, expires_at and scope %q", keys(rec), realScope)
	}
	if d := time.Until(time.Unix(int64(exp), 0)); d < 90*time.Second || d > 2*time.Minute+5*time.Second {
		t.Errorf("expires_at is %v away, want about the 2 min lifetime", d)
	}
	first := f.stored()
	if got, want := f.lastMCP(), "Bearer "+redact.Fingerprint(first.AccessToken); got.Authorization != want || got.Status != http.StatusOK {
		t.Errorf("replayed request carried %q and got %d; want %q and 200", got.Authorization, got.Status, want)
	}

	// The provider expires the token while the engine still trusts it:
	// the resource's 401 makes Challenge refresh at zitadel's token
	// endpoint, and the request is replayed with the new token.
	f.p.ExpireAccessTokens()
	if status, err := f.call(ctx, "tools/list"); status != http.StatusOK || err != nil {
		t.Fatalf("call after the provider expired the token = %d, %v", status, err)
	}
	second := f.stored()
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Fatalf("the refreshed, rotated tokens were not stored: access changed %t, refresh changed %t",
			second.AccessToken != first.AccessToken, second.RefreshToken != first.RefreshToken)
	}
	want := []oidctest.Request{{
		Endpoint: oidctest.EndpointToken, Method: http.MethodPost, Path: "/oauth/token", Status: http.StatusOK,
		Params: map[string][]string{
			"grant_type":    {"refresh_token"},
			"refresh_token": {redact.Fingerprint(first.RefreshToken)},
			"client_id":     {f.p.PublicClientID},
			"resource":      {f.res.Endpoint}, // zitadel ignores it
			"scope":         {realScope},
		},
	}}
	if diff := cmp.Diff(want, f.tokenRequests("refresh_token")); diff != "" {
		t.Errorf("refresh requests (-want +got):\n%s", diff)
	}
	if got := f.lastMCP(); got.Authorization != "Bearer "+redact.Fingerprint(second.AccessToken) || got.Status != http.StatusOK {
		t.Errorf("replay after the refresh carried %q, got %d; want the new token and 200", got.Authorization, got.Status)
	}

	// The engine's clock passes the token's expiry: Token() refreshes
	// before the request goes out, with the rotated refresh token.
	f.skew.Store(int64(3 * time.Minute))
	if status, err := f.call(ctx, "tools/list"); status != http.StatusOK || err != nil {
		t.Fatalf("call after expiry = %d, %v", status, err)
	}
	third := f.stored()
	if third.AccessToken == second.AccessToken || third.RefreshToken == second.RefreshToken || !third.ExpiresAt.After(second.ExpiresAt) {
		t.Errorf("the second refresh's tokens were not stored: access changed %t, refresh changed %t, expiry %v → %v",
			third.AccessToken != second.AccessToken, third.RefreshToken != second.RefreshToken, second.ExpiresAt, third.ExpiresAt)
	}
	refreshes := f.tokenRequests("refresh_token")
	if len(refreshes) != 2 || refreshes[1].Status != http.StatusOK ||
		refreshes[1].Params.Get("refresh_token") != redact.Fingerprint(second.RefreshToken) {
		t.Errorf("refresh requests = %+v; want a second one with the rotated refresh token, answered 200", refreshes)
	}
	if got := f.lastMCP(); got.Authorization != "Bearer "+redact.Fingerprint(third.AccessToken) || got.Status != http.StatusOK {
		t.Errorf("request after the refresh carried %q, got %d; want the new token and 200", got.Authorization, got.Status)
	}
	// The replaced access token had not expired at zitadel: rotation
	// revoked it.
	if res, err := f.post(ctx, second.AccessToken, "ping"); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the replaced access token got %v, %v; want 401", res, err)
	}
	if n := f.p.RefreshTokenReuses(); n != 0 {
		t.Errorf("a rotated refresh token was sent %d times again", n)
	}
	f.checkOneLogin()
}

// A 401 for a token that an earlier refresh produced must be answered with
// another refresh while the refresh token is good, not with a browser
// login: after the first refresh every token is such a token.
func TestRealOPUnauthorizedAfterRefreshRefreshesAgain(t *testing.T) {
	f := newRealOP(t, realOPOptions{provider: oidctest.Options{AccessTokenLifetime: 2 * time.Minute}})
	ctx := f.ctx()
	if status, err := f.call(ctx, "initialize"); status != http.StatusOK || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	f.skew.Store(int64(3 * time.Minute))
	if status, err := f.call(ctx, "tools/list"); status != http.StatusOK || err != nil {
		t.Fatalf("call after expiry = %d, %v", status, err)
	}
	refreshed := f.stored()
	// Much later the provider ends the refreshed access token early (an
	// admin action, a restart that lost its sessions); the refresh token
	// is still good. (A token refused right after the refresh that made it
	// leads to a login instead.)
	f.skew.Add(int64(time.Minute))
	f.p.ExpireAccessTokens()
	if status, err := f.call(ctx, "tools/list"); status != http.StatusOK || err != nil {
		t.Fatalf("call after the provider expired the token = %d, %v", status, err)
	}
	refreshes := f.tokenRequests("refresh_token")
	if len(refreshes) != 2 || refreshes[1].Status != http.StatusOK ||
		refreshes[1].Params.Get("refresh_token") != redact.Fingerprint(refreshed.RefreshToken) {
		t.Errorf("refresh requests = %+v; want a second one with the rotated refresh token, answered 200", refreshes)
	}
	f.checkOneLogin()
}

func TestRealOPConcurrentRequestsShareOneRefresh(t *testing.T) {
	f := newRealOP(t, realOPOptions{})
	ctx := f.ctx()
	if status, err := f.call(ctx, "initialize"); status != http.StatusOK || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	f.p.ExpireAccessTokens()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if status, err := f.call(ctx, "tools/list"); status != http.StatusOK || err != nil {
				t.Errorf("call = %d, %v", status, err)
			}
		})
	}
	wg.Wait()
	if n := len(f.tokenRequests("refresh_token")); n != 1 {
		t.Errorf("%d refresh requests for 20 concurrent 401s, want 1", n)
	}
	if n := f.p.RefreshTokenReuses(); n != 0 {
		t.Errorf("a rotated refresh token was sent %d times again", n)
	}
	f.checkOneLogin()
}

func TestRealOPRevokedRefreshTokenLogsInAgain(t *testing.T) {
	f := newRealOP(t, realOPOptions{})
	ctx := f.ctx()
	if status, err := f.call(ctx, "initialize"); status != http.StatusOK || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	f.p.RevokeRefreshTokens()
	f.p.ExpireAccessTokens()
	if status, err := f.call(ctx, "tools/list"); status != http.StatusOK || err != nil {
		t.Fatalf("call = %d, %v", status, err)
	}
	refreshes := f.tokenRequests("refresh_token")
	if len(refreshes) != 1 || refreshes[0].Error != "invalid_grant" {
		t.Errorf("refresh requests = %+v; want one, refused with invalid_grant", refreshes)
	}
	if n := f.p.Logins(); n != 2 {
		t.Errorf("%d logins, want 2: invalid_grant means a new login", n)
	}
	if got := f.lastMCP(); got.Authorization != "Bearer "+redact.Fingerprint(f.stored().AccessToken) || got.Status != http.StatusOK {
		t.Errorf("last request carried %q, got %d; want the new login's token and 200", got.Authorization, got.Status)
	}
}

func TestRealOPConfidentialClient(t *testing.T) {
	f := newRealOP(t, realOPOptions{confidential: true})
	p := f.p
	ctx := f.ctx()

	tok, err := f.h.Login(ctx)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if tok.RefreshToken == "" || tok.Scope != realScope {
		t.Errorf("Login token: refresh token %t, scope %q", tok.RefreshToken != "", tok.Scope)
	}
	f.p.ExpireAccessTokens()
	if status, err := f.call(ctx, "tools/list"); status != http.StatusOK || err != nil {
		t.Fatalf("call after expiry = %d, %v", status, err)
	}
	var grants []string
	for _, r := range p.Requests() {
		if r.Endpoint != oidctest.EndpointToken {
			continue
		}
		grants = append(grants, r.Params.Get("grant_type"))
		// client_secret_basic, the secret form-encoded before Basic: zitadel
		// decodes it and would refuse a mismatch with invalid_client.
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Authorization, "Basic ") ||
			r.BasicClientID != p.ConfidentialClientID || r.Params.Has("client_secret") {
			t.Errorf("token request %+v; want Basic credentials of the confidential client, answered 200", r)
		}
	}
	if diff := cmp.Diff([]string{"authorization_code", "refresh_token"}, grants); diff != "" {
		t.Errorf("token requests (-want +got):\n%s", diff)
	}
	if ci, _, _ := (&oauth.Credentials{Store: f.store}).Client(oauth.Identity(f.res.Endpoint)); ci != nil {
		t.Errorf("the configured client was stored: %+v", ci)
	}
	f.checkOneLogin()
}

// zitadel refuses an authorization request without a scope; the engine
// must report its error, not hang or exchange anything.
func TestRealOPReportsRefusedAuthorization(t *testing.T) {
	f := newRealOP(t, realOPOptions{noScope: true})
	status, err := f.call(f.ctx(), "initialize")
	var le *oauth.LoginError
	if status != http.StatusUnauthorized || !errors.As(err, &le) {
		t.Fatalf("call = %d, %v; want 401 and a *LoginError", status, err)
	}
	for _, want := range []string{"invalid_request", "The scope of your request is missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if le.LoginURL() != "" {
		t.Errorf("LoginURL = %q; the login is over, so no link to follow", le.LoginURL())
	}
	if q := f.p.Requests()[len(f.p.Requests())-1]; q.Endpoint != oidctest.EndpointAuthorize || q.Params.Has("scope") || q.Error != "invalid_request" {
		t.Errorf("last provider request = %+v; want the authorization request without scope, refused", q)
	}
	if n := f.p.Count(oidctest.EndpointToken); n != 0 {
		t.Errorf("%d token requests after a refused authorization", n)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k, v := range m {
		if v != nil && v != "" {
			out = append(out, k)
		}
	}
	return out
}
