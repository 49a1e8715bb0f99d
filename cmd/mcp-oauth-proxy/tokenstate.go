package main

import (
	"fmt"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

// tokenState is what the commands show of a stored token: never the token
// itself, only its fingerprint.
type tokenState struct {
	Present          bool       `json:"present"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds,omitempty"`
	Expired          bool       `json:"expired,omitempty"`
	Scope            string     `json:"scope,omitempty"`
	RefreshToken     bool       `json:"refresh_token,omitempty"`
	Fingerprint      string     `json:"fingerprint,omitempty"`
}

func newTokenState(tok *oauth.Token, now time.Time) tokenState {
	if tok == nil {
		return tokenState{}
	}
	s := tokenState{
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

// String is the one-cell summary used in tables.
func (s tokenState) String() string {
	if !s.Present {
		return "none"
	}
	var text string
	switch {
	case s.ExpiresInSeconds == nil:
		text = "present, expiry unknown"
	case s.Expired:
		text = "expired " + humanDuration(-time.Duration(*s.ExpiresInSeconds)*time.Second) + " ago"
		if s.RefreshToken {
			text += " (refresh token stored)"
		}
	default:
		text = "present, expires in " + humanDuration(time.Duration(*s.ExpiresInSeconds)*time.Second)
	}
	if s.Scope != "" {
		text += ", scope: " + s.Scope
	}
	return text
}

// humanDuration rounds d to the two largest units: 45s, 59m, 1h5m, 3d4h.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}
