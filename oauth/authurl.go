package oauth

import (
	"crypto/rand"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// AuthRequest is an authorization request (RFC 6749 §4.1.1) with PKCE
// (RFC 7636) and a resource indicator (RFC 8707).
type AuthRequest struct {
	Endpoint    string // the authorization endpoint; its query parameters are kept
	ClientID    string
	RedirectURI string
	Scope       string // space-separated; "" sends no scope
	Resource    string // "" sends no resource
	State       string // from NewState
	Verifier    string // from NewVerifier; only its S256 challenge is sent
	// Params are further parameters (e.g. access_type=offline); they
	// never replace the ones above. A prompt among them is sent instead
	// of the prompt=consent that URL adds for offline_access.
	Params map[string]string
}

// NewVerifier returns a new PKCE code verifier: 32 random bytes,
// base64url-encoded (43 characters).
func NewVerifier() string { return oauth2.GenerateVerifier() }

// NewState returns a new unguessable state value: 130 random bits in
// base32, which is URL-safe.
func NewState() string { return rand.Text() }

// URL returns the authorization URL to open in the browser: the endpoint
// with response_type=code, client_id, redirect_uri, state,
// code_challenge=S256(Verifier), code_challenge_method=S256, and scope and
// resource when set. prompt=consent is added when the scope asks for
// offline_access, as OpenID Connect requires for a refresh token, unless
// Params set a prompt of their own.
// Parameters of the endpoint with the same names are replaced.
func (r AuthRequest) URL() string {
	q := url.Values{}
	for k, v := range r.Params {
		q.Set(k, v)
	}
	q.Set("response_type", "code")
	q.Set("client_id", r.ClientID)
	q.Set("redirect_uri", r.RedirectURI)
	q.Set("state", r.State)
	q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(r.Verifier))
	q.Set("code_challenge_method", "S256")
	if r.Scope != "" {
		q.Set("scope", r.Scope)
		if _, set := r.Params["prompt"]; !set && slices.Contains(strings.Fields(r.Scope), "offline_access") {
			q.Set("prompt", "consent")
		}
	}
	if r.Resource != "" {
		q.Set("resource", r.Resource)
	}
	u, err := url.Parse(r.Endpoint)
	if err != nil {
		// Discovery checked the endpoint; append as x/oauth2 does.
		sep := "?"
		if strings.Contains(r.Endpoint, "?") {
			sep = "&"
		}
		return r.Endpoint + sep + q.Encode()
	}
	existing := u.Query()
	for k, vs := range q {
		existing[k] = vs
	}
	u.RawQuery = existing.Encode()
	return u.String()
}
