package redact

import (
	"net/http"
	"net/url"
	"strings"
)

// secretFields are the query, form and JSON field names whose values are
// secrets, lower-case with "-" spelt "_". The first eight are OAuth's; the
// rest are common spellings of keys, credentials and session capabilities.
var secretFields = map[string]bool{
	"code":                      true,
	"code_verifier":             true,
	"state":                     true,
	"access_token":              true,
	"refresh_token":             true,
	"id_token":                  true,
	"client_secret":             true,
	"token":                     true,
	"registration_access_token": true, // RFC 7591 §3.2.1: manages the client
	"client_assertion":          true,
	"assertion":                 true,
	"subject_token":             true,
	"actor_token":               true,
	"device_code":               true,
	"password":                  true,
	"api_key":                   true,
	"apikey":                    true,
	"session_id":                true, // the legacy SSE transport's ?sessionId= admits messages to a session
	"sessionid":                 true,
}

// secretSuffixes end the names of fields that hold secrets, whatever comes
// before, compared as normalName spells them: tavilyApiKey, x-api-key,
// auth_token, clientSecret. token_type and max_tokens do not end so.
var secretSuffixes = []string{"token", "secret", "password", "passwd", "apikey", "accesskey", "secretkey", "privatekey"}

// normalSecrets are secretFields as normalName spells them, and a few
// names too short to be told by their ending: a bare key, a signature.
var normalSecrets = func() map[string]bool {
	m := map[string]bool{"key": true, "sig": true, "signature": true}
	for n := range secretFields {
		m[normalName(n)] = true
	}
	return m
}()

var separators = strings.NewReplacer("-", "", "_", "")

// normalName is name in lower case without "-" and "_".
func normalName(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '-' || c == '_' || 'A' <= c && c <= 'Z' || c >= 0x80 {
			return separators.Replace(strings.ToLower(name))
		}
	}
	return name // the usual log attribute key: nothing to change or allocate
}

// IsSecretField reports whether a query, form or JSON field called name
// holds a secret: code, code_verifier, state, access_token, refresh_token,
// id_token, client_secret, token and a few more credential names, and any
// name ending in token, secret, password or API key (tavilyApiKey,
// x-auth-token), in any case, with "-", "_" or neither between words.
func IsSecretField(name string) bool {
	if secretFields[name] { // the common, already normal spelling
		return true
	}
	if len(name) > 64 {
		return false
	}
	n := normalName(name)
	if normalSecrets[n] {
		return true
	}
	for _, suffix := range secretSuffixes {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

// IsSecretHeader reports whether the values of the header called name are
// secrets: Authorization, Proxy-Authorization, X-HF-Authorization, Cookie,
// Set-Cookie, and any header whose name mentions a token, secret, password
// or API key (X-Api-Key, X-Auth-Token, …). The comparison ignores case.
func IsSecretHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "x-hf-authorization", "cookie", "set-cookie":
		return true
	}
	for _, s := range []string{"token", "secret", "password", "api-key", "apikey", "api_key", "authorization"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// urlHeaders carry URLs whose query may hold an authorization code or a
// token (an authorization redirect's Location).
func isURLHeader(name string) bool {
	switch strings.ToLower(name) {
	case "location", "content-location", "referer":
		return true
	}
	return false
}

// HeaderValue returns value, a value of the header called name, fit to
// print. Credentials keep their scheme ("Bearer sha256:…"), cookies their
// names and attributes ("sid=sha256:…; Path=/"), URL headers (Location,
// Referer) have their secret query fields fingerprinted; other values are
// returned unchanged.
func HeaderValue(name, value string) string {
	switch {
	case isURLHeader(name):
		return URLString(value)
	case !IsSecretHeader(name):
		return value
	}
	switch strings.ToLower(name) {
	case "cookie":
		return cookieValue(value, ";", false)
	case "set-cookie":
		return cookieValue(value, ";", true)
	}
	return credential(value)
}

// credential fingerprints a credential, keeping an authentication scheme
// in front of it ("Bearer abc" → "Bearer sha256:…").
func credential(v string) string {
	v = strings.TrimSpace(v)
	if scheme, rest, ok := strings.Cut(v, " "); ok && isToken68Scheme(scheme) {
		return scheme + " " + Fingerprint(strings.TrimSpace(rest))
	}
	return Fingerprint(v)
}

func isToken68Scheme(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// cookieValue fingerprints the values of a Cookie header, or of the first
// pair of a Set-Cookie header (its attributes are not secret).
func cookieValue(v, sep string, onlyFirst bool) string {
	parts := strings.Split(v, sep)
	for i, p := range parts {
		if onlyFirst && i > 0 {
			break
		}
		name, val, ok := strings.Cut(p, "=")
		if !ok {
			parts[i] = Fingerprint(strings.TrimSpace(p))
			continue
		}
		parts[i] = name + "=" + Fingerprint(strings.Trim(strings.TrimSpace(val), `"`))
	}
	return strings.Join(parts, sep)
}

// Header returns a copy of h with every value passed through HeaderValue.
func Header(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		c := make([]string, len(vs))
		for i, v := range vs {
			c[i] = HeaderValue(k, v)
		}
		out[k] = c
	}
	return out
}

// Query returns the URL query or form body raw with the value of every
// secret field replaced by its fingerprint. Other pairs, their order and
// their encoding are kept; a pair that cannot be decoded is kept as is
// unless its name is secret.
func Query(raw string) string {
	if raw == "" {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i, pair := range strings.Split(raw, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, v, hasValue := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if !hasValue || !IsSecretField(name) {
			b.WriteString(pair)
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			val = v
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(Fingerprint(val)) // "sha256:" and hex: nothing to escape in a query
	}
	return b.String()
}

// RequestURL returns u as a string fit to print: its password replaced,
// the values of its secret query fields fingerprinted and its fragment
// dropped.
func RequestURL(u *url.URL) string {
	v := *u
	v.Fragment, v.RawFragment = "", ""
	if v.RawQuery != "" {
		v.RawQuery = Query(v.RawQuery)
	}
	return v.Redacted()
}

// URLString is RequestURL for a URL given as a string. Unparsable input
// is returned as "<invalid URL>" rather than echoed.
func URLString(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<invalid URL>"
	}
	return RequestURL(u)
}
