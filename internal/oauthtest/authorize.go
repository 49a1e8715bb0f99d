package oauthtest

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// codeTTL is generous: a loaded test machine may be slow to exchange.
const codeTTL = 10 * time.Minute

// serveAuthorize plays the user agent's view of an authorization server
// that approves at once: a 302 to the redirect URI. Errors about the
// client or redirect URI are shown as a 400 page, never redirected
// (RFC 6749 §4.1.2.1); all others are redirected.
func (s *AuthServer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "the authorization endpoint takes GET")
		return
	}
	q := r.URL.Query()
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")

	s.mu.Lock()
	c := s.clientLocked(clientID, true)
	s.mu.Unlock()
	switch {
	case clientID == "":
		errorPage(w, "invalid_request", "client_id is missing")
		return
	case c == nil:
		errorPage(w, "invalid_client", fmt.Sprintf("unknown client_id %q", clientID))
		return
	case redirectURI == "":
		errorPage(w, "invalid_request", "redirect_uri is missing")
		return
	case !c.allowsRedirect(redirectURI):
		errorPage(w, "invalid_request", fmt.Sprintf("redirect_uri %q is not registered for client %q", redirectURI, clientID))
		return
	}
	cb, err := url.Parse(redirectURI)
	if err != nil {
		errorPage(w, "invalid_request", fmt.Sprintf("redirect_uri %q: %v", redirectURI, err))
		return
	}

	// From here on the client hears about errors through the redirect.
	redirect := func(params url.Values) {
		if state := q.Get("state"); state != "" {
			params.Set("state", state)
		}
		if s.opts.IssParameter {
			params.Set("iss", s.Issuer)
		}
		if s.opts.EditRedirect != nil {
			s.opts.EditRedirect(params)
		}
		setError(w, params.Get("error"))
		cq := cb.Query()
		for k, vs := range params {
			cq[k] = vs
		}
		u := *cb
		u.RawQuery = cq.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, description string) {
		redirect(url.Values{"error": {code}, "error_description": {description}})
	}

	if rt := q.Get("response_type"); rt != "code" {
		fail("unsupported_response_type", fmt.Sprintf("response_type %q is not supported; use code", rt))
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	methods := s.codeChallengeMethods()
	required := len(methods) > 0
	if !required {
		methods = []string{"S256", "plain"} // PKCE optional, yet verified when used
	}
	switch {
	case challenge == "" && required:
		fail("invalid_request", "code_challenge is required (PKCE)")
		return
	case challenge != "" && method == "":
		// RFC 7636 defaults to plain, which OAuth 2.1 clients must not rely on.
		fail("invalid_request", "code_challenge_method is required")
		return
	case challenge != "" && !slices.Contains(methods, method):
		fail("invalid_request", fmt.Sprintf("code_challenge_method %q is not supported", method))
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	if s.opts.StrictScopes {
		for _, sc := range scopes {
			if !slices.Contains(s.opts.ScopesSupported, sc) {
				fail("invalid_scope", fmt.Sprintf("scope %q is not supported", sc))
				return
			}
		}
	}
	resource, desc := s.checkResource(q["resource"])
	if desc != "" {
		fail("invalid_target", desc)
		return
	}

	s.mu.Lock()
	if len(s.deny) > 0 {
		reason := s.deny[0]
		s.deny = s.deny[1:]
		s.mu.Unlock()
		fail("access_denied", reason)
		return
	}
	code := "code-" + rand.Text()
	s.codes[code] = &authCode{
		grant:       &grant{clientID: c.id},
		redirectURI: redirectURI,
		challenge:   challenge,
		method:      method,
		scopes:      scopes,
		resource:    resource,
		expiry:      s.now().Add(codeTTL),
	}
	s.mu.Unlock()
	redirect(url.Values{"code": {code}})
}

// checkResource validates RFC 8707 resource values; it returns the
// resource ("" if none) or a description of what is wrong.
func (s *AuthServer) checkResource(values []string) (resource, problem string) {
	switch {
	case len(values) == 0 && s.opts.RequireResource:
		return "", "the resource parameter is required"
	case len(values) == 0:
		return "", ""
	case len(values) > 1:
		return "", "only one resource is supported"
	}
	u, err := url.Parse(values[0])
	if err != nil || !u.IsAbs() || u.Host == "" || strings.Contains(values[0], "#") {
		return "", fmt.Sprintf("resource %q is not an absolute URI without a fragment", values[0])
	}
	return values[0], ""
}

// clientLocked returns the client called id, or nil. With cimd, a valid
// client ID metadata document URL is registered on first use when the
// server supports CIMD.
func (s *AuthServer) clientLocked(id string, cimd bool) *client {
	if c := s.clients[id]; c != nil {
		return c
	}
	if !cimd || !s.opts.CIMD || !isCIMDURL(id) {
		return nil
	}
	c := &client{id: id, method: "none"}
	s.clients[id] = c
	return c
}

// isCIMDURL reports whether id may name a client ID metadata document:
// an https URL with a path.
func isCIMDURL(id string) bool {
	u, err := url.Parse(id)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.Path != "" && u.Path != "/" && u.Fragment == ""
}

func (c *client) allowsRedirect(uri string) bool {
	if c.redirectURIs != nil {
		return slices.Contains(c.redirectURIs, uri)
	}
	return isLoopbackHTTP(uri)
}

// isLoopbackHTTP reports whether uri is an http URL on a loopback host.
func isLoopbackHTTP(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && u.Scheme == "http" && isLoopbackHost(u.Hostname())
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errorPage is what a browser shows when the AS cannot redirect back.
func errorPage(w http.ResponseWriter, code, description string) {
	setError(w, code)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "oauthtest: authorization error %s: %s\n", code, description)
}
