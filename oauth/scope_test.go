package oauth

import (
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
)

// stepUpResource asks for mcp:basic at first and refuses tools/call
// without mcp:write, as the conformance step-up scenario does.
func stepUpResource() oauthtest.ResourceOptions {
	return oauthtest.ResourceOptions{
		ChallengeScope: "mcp:basic",
		RequiredScopes: func(r *http.Request, body []byte) []string {
			if oauthtest.JSONRPCMethod(body) == "tools/call" {
				return []string{"mcp:basic", "mcp:write"}
			}
			return nil
		},
	}
}

// authorizedScopes returns the scope of each authorization request, in
// order: one per browser login.
func authorizedScopes(f *engineFixture) []string {
	var scopes []string
	for _, r := range f.as.Requests() {
		if r.Endpoint == oauthtest.EndpointAuthorize {
			scopes = append(scopes, r.Query.Get("scope"))
		}
	}
	return scopes
}

// TestEngineReloginKeepsSteppedUpScopes: a login after the step-up's token
// has expired (no refresh token) or was dropped (refresh token revoked)
// asks for the scopes that token held, not only the 401's, which would
// cost another login at the next tools/call.
func TestEngineReloginKeepsSteppedUpScopes(t *testing.T) {
	for name, tt := range map[string]struct {
		as     oauthtest.AuthServerOptions
		revoke bool
	}{
		"no refresh token":      {},
		"refresh token revoked": {as: oauthtest.AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true}, revoke: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newEngineFixture(t, fixtureOptions{as: tt.as, rs: stepUpResource()})
			ctx := f.ctx()
			for _, method := range []string{"tools/list", "tools/call"} {
				if status, err := f.call(ctx, f.h, method); status != 200 || err != nil {
					t.Fatalf("%s = %d, %v", method, status, err)
				}
			}
			f.advance(2 * time.Minute)
			if tt.revoke {
				f.as.RevokeRefreshTokens()
			}
			f.as.ExpireAccessTokens()
			if status, err := f.call(ctx, f.h, "tools/call"); status != 200 || err != nil {
				t.Fatalf("tools/call after the expiry = %d, %v", status, err)
			}
			want := []string{"mcp:basic", "mcp:basic mcp:write", "mcp:basic mcp:write"}
			if got := authorizedScopes(f); !slices.Equal(got, want) {
				t.Errorf("authorization scopes = %q, want %q", got, want)
			}
		})
	}
}

// TestEngineStale403AfterStepUp: a 403 for a token that another request's
// step-up has replaced meanwhile is answered with a retry: the current
// token has the scopes.
func TestEngineStale403AfterStepUp(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{rs: stepUpResource()})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("tools/list = %d, %v", status, err)
	}
	old, _ := f.h.Token(ctx)
	res, err := f.post(ctx, old, "tools/call") // refused, still in flight
	if err != nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("tools/call with the old token = %v, %v; want 403", res, err)
	}
	if status, err := f.call(ctx, f.h, "tools/call"); status != 200 || err != nil { // another request steps up
		t.Fatalf("tools/call = %d, %v", status, err)
	}
	if retry, err := f.h.Challenge(ctx, res, old); !retry || err != nil {
		t.Errorf("Challenge for the replaced token = %v, %v; want a retry", retry, err)
	}
	if n := len(authorizedScopes(f)); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
}

// TestEngineRefreshDuringStepUp: a refresh while a step-up waits for the
// user gives a token without the asked-for scopes; the step-up goes on
// waiting instead of ending with the server's 403 and a cool-down.
func TestEngineRefreshDuringStepUp(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true, rs: stepUpResource(),
		as: oauthtest.AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true}})
	ctx := f.ctx()
	held, release := make(chan struct{}), make(chan struct{})
	go func() { // the user: the first link at once, the step-up's when released
		for i := 0; ; i++ {
			link, err := f.stderr.NextLink(ctx)
			if err != nil {
				return
			}
			if i == 1 {
				close(held)
				select {
				case <-release:
				case <-ctx.Done():
					return
				}
			}
			f.as.FollowLink(ctx, link)
		}
	}()
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("tools/list = %d, %v", status, err)
	}
	done := make(chan int, 1)
	go func() {
		status, _ := f.call(ctx, f.h, "tools/call")
		done <- status
	}()
	<-held // the step-up's link is out
	f.advance(time.Hour - 30*time.Second)
	if _, err := f.h.Token(ctx); err != nil { // starts a refresh
		t.Fatal(err)
	}
	select {
	case status := <-done:
		t.Fatalf("tools/call ended with %d while its step-up still waited", status)
	case <-time.After(storedPoll + time.Second):
	}
	close(release)
	select {
	case status := <-done:
		if status != 200 {
			t.Errorf("tools/call = %d after the step-up, want 200", status)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tools/call still waits after the step-up")
	}
}

// TestEngineLoginReturnsItsOwnToken: auth login (Login) waits for its own
// login, even when another process stores a token meanwhile: it returns
// the token its login got, never nil.
func TestEngineLoginReturnsItsOwnToken(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true})
	ctx := f.ctx()
	type result struct {
		tok *Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := f.h.Login(ctx)
		done <- result{tok, err}
	}()
	link, err := f.stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Credentials{Store: f.store}).SaveToken(Identity(f.srv.URL),
		&Token{AccessToken: "another-process", TokenType: "Bearer", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("Login ended before its own login: %+v, %v", r.tok, r.err)
	case <-time.After(storedPoll + time.Second):
	}
	if _, err := f.as.FollowLink(ctx, link); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.tok == nil || r.tok.AccessToken == "another-process" {
		t.Errorf("Login = %+v, %v; want the token of its own login", r.tok, r.err)
	}
}

// storeHook runs hook before the nth Get of key, once armed.
type storeHook struct {
	Store
	key   string
	n     int
	hook  func()
	armed atomic.Bool
	gets  atomic.Int32
}

func (s *storeHook) Get(key string) ([]byte, error) {
	if s.armed.Load() && key == s.key && int(s.gets.Add(1)) == s.n {
		s.hook()
	}
	return s.Store.Get(key)
}

// TestEngineDropUsesAnotherProcessToken: a refresh refused with
// invalid_client, while another process stores a working token, ends
// with that token: the refresh reports success, and no browser login
// follows.
func TestEngineDropUsesAnotherProcessToken(t *testing.T) {
	var f *engineFixture
	var hooked *storeHook
	f = newEngineFixture(t, fixtureOptions{
		as: oauthtest.AuthServerOptions{IssueRefreshTokens: true},
		server: func(s *Server) {
			hooked = &storeHook{Store: s.Store, key: TokensKey(Identity(s.URL)), n: 2, hook: func() {
				// Between the refresh's first look at the store and drop's.
				client, _, _ := (&Credentials{Store: f.store}).Client(Identity(f.srv.URL))
				theirs, _ := f.as.IssueTokens(client.ClientID, "", f.rs.Endpoint)
				(&Credentials{Store: f.store}).SaveToken(Identity(f.srv.URL),
					&Token{AccessToken: theirs, TokenType: "Bearer", ExpiresAt: time.Now().Add(2 * time.Hour)})
			}}
			s.Store = hooked
		},
	})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	f.as.FailNext(oauthtest.EndpointToken, http.StatusUnauthorized, `{"error":"invalid_client"}`)
	f.advance(time.Hour - 30*time.Second)
	hooked.armed.Store(true)
	fl := refreshNow(t, f.h)
	<-fl.done
	hooked.armed.Store(false)
	if fl.err != nil || fl.tok == nil {
		t.Fatalf("refresh = %+v, %v; want the other process's token", fl.tok, fl.err)
	}
	if cur := f.h.Current(); cur == nil || cur.AccessToken != fl.tok.AccessToken {
		t.Errorf("current = %+v, want %+v", cur, fl.tok)
	}
	wantFirstLoginOnly(t, f)
}
