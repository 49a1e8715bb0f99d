package oauth

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
)

// faultsTransport sends requests on, except to the authorization server
// while it is down, and except those that answer claims: those get the
// answer it makes. It counts the body bytes the engine reads from made-up
// answers.
type faultsTransport struct {
	asHost string
	down   atomic.Bool
	hits   atomic.Int32 // requests refused while down

	mu     sync.Mutex
	answer func(r *http.Request) *http.Response // nil: no made-up answers
	read   int64
}

func (ft *faultsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == ft.asHost && ft.down.Load() {
		ft.hits.Add(1)
		return nil, errors.New("dial tcp: connection refused (the authorization server is down)")
	}
	ft.mu.Lock()
	answer := ft.answer
	ft.mu.Unlock()
	if answer != nil {
		if res := answer(r); res != nil {
			res.Request = r
			res.Body = &faultsCounter{r: res.Body, ft: ft}
			return res, nil
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (ft *faultsTransport) bytesRead() int64 {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.read
}

type faultsCounter struct {
	r  io.ReadCloser
	ft *faultsTransport
}

func (c *faultsCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.ft.mu.Lock()
	c.ft.read += int64(n)
	c.ft.mu.Unlock()
	return n, err
}

func (c *faultsCounter) Close() error { return c.r.Close() }

// faultsEndless is a JSON body that never ends.
type faultsEndless struct{ started bool }

func (e *faultsEndless) Read(p []byte) (int, error) {
	if !e.started {
		e.started = true
		return copy(p, `{"access_token":"`), nil
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func (e *faultsEndless) Close() error { return nil }

// newFaultsFixture is an engine fixture whose HTTP client goes through a
// faultsTransport. The client follows redirects, as a careless caller's
// would: the engine must not.
func newFaultsFixture(t *testing.T, o fixtureOptions) (*engineFixture, *faultsTransport) {
	ft := &faultsTransport{}
	prev := o.engine
	o.engine = func(e *Engine) {
		e.HTTPClient = &http.Client{Transport: ft, Timeout: 30 * time.Second}
		if prev != nil {
			prev(e)
		}
	}
	f := newEngineFixture(t, o)
	ft.asHost = strings.TrimPrefix(f.as.URL, "http://")
	return f, ft
}

// faultsIdle waits until no refresh is in flight.
func faultsIdle(t *testing.T, h *Handler) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.st.mu.Lock()
		busy := h.st.refresh != nil
		h.st.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the refresh did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The authorization server is down when the token is due for a refresh:
// the old token stays in use while it is valid, refreshes are retried with
// growing backoff (not on every request), and once the server is back the
// refresh goes through.
func TestFaultsRefreshWhileAuthServerDown(t *testing.T) {
	f, ft := newFaultsFixture(t, fixtureOptions{
		as:     oauthtest.AuthServerOptions{IssueRefreshTokens: true, AccessTokenTTL: 10 * time.Minute},
		engine: func(e *Engine) { e.RefreshMargin = time.Minute },
	})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login = %d, %v", status, err)
	}
	old := f.stored().AccessToken
	ft.down.Store(true)

	token := func(want string) {
		t.Helper()
		tok, err := f.h.Token(ctx)
		if err != nil || tok != want {
			t.Fatalf("Token = %.10q, %v; want %.10q", tok, err, want)
		}
		faultsIdle(t, f.h)
	}
	attempts := func(want int32) {
		t.Helper()
		if n := ft.hits.Load(); n != want {
			t.Fatalf("%d refresh attempts, want %d", n, want)
		}
	}
	f.advance(9*time.Minute + 30*time.Second) // inside the margin, still valid
	token(old)
	attempts(1)
	for range 20 { // requests meanwhile do not hammer the server
		token(old)
	}
	attempts(1)
	f.advance(3 * time.Second) // past the first backoff (2 s)
	token(old)
	attempts(2)
	f.advance(3 * time.Second) // not past the second (4 s)
	token(old)
	attempts(2)
	f.advance(2 * time.Second)
	token(old)
	attempts(3)
	// The upstream still takes the old token.
	if status, err := f.call(ctx, f.h, "tools/list"); status != 200 || err != nil {
		t.Fatalf("call while the AS is down = %d, %v", status, err)
	}

	ft.down.Store(false)
	f.advance(10 * time.Second)
	f.h.Token(ctx) // starts the refresh, still answering with the old token
	faultsIdle(t, f.h)
	tok, err := f.h.Token(ctx)
	if err != nil || tok == old || tok != f.stored().AccessToken {
		t.Fatalf("after the AS came back: Token = %.10q, %v; want the new stored token", tok, err)
	}
	if n := f.as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d browser logins, want 1", n)
	}
}

// Every OAuth endpoint answering garbage, a body too large, a body that
// never ends, or a redirect elsewhere: the login fails with an error
// naming what went wrong, reads are bounded, redirects are not followed
// and nothing is stored.
func TestFaultsBadAnswersFromOAuthEndpoints(t *testing.T) {
	var elsewhere atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		io.WriteString(w, `{"access_token":"stolen","token_type":"bearer"}`)
	}))
	t.Cleanup(evil.Close)
	endpoints := map[string]func(r *http.Request) bool{
		"protected resource metadata": func(r *http.Request) bool {
			return strings.HasPrefix(r.URL.Path, "/.well-known/oauth-protected-resource") || strings.HasPrefix(r.URL.Path, "/custom/metadata")
		},
		"authorization server metadata": func(r *http.Request) bool {
			return strings.HasPrefix(r.URL.Path, "/.well-known/oauth-authorization-server") || strings.HasPrefix(r.URL.Path, "/.well-known/openid-configuration")
		},
		"registration": func(r *http.Request) bool { return r.URL.Path == "/register" },
		"token":        func(r *http.Request) bool { return r.URL.Path == "/token" },
	}
	answers := map[string]func() *http.Response{
		"garbage": func() *http.Response {
			return faultsResponse(200, io.NopCloser(strings.NewReader(`{"issuer": "x", garbage`)))
		},
		"oversized": func() *http.Response {
			big := `{"access_token":"x","pad":"` + strings.Repeat("x", 2<<20) + `"}`
			return faultsResponse(200, io.NopCloser(strings.NewReader(big)))
		},
		"endless": func() *http.Response { return faultsResponse(200, &faultsEndless{}) },
		"redirect": func() *http.Response {
			res := faultsResponse(http.StatusTemporaryRedirect, io.NopCloser(strings.NewReader("")))
			res.Header.Set("Location", evil.URL+"/steal")
			return res
		},
	}
	for name, match := range endpoints {
		for kind, answer := range answers {
			t.Run(name+"/"+kind, func(t *testing.T) {
				f, ft := newFaultsFixture(t, fixtureOptions{as: oauthtest.AuthServerOptions{IssueRefreshTokens: true}})
				ft.answer = func(r *http.Request) *http.Response {
					if match(r) {
						return answer()
					}
					return nil
				}
				status, err := f.call(f.ctx(), f.h, "initialize")
				// Metadata that cannot be used means "try the next place",
				// and last the 2025-03-26 default endpoints, which work here.
				fallBack := name == "authorization server metadata" && (kind == "garbage" || kind == "redirect")
				if fallBack && status == http.StatusOK && err == nil {
					if tok := f.stored(); tok == nil {
						t.Error("logged in through the default endpoints, but nothing stored")
					} else if _, ok := f.as.Valid(tok.AccessToken); !ok {
						t.Error("stored a token the authorization server never issued")
					}
				} else if status != http.StatusUnauthorized || err == nil {
					t.Fatalf("call = %d, %v; want the 401 and the login's error", status, err)
				}
				t.Logf("error: %v", err)
				if n := ft.bytesRead(); n > 2<<20 {
					t.Errorf("read %d bytes of one answer", n)
				}
				if !fallBack && f.stored() != nil {
					t.Error("a token was stored")
				}
				if n := elsewhere.Load(); n != 0 {
					t.Errorf("the redirect was followed: %d requests reached the other origin", n)
				}
			})
		}
	}
}

func faultsResponse(status int, body io.ReadCloser) *http.Response {
	return &http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       body,
	}
}

// A refresh token answered with a redirect is not sent after it: the
// refresh fails, the token stays.
func TestFaultsRefreshRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(evil.Close)
	f, ft := newFaultsFixture(t, fixtureOptions{
		as:     oauthtest.AuthServerOptions{IssueRefreshTokens: true, AccessTokenTTL: 10 * time.Minute},
		engine: func(e *Engine) { e.RefreshMargin = time.Minute },
	})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login = %d, %v", status, err)
	}
	old := f.stored()
	ft.mu.Lock()
	ft.answer = func(r *http.Request) *http.Response {
		if r.URL.Path != "/token" {
			return nil
		}
		res := faultsResponse(http.StatusTemporaryRedirect, io.NopCloser(strings.NewReader("")))
		res.Header.Set("Location", evil.URL+"/token")
		return res
	}
	ft.mu.Unlock()
	f.advance(9*time.Minute + 30*time.Second)
	if tok, _ := f.h.Token(ctx); tok != old.AccessToken {
		t.Fatalf("Token changed during a failing refresh")
	}
	faultsIdle(t, f.h)
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the refresh followed the redirect: %d requests reached the other origin", n)
	}
	if got := f.stored(); got == nil || got.RefreshToken != old.RefreshToken {
		t.Errorf("stored token after the failed refresh: %+v", got)
	}
}

// The issue's figure at the engine, with the token expired on the
// engine's clock: 200 callers of Token, one refresh request, and the
// rotated refresh token is never sent again.
func TestHardeningEngine200ExpiredOneRefresh(t *testing.T) {
	f := newEngineFixture(t, fixtureOptions{
		as:     oauthtest.AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true, AccessTokenTTL: time.Minute},
		engine: func(e *Engine) { e.RefreshMargin = 5 * time.Second },
	})
	ctx := f.ctx()
	if status, err := f.call(ctx, f.h, "initialize"); status != 200 || err != nil {
		t.Fatalf("login = %d, %v", status, err)
	}
	for round := range 2 {
		before := f.as.Count(oauthtest.EndpointToken)
		f.advance(2 * time.Minute) // expired on the engine's clock
		tokens := make([]string, 200)
		var wg sync.WaitGroup
		for i := range tokens {
			wg.Go(func() {
				tok, err := f.h.Token(ctx)
				if err != nil {
					t.Error(err)
				}
				tokens[i] = tok
			})
		}
		wg.Wait()
		if n := f.as.Count(oauthtest.EndpointToken) - before; n != 1 {
			t.Errorf("round %d: %d refresh requests for 200 callers, want 1", round, n)
		}
		stored := f.stored().AccessToken
		for _, tok := range tokens {
			if tok != stored {
				t.Fatalf("round %d: a caller got a token other than the refreshed one", round)
			}
		}
	}
	if n := f.as.RefreshTokenReuses(); n != 0 {
		t.Errorf("a rotated refresh token was sent %d times again", n)
	}
}
