package oidctest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// codeLifetime bounds how long an authorization code can be redeemed.
const codeLifetime = 10 * time.Minute

// storage is an in-memory op.Storage. The OpenID provider (package op)
// does the protocol work: parsing, client authentication, PKCE
// verification, redirect URI rules, token responses. storage keeps state
// and applies the policies zitadel leaves to it: public clients must use
// PKCE S256, a code is redeemed once, a refresh token is rotated on every
// use and dies with the rotation.
type storage struct {
	key     *ecdsa.PrivateKey
	keyID   string
	user    user
	atLife  time.Duration
	rtLife  time.Duration
	clients map[string]*client // fixed after construction

	mu            sync.Mutex
	authRequests  map[string]*authRequest
	codes         map[string]string // code → auth request ID
	accessTokens  map[string]*accessToken
	refreshTokens map[string]*refreshToken // by token value
	rotated       map[string]bool          // refresh tokens replaced by rotation
	reuses        int                      // rotated refresh tokens presented again
	logins        int
}

type user struct {
	subject, username, email string
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(clients []*client, atLife, rtLife time.Duration) (*storage, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("oidctest: signing key: %w", err)
	}
	s := &storage{
		key:           key,
		keyID:         randomString(8),
		user:          user{subject: "test-user", username: "test-user", email: "test-user@example.com"},
		atLife:        atLife,
		rtLife:        rtLife,
		clients:       map[string]*client{},
		authRequests:  map[string]*authRequest{},
		codes:         map[string]string{},
		accessTokens:  map[string]*accessToken{},
		refreshTokens: map[string]*refreshToken{},
		rotated:       map[string]bool{},
	}
	for _, c := range clients {
		s.clients[c.id] = c
	}
	return s, nil
}

// authRequest is a pending authorization request. op reads it through the
// getters of a copy, so the stored one may change under s.mu.
type authRequest struct {
	id           string
	clientID     string
	redirectURI  string
	state        string
	nonce        string
	scopes       []string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge
	resources    []string // RFC 8707, which zitadel does not parse itself
	created      time.Time

	done     bool
	subject  string
	authTime time.Time
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return amr(a.done) }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return slices.Clone(a.scopes) }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

func amr(done bool) []string {
	if done {
		return []string{"pwd"}
	}
	return nil
}

func (a *authRequest) copy() *authRequest {
	c := *a
	c.scopes = slices.Clone(a.scopes)
	c.resources = slices.Clone(a.resources)
	return &c
}

type accessToken struct {
	id        string
	clientID  string
	subject   string
	audience  []string
	scopes    []string
	issued    time.Time
	expires   time.Time
	refreshID string // the refresh token issued with it, if any
}

type refreshToken struct {
	token     string // its value is its ID
	clientID  string
	subject   string
	scopes    []string
	resources []string
	authTime  time.Time
	amr       []string
	expires   time.Time
	accessID  string // the access token issued with it
}

// refreshRequest is what op sees of a refresh token: a copy, whose scopes
// op may narrow for the new tokens.
type refreshRequest struct{ rt refreshToken }

var (
	_ op.RefreshTokenRequest = (*refreshRequest)(nil)
	_ op.IDTokenRequest      = (*refreshRequest)(nil)
)

func (r *refreshRequest) GetAMR() []string             { return slices.Clone(r.rt.amr) }
func (r *refreshRequest) GetAudience() []string        { return []string{r.rt.clientID} }
func (r *refreshRequest) GetAuthTime() time.Time       { return r.rt.authTime }
func (r *refreshRequest) GetClientID() string          { return r.rt.clientID }
func (r *refreshRequest) GetScopes() []string          { return slices.Clone(r.rt.scopes) }
func (r *refreshRequest) GetSubject() string           { return r.rt.subject }
func (r *refreshRequest) SetCurrentScopes(sc []string) { r.rt.scopes = slices.Clone(sc) }

// resourcesKey carries the RFC 8707 resource parameters of an
// authorization request from the HTTP layer to CreateAuthRequest.
type resourcesKey struct{}

func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if len(req.Prompt) == 1 && req.Prompt[0] == oidc.PromptNone {
		return nil, oidc.ErrLoginRequired()
	}
	if c := s.clients[req.ClientID]; c != nil && c.authMethod == oidc.AuthMethodNone &&
		(req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		// zitadel itself accepts plain PKCE; OAuth 2.1 and MCP require S256.
		return nil, oidc.ErrInvalidRequest().WithDescription("public clients must use PKCE with code_challenge_method=S256")
	}
	a := &authRequest{
		id:           randomString(16),
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		state:        req.State,
		nonce:        req.Nonce,
		scopes:       slices.Clone(req.Scopes),
		responseType: req.ResponseType,
		responseMode: req.ResponseMode,
		created:      time.Now(),
		subject:      userID,
	}
	a.resources, _ = ctx.Value(resourcesKey{}).([]string)
	if req.CodeChallenge != "" {
		a.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authRequests[a.id] = a
	return a.copy(), nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok {
		return nil, errors.New("auth request not found")
	}
	return a.copy(), nil
}

func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, errors.New("code unknown or already used")
	}
	a, ok := s.authRequests[id]
	if !ok || time.Since(a.created) > codeLifetime {
		return nil, errors.New("code expired")
	}
	return a.copy(), nil
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.authRequests[id]; !ok {
		return errors.New("auth request not found")
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called once the code was exchanged: the code dies
// with the request.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authRequests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// completeLogin marks an auth request as authenticated by the test user.
func (s *storage) completeLogin(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok {
		return fmt.Errorf("auth request %q not found", id)
	}
	a.done, a.subject, a.authTime = true, s.user.subject, time.Now()
	s.logins++
	return nil
}

// newAccessTokenLocked stores an access token for the request.
func (s *storage) newAccessTokenLocked(clientID, subject string, scopes, resources []string, refreshID string) *accessToken {
	now := time.Now()
	at := &accessToken{
		id:        randomString(16),
		clientID:  clientID,
		subject:   subject,
		audience:  append([]string{clientID}, resources...),
		scopes:    slices.Clone(scopes),
		issued:    now,
		expires:   now.Add(s.atLife),
		refreshID: refreshID,
	}
	s.accessTokens[at.id] = at
	return at
}

func requestInfo(req op.TokenRequest) (clientID string, resources []string) {
	switch r := req.(type) {
	case *authRequest:
		return r.clientID, r.resources
	case *refreshRequest:
		return r.rt.clientID, r.rt.resources
	case interface{ GetClientID() string }:
		return r.GetClientID(), nil
	}
	return "", nil
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	clientID, resources := requestInfo(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.newAccessTokenLocked(clientID, req.GetSubject(), req.GetScopes(), resources, "")
	return at.id, at.expires, nil
}

// CreateAccessAndRefreshTokens issues a new pair. With currentRefreshToken
// set (a refresh) the old refresh token and the access token issued with
// it are deleted: rotation as in zitadel's example storage.
func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	clientID, resources := requestInfo(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := &refreshToken{
		token:     randomString(32),
		clientID:  clientID,
		subject:   req.GetSubject(),
		scopes:    slices.Clone(req.GetScopes()),
		resources: slices.Clone(resources),
		expires:   time.Now().Add(s.rtLife),
	}
	switch r := req.(type) {
	case *authRequest:
		rt.authTime, rt.amr = r.authTime, amr(r.done)
	case *refreshRequest:
		rt.authTime, rt.amr = r.rt.authTime, slices.Clone(r.rt.amr)
	}
	if currentRefreshToken != "" {
		old, ok := s.refreshTokens[currentRefreshToken]
		if !ok {
			// A concurrent refresh rotated it between lookup and here.
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token already used")
		}
		delete(s.refreshTokens, currentRefreshToken)
		delete(s.accessTokens, old.accessID)
		s.rotated[currentRefreshToken] = true
	}
	at := s.newAccessTokenLocked(clientID, rt.subject, rt.scopes, resources, rt.token)
	rt.accessID = at.id
	s.refreshTokens[rt.token] = rt
	return at.id, rt.token, at.expires, nil
}

func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refreshTokens[token]
	if !ok {
		if s.rotated[token] {
			s.reuses++
			return nil, errors.New("refresh token was rotated and cannot be used again")
		}
		return nil, errors.New("unknown refresh token")
	}
	if time.Now().After(rt.expires) {
		return nil, errors.New("refresh token expired")
	}
	c := *rt
	c.scopes, c.resources, c.amr = slices.Clone(rt.scopes), slices.Clone(rt.resources), slices.Clone(rt.amr)
	return &refreshRequest{rt: c}, nil
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, at := range s.accessTokens {
		if at.subject == userID && at.clientID == clientID {
			delete(s.accessTokens, id)
		}
	}
	for tok, rt := range s.refreshTokens {
		if rt.subject == userID && rt.clientID == clientID {
			delete(s.refreshTokens, tok)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.accessTokens[tokenOrID]; ok {
		if at.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
		}
		delete(s.accessTokens, tokenOrID)
		return nil
	}
	if rt, ok := s.refreshTokens[tokenOrID]; ok {
		if rt.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
		}
		delete(s.refreshTokens, tokenOrID)
		delete(s.accessTokens, rt.accessID)
	}
	// RFC 7009: an unknown token is not an error.
	return nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refreshTokens[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.subject, rt.token, nil
}

type signingKey struct {
	id  string
	key *ecdsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct {
	id  string
	key *ecdsa.PublicKey
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{s.keyID, s.key}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.keyID, &s.key.PublicKey}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("client %q not found", id)
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok {
		return fmt.Errorf("client %q not found", id)
	}
	if c.secret == "" || c.secret != secret {
		return errors.New("invalid client secret")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does
// the work.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(ui, req.GetSubject(), scopes)
}

func (s *storage) setUserinfo(ui *oidc.UserInfo, subject string, scopes []string) error {
	if subject != s.user.subject {
		return fmt.Errorf("user %q not found", subject)
	}
	ui.Subject = subject
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			ui.PreferredUsername = s.user.username
		case oidc.ScopeEmail:
			ui.Email, ui.EmailVerified = s.user.email, true
		}
	}
	return nil
}

// liveAccessToken returns a copy of the access token id when it exists
// and has not expired.
func (s *storage) liveAccessToken(id string) (accessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.accessTokens[id]
	if !ok {
		return accessToken{}, errors.New("access token unknown, revoked or rotated away")
	}
	if !time.Now().Before(at.expires) {
		return accessToken{}, errors.New("access token expired")
	}
	c := *at
	c.audience, c.scopes = slices.Clone(at.audience), slices.Clone(at.scopes)
	return c, nil
}

func (s *storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, _, _ string) error {
	at, err := s.liveAccessToken(tokenID)
	if err != nil {
		return err
	}
	return s.setUserinfo(ui, at.subject, at.scopes)
}

// SetIntrospectionFromToken answers for any authenticated client (op has
// checked its credentials), as resource servers introspect tokens issued
// to other clients.
func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, _, _ string) error {
	at, err := s.liveAccessToken(tokenID)
	if err != nil {
		return err
	}
	ui := new(oidc.UserInfo)
	if err := s.setUserinfo(ui, at.subject, at.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(ui)
	resp.Scope = at.scopes
	resp.ClientID = at.clientID
	resp.TokenType = oidc.BearerToken
	resp.Audience = at.audience
	resp.Expiration = oidc.FromTime(at.expires)
	resp.IssuedAt = oidc.FromTime(at.issued)
	resp.Issuer = op.IssuerFromContext(ctx)
	resp.JWTID = at.id
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT profile client keys are not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

func (s *storage) Health(context.Context) error { return nil }

// expireAccessTokens makes every access token issued so far expired.
func (s *storage) expireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for _, at := range s.accessTokens {
		at.expires = past
	}
}

// revokeRefreshTokens deletes every refresh token issued so far.
func (s *storage) revokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.refreshTokens)
}

func (s *storage) counts() (logins, reuses int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins, s.reuses
}
