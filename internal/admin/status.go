package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

// Status is what the page shows, and the JSON of /api/status.
type Status struct {
	Time      time.Time      `json:"time"` // when the status was taken
	Servers   []ServerStatus `json:"servers"`
	Paste     bool           `json:"paste"`     // the page has a callback paste box
	Exchanges []Exchange     `json:"exchanges"` // the last exchanges, oldest first
}

// ServerStatus is one proxied server.
type ServerStatus struct {
	Name      string      `json:"name"`
	LocalURL  string      `json:"local_url"`
	Upstream  string      `json:"upstream"` // secrets redacted
	Transport string      `json:"transport,omitempty"`
	OAuth     bool        `json:"oauth"`
	Identity  string      `json:"identity,omitempty"` // password redacted
	Token     TokenStatus `json:"token"`
	Login     *Login      `json:"login,omitempty"` // nil unless a login waits for the user
}

// TokenStatus describes a token without revealing it. Its JSON is what
// `auth status --json` shows for a stored token.
type TokenStatus struct {
	Present          bool       `json:"present"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`         // nil when unknown
	ExpiresInSeconds *int64     `json:"expires_in_seconds,omitempty"` // negative once expired
	Expired          bool       `json:"expired,omitempty"`
	Scope            string     `json:"scope,omitempty"`
	RefreshToken     bool       `json:"refresh_token,omitempty"` // a refresh token is held
	Fingerprint      string     `json:"fingerprint,omitempty"`   // of the access token
}

// Login is a login waiting for the user.
type Login struct {
	// Link is the authorization URL to open. It carries the login's state
	// and PKCE challenge, which are of no use to anyone else.
	Link string `json:"link"`
	// Started is when the login began waiting for its response; zero
	// when unknown.
	Started time.Time `json:"started,omitzero"`
	// Listening is false when no listener catches the redirect (its port
	// is taken): only a pasted callback URL can complete the login.
	Listening bool `json:"listening"`
}

// Exchange is one recorded HTTP exchange, already redacted by wire.
type Exchange struct {
	Time       time.Time `json:"time"`
	Server     string    `json:"server"`
	Kind       string    `json:"kind"`
	Method     string    `json:"method"`
	URL        string    `json:"url"`
	RPCMethod  string    `json:"rpc_method,omitempty"`
	RPCID      string    `json:"rpc_id,omitempty"`
	Status     int       `json:"status"` // 0 when no response arrived
	DurationMS float64   `json:"duration_ms"`
	ReqBytes   int64     `json:"req_bytes"`
	RespBytes  int64     `json:"resp_bytes"`
	Token      string    `json:"token,omitempty"` // fingerprint of the bearer token sent
	Replay     bool      `json:"replay,omitempty"`
	Stream     bool      `json:"stream,omitempty"`
	Events     int       `json:"events,omitempty"`
	Open       bool      `json:"open,omitempty"`
	Err        string    `json:"error,omitempty"`
}

// NewTokenStatus describes tok (nil for none) at now.
func NewTokenStatus(tok *oauth.Token, now time.Time) TokenStatus {
	if tok == nil {
		return TokenStatus{}
	}
	s := TokenStatus{
		Present:      true,
		Scope:        tok.Scope,
		RefreshToken: tok.RefreshToken != "",
		Fingerprint:  redact.Fingerprint(tok.AccessToken),
	}
	if !tok.ExpiresAt.IsZero() {
		at := tok.ExpiresAt.UTC()
		in := int64(tok.ExpiresAt.Sub(now) / time.Second)
		s.ExpiresAt, s.ExpiresInSeconds, s.Expired = &at, &in, in <= 0
	}
	return s
}

// status takes the current status.
func (h *handler) status() Status {
	now := h.now()
	st := Status{Time: now, Servers: []ServerStatus{}, Paste: h.o.Callbacks != nil, Exchanges: []Exchange{}}
	var pending []oauth.PendingInfo
	if h.o.Callbacks != nil {
		pending = h.o.Callbacks.PendingLogins()
	}
	for _, s := range h.o.Servers {
		ss := ServerStatus{
			Name:      s.Name,
			LocalURL:  redact.URLString(s.LocalURL),
			Upstream:  redact.URLString(s.Upstream),
			Transport: s.Transport,
			OAuth:     s.Auth != nil,
		}
		if s.Auth != nil {
			ss.Identity = redact.URL(s.Auth.Identity())
			ss.Token = NewTokenStatus(s.Auth.Current(), now)
			if link := s.Auth.PendingLink(); link != "" {
				ss.Login = newLogin(link, pending)
			}
		}
		st.Servers = append(st.Servers, ss)
	}
	if h.o.History != nil {
		for _, x := range h.o.History.Recent() {
			st.Exchanges = append(st.Exchanges, newExchange(x))
		}
	}
	return st
}

// newLogin describes the login of link, matching it to its pending
// callback by the state parameter.
func newLogin(link string, pending []oauth.PendingInfo) *Login {
	l := &Login{Link: link, Listening: true}
	u, err := url.Parse(link)
	if err != nil {
		return l
	}
	state := u.Query().Get("state")
	for _, p := range pending {
		if state != "" && p.State == state {
			l.Started, l.Listening = p.Started, p.Listening
		}
	}
	return l
}

func newExchange(x wire.Exchange) Exchange {
	return Exchange{
		Time:       x.Time,
		Server:     x.Server,
		Kind:       x.Kind,
		Method:     x.Method,
		URL:        x.URL,
		RPCMethod:  x.RPCMethod,
		RPCID:      x.RPCID,
		Status:     x.Status,
		DurationMS: float64(x.Duration.Microseconds()) / 1000,
		ReqBytes:   x.ReqBytes,
		RespBytes:  x.RespBytes,
		Token:      x.TokenFingerprint,
		Replay:     x.Replay,
		Stream:     x.Stream,
		Events:     x.Events,
		Open:       x.Open,
		Err:        x.Err,
	}
}

func (h *handler) serveJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(h.status())
}
