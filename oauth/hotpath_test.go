package oauth

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
)

// The proxy calls Handler.Token for every request it forwards. These tests
// hold it to what BenchmarkHandlerToken measures: once loaded, Token reads
// no store, and it does not wait for a refresh or a login that is waiting
// on the network or the user (only an expired token waits for its refresh).

// tokensNow calls h.Token n times on another goroutine and returns the
// tokens, failing the test if they do not come back before ctx ends: a
// Token that waited for the held refresh or login would never return. The
// goroutine stops at the first error and reports only through its channel,
// so it cannot touch t after the test.
func tokensNow(t *testing.T, ctx context.Context, h *Handler, n int) []string {
	t.Helper()
	type result struct {
		toks []string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		toks := make([]string, 0, n)
		for range n {
			tok, err := h.Token(ctx)
			if err != nil {
				done <- result{toks, err}
				return
			}
			toks = append(toks, tok)
		}
		done <- result{toks, nil}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("Token after %d calls: %v", len(r.toks), r.err)
		}
		return r.toks
	case <-ctx.Done():
		t.Fatalf("Token did not return while a refresh or login was held: %v", ctx.Err())
		return nil
	}
}

func TestHandlerTokenDuringRefresh(t *testing.T) {
	var hold atomic.Bool
	held := make(chan struct{}, 1)
	release := make(chan struct{})
	var counting *countingStore
	f := newEngineFixture(t, fixtureOptions{
		as: oauthtest.AuthServerOptions{
			IssueRefreshTokens: true,
			AccessTokenTTL:     time.Minute,
			// Holds the token endpoint's answer to the refresh.
			EditTokenResponse: func(map[string]any) {
				if hold.Load() {
					held <- struct{}{}
					<-release
				}
			},
		},
		engine: func(e *Engine) { e.RefreshMargin = 30 * time.Second },
		server: func(s *Server) {
			counting = &countingStore{credStore: s.Store.(*credStore)}
			s.Store = counting
		},
	})
	// Registered after the fixture's, so it runs first: a failing test
	// must not leave the authorization server's handler held.
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login call = %d, %v", status, err)
	}
	first := f.stored().AccessToken
	// fromMemory makes 200 Token calls, which must all return first
	// without reading the store.
	fromMemory := func(when string) {
		t.Helper()
		reads := counting.gets.Load()
		for i, tok := range tokensNow(t, ctx, f.h, 200) {
			if tok != first {
				t.Fatalf("call %d %s: Token = %q, want the current token", i, when, tok)
			}
		}
		if n := counting.gets.Load() - reads; n != 0 {
			t.Errorf("200 Token calls %s read the store %d times, want 0", when, n)
		}
	}

	fromMemory("with a valid token")

	// 20 s before expiry, inside the 30-s margin: the first call starts a
	// refresh, whose token request the authorization server holds.
	hold.Store(true)
	f.advance(40 * time.Second)
	if tok, err := f.h.Token(ctx); tok != first || err != nil {
		t.Fatalf("Token inside the margin = %q, %v; want the current token at once", tok, err)
	}
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("no refresh started inside the refresh margin")
	}
	fromMemory("during the refresh")

	hold.Store(false)
	releaseOnce()
	for {
		tok, err := f.h.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tok != first {
			if stored := f.stored().AccessToken; tok != stored {
				t.Errorf("after the refresh Token = %q, want the stored %q", tok, stored)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the refreshed token never replaced the old one")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestHandlerTokenDuringLogin(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{noUser: true})
	ctx := f.ctx()
	res, err := f.post(ctx, "", "initialize")
	if err != nil {
		t.Fatal(err)
	}
	loginCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	challenged := make(chan error, 1)
	go func() {
		_, err := f.h.Challenge(loginCtx, res, "")
		challenged <- err
	}()
	// The login link is printed: the login now waits for the user.
	if _, err := f.stderr.NextLink(ctx); err != nil {
		t.Fatalf("no login link: %v", err)
	}
	for i, tok := range tokensNow(t, ctx, f.h, 200) {
		if tok != "" {
			t.Fatalf("call %d during the login: Token = %q, want none yet", i, tok)
		}
	}
	cancel()
	select {
	case <-challenged:
	case <-ctx.Done():
		t.Error("the login did not end when its context did")
	}
}
