package main

import (
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/admin"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

// tokenState is what the commands show of a stored token: never the token
// itself, only its fingerprint. It is the status page's description, so
// `auth status --json` and /api/status agree.
type tokenState admin.TokenStatus

func newTokenState(tok *oauth.Token, now time.Time) tokenState {
	return tokenState(admin.NewTokenStatus(tok, now))
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
func humanDuration(d time.Duration) string { return admin.HumanDuration(d) }
