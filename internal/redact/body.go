package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/url"
	"regexp"
	"strings"
)

// Body returns an HTTP body of the given Content-Type fit to print, with
// the values of secret fields fingerprinted: form bodies field by field,
// JSON (and JSON in each data line of an event stream) structurally, and
// anything else, including JSON cut short, by Text. It never fails: what
// cannot be parsed is redacted as text.
func Body(contentType string, body []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "application/x-www-form-urlencoded":
		return Query(string(body))
	case mt == "text/event-stream":
		return eventStream(body)
	case isJSONType(mt) || looksLikeJSON(body):
		return jsonOrText(body)
	}
	return Text(string(body))
}

func isJSONType(mt string) bool {
	_, sub, _ := strings.Cut(mt, "/")
	return sub == "json" || strings.HasSuffix(sub, "+json")
}

func looksLikeJSON(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// jsonOrText redacts body as JSON as far as it parses and the rest, if
// any (a body cut short, or not JSON after all), as text.
func jsonOrText(body []byte) string {
	out, rest, ok := redactJSON(body)
	if ok {
		return string(out)
	}
	return string(out) + Text(string(rest))
}

// eventStream redacts each data line of a Server-Sent Events stream as
// JSON, and the other lines as text.
func eventStream(body []byte) string {
	var b strings.Builder
	b.Grow(len(body))
	for len(body) > 0 {
		line := body
		if i := bytes.IndexAny(body, "\r\n"); i >= 0 {
			j := i + 1
			if body[i] == '\r' && j < len(body) && body[j] == '\n' {
				j++
			}
			line, body = body[:j], body[j:]
		} else {
			body = nil
		}
		text := bytes.TrimRight(line, "\r\n")
		eol := line[len(text):]
		if data, ok := bytes.CutPrefix(text, []byte("data:")); ok {
			b.WriteString("data:")
			if sp, ok := bytes.CutPrefix(data, []byte(" ")); ok {
				b.WriteByte(' ')
				data = sp
			}
			if looksLikeJSON(data) {
				b.WriteString(jsonOrText(data))
			} else {
				b.WriteString(Text(string(data)))
			}
		} else {
			b.WriteString(Text(string(text)))
		}
		b.Write(eol)
	}
	return b.String()
}

// JSON returns the JSON text body, compacted, with the values of secret
// fields (see IsSecretField) replaced by their fingerprints, at any depth:
// a string value directly, an object or array value every string in it.
// Numbers, booleans and null are kept (a JSON-RPC error "code" is not a
// secret). Other strings are redacted by Text, so JSON or a form embedded
// in a string (a tool result) is covered too. A sequence of JSON values is
// redacted value by value, one per line. ok is false when body is not
// valid JSON; out is then what could be redacted before the error.
func JSON(body []byte) (out []byte, ok bool) {
	out, _, ok = redactJSON(body)
	return out, ok
}

// redactJSON is JSON that also returns the unparsed rest of body when it
// is not valid JSON. The rest is empty when it would begin inside a secret
// value, so that a secret cut short is not passed on.
func redactJSON(body []byte) (out, rest []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := jsonWriter{out: make([]byte, 0, len(body))}
	for {
		tok, err := dec.Token()
		if err == io.EOF && len(w.stack) == 0 {
			return w.out, nil, true
		}
		if err != nil { // io.EOF inside a value: cut short
			if w.pendingSecret || w.secretDepth > 0 {
				return append(w.out, "…"...), nil, false
			}
			return w.out, body[dec.InputOffset():], false
		}
		w.token(tok)
	}
}

type jsonFrame struct {
	obj       bool // an object, else an array
	expectKey bool
	n         int // values completed
}

// jsonWriter re-encodes a stream of JSON tokens, redacting as it goes.
type jsonWriter struct {
	out           []byte
	stack         []jsonFrame
	pendingSecret bool // the last key was secret: redact its value
	secretDepth   int  // the depth of the secret container being written; 0 for none
	written       bool // a top-level value has been written
}

func (w *jsonWriter) top() *jsonFrame {
	if len(w.stack) == 0 {
		return nil
	}
	return &w.stack[len(w.stack)-1]
}

func (w *jsonWriter) token(tok json.Token) {
	if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
		w.out = append(w.out, byte(d))
		w.stack = w.stack[:len(w.stack)-1]
		if len(w.stack) < w.secretDepth {
			w.secretDepth = 0
		}
		w.valueDone()
		return
	}
	top := w.top()
	if top != nil && top.obj && top.expectKey {
		key, _ := tok.(string)
		if top.n > 0 {
			w.out = append(w.out, ',')
		}
		w.out = appendQuoted(w.out, key)
		w.out = append(w.out, ':')
		top.expectKey = false
		w.pendingSecret = IsSecretField(key)
		return
	}
	switch {
	case top != nil && !top.obj && top.n > 0:
		w.out = append(w.out, ',')
	case top == nil && w.written:
		w.out = append(w.out, '\n')
	}
	secret := w.pendingSecret || w.secretDepth > 0
	w.pendingSecret = false
	switch v := tok.(type) {
	case json.Delim: // { or [
		w.out = append(w.out, byte(v))
		w.stack = append(w.stack, jsonFrame{obj: v == '{', expectKey: v == '{'})
		if secret && w.secretDepth == 0 {
			w.secretDepth = len(w.stack)
		}
		return // done when it closes
	case string:
		if secret {
			v = Fingerprint(v)
		} else {
			v = Text(v)
		}
		w.out = appendQuoted(w.out, v)
	case json.Number:
		w.out = append(w.out, v...)
	case bool:
		if v {
			w.out = append(w.out, "true"...)
		} else {
			w.out = append(w.out, "false"...)
		}
	case nil:
		w.out = append(w.out, "null"...)
	}
	w.valueDone()
}

func (w *jsonWriter) valueDone() {
	top := w.top()
	if top == nil {
		w.written = true
		return
	}
	top.n++
	top.expectKey = top.obj
}

// appendQuoted appends s as a JSON string, escaping no more than JSON
// requires (no HTML escaping: this is for reading).
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// secretNames is the alternation of the secret field names for the text
// patterns, longest first, with "_" also matching "-", then the names
// IsSecretField tells by their ending.
var secretNames = func() string {
	names := make([]string, 0, len(secretFields))
	for n := range secretFields {
		names = append(names, n)
	}
	// Longest first, so "code_verifier" is tried before "code".
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if len(names[j]) > len(names[i]) || len(names[j]) == len(names[i]) && names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	for i, n := range names {
		names[i] = strings.ReplaceAll(regexp.QuoteMeta(n), "_", "[_-]")
	}
	// The endings of IsSecretField, and its short names.
	names = append(names, `[a-z0-9_-]*?(?:token|secret|passw(?:or)?d|(?:api|access|secret|private)[_-]?key)`, "key", "sig", "signature")
	return strings.Join(names, "|")
}()

var (
	// "access_token": "value" in JSON text that could not be parsed.
	jsonPairRE = regexp.MustCompile(`(?i)("(?:` + secretNames + `)"\s*:\s*)"((?:[^"\\]|\\.)*)"`)
	// \"access_token\": \"value\" in JSON quoted inside a JSON string.
	quotedPairRE = regexp.MustCompile(`(?i)(\\"(?:` + secretNames + `)\\"\s*:\s*)\\"((?:[^"\\]|\\[^"])*)\\"`)
	// access_token=value in a query, a form or prose.
	formPairRE = regexp.MustCompile(`(?i)((?:^|[^A-Za-z0-9_.-])(?:` + secretNames + `)=)([^&\s"'<>;,]*)`)
	// Bearer value, Basic value.
	credentialRE = regexp.MustCompile(`(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/-]{8,}=*)`)
)

// Text returns s with the secrets it can recognise without parsing
// replaced by fingerprints: "field": "value" pairs and field=value pairs
// of the secret fields, and Bearer and Basic credentials. It is the
// fallback for bodies that are not JSON or form, for JSON cut short, and
// for error messages.
func Text(s string) string {
	if !strings.ContainsAny(s, "=:") && !containsFold(s, "bearer") && !containsFold(s, "basic") {
		return s // the common case: nothing that could match
	}
	s = replaceSecret(s, jsonPairRE, func(v string) string {
		var u string
		if json.Unmarshal([]byte(`"`+v+`"`), &u) != nil {
			u = v
		}
		return `"` + Fingerprint(u) + `"`
	})
	s = replaceSecret(s, quotedPairRE, func(v string) string { return `\"` + Fingerprint(v) + `\"` })
	s = replaceSecret(s, formPairRE, func(v string) string {
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		return Fingerprint(v)
	})
	return replaceSecret(s, credentialRE, Fingerprint)
}

// replaceSecret writes s with, for every match of re, group 1 kept and the
// rest of the match replaced by repl(group 2); repl re-adds any quotes the
// pattern matched after group 2. Empty and already redacted values stay.
func replaceSecret(s string, re *regexp.Regexp, repl func(string) string) string {
	matches := re.FindAllStringSubmatchIndex(s, -1)
	if matches == nil {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, m := range matches {
		// m[0:2] is the match, m[2:4] group 1, m[4:6] group 2.
		b.WriteString(s[last:m[3]])
		if secret := s[m[4]:m[5]]; secret == "" || isFingerprint(secret) {
			b.WriteString(s[m[3]:m[1]])
		} else {
			b.WriteString(repl(secret))
		}
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// isFingerprint reports whether s is what Fingerprint returns, so that
// redacting twice changes nothing.
func isFingerprint(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 12 {
		return false
	}
	for _, c := range []byte(h) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// Scrub replaces every occurrence in s of each secret (a token the caller
// knows it sent) by its fingerprint: a last line of defence for secrets
// in places no field name announces, such as a server echoing a request.
// Secrets shorter than 8 bytes are ignored; they would match by chance.
func Scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Fingerprint(sec))
		}
	}
	return s
}
