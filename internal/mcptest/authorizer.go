// Package mcptest provides test doubles for the MCP proxy: a fake OAuth
// engine ([Authorizer]), a bearer-token check that wraps an upstream MCP
// handler and records what reaches it ([Bearer]), and go-sdk MCP servers
// with a few tools ([NewServer]).
package mcptest

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Authorizer is a fake OAuth engine implementing the proxy's Authorizer
// interface. Token returns the current token; Challenge "logs in": it mints
// a new token after Delay (and once Hold is closed), sharing one login among
// every concurrent caller, like the real engine. Set the exported fields
// before first use.
type Authorizer struct {
	// URL is the login link reported while a login is pending and when it
	// fails. Empty means "https://auth.example/authorize".
	URL string

	// Delay is how long a login takes.
	Delay time.Duration

	// Hold, when non-nil, keeps every login pending until it is closed.
	Hold chan struct{}

	// Fail, when non-nil, makes logins fail with a *LoginError wrapping it.
	Fail error

	// Scopes are granted to every new token.
	Scopes []string

	// Grantable are the scopes a step-up (a Challenge for a 403
	// insufficient_scope) may add to a new token when the challenge asks
	// for them. Other requested scopes are not granted, but the login still
	// succeeds, so the step-up repeats.
	Grantable []string

	mu         sync.Mutex
	token      string
	scopes     map[string][]string // scopes of each token issued
	revoked    map[string]bool
	issued     int
	logins     int
	challenges int
	flight     *flight
}

// flight is one login shared by every caller that waits on it.
type flight struct {
	done chan struct{}
	err  error
}

// LoginError is returned by Challenge while a login is pending (its context
// ended) or when it failed. It carries the login link, as the real engine's
// errors do.
type LoginError struct {
	URL string
	Err error
}

func (e *LoginError) Error() string    { return fmt.Sprintf("login at %s: %v", e.URL, e.Err) }
func (e *LoginError) Unwrap() error    { return e.Err }
func (e *LoginError) LoginURL() string { return e.URL }

// Token returns the current token, "" before the first login.
func (a *Authorizer) Token(context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token, nil
}

// Challenge is called by the proxy for a 401 or a 403 insufficient_scope.
// If a token newer than sent already covers the challenge it reports a retry
// at once; otherwise it joins the pending login or starts one, and waits for
// it or for ctx.
func (a *Authorizer) Challenge(ctx context.Context, res *http.Response, sent string) (bool, error) {
	want := challengeScopes(res)
	a.mu.Lock()
	a.challenges++
	if a.token != "" && a.token != sent && !a.revoked[a.token] && covers(a.scopes[a.token], want) {
		a.mu.Unlock()
		return true, nil
	}
	f := a.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		a.flight = f
		go a.login(f, want)
	}
	a.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return false, f.err
		}
		return true, nil
	case <-ctx.Done():
		return false, &LoginError{URL: a.loginURL(), Err: ctx.Err()}
	}
}

// login runs one login flow; it outlives the callers' contexts, as the real
// engine's logins do.
func (a *Authorizer) login(f *flight, want []string) {
	if a.Delay > 0 {
		time.Sleep(a.Delay)
	}
	if a.Hold != nil {
		<-a.Hold
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	defer close(f.done)
	a.flight = nil
	if a.Fail != nil {
		f.err = &LoginError{URL: a.loginURL(), Err: a.Fail}
		return
	}
	scopes := slices.Clone(a.Scopes)
	scopes = append(scopes, a.scopes[a.token]...)
	for _, s := range want {
		if slices.Contains(a.Grantable, s) {
			scopes = append(scopes, s)
		}
	}
	slices.Sort(scopes)
	a.issue(slices.Compact(scopes))
	a.logins++
}

func (a *Authorizer) issue(scopes []string) {
	a.issued++
	a.token = fmt.Sprintf("token-%d", a.issued)
	if a.scopes == nil {
		a.scopes = make(map[string][]string)
	}
	a.scopes[a.token] = scopes
}

func (a *Authorizer) loginURL() string {
	if a.URL == "" {
		return "https://auth.example/authorize"
	}
	return a.URL
}

// SetToken makes a new current token with the given scopes, as if the user
// had logged in before, and returns it.
func (a *Authorizer) SetToken(scopes ...string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.issue(slices.Clone(scopes))
	return a.token
}

// Revoke makes the current token invalid upstream while Token keeps
// returning it, as when a token expires or is revoked.
func (a *Authorizer) Revoke() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revoked == nil {
		a.revoked = make(map[string]bool)
	}
	a.revoked[a.token] = true
}

// Verify reports whether token is the current, unrevoked token and its
// scopes. It is what [Bearer] checks.
func (a *Authorizer) Verify(token string) (scopes []string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if token == "" || token != a.token || a.revoked[token] {
		return nil, false
	}
	return a.scopes[token], true
}

// Logins returns the number of completed login flows.
func (a *Authorizer) Logins() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logins
}

// Challenges returns the number of Challenge calls.
func (a *Authorizer) Challenges() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.challenges
}

// scopeParamRE finds the scope parameter of a Bearer challenge.
var scopeParamRE = regexp.MustCompile(`(?i)(?:^|[\s,])scope\s*=\s*"([^"]*)"`)

// challengeScopes returns the scopes a 403 insufficient_scope asks for.
func challengeScopes(res *http.Response) []string {
	if res == nil || res.StatusCode != http.StatusForbidden {
		return nil
	}
	var scopes []string
	for _, v := range res.Header.Values("Www-Authenticate") {
		if m := scopeParamRE.FindStringSubmatch(v); m != nil {
			scopes = append(scopes, strings.Fields(m[1])...)
		}
	}
	return scopes
}

func covers(have, want []string) bool {
	for _, s := range want {
		if !slices.Contains(have, s) {
			return false
		}
	}
	return true
}
