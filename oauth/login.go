package oauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
)

// startLogin returns the login in flight for the identity, or starts one.
// scope, when set, is requested instead of the usual choice (a step-up).
// force skips adopting a token another process stored meanwhile.
func (h *Handler) startLogin(scope string, force bool) *flight {
	st := h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.login != nil {
		return st.login
	}
	f := newFlight()
	f.scope = scope
	if !h.e.startFlight(func() {
		f.tok, f.err = h.runLogin(f, scope, force)
		st.mu.Lock()
		st.login = nil
		st.mu.Unlock()
		close(f.done)
	}) {
		f.err = errClosed
		close(f.done)
		return f
	}
	st.login = f // the flight clears it under st.mu, which this holds
	return f
}

func (h *Handler) runLogin(f *flight, scope string, force bool) (*Token, error) {
	ctx, cancel := context.WithTimeout(wire.WithServer(h.e.ctx, h.target()), h.e.loginTimeout())
	defer cancel()
	st := h.st
	cur := st.current.Load()
	if !force {
		if tok := h.adoptStored(cur, scope); tok != nil {
			return tok, nil
		}
	}
	tok, err := h.login(ctx, f, scope)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = ErrLoginTimeout
		}
		h.e.logger().Warn("authorization failed", "server", h.target(), "err", err)
		// No link: the callback is no longer answered, so following it
		// would end on a refused connection.
		return nil, &LoginError{Target: h.target(), Err: err}
	}
	st.commit.Lock()
	h.save(tok)
	st.current.Store(tok)
	st.commit.Unlock()
	st.mu.Lock()
	st.lastRefreshed, st.failures, st.retryRefresh = "", 0, time.Time{}
	st.lastLogin, st.lastLoginAt = tok.AccessToken, h.e.now()
	st.mu.Unlock()
	h.e.logger().Info("authorized", "server", h.target(), "identity", st.identity)
	return tok, nil
}

// adoptStored returns a usable token that another process (`auth login` in
// another terminal, fast-agent) stored since cur was loaded, if any.
func (h *Handler) adoptStored(cur *Token, scope string) *Token {
	st := h.st
	st.commit.Lock()
	gen := st.gen
	st.commit.Unlock()
	tok, _, err := st.creds.Token(st.candidates...)
	if err != nil || tok == nil || tok.ExpiresWithin(h.e.now(), 0) {
		return nil
	}
	if cur != nil && tok.AccessToken == cur.AccessToken {
		return nil
	}
	st.mu.Lock()
	dead := tok.AccessToken == st.dropped
	st.mu.Unlock()
	if dead {
		// Left behind when the server rejected it, e.g. by a failed delete.
		return nil
	}
	if scope != "" && !isSubset(strings.Fields(scope), tok.Scopes()) {
		return nil
	}
	st.commit.Lock()
	defer st.commit.Unlock()
	if st.current.Load() != cur || st.gen != gen {
		return nil // a refresh, drop or logout came first
	}
	h.e.logger().Info("using the token another process stored", "server", h.target())
	h.setSeen(tok.AccessToken)
	st.current.Store(tok)
	return tok
}

// login discovers the authorization server, resolves the client and runs
// the browser flow. A client registration the server rejects is dropped
// and made again, once.
func (h *Handler) login(ctx context.Context, f *flight, scope string) (*Token, error) {
	disc, err := h.discovery(ctx, false)
	if err != nil {
		return nil, err
	}
	st := h.st
	if scope == "" {
		scope = h.chooseScope(disc)
		// The scopes the last token held are asked for again: a
		// step-up's would otherwise be lost, and cost another login at
		// the server's next 403.
		var held string
		if cur := st.current.Load(); cur != nil {
			held = cur.Scope
		} else {
			st.mu.Lock()
			held = st.droppedScope
			st.mu.Unlock()
		}
		scope = strings.Join(unionScopes(strings.Fields(scope), strings.Fields(held)), " ")
	}
	uris := h.srv.redirectURIs()
	for attempt := 0; ; attempt++ {
		stored, _, err := st.creds.Client(st.candidates...)
		if err != nil {
			h.e.logger().Warn("ignoring the unreadable client registration", "server", h.target(), "err", err)
			stored = nil
		}
		client, registered, err := h.e.discoverer().ResolveClient(ctx, disc, ClientOptions{
			ClientID:          h.srv.ClientID,
			ClientSecret:      h.srv.ClientSecret,
			ClientMetadataURL: h.srv.ClientMetadataURL,
			RedirectURI:       uris[0],
			OtherRedirectURIs: uris[1:],
			Scope:             h.srv.Scope,
		}, stored)
		if err != nil {
			return nil, err
		}
		if registered {
			if err := st.creds.SaveClient(st.identity, client); err != nil {
				h.e.logger().Warn("cannot save the client registration", "server", h.target(), "err", err)
			}
		}
		tok, err := h.authorize(ctx, f, disc, client, scope)
		if err == nil && h.srv.ClientID == "" {
			st.mu.Lock()
			st.client = client
			// The user follows links: the next login that times out
			// may well be a forgotten client's.
			st.clientDropped = time.Time{}
			st.mu.Unlock()
		}
		if cur := st.current.Load(); err != nil && !registered && h.srv.ClientID == "" &&
			errors.Is(ctx.Err(), context.DeadlineExceeded) && (cur == nil || cur.RefreshToken == "") &&
			h.mayDropClient() {
			// The user never came back. An authorization server that has
			// forgotten a client shows an error page instead of
			// redirecting, so a stored registration is made again next
			// time: unless the token in use still needs it to refresh.
			h.e.logger().Info("the login did not complete; the client registration will be made again at the next login",
				"server", h.target(), "client_id", client.ClientID)
			h.forgetClient()
		}
		var te *TokenError
		if attempt == 0 && h.srv.ClientID == "" && errors.As(err, &te) &&
			(te.Code == "invalid_client" || te.Code == "unauthorized_client") {
			h.e.logger().Info("the authorization server rejected the client; registering again", "server", h.target())
			h.forgetClient()
			continue
		}
		return tok, err
	}
}

// clientDropInterval is the least time between two registrations dropped
// after logins that timed out, with none completed in between. Mostly the
// user just did not follow the link; each drop costs a registration at the
// authorization server, and logins that nobody completes may go on for
// days.
const clientDropInterval = 24 * time.Hour

// mayDropClient reports whether a login that timed out may drop the
// stored registration now, and notes the drop if so.
func (h *Handler) mayDropClient() bool {
	now := h.e.now()
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	if !h.st.clientDropped.IsZero() && now.Sub(h.st.clientDropped) < clientDropInterval {
		return false
	}
	h.st.clientDropped = now
	return true
}

// chooseScope: the configured scope as given; else the challenge's; else
// the resource's scopes_supported; else none.
func (h *Handler) chooseScope(disc *Discovery) string {
	if h.srv.Scope != "" {
		return h.srv.Scope
	}
	h.st.mu.Lock()
	ch := h.st.challenge
	h.st.mu.Unlock()
	if ch != nil && ch.Scope != "" {
		return ch.Scope
	}
	if disc.ResourceMetadata != nil {
		return strings.Join(disc.ResourceMetadata.ScopesSupported, " ")
	}
	return ""
}

// authorize runs one authorization code flow with PKCE and exchanges the
// code.
func (h *Handler) authorize(ctx context.Context, f *flight, disc *Discovery, client *ClientInfo, scope string) (*Token, error) {
	state, verifier := NewState(), NewVerifier()
	// The client's own, when it is a registration that lists only the
	// other spelling (fast-agent's); a configured client gets ours.
	uris := h.srv.redirectURIs()
	redirectURI := redirectURIFor(client, uris)
	if redirectURI == "" {
		redirectURI = uris[0]
	}
	// Expect registers the login even when the port cannot be bound: a
	// pasted callback can still complete it.
	pending, listenErr := h.e.callbacks.Expect(h.srv.redirectPort(), h.srv.redirectPath(), state)
	if listenErr != nil {
		where := h.e.callbacks.pastePlaces()
		if where == "" {
			pending.Close()
			return nil, fmt.Errorf("%w, and nothing reads a pasted callback here: free the port or choose another redirect port", listenErr)
		}
		h.e.logger().Warn("cannot listen for the authorization callback; paste the URL the browser ends on (or its code) into "+where,
			"redirect_uri", redirectURI, "err", listenErr)
	}
	defer pending.Close()
	if disc.Metadata.AuthorizationResponseIssParameterSupported {
		pending.RequireIss()
	}
	link := AuthRequest{
		Endpoint:    disc.Metadata.AuthorizationEndpoint,
		ClientID:    client.ClientID,
		RedirectURI: redirectURI,
		Scope:       scope,
		Resource:    h.srv.resource(disc),
		Params:      h.srv.AuthorizeParams,
		State:       state,
		Verifier:    verifier,
	}.URL()
	f.setLink(link)
	h.e.prompt(h.target(), link)

	res, err := pending.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if res.Iss != "" || disc.Metadata.AuthorizationResponseIssParameterSupported {
		// RFC 9207: a mix-up defence; compare exactly, no normalisation.
		if res.Iss != disc.Metadata.Issuer {
			return nil, fmt.Errorf("oauth: authorization response came from issuer %q, want %q", res.Iss, disc.Metadata.Issuer)
		}
	}
	tok, err := h.tokenEndpoint(disc, client).Exchange(ctx, res.Code, verifier, redirectURI, h.srv.resource(disc))
	if err != nil {
		return nil, err
	}
	if tok.Scope == "" {
		tok.Scope = scope
	}
	return tok, nil
}

// probe sends the upstream an unauthenticated first request (initialize
// for Streamable HTTP, the stream GET for SSE) to learn its challenge.
func (h *Handler) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(wire.WithServer(ctx, h.target()), 30*time.Second)
	defer cancel()
	var req *http.Request
	var err error
	if h.srv.Transport == "sse" {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL, nil)
		if err == nil {
			req.Header.Set("Accept", "text/event-stream")
		}
	} else {
		body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + h.e.protocolVersion() +
			`","capabilities":{},"clientInfo":{"name":"mcp-oauth-proxy","version":"1"}}}`
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL, strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
		}
	}
	if err != nil {
		h.e.logger().Warn("cannot probe the upstream", "server", h.target(), "err", err)
		return
	}
	for k, v := range h.srv.Headers {
		if !isAuthHeader(k) {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("MCP-Protocol-Version", h.e.protocolVersion())
	res, err := h.e.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = displayURL(req.URL) // the query may hold an API key
		}
		h.e.logger().Warn("cannot reach the upstream; discovering from well-known metadata", "server", h.target(), "err", err)
		return
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "text/event-stream" {
		// Drained for connection reuse; a stream would never end.
		io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	}
	res.Body.Close()
	if ch, ok := BearerChallengeFrom(res.Header); ok && (res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden) {
		h.st.mu.Lock()
		h.st.challenge = &ch
		h.st.mu.Unlock()
		return
	}
	h.e.logger().Info("the upstream did not ask for authorization; discovering from well-known metadata",
		"server", h.target(), "status", res.StatusCode)
	if sid := res.Header.Get("Mcp-Session-Id"); sid != "" && res.StatusCode/100 == 2 {
		// End the session the probe opened.
		if del, err := http.NewRequestWithContext(ctx, http.MethodDelete, h.srv.URL, bytes.NewReader(nil)); err == nil {
			del.Header.Set("Mcp-Session-Id", sid)
			if r, err := h.e.client.Do(del); err == nil {
				r.Body.Close()
			}
		}
	}
}

func isAuthHeader(name string) bool {
	return strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "X-HF-Authorization")
}
