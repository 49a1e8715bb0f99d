package oauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Token endpoint client authentication methods (RFC 7591 §2).
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretPost  = "client_secret_post"
	AuthMethodClientSecretBasic = "client_secret_basic"
)

// TokenEndpoint talks to one authorization server's token endpoint for one
// client. Each Exchange or Refresh sends exactly one request.
type TokenEndpoint struct {
	// HTTPClient sends the requests. Nil means a client with a 30 s
	// timeout. Redirects are never followed.
	HTTPClient *http.Client
	// URL is the token endpoint.
	URL string
	// Client is the client: ClientID, ClientSecret and
	// TokenEndpointAuthMethod are used.
	Client *ClientInfo
	// AuthMethod is AuthMethodNone, AuthMethodClientSecretPost or
	// AuthMethodClientSecretBasic; "" means SelectAuthMethod(Client,
	// Supported).
	AuthMethod string
	// Supported is the server's token_endpoint_auth_methods_supported;
	// nil when unknown.
	Supported []string
	// Now returns the current time, for ExpiresAt; nil means time.Now.
	Now func() time.Time
}

// TokenError is an error answer of a token endpoint (RFC 6749 §5.2), or an
// answer that is not a token.
type TokenError struct {
	Endpoint    string
	StatusCode  int    // HTTP status; 200 for an error in a successful answer
	Code        string // e.g. invalid_grant, invalid_client; "" when the body had none
	Description string // error_description
	URI         string // error_uri
}

func (e *TokenError) Error() string {
	return errorText("oauth: token endpoint "+e.Endpoint+": ", e.StatusCode, e.Code, e.Description)
}

// SelectAuthMethod picks the client authentication method for ci at a
// server supporting the methods supported (nil when unknown), as the MCP
// TypeScript SDK does: the method ci was registered with when the server
// supports it; with supported unknown, client_secret_basic when ci has a
// secret, else none (the RFC 8414 default); otherwise, with a secret,
// client_secret_basic then client_secret_post, then none; and finally
// client_secret_post with a secret or none without. Unlike the SDK, a
// secret method is never chosen for a client without a secret.
func SelectAuthMethod(ci *ClientInfo, supported []string) string {
	hasSecret := ci.ClientSecret != ""
	switch m := ci.TokenEndpointAuthMethod; m {
	case AuthMethodClientSecretBasic, AuthMethodClientSecretPost, AuthMethodNone:
		if (hasSecret || m == AuthMethodNone) && (len(supported) == 0 || slices.Contains(supported, m)) {
			return m
		}
	}
	switch {
	case len(supported) == 0:
		if hasSecret {
			return AuthMethodClientSecretBasic
		}
		return AuthMethodNone
	case hasSecret && slices.Contains(supported, AuthMethodClientSecretBasic):
		return AuthMethodClientSecretBasic
	case hasSecret && slices.Contains(supported, AuthMethodClientSecretPost):
		return AuthMethodClientSecretPost
	case slices.Contains(supported, AuthMethodNone):
		return AuthMethodNone
	case hasSecret:
		return AuthMethodClientSecretPost
	}
	return AuthMethodNone
}

func (e *TokenEndpoint) method() string {
	if e.AuthMethod != "" {
		return e.AuthMethod
	}
	return SelectAuthMethod(e.Client, e.Supported)
}

func (e *TokenEndpoint) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// Exchange redeems an authorization code (RFC 6749 §4.1.3) with its PKCE
// verifier, the redirect URI of the authorization request and the RFC 8707
// resource ("" to send none). An error answer is a *TokenError.
func (e *TokenEndpoint) Exchange(ctx context.Context, code, verifier, redirectURI, resource string) (*Token, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"code_verifier": {verifier},
	}
	if redirectURI != "" {
		form.Set("redirect_uri", redirectURI)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	return e.request(ctx, form)
}

// Refresh redeems refreshToken (RFC 6749 §6), sending the RFC 8707
// resource and scope when not "". The answer's refresh token replaces
// refreshToken, which is kept when the answer has none. An error answer
// is a *TokenError; invalid_grant means the refresh token is dead.
func (e *TokenEndpoint) Refresh(ctx context.Context, refreshToken, resource, scope string) (*Token, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	t, err := e.request(ctx, form)
	if err != nil {
		return nil, err
	}
	if t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, nil
}

// request sends form with the client's authentication, once: never
// x/oauth2's auto-detection, which sends a second request after any
// failure, spending the code and hiding the real error.
func (e *TokenEndpoint) request(ctx context.Context, form url.Values) (*Token, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	h := http.Header{}
	switch e.method() {
	case AuthMethodClientSecretBasic:
		// RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
		cred := url.QueryEscape(e.Client.ClientID) + ":" + url.QueryEscape(e.Client.ClientSecret)
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	case AuthMethodClientSecretPost:
		form.Set("client_id", e.Client.ClientID)
		form.Set("client_secret", e.Client.ClientSecret)
	default:
		form.Set("client_id", e.Client.ClientID)
	}
	res, err := fetch(ctx, noFollowClient(e.HTTPClient), http.MethodPost, e.URL, h,
		"application/x-www-form-urlencoded", []byte(form.Encode()))
	if err != nil {
		return nil, err
	}
	return e.parseTokenResponse(res)
}

func (e *TokenEndpoint) check() error {
	if e.Client == nil || e.Client.ClientID == "" {
		return fmt.Errorf("oauth: token endpoint %s: no client_id", e.URL)
	}
	return nil
}

// tokenResponse is the JSON of RFC 6749 §5.1 and §5.2.
type tokenResponse struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	RefreshToken     string          `json:"refresh_token"`
	Scope            string          `json:"scope"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
	ErrorURI         string          `json:"error_uri"`
}

// parseTokenResponse reads a JSON answer, or a form-encoded one as some
// servers send without "Accept: application/json" honoured.
func (e *TokenEndpoint) parseTokenResponse(res *jsonResponse) (*Token, error) {
	var tr tokenResponse
	var parseErr error
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	// text/plain is form-encoded from GitHub, but JSON from others.
	jsonText := mt == "text/plain" && bytes.HasPrefix(bytes.TrimSpace(res.Body), []byte("{"))
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" && !jsonText {
		vals, err := url.ParseQuery(string(res.Body))
		if err != nil {
			parseErr = fmt.Errorf("oauth: token endpoint %s: invalid form response", e.URL)
		}
		tr = tokenResponse{
			AccessToken: vals.Get("access_token"), TokenType: vals.Get("token_type"),
			RefreshToken: vals.Get("refresh_token"), Scope: vals.Get("scope"),
			Error: vals.Get("error"), ErrorDescription: vals.Get("error_description"), ErrorURI: vals.Get("error_uri"),
		}
		if v := vals.Get("expires_in"); v != "" {
			tr.ExpiresIn = json.RawMessage(strconv.Quote(v))
		}
	} else if jsonText {
		if err := json.Unmarshal(res.Body, &tr); err != nil {
			parseErr = fmt.Errorf("oauth: token endpoint %s: invalid JSON: %w", e.URL, err)
		}
	} else if err := res.decodeBody(&tr); err != nil {
		parseErr = fmt.Errorf("oauth: token endpoint %s: %w", e.URL, err)
	}
	failed := res.StatusCode < 200 || res.StatusCode > 299
	if failed || tr.Error != "" {
		// A 200 that carries "error" is an error too (GitHub does this).
		return nil, &TokenError{Endpoint: e.URL, StatusCode: res.StatusCode, Code: tr.Error, Description: tr.ErrorDescription, URI: tr.ErrorURI}
	}
	if parseErr != nil {
		return nil, parseErr
	}
	if tr.AccessToken == "" {
		return nil, fmt.Errorf("oauth: token endpoint %s: the answer has no access_token", e.URL)
	}
	if !httpguts.ValidHeaderFieldValue(tr.AccessToken) {
		// It could not be sent: stored, it would fail every request.
		return nil, fmt.Errorf("oauth: token endpoint %s: the access_token holds control characters, which an Authorization header cannot carry", e.URL)
	}
	expiresIn, err := parseExpiresIn(tr.ExpiresIn)
	if err != nil {
		return nil, fmt.Errorf("oauth: token endpoint %s: expires_in: %w", e.URL, err)
	}
	t := &Token{
		AccessToken:  tr.AccessToken,
		TokenType:    normalizeTokenType(tr.TokenType),
		RefreshToken: tr.RefreshToken,
		Scope:        tr.Scope,
	}
	e.setExpiry(t, expiresIn)
	return t, nil
}

// parseExpiresIn accepts a number or a numeric string (PayPal sends one).
func parseExpiresIn(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf("%s is not a number of seconds", raw)
	}
	return int64(min(f, math.MaxInt32)), nil // before the conversion overflows
}

func (e *TokenEndpoint) setExpiry(t *Token, expiresIn int64) {
	if expiresIn <= 0 {
		return
	}
	expiresIn = min(expiresIn, math.MaxInt32) // as x/oauth2 does; keeps the Duration in range
	t.ExpiresIn = expiresIn
	t.ExpiresAt = e.now().Add(time.Duration(expiresIn) * time.Second)
}

// normalizeTokenType spells bearer as "Bearer", the form fast-agent
// stores; a missing type is taken as Bearer (RFC 6750).
func normalizeTokenType(tt string) string {
	if tt == "" || strings.EqualFold(tt, "bearer") {
		return "Bearer"
	}
	return tt
}
