package oauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Token is the stored token record. Its JSON is what fast-agent writes
// (access_token, token_type, expires_in, refresh_token, scope; absent
// values as null) plus expires_at, the absolute expiry in Unix seconds,
// which fast-agent ignores. Unknown fields are kept when a record is read
// and written back, and null fields are tolerated.
type Token struct {
	AccessToken  string
	TokenType    string // "Bearer" when the server said bearer in any case
	ExpiresIn    int64  // seconds, as the server answered; 0 when absent
	RefreshToken string
	Scope        string    // space-separated, as granted
	ExpiresAt    time.Time // zero when unknown (tokens written by fast-agent)

	extra map[string]json.RawMessage
}

// ExpiresWithin reports whether t has a known expiry that falls before
// now+d. A token without a known expiry never expires by this test.
func (t *Token) ExpiresWithin(now time.Time, d time.Duration) bool {
	return !t.ExpiresAt.IsZero() && t.ExpiresAt.Before(now.Add(d))
}

// Scopes returns the granted scopes.
func (t *Token) Scopes() []string { return strings.Fields(t.Scope) }

type tokenJSON struct {
	AccessToken  string  `json:"access_token"`
	TokenType    string  `json:"token_type"`
	ExpiresIn    *int64  `json:"expires_in"`
	Scope        *string `json:"scope"`
	RefreshToken *string `json:"refresh_token"`
	ExpiresAt    *int64  `json:"expires_at,omitempty"`
}

var tokenFields = []string{"access_token", "token_type", "expires_in", "scope", "refresh_token", "expires_at"}

// MarshalJSON writes the record in fast-agent's shape.
func (t Token) MarshalJSON() ([]byte, error) {
	tokenType := t.TokenType
	if tokenType == "" || strings.EqualFold(tokenType, "bearer") {
		tokenType = "Bearer"
	}
	j := tokenJSON{
		AccessToken:  t.AccessToken,
		TokenType:    tokenType,
		ExpiresIn:    nonZero(t.ExpiresIn),
		Scope:        nonEmpty(t.Scope),
		RefreshToken: nonEmpty(t.RefreshToken),
	}
	if !t.ExpiresAt.IsZero() {
		j.ExpiresAt = nonZero(t.ExpiresAt.Unix())
	}
	return marshalWithExtra(j, t.extra)
}

// UnmarshalJSON reads a record written by this program or by fast-agent.
func (t *Token) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("oauth: token record: %w", err)
	}
	var j struct {
		AccessToken  *string         `json:"access_token"`
		TokenType    *string         `json:"token_type"`
		ExpiresIn    json.Number     `json:"expires_in"`
		Scope        *string         `json:"scope"`
		RefreshToken *string         `json:"refresh_token"`
		ExpiresAt    json.RawMessage `json:"expires_at"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&j); err != nil {
		return fmt.Errorf("oauth: token record: %w", err)
	}
	if j.AccessToken == nil || *j.AccessToken == "" {
		return fmt.Errorf("oauth: token record: no access_token")
	}
	*t = Token{
		AccessToken:  *j.AccessToken,
		TokenType:    deref(j.TokenType),
		Scope:        deref(j.Scope),
		RefreshToken: deref(j.RefreshToken),
		extra:        extraFields(raw, tokenFields),
	}
	n, ok := seconds(j.ExpiresIn)
	if !ok {
		return fmt.Errorf("oauth: token record: expires_in: %s is not a number of seconds", j.ExpiresIn)
	}
	t.ExpiresIn = n
	at, err := parseTime(j.ExpiresAt)
	if err != nil {
		return fmt.Errorf("oauth: token record: expires_at: %w", err)
	}
	t.ExpiresAt = at
	return nil
}

// The range of times RFC 3339 can write, in Unix seconds.
const (
	minUnix = -62135596800 // 0001-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

// parseTime accepts Unix seconds (integer or fraction) or an RFC 3339 string.
func parseTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		// Integers are read exactly; a float64 would round large ones.
		if sec, err := n.Int64(); err == nil {
			if sec < minUnix || sec > maxUnix {
				return time.Time{}, fmt.Errorf("%s is outside years 1 to 9999", n)
			}
			return time.Unix(sec, 0), nil
		}
		f, err := n.Float64()
		if err != nil {
			return time.Time{}, err
		}
		// Checked before the conversion: int64(f) is undefined out of range.
		if !(f >= minUnix && f <= maxUnix) {
			return time.Time{}, fmt.Errorf("%s is outside years 1 to 9999", n)
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339, s)
}

// ClientInfo is the stored client registration: the RFC 7591 response of a
// dynamic registration, or a synthetic record for a Client ID Metadata
// Document, in the shape fast-agent writes. Issuer names the authorization
// server the registration belongs to. Unknown fields are kept.
type ClientInfo struct {
	ClientID                string
	ClientSecret            string
	ClientIDIssuedAt        int64
	ClientSecretExpiresAt   int64
	ClientName              string
	RedirectURIs            []string
	GrantTypes              []string
	ResponseTypes           []string
	TokenEndpointAuthMethod string
	Scope                   string
	Issuer                  string

	extra map[string]json.RawMessage
}

type clientJSON struct {
	ClientID                string       `json:"client_id"`
	ClientSecret            *string      `json:"client_secret"`
	ClientIDIssuedAt        *json.Number `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *json.Number `json:"client_secret_expires_at"`
	ClientName              *string      `json:"client_name"`
	RedirectURIs            []string     `json:"redirect_uris"`
	GrantTypes              []string     `json:"grant_types"`
	ResponseTypes           []string     `json:"response_types"`
	TokenEndpointAuthMethod *string      `json:"token_endpoint_auth_method"`
	Scope                   *string      `json:"scope"`
	Issuer                  *string      `json:"issuer"`
}

var clientFields = []string{"client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at",
	"client_name", "redirect_uris", "grant_types", "response_types", "token_endpoint_auth_method", "scope", "issuer"}

// MarshalJSON writes the record in fast-agent's shape. Absent grant and
// response types are written as the defaults of the MCP Python SDK's
// model, which fast-agent reads records with: it refuses null there.
func (c ClientInfo) MarshalJSON() ([]byte, error) {
	return marshalWithExtra(clientJSON{
		ClientID:                c.ClientID,
		ClientSecret:            nonEmpty(c.ClientSecret),
		ClientIDIssuedAt:        nonZeroNumber(c.ClientIDIssuedAt),
		ClientSecretExpiresAt:   nonZeroNumber(c.ClientSecretExpiresAt),
		ClientName:              nonEmpty(c.ClientName),
		RedirectURIs:            c.RedirectURIs,
		GrantTypes:              orDefault(c.GrantTypes, "authorization_code", "refresh_token"),
		ResponseTypes:           orDefault(c.ResponseTypes, "code"),
		TokenEndpointAuthMethod: nonEmpty(c.TokenEndpointAuthMethod),
		Scope:                   nonEmpty(c.Scope),
		Issuer:                  nonEmpty(c.Issuer),
	}, c.extra)
}

// UnmarshalJSON reads a record written by this program or by fast-agent.
func (c *ClientInfo) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("oauth: client record: %w", err)
	}
	var j clientJSON
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&j); err != nil {
		return fmt.Errorf("oauth: client record: %w", err)
	}
	if j.ClientID == "" {
		return fmt.Errorf("oauth: client record: no client_id")
	}
	// RFC 7591 says "number of seconds"; servers that write
	// time.time() or Date.now()/1000 send a fraction.
	issuedAt, ok := seconds(deref(j.ClientIDIssuedAt))
	if !ok {
		return fmt.Errorf("oauth: client record: client_id_issued_at: %s is not a number of seconds", *j.ClientIDIssuedAt)
	}
	secretExpiresAt, ok := seconds(deref(j.ClientSecretExpiresAt))
	if !ok {
		return fmt.Errorf("oauth: client record: client_secret_expires_at: %s is not a number of seconds", *j.ClientSecretExpiresAt)
	}
	*c = ClientInfo{
		ClientID:                j.ClientID,
		ClientSecret:            deref(j.ClientSecret),
		ClientIDIssuedAt:        issuedAt,
		ClientSecretExpiresAt:   secretExpiresAt,
		ClientName:              deref(j.ClientName),
		RedirectURIs:            j.RedirectURIs,
		GrantTypes:              j.GrantTypes,
		ResponseTypes:           j.ResponseTypes,
		TokenEndpointAuthMethod: deref(j.TokenEndpointAuthMethod),
		Scope:                   deref(j.Scope),
		Issuer:                  deref(j.Issuer),
		extra:                   extraFields(raw, clientFields),
	}
	return nil
}

// marshalWithExtra encodes known (a struct) and then appends the unknown
// fields kept from an earlier read, so a rewrite loses nothing.
func marshalWithExtra(known any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(known)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1])
	for _, k := range sortedKeys(extra) {
		kb, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(extra[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func extraFields(raw map[string]json.RawMessage, known []string) map[string]json.RawMessage {
	extra := maps.Clone(raw)
	// encoding/json matches keys case-insensitively, so "ACCESS_TOKEN" was
	// read as a known field too; kept as an extra it would win on the next
	// read and change the record.
	for k := range extra {
		if slices.ContainsFunc(known, func(f string) bool { return strings.EqualFold(f, k) }) {
			delete(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	return extra
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// seconds reads a JSON number of seconds, dropping a fraction; "" is 0.
func seconds(n json.Number) (int64, bool) {
	if n == "" {
		return 0, true
	}
	if v, err := n.Int64(); err == nil {
		return v, true
	}
	f, err := n.Float64()
	// Checked before the conversion: int64(f) is undefined out of range.
	if err != nil || !(f > math.MinInt64 && f < math.MaxInt64) {
		return 0, false
	}
	return int64(f), true
}

func orDefault(s []string, def ...string) []string {
	if s == nil {
		return def
	}
	return s
}

func nonZeroNumber(n int64) *json.Number {
	if n == 0 {
		return nil
	}
	v := json.Number(strconv.FormatInt(n, 10))
	return &v
}

func nonZero(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
