package oauth

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// fzFoldsToKnown reports whether raw (a JSON object) has a key that is not
// one of known but matches one case-insensitively: encoding/json fills the
// field from it, and a rewrite then keeps it as an unknown field too.
func fzFoldsToKnown(raw []byte, known []string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	for k := range m {
		if !slices.Contains(known, k) && slices.ContainsFunc(known, func(f string) bool { return strings.EqualFold(f, k) }) {
			return true
		}
	}
	return false
}

// FuzzTokenRecord reads arbitrary bytes as a stored token record. A record
// that reads has an access token, and writing it and reading it back gives
// the same record: a rewrite loses nothing.
func FuzzTokenRecord(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"at","token_type":"bearer","expires_in":3600,"refresh_token":"rt","scope":"a b","expires_at":1767225600}`,
		`{"access_token":"at","token_type":"Bearer","expires_in":null,"refresh_token":null,"scope":null}`,
		`{"access_token":"at","expires_at":"2026-01-01T00:00:00Z","id_token":"x","extra":{"n":[1,2]}}`,
		`{"access_token":"at","expires_in":3600.5,"expires_at":1767225600.25}`,
		`{"access_token":"","token_type":"Bearer"}`,
		`{"access_token":1}`,
		`[]`,
		`null`,
		`garbage`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tok Token
		if err := json.Unmarshal(b, &tok); err != nil {
			return
		}
		if tok.AccessToken == "" {
			t.Fatalf("read a token without access_token from %q", b)
		}
		out, err := json.Marshal(tok)
		if err != nil {
			t.Fatalf("writing %+v back: %v", tok, err)
		}
		var again Token
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("reading back %s (from %q): %v", out, b, err)
		}
		if fzFoldsToKnown(b, tokenFields) {
			return // see TestHardeningTokenRecordCaseFoldedKeys
		}
		want := tok
		want.TokenType = normalizeTokenType(want.TokenType)
		if !strings.EqualFold(tok.TokenType, "bearer") && tok.TokenType != "" {
			want.TokenType = tok.TokenType
		}
		if want.ExpiresAt.Unix() == 0 {
			want.ExpiresAt = again.ExpiresAt // 1970-01-01 is written as unknown
		}
		if again.AccessToken != want.AccessToken || again.RefreshToken != want.RefreshToken ||
			again.Scope != want.Scope || again.TokenType != want.TokenType || again.ExpiresIn != want.ExpiresIn ||
			again.ExpiresAt.Unix() != want.ExpiresAt.Unix() {
			t.Fatalf("round trip of %q changed the record:\n got %+v\nwant %+v\nwritten %s", b, again, want, out)
		}
		if len(again.extra) != len(tok.extra) {
			t.Fatalf("round trip of %q changed the unknown fields: %v → %v", b, tok.extra, again.extra)
		}
	})
}

// FuzzClientInfoRecord reads arbitrary bytes as a stored client
// registration, as FuzzTokenRecord does for tokens.
func FuzzClientInfoRecord(f *testing.F) {
	for _, s := range []string{
		`{"client_id":"abc","client_secret":"s","client_id_issued_at":1,"client_secret_expires_at":0,"redirect_uris":["http://localhost:3030/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none","scope":"a","issuer":"https://as.example/"}`,
		`{"client_id":"abc","client_secret":null,"redirect_uris":null,"software_id":"x"}`,
		`{"client_id":""}`,
		`{"client_id":7}`,
		`{}`,
		`garbage`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ci ClientInfo
		if err := json.Unmarshal(b, &ci); err != nil {
			return
		}
		if ci.ClientID == "" {
			t.Fatalf("read a client without client_id from %q", b)
		}
		out, err := json.Marshal(ci)
		if err != nil {
			t.Fatalf("writing %+v back: %v", ci, err)
		}
		var again ClientInfo
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("reading back %s (from %q): %v", out, b, err)
		}
		if fzFoldsToKnown(b, clientFields) {
			return
		}
		if again.ClientID != ci.ClientID || again.ClientSecret != ci.ClientSecret || again.Issuer != ci.Issuer ||
			again.TokenEndpointAuthMethod != ci.TokenEndpointAuthMethod || again.Scope != ci.Scope ||
			again.ClientSecretExpiresAt != ci.ClientSecretExpiresAt || again.ClientIDIssuedAt != ci.ClientIDIssuedAt ||
			!slices.Equal(again.RedirectURIs, ci.RedirectURIs) || !slices.Equal(again.GrantTypes, orDefault(ci.GrantTypes, "authorization_code", "refresh_token")) ||
			len(again.extra) != len(ci.extra) {
			t.Fatalf("round trip of %q changed the record:\n got %+v\nwant %+v\nwritten %s", b, again, ci, out)
		}
	})
}
