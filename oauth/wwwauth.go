package oauth

import (
	"net/http"
	"slices"
	"strings"
)

// Challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 7235 §2.1).
type Challenge struct {
	// Scheme is the auth-scheme as sent; compare it with strings.EqualFold.
	Scheme string
	// Token68 is the token68 form of the credentials part ("Basic abc=="),
	// "" when the challenge has none.
	Token68 string
	// Params holds the auth-params by lower-cased name, values unquoted.
	// When a name repeats, the first value wins. Nil when there are none.
	Params map[string]string
}

// String formats c in the RFC 7235 grammar, quoting every parameter value
// and listing parameters by name.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	sep := " "
	if c.Token68 != "" {
		b.WriteString(sep + c.Token68)
		sep = ", "
	}
	keys := make([]string, 0, len(c.Params))
	for k := range c.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(sep + k + "=" + quoteAuthParam(c.Params[k]))
		sep = ", "
	}
	return b.String()
}

func quoteAuthParam(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// ParseWWWAuthenticate parses the values of WWW-Authenticate header fields
// (as from http.Header.Values) into their challenges, in order. One value
// may hold several comma-separated challenges ("DPoP algs=\"ES256\", Bearer
// scope=\"a b\""). Scheme and parameter names are case-insensitive, values
// are tokens or quoted strings with backslash escapes, and whitespace
// (including folded lines) may surround commas. The parser is lenient: it
// also accepts unquoted values up to the next comma or space and a missing
// comma between parameters, skips what it cannot read up to the next comma,
// and never fails.
func ParseWWWAuthenticate(values []string) []Challenge {
	var out []Challenge
	for _, v := range values {
		p := authParser{s: v}
		out = p.challenges(out)
	}
	return out
}

type authParser struct {
	s string
	i int
}

func (p *authParser) eof() bool { return p.i >= len(p.s) }

// skipSpace skips whitespace and reports whether there was any.
func (p *authParser) skipSpace() bool {
	start := p.i
	for !p.eof() && isAuthSpace(p.s[p.i]) {
		p.i++
	}
	return p.i > start
}

func (p *authParser) skipSpaceAndCommas() {
	for !p.eof() && (isAuthSpace(p.s[p.i]) || p.s[p.i] == ',') {
		p.i++
	}
}

// skipToComma skips garbage up to the next comma.
func (p *authParser) skipToComma() {
	for !p.eof() && p.s[p.i] != ',' {
		p.i++
	}
}

func (p *authParser) token() string {
	start := p.i
	for !p.eof() && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// token68 reads a token68 if the rest of the challenge is exactly one.
func (p *authParser) token68() (string, bool) {
	j := p.i
	for j < len(p.s) && isToken68Char(p.s[j]) {
		j++
	}
	if j == p.i {
		return "", false
	}
	for j < len(p.s) && p.s[j] == '=' {
		j++
	}
	end := j
	for j < len(p.s) && isAuthSpace(p.s[j]) {
		j++
	}
	if j < len(p.s) && p.s[j] != ',' {
		return "", false
	}
	t := p.s[p.i:end]
	p.i = end
	return t, true
}

// value reads a quoted string, or an unquoted value up to the next comma
// or whitespace.
func (p *authParser) value() string {
	if p.eof() || p.s[p.i] != '"' {
		start := p.i
		for !p.eof() && p.s[p.i] != ',' && !isAuthSpace(p.s[p.i]) {
			p.i++
		}
		return p.s[start:p.i]
	}
	p.i++
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return b.String()
		case c == '\\' && !p.eof():
			b.WriteByte(p.s[p.i])
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String() // unterminated: take the rest
}

func (p *authParser) challenges(out []Challenge) []Challenge {
	for {
		p.skipSpaceAndCommas()
		if p.eof() {
			return out
		}
		scheme := p.token()
		if scheme == "" {
			p.skipToComma()
			continue
		}
		c := Challenge{Scheme: scheme}
		if p.skipSpace() {
			c.Token68, _ = p.token68()
		}
		p.params(&c)
		out = append(out, c)
	}
}

// params reads auth-params into c until the input ends or a token that is
// not followed by "=" starts the next challenge.
func (p *authParser) params(c *Challenge) {
	for {
		p.skipSpaceAndCommas()
		if p.eof() {
			return
		}
		start := p.i
		name := p.token()
		if name == "" {
			p.skipToComma()
			continue
		}
		p.skipSpace()
		if p.eof() || p.s[p.i] != '=' {
			p.i = start
			return
		}
		p.i++
		p.skipSpace()
		v := p.value()
		name = strings.ToLower(name)
		if c.Params == nil {
			c.Params = make(map[string]string)
		}
		if _, dup := c.Params[name]; !dup {
			c.Params[name] = v
		}
	}
}

func isAuthSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isTchar reports whether c may appear in an RFC 9110 token.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}

// BearerChallenge holds the parameters of a Bearer challenge (RFC 6750 §3,
// RFC 9728 §5.1). A parameter that was not sent is "".
type BearerChallenge struct {
	ResourceMetadata string // resource_metadata: the protected resource metadata URL
	Scope            string // scope: space-separated scopes the request needs
	Error            string // error: e.g. invalid_token, insufficient_scope
	ErrorDescription string // error_description
	ErrorURI         string // error_uri
	Realm            string // realm
}

// BearerChallengeFrom returns the first Bearer challenge of h's
// WWW-Authenticate fields, and false when there is none.
func BearerChallengeFrom(h http.Header) (BearerChallenge, bool) {
	for _, c := range ParseWWWAuthenticate(h.Values("WWW-Authenticate")) {
		if strings.EqualFold(c.Scheme, "Bearer") {
			return BearerChallenge{
				ResourceMetadata: c.Params["resource_metadata"],
				Scope:            c.Params["scope"],
				Error:            c.Params["error"],
				ErrorDescription: c.Params["error_description"],
				ErrorURI:         c.Params["error_uri"],
				Realm:            c.Params["realm"],
			}, true
		}
	}
	return BearerChallenge{}, false
}

// InsufficientScope reports whether the challenge asks for more scope
// (error="insufficient_scope", RFC 6750 §3.1): the client should authorize
// again with Scope rather than refresh.
func (c BearerChallenge) InsufficientScope() bool {
	return c.Error == "insufficient_scope"
}
