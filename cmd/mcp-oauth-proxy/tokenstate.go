package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/admin"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
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
		text += ", scope: " + printable(s.Scope)
	}
	return text
}

// humanDuration rounds d to the two largest units: 45s, 59m, 1h5m, 3d4h.
func humanDuration(d time.Duration) string { return admin.HumanDuration(d) }

// tokenCell is the table cell of a stored token: its state, or why its
// record cannot be read (readErr, from unreadableRecord).
func tokenCell(s tokenState, readErr string) string {
	if readErr != "" {
		return "unreadable: " + readErr
	}
	return s.String()
}

// unreadableRecord says why a stored record cannot be read, fit to print:
// the identities in the message (in its key) have their passwords
// redacted, and a JSON syntax error, whose text may quote the record, is
// replaced by its position.
func unreadableRecord(err error, identities ...string) string {
	msg := err.Error()
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		msg = strings.Replace(msg, syntax.Error(), fmt.Sprintf("not valid JSON (at byte %d)", syntax.Offset), 1)
	}
	for _, id := range identities {
		msg = strings.ReplaceAll(msg, id, redact.URL(id))
	}
	return redact.Text(msg)
}
