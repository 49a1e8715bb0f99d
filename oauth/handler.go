package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
)

// freshLogin is how long a token from a login or refresh counts as just
// issued: a 401 for it then means the upstream refuses it, not that it
// expired.
const freshLogin = 30 * time.Second

// Handler authorizes requests to one upstream server: it supplies the
// bearer token and handles the upstream's 401 and 403 challenges. It
// implements the proxy's Authorizer. Handlers are made by Engine.Handler
// and are safe for concurrent use.
type Handler struct {
	e   *Engine
	srv Server
	st  *identityState
}

// identityState is shared by every Handler of one identity and store.
type identityState struct {
	identity   string
	candidates []string
	creds      *Credentials

	loadOnce sync.Once
	current  atomic.Pointer[Token] // nil: no token

	// commit orders the writes of current and the stored record: a
	// refresh, a login and a logout that finish together must not leave
	// the older result in place, in memory or in the store.
	commit sync.Mutex
	gen    uint64 // bumped under commit by Logout; guarded by commit

	mu            sync.Mutex
	challenge     *BearerChallenge // the latest the upstream sent
	disc          *Discovery       // cached for refreshes
	refresh       *flight
	login         *flight
	lastRefreshed string               // access token the last refresh produced
	refreshedAt   time.Time            // when
	lastLogin     string               // access token the last login produced
	lastLoginAt   time.Time            // when
	dropped       string               // access token last dropped as dead; never adopted again
	droppedScope  string               // its scope, asked for again at the next login
	seen          string               // access token of the stored record this process last read or wrote
	refused       map[string]time.Time // scope sets a step-up did not get, and when
	client        *ClientInfo          // the registration this process last logged in or refreshed with
	clientDropped time.Time            // when a login that timed out last made this process drop the registration; zero after a login completes
	retryRefresh  time.Time            // no proactive refresh before this (backoff)
	failures      int                  // consecutive transient refresh failures
}

// flight is one refresh or login that any number of callers wait for.
type flight struct {
	done  chan struct{}
	tok   *Token
	err   error
	scope string // a login's requested scope; "" for the usual choice

	mu   sync.Mutex
	link string
}

func newFlight() *flight { return &flight{done: make(chan struct{})} }

func (f *flight) setLink(link string) {
	f.mu.Lock()
	f.link = link
	f.mu.Unlock()
}

func (f *flight) Link() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.link
}

// Errors a Challenge or Login can report, wrapped in a *LoginError.
var (
	ErrLoginPending = errors.New("oauth: login still pending")
	ErrLoginTimeout = errors.New("oauth: login timed out")
)

// LoginError reports a login that has not completed, with the link the
// user can follow while it is still pending (empty when none was made yet,
// and once the login has failed: its callback is no longer answered).
type LoginError struct {
	Target string
	Link   string
	Err    error
}

func (e *LoginError) Error() string {
	msg := fmt.Sprintf("oauth: authorization for %s did not complete: %v", e.Target, e.Err)
	switch {
	case e.Link != "":
		msg += "; open this link to authorize: " + e.Link
	case errors.Is(e.Err, ErrLoginTimeout):
		msg += "; try again for a new link"
	}
	return msg
}

// LoginURL returns the login link; the proxy shows it to waiting clients.
func (e *LoginError) LoginURL() string { return e.Link }

func (e *LoginError) Unwrap() error { return e.Err }

// Identity returns the identity the handler's tokens are stored under.
func (h *Handler) Identity() string { return h.st.identity }

// Current returns the token in use, or nil when there is none. Only the
// first call of an identity reads the store.
func (h *Handler) Current() *Token {
	h.load()
	return h.st.current.Load()
}

// PendingLink returns the link of the login in progress for the handler's
// identity, or "" when none is waiting for the user.
func (h *Handler) PendingLink() string {
	h.st.mu.Lock()
	f := h.st.login
	h.st.mu.Unlock()
	if f == nil {
		return ""
	}
	return f.Link()
}

// Logout forgets the identity's token, in memory and in the store, and its
// client registration, and removes it from the index. The next request
// that the upstream refuses starts a new login.
func (h *Handler) Logout() error {
	h.load()
	h.st.commit.Lock()
	defer h.st.commit.Unlock()
	h.st.gen++
	h.st.current.Store(nil)
	h.st.mu.Lock()
	h.st.client, h.st.droppedScope = nil, ""
	h.st.mu.Unlock()
	_, err := h.st.creds.Forget(h.st.candidates...)
	return err
}

func (h *Handler) target() string {
	if h.srv.Name != "" {
		return h.srv.Name
	}
	return h.st.identity
}

// load reads the stored token once per identity; later calls never touch
// the store.
func (h *Handler) load() {
	h.st.loadOnce.Do(func() {
		tok, _, err := h.st.creds.Token(h.st.candidates...)
		if err != nil {
			h.e.logger().Warn("cannot read the stored token; a new login will replace it",
				"server", h.target(), "err", err)
			return
		}
		if tok != nil {
			h.st.current.CompareAndSwap(nil, tok)
			h.setSeen(tok.AccessToken)
		}
	})
}

// Token returns the access token to send, or "" when there is none yet. A
// token inside the refresh margin is refreshed in the background; only an
// expired one makes the caller wait for the refresh.
func (h *Handler) Token(ctx context.Context) (string, error) {
	h.load()
	tok := h.st.current.Load()
	if tok == nil {
		return "", nil
	}
	now := h.e.now()
	if tok.RefreshToken == "" || !tok.ExpiresWithin(now, h.margin(tok)) {
		return tok.AccessToken, nil
	}
	f := h.startRefresh(tok, false)
	if f == nil {
		if cur := h.st.current.Load(); cur != nil {
			return cur.AccessToken, nil
		}
		return "", nil
	}
	if !tok.ExpiresWithin(now, 0) {
		return tok.AccessToken, nil
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if f.err != nil {
		// The upstream's 401 will start a login.
		return tok.AccessToken, nil
	}
	return f.tok.AccessToken, nil
}

// margin is how long before its expiry tok is refreshed: the engine's
// margin, but at most half the token's lifetime. A token that lives no
// longer than the margin would otherwise be refreshed on every request.
func (h *Handler) margin(tok *Token) time.Duration {
	m := h.e.refreshMargin()
	if s := tok.ExpiresIn; s > 0 && s < int64(2*m/time.Second) {
		m = time.Duration(s) * time.Second / 2
	}
	return m
}

// Challenge handles a 401 or a 403 insufficient_scope answer to a request
// sent with token sent. See proxy.Authorizer.
func (h *Handler) Challenge(ctx context.Context, res *http.Response, sent string) (bool, error) {
	ch, ok := BearerChallengeFrom(res.Header)
	if !ok && len(ParseWWWAuthenticate(res.Header.Values("WWW-Authenticate"))) > 0 {
		// Only other schemes (Basic, an API key): a login would not
		// satisfy them, and the client should see what the server wants.
		// A 401 without any challenge still starts one, as 2025-03-26
		// servers send no WWW-Authenticate.
		return false, nil
	}
	if ok {
		h.st.mu.Lock()
		h.st.challenge = &ch
		h.st.mu.Unlock()
	}
	switch res.StatusCode {
	case http.StatusUnauthorized:
		return h.unauthorized(ctx, sent)
	case http.StatusForbidden:
		if !ok || !ch.InsufficientScope() {
			return false, nil
		}
		return h.stepUp(ctx, ch, sent)
	default:
		return false, nil
	}
}

func (h *Handler) unauthorized(ctx context.Context, sent string) (bool, error) {
	h.load()
	cur := h.st.current.Load()
	if cur != nil && cur.AccessToken != sent && !cur.ExpiresWithin(h.e.now(), 0) {
		// Another caller already replaced the rejected token.
		return true, nil
	}
	h.st.mu.Lock()
	// A token that a refresh or login has just produced and the upstream
	// refuses is not fixed by doing the same again.
	now := h.e.now()
	refreshedRejected := sent != "" && sent == h.st.lastRefreshed && now.Sub(h.st.refreshedAt) < freshLogin
	freshLoginRejected := sent != "" && sent == h.st.lastLogin && now.Sub(h.st.lastLoginAt) < freshLogin
	loginJustNow := now.Sub(h.st.lastLoginAt) < freshLogin
	h.st.mu.Unlock()
	if refreshedRejected && loginJustNow {
		// The login's token was refused, then the refresh's: another login
		// would only repeat both, one link per request.
		h.e.logger().Warn("the upstream refused the token it has just issued; not logging in again",
			"server", h.target())
		return false, nil
	}
	if cur != nil && cur.RefreshToken != "" && !refreshedRejected {
		f := h.startRefresh(cur, true)
		if f == nil {
			return true, nil
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		if f.err == nil {
			return true, nil
		}
		h.e.logger().Info("refresh failed; starting a new login", "server", h.target(), "err", f.err)
	} else if freshLoginRejected {
		// Another login would print another link for a token the server
		// refuses anyway; let the client see the upstream's answer.
		h.e.logger().Warn("the upstream refused the token it has just issued; not logging in again",
			"server", h.target())
		return false, nil
	}
	return h.waitLogin(ctx, h.startLogin("", false), true)
}

// stepUp re-authorizes with the union of the granted, configured and
// challenged scopes. It gives up when the challenge asks for nothing that
// was not granted (or, naming no scope, when the configured ones are all
// granted): a server that keeps refusing would otherwise get one login
// per request.
func (h *Handler) stepUp(ctx context.Context, ch BearerChallenge, sent string) (bool, error) {
	h.load()
	var granted []string
	cur := h.st.current.Load()
	if cur != nil {
		granted = cur.Scopes()
	}
	asked := strings.Fields(ch.Scope)
	if len(asked) == 0 {
		asked = strings.Fields(h.srv.Scope)
	}
	if isSubset(asked, granted) {
		// Refused for a token another request's step-up has replaced
		// since: the current one has the scopes, so send it.
		return cur != nil && cur.AccessToken != sent, nil
	}
	needed := unionScopes(granted, strings.Fields(h.srv.Scope), asked)
	key := strings.Join(slices.Sorted(slices.Values(needed)), " ")
	now := h.e.now()
	h.st.mu.Lock()
	at, refused := h.st.refused[key]
	h.st.mu.Unlock()
	if refused && now.Sub(at) < stepUpCooldown {
		// Each request would otherwise print another link for what the
		// user or the authorization server has just refused.
		h.e.logger().Debug("not asking again for scopes a step-up did not get", "server", h.target(),
			"scope", key, "retry_after", at.Add(stepUpCooldown))
		return false, nil
	}
	h.e.logger().Info("the server asks for more scopes; authorizing again",
		"server", h.target(), "scope", strings.Join(needed, " "))
	f := h.startLogin(strings.Join(needed, " "), false)
	ok, err := h.waitLogin(ctx, f, true)
	if !isSubset(needed, strings.Fields(f.scope)) {
		// This joined a login already running for other scopes; the
		// replay's 403 will ask again.
		return ok, err
	}
	failed := err != nil && !errors.Is(err, ErrLoginPending)
	if cur := h.st.current.Load(); ok && (cur == nil || !isSubset(asked, cur.Scopes())) {
		failed = true // authorized, but without what the server asked for
	}
	if failed {
		now = h.e.now() // the cool-down starts when the step-up failed, not when it was asked for
		h.e.logger().Warn("the step-up did not get the scopes the server asks for; the server's 403 goes to the client until "+
			now.Add(stepUpCooldown).Format(time.TimeOnly), "server", h.target(), "scope", key)
		h.st.mu.Lock()
		if h.st.refused == nil {
			h.st.refused = make(map[string]time.Time)
		}
		h.st.refused[key] = now
		h.st.mu.Unlock()
	}
	return ok, err
}

// stepUpCooldown is how long a scope set a step-up did not get is not
// asked for again (`auth login` still can).
const stepUpCooldown = 5 * time.Minute

// Login runs a new login for the upstream, whatever is stored, after
// probing the upstream for its challenge. It is what `auth login` does.
func (h *Handler) Login(ctx context.Context) (*Token, error) {
	h.load()
	h.probe(ctx)
	f := h.startLogin("", true)
	if _, err := h.waitLogin(ctx, f, false); err != nil {
		return nil, err
	}
	return f.tok, nil
}

// waitLogin waits for the login f. With others, a token another process
// stores meanwhile ends the wait too (the login itself goes on): what a
// request needs, but not Login, which returns the login's own token.
func (h *Handler) waitLogin(ctx context.Context, f *flight, others bool) (bool, error) {
	cur := h.st.current.Load()
	var polls <-chan time.Time
	if others {
		poll := time.NewTicker(storedPoll)
		defer poll.Stop()
		polls = poll.C
	}
wait:
	for {
		select {
		case <-f.done:
			break wait
		case <-ctx.Done():
			return false, &LoginError{Target: h.target(), Link: f.Link(), Err: ErrLoginPending}
		case <-polls:
			// Another process (auth login, fast-agent) may have logged in
			// meanwhile; its token ends the wait, while the login here
			// stays open for the user who follows its link after all.
			// A refresh meanwhile changes the token too, without the
			// scopes a step-up waits for.
			c := h.st.current.Load()
			if c != nil && c != cur && isSubset(strings.Fields(f.scope), c.Scopes()) || h.adoptStored(cur, f.scope) != nil {
				return true, nil
			}
		}
	}
	if f.err != nil {
		var le *LoginError
		if errors.As(f.err, &le) {
			return false, f.err
		}
		return false, &LoginError{Target: h.target(), Link: f.Link(), Err: f.err}
	}
	return true, nil
}

// startRefresh returns the refresh in flight, or starts one for old. It
// returns nil when old is no longer the current token (it was replaced,
// and refreshing it again would send a rotated refresh token twice) or,
// unless force, while a failed refresh backs off.
func (h *Handler) startRefresh(old *Token, force bool) *flight {
	st := h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.refresh != nil {
		return st.refresh
	}
	if st.current.Load() != old || (!force && h.e.now().Before(st.retryRefresh)) {
		return nil
	}
	f := newFlight()
	if !h.e.startFlight(func() {
		f.tok, f.err = h.refresh(old)
		st.mu.Lock()
		st.refresh = nil
		st.mu.Unlock()
		close(f.done)
	}) {
		f.err = errClosed
		close(f.done)
		return f
	}
	st.refresh = f // the flight clears it under st.mu, which this holds
	return f
}

func (h *Handler) refresh(old *Token) (*Token, error) {
	st := h.st
	ctx, cancel := context.WithTimeout(wire.WithServer(h.e.ctx, h.target()), time.Minute)
	defer cancel()
	from := old // the token whose refresh token is redeemed
	if stored := h.storedByOthers(old); stored != nil {
		switch {
		case !stored.ExpiresWithin(h.e.now(), h.margin(stored)):
			return h.commitRefresh(old, stored, false)
		case stored.RefreshToken != "":
			from = stored
		}
		// An expiring one without a refresh token is of no use; ours is.
	}
	st.mu.Lock()
	known := st.disc != nil || st.challenge != nil
	st.mu.Unlock()
	if !known {
		// A proactive refresh right after start: without the upstream's
		// challenge, discovery of a server that names its metadata only
		// there would take the MCP origin for the authorization server.
		h.probe(ctx)
	}
	disc, err := h.discovery(ctx, true)
	if err != nil {
		h.refreshFailed(err)
		return nil, err
	}
	client, err := h.refreshClient()
	if err != nil {
		h.refreshFailed(err)
		return nil, err
	}
	if client.Issuer != "" && !sameIssuer(client.Issuer, disc.Issuer) {
		// The refresh token is only ever sent to the server that issued it.
		// The client records the issuer as discovery named it, which need
		// not be the metadata's own spelling (a 2025-03-26 server's is the
		// MCP origin), so it is compared as staleClient compares it.
		st.mu.Lock()
		st.disc = nil // discover again, with the next challenge
		st.mu.Unlock()
		err := fmt.Errorf("oauth: not refreshing at %s: the client was registered with %s", disc.Issuer, client.Issuer)
		h.refreshFailed(err)
		return nil, err
	}
	tok, err := h.tokenEndpoint(disc, client).Refresh(ctx, from.RefreshToken, h.srv.resource(disc), from.Scope)
	if err != nil {
		var te *TokenError
		switch {
		case errors.As(err, &te) && te.Code == "invalid_grant":
			if stored := h.rotatedByOthers(ctx, old, from); stored != nil {
				return h.commitRefresh(old, stored, false)
			}
			if tok := h.drop(old, "the refresh token was rejected; dropping it", false, from); tok != nil {
				return tok, nil
			}
		case errors.As(err, &te) && (te.Code == "invalid_client" || te.Code == "unauthorized_client"):
			if tok := h.drop(old, "the client registration was rejected; dropping it", true, from); tok != nil {
				return tok, nil
			}
		default:
			h.refreshFailed(err)
		}
		return nil, err
	}
	if tok.Scope == "" {
		tok.Scope = from.Scope
	}
	return h.commitRefresh(old, tok, true)
}

// commitRefresh makes tok, which replaces old, the current token, saving
// it first when save is set, unless a login or logout replaced old
// meanwhile: it returns the token current then.
func (h *Handler) commitRefresh(old, tok *Token, save bool) (*Token, error) {
	st := h.st
	st.commit.Lock()
	if cur := st.current.Load(); cur != old {
		// A login or logout finished while the refresh ran: its result
		// is newer than this one.
		st.commit.Unlock()
		h.e.logger().Debug("discarding a refresh that a login or logout overtook", "server", h.target())
		if cur == nil {
			return nil, errors.New("oauth: logged out during the refresh")
		}
		return cur, nil
	}
	if save {
		// Persist first: a rotated refresh token must survive a crash.
		h.save(tok)
	} else {
		h.e.logger().Info("using the token another process refreshed", "server", h.target())
		h.setSeen(tok.AccessToken)
		if tok.RefreshToken == "" && old != nil && old.RefreshToken != "" {
			// fast-agent before 0.10 writes a refreshed token without the
			// refresh token, which the server did not rotate: it is the
			// one this process holds, and it refreshes the new token too.
			t := *tok
			t.RefreshToken = old.RefreshToken
			tok = &t
		}
	}
	st.current.Store(tok)
	st.commit.Unlock()
	st.mu.Lock()
	if save {
		st.lastRefreshed, st.refreshedAt = tok.AccessToken, h.e.now()
	}
	st.failures, st.retryRefresh = 0, time.Time{}
	st.mu.Unlock()
	h.e.logger().Debug("token refreshed", "server", h.target(), "expires_at", tok.ExpiresAt)
	return tok, nil
}

// rotatedByOthers returns the token another process stored after
// redeeming from's refresh token first, as a server that rotates refresh
// tokens answers the second redemption with invalid_grant. That process
// may still be saving it, so the store is read again after a moment
// before the refresh token is taken for dead.
func (h *Handler) rotatedByOthers(ctx context.Context, old, from *Token) *Token {
	for i := 0; ; i++ {
		if stored := h.storedByOthers(from); stored != nil && stored.AccessToken != old.AccessToken {
			return stored
		}
		if i == 1 {
			return nil
		}
		select {
		case <-time.After(othersSaveWait):
		case <-ctx.Done():
			return nil
		}
	}
}

// storedPoll is how often a request waiting for a login looks for a token
// another process has stored.
const storedPoll = 2 * time.Second

// othersSaveWait is how long another process's save of a token it has
// just received may take: a keychain write takes milliseconds.
const othersSaveWait = time.Second

// storedByOthers returns the stored token when another process (fast-agent,
// a second proxy, `auth login`) wrote it since this one last read or wrote
// the record, and it is not tok; else nil. With rotating refresh tokens,
// only the latest refresh token is still good.
func (h *Handler) storedByOthers(tok *Token) *Token {
	st := h.st
	stored, _, err := st.creds.Token(st.candidates...)
	if err != nil || stored == nil || stored.AccessToken == tok.AccessToken {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if stored.AccessToken == st.seen || stored.AccessToken == st.dropped {
		return nil
	}
	return stored
}

func (h *Handler) setSeen(accessToken string) {
	h.st.mu.Lock()
	h.st.seen = accessToken
	h.st.mu.Unlock()
}

// refreshFailed backs proactive refreshes off after a transient failure;
// the old token stays in use until it expires.
func (h *Handler) refreshFailed(err error) {
	st := h.st
	st.mu.Lock()
	st.failures++
	backoff := min(time.Duration(1<<min(st.failures, 9))*time.Second, 5*time.Minute)
	st.retryRefresh = h.e.now().Add(backoff)
	st.mu.Unlock()
	h.e.logger().Warn("token refresh failed; keeping the current token", "server", h.target(),
		"retry_in", backoff, "err", err)
}

func (h *Handler) refreshClient() (*ClientInfo, error) {
	if h.srv.ClientID != "" {
		return &ClientInfo{ClientID: h.srv.ClientID, ClientSecret: h.srv.ClientSecret}, nil
	}
	ci, _, err := h.st.creds.Client(h.st.candidates...)
	if ci == nil {
		// A keychain given up mid-run answers from memory, where the
		// registration is not: the one this process logged in with
		// still refreshes its token.
		h.st.mu.Lock()
		cached := h.st.client
		h.st.mu.Unlock()
		if cached != nil {
			return cached, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if ci == nil {
		return nil, fmt.Errorf("oauth: no client registration stored for %s", h.st.identity)
	}
	h.st.mu.Lock()
	h.st.client = ci
	h.st.mu.Unlock()
	return ci, nil
}

// drop forgets old, which the authorization server has rejected, and with
// client its client registration, unless a login or logout has already
// replaced old. Every key form is deleted: a record left under a legacy
// key would be read again as another process's token. A token another
// process has stored since, other than old and the refused ones, is used
// instead, nothing is deleted, and drop returns the token now current
// (nil when old was dropped).
func (h *Handler) drop(old *Token, why string, client bool, refused ...*Token) *Token {
	if stored := h.storedByOthers(old); stored != nil &&
		!slices.ContainsFunc(refused, func(t *Token) bool { return t.AccessToken == stored.AccessToken }) {
		tok, _ := h.commitRefresh(old, stored, false)
		return tok
	}
	st := h.st
	st.commit.Lock()
	defer st.commit.Unlock()
	if !st.current.CompareAndSwap(old, nil) {
		return nil
	}
	h.e.logger().Info(why, "server", h.target())
	st.mu.Lock()
	st.dropped, st.droppedScope = old.AccessToken, old.Scope
	st.mu.Unlock()
	h.deleteStored(true, client)
	return nil
}

// forgetClient deletes the stored client registration under every key
// form, keeping the token: one in use stays valid until it expires, and
// the store must not lose what memory still holds.
func (h *Handler) forgetClient() {
	h.st.commit.Lock()
	defer h.st.commit.Unlock()
	h.deleteStored(false, true)
}

// deleteStored deletes the stored token and the client registration, as
// asked, under every key form of the identity. h.st.commit is held.
func (h *Handler) deleteStored(token, client bool) {
	if client {
		h.st.mu.Lock()
		h.st.client = nil
		h.st.mu.Unlock()
	}
	for _, id := range h.st.candidates {
		if client {
			if err := h.st.creds.DeleteClient(id); err != nil {
				h.e.logger().Warn("cannot delete the client registration", "server", h.target(), "err", err)
			}
		}
		if token {
			if err := h.st.creds.DeleteToken(id); err != nil {
				h.e.logger().Warn("cannot delete the token", "server", h.target(), "err", err)
			}
		}
	}
}

// save persists tok. A failed write is loud but not fatal: the token stays
// usable from memory for this process.
func (h *Handler) save(tok *Token) {
	if err := h.st.creds.SaveToken(h.st.identity, tok); err != nil {
		h.e.logger().Warn("cannot save the token; it is kept in memory for this process only",
			"server", h.target(), "err", err)
		return
	}
	h.setSeen(tok.AccessToken)
}

func (h *Handler) tokenEndpoint(disc *Discovery, client *ClientInfo) *TokenEndpoint {
	return &TokenEndpoint{
		HTTPClient: h.e.client,
		URL:        disc.Metadata.TokenEndpoint,
		Client:     client,
		Supported:  disc.Metadata.TokenEndpointAuthMethodsSupported,
		Now:        h.e.Now,
	}
}

// discovery returns the cached discovery when cached is true and there is
// one, else discovers again using the latest challenge.
func (h *Handler) discovery(ctx context.Context, cached bool) (*Discovery, error) {
	st := h.st
	st.mu.Lock()
	ch, disc := st.challenge, st.disc
	st.mu.Unlock()
	if cached && disc != nil {
		return disc, nil
	}
	disc, err := h.e.discoverer().Discover(ctx, h.srv.URL, ch)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	st.disc = disc
	st.mu.Unlock()
	return disc, nil
}

func unionScopes(sets ...[]string) []string {
	var out []string
	for _, set := range sets {
		for _, s := range set {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func isSubset(sub, set []string) bool {
	for _, s := range sub {
		if !slices.Contains(set, s) {
			return false
		}
	}
	return true
}
