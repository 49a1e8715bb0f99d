package oauthtest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// tokenError is an RFC 6749 §5.2 error answer.
type tokenError struct {
	status      int
	code        string
	description string
	basic       bool // the client tried HTTP Basic: add a Basic challenge
}

func badRequest(code, format string, args ...any) *tokenError {
	return &tokenError{status: http.StatusBadRequest, code: code, description: fmt.Sprintf(format, args...)}
}

// serveToken answers authorization_code and refresh_token grants.
func (s *AuthServer) serveToken(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint takes POST")
		return
	}
	resp, terr := s.token(r, body)
	if terr != nil {
		if terr.basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="oauthtest"`)
		}
		writeError(w, terr.status, terr.code, terr.description)
		return
	}
	if s.opts.EditTokenResponse != nil {
		s.opts.EditTokenResponse(resp)
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

func (s *AuthServer) token(r *http.Request, body []byte) (map[string]any, *tokenError) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("invalid_request", "Content-Type must be application/x-www-form-urlencoded, not %q", r.Header.Get("Content-Type"))
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("invalid_request", "malformed form body: %v", err)
	}
	for k, vs := range form {
		if len(vs) > 1 && k != "resource" { // RFC 6749 §3.2; resource is checked later
			return nil, badRequest("invalid_request", "parameter %s is repeated", k)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c, terr := s.authenticateLocked(r, form)
	if terr != nil {
		return nil, terr
	}
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		return s.exchangeLocked(c, form)
	case "refresh_token":
		return s.refreshLocked(c, form)
	case "":
		return nil, badRequest("invalid_request", "grant_type is missing")
	default:
		return nil, badRequest("unsupported_grant_type", "grant_type %q is not supported", gt)
	}
}

// authenticateLocked identifies and authenticates the client per its
// token endpoint auth method (RFC 6749 §2.3.1: Basic credentials are
// form-urlencoded before base64).
func (s *AuthServer) authenticateLocked(r *http.Request, form url.Values) (*client, *tokenError) {
	unauthorized := func(basic bool, format string, args ...any) *tokenError {
		return &tokenError{status: http.StatusUnauthorized, code: "invalid_client", description: fmt.Sprintf(format, args...), basic: basic}
	}
	formID := form.Get("client_id")
	formSecret, hasFormSecret := form["client_secret"]
	hasHeader := r.Header.Get("Authorization") != ""

	id, secret, used := formID, "", "none"
	if hasHeader {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, unauthorized(true, "the Authorization header is not HTTP Basic")
		}
		var err1, err2 error
		user, err1 = url.QueryUnescape(user)
		pass, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return nil, unauthorized(true, "the Basic credentials are not form-urlencoded")
		}
		if formID != "" && formID != user {
			return nil, badRequest("invalid_request", "client_id %q in the body differs from %q in the Authorization header", formID, user)
		}
		id, secret, used = user, pass, "client_secret_basic"
	}
	if hasFormSecret {
		if hasHeader {
			return nil, badRequest("invalid_request", "the client used more than one authentication method")
		}
		secret, used = formSecret[0], "client_secret_post"
	}
	if id == "" {
		return nil, unauthorized(false, "no client_id and no client authentication")
	}
	c := s.clientLocked(id, false)
	if c == nil {
		return nil, unauthorized(hasHeader, "unknown client %q", id)
	}
	if allowed := s.clientMethods(c); !slices.Contains(allowed, used) {
		return nil, unauthorized(hasHeader, "client %q must authenticate with %s, not %s", id, strings.Join(allowed, " or "), used)
	}
	if used != "none" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return nil, unauthorized(hasHeader, "wrong client secret for %q", id)
	}
	return c, nil
}

// clientMethods returns the auth methods a client may use.
func (s *AuthServer) clientMethods(c *client) []string {
	if c.method != "" {
		return []string{c.method}
	}
	var m []string // a pre-registered confidential client
	for _, am := range s.authMethods() {
		if am != "none" {
			m = append(m, am)
		}
	}
	if len(m) == 0 {
		m = []string{"client_secret_basic", "client_secret_post"}
	}
	return m
}

func (s *AuthServer) exchangeLocked(c *client, form url.Values) (map[string]any, *tokenError) {
	ac := s.codes[form.Get("code")]
	switch {
	case ac == nil:
		return nil, badRequest("invalid_grant", "unknown authorization code")
	case ac.grant.clientID != c.id:
		return nil, badRequest("invalid_grant", "the authorization code was issued to another client")
	case ac.used:
		// RFC 6749 §4.1.2: revoke what the code produced.
		ac.grant.revoked = true
		return nil, badRequest("invalid_grant", "the authorization code was already used; its tokens are revoked")
	}
	ac.used = true
	if !s.now().Before(ac.expiry) {
		return nil, badRequest("invalid_grant", "the authorization code expired")
	}
	if got := form.Get("redirect_uri"); got != ac.redirectURI {
		return nil, badRequest("invalid_grant", "redirect_uri %q differs from the authorization request's %q", got, ac.redirectURI)
	}
	verifier := form.Get("code_verifier")
	switch {
	case ac.challenge == "" && verifier != "":
		return nil, badRequest("invalid_grant", "code_verifier sent, but the authorization request had no code_challenge")
	case ac.challenge == "":
	case verifier == "":
		return nil, badRequest("invalid_grant", "code_verifier is missing")
	case !validVerifier(verifier):
		return nil, badRequest("invalid_grant", "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")
	case ac.method == "S256" && s256(verifier) != ac.challenge,
		ac.method == "plain" && verifier != ac.challenge:
		return nil, badRequest("invalid_grant", "code_verifier does not match the code_challenge")
	}
	resource, terr := s.tokenResource(form, ac.resource)
	if terr != nil {
		return nil, terr
	}
	return s.issueLocked(ac.grant, ac.scopes, resource, true), nil
}

func (s *AuthServer) refreshLocked(c *client, form url.Values) (map[string]any, *tokenError) {
	old := s.refresh[form.Get("refresh_token")]
	switch {
	case old == nil:
		return nil, badRequest("invalid_grant", "unknown refresh token")
	case old.grant.clientID != c.id:
		return nil, badRequest("invalid_grant", "the refresh token was issued to another client")
	case old.revoked || old.grant.revoked:
		return nil, badRequest("invalid_grant", "the refresh token was revoked")
	case old.rotated:
		s.reuses++
		old.grant.revoked = true
		return nil, badRequest("invalid_grant", "the refresh token was already used and rotated; the grant is revoked")
	}
	scopes := old.scopes
	if requested := strings.Fields(form.Get("scope")); len(requested) > 0 {
		for _, sc := range requested {
			if !slices.Contains(old.scopes, sc) {
				return nil, badRequest("invalid_scope", "scope %q was not granted; a refresh cannot widen the scope", sc)
			}
		}
		scopes = requested
	}
	resource, terr := s.tokenResource(form, old.resource)
	if terr != nil {
		return nil, terr
	}
	resp := s.issueLocked(old.grant, scopes, resource, false)
	if s.opts.RotateRefreshTokens {
		old.rotated = true
		rt := "rt-" + rand.Text()
		s.refresh[rt] = &refreshToken{grant: old.grant, scopes: old.scopes, resource: old.resource}
		resp["refresh_token"] = rt
	}
	return resp, nil
}

// tokenResource checks the resource of a token request against the one
// the grant was made for.
func (s *AuthServer) tokenResource(form url.Values, granted string) (string, *tokenError) {
	resource, problem := s.checkResource(form["resource"])
	switch {
	case problem != "":
		return "", badRequest("invalid_target", "%s", problem)
	case resource == "":
		return granted, nil
	case granted != "" && resource != granted:
		return "", badRequest("invalid_target", "resource %q differs from the granted %q", resource, granted)
	}
	return resource, nil
}

func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	return true
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
