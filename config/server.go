package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// rawServer and rawAuth hold the YAML values untyped: the types are checked
// by hand so that messages are ours, and so that values produced by ${VAR}
// expansion (always strings) are accepted where fast-agent accepts them.
type rawServer struct {
	Transport   any `mapstructure:"transport"`
	URL         any `mapstructure:"url"`
	Command     any `mapstructure:"command"`
	Target      any `mapstructure:"target"`
	Headers     any `mapstructure:"headers"`
	Auth        any `mapstructure:"auth"`
	AccessToken any `mapstructure:"access_token"`
}

type rawAuth struct {
	OAuth             any `mapstructure:"oauth"`
	Persist           any `mapstructure:"persist"`
	RedirectPort      any `mapstructure:"redirect_port"`
	RedirectPath      any `mapstructure:"redirect_path"`
	Scope             any `mapstructure:"scope"`
	ClientID          any `mapstructure:"client_id"`
	ClientSecret      any `mapstructure:"client_secret"`
	ClientMetadataURL any `mapstructure:"client_metadata_url"`
	Resource          any `mapstructure:"resource"`
	AuthorizeParams   any `mapstructure:"authorize_params"`
}

// decode fills out from m and warns about each key of m that neither we nor
// fast-agent know.
func (b *builder) decode(m map[string]any, out any, path keyPath, keys keySet) {
	var md mapstructure.Metadata
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:   out,
		Metadata: &md,
		// YAML keys are case-sensitive, in fast-agent too.
		MatchName: func(mapKey, fieldName string) bool { return mapKey == fieldName },
	})
	if err == nil {
		err = d.Decode(m)
	}
	if err != nil { // cannot happen: every field is of type any
		b.errorf(path, "%v", err)
		return
	}
	slices.Sort(md.Unused)
	for _, k := range md.Unused {
		if !keys.known(k) {
			b.warnf(path.child(k), "unknown key, ignored%s", suggest(k, keys.all()))
		}
	}
}

// server builds mcp.servers.NAME. It reports false when the entry is too
// broken to describe a server; the errors are recorded either way, and a
// server without a usable transport still has its other keys checked, so
// that every problem is reported at once.
func (b *builder) server(name string, v any) (Server, bool) {
	path := keyPath{"mcp", "servers", name}
	m, ok := b.mapping(v, path)
	if !ok {
		return Server{}, false
	}
	var raw rawServer
	b.decode(m, &raw, path, serverKeys)

	s := Server{Name: name, Auth: DefaultAuth()}
	rawURL, urlOK := b.str(raw.URL, path.child("url"))
	s.URL = strings.TrimSpace(rawURL)
	if c, ok := raw.Command.(string); ok {
		s.Command = strings.TrimSpace(c)
	}
	hasCommand := !blank(raw.Command)

	// fast-agent's shorthand: target is a URL or a command line.
	var targetTransport Transport
	if !blank(raw.Target) && s.URL == "" && !hasCommand && raw.Transport == nil {
		if t, ok := b.str(raw.Target, path.child("target")); ok {
			t = strings.TrimSpace(t)
			if lt := strings.ToLower(t); strings.HasPrefix(lt, "http://") || strings.HasPrefix(lt, "https://") {
				s.URL, targetTransport = t, HTTP
				if u, err := url.Parse(t); err == nil && strings.HasSuffix(u.Path, "/sse") {
					targetTransport = SSE
				}
			} else {
				s.Command, hasCommand = strings.Fields(t)[0], true
			}
		}
	}

	// transportOK is false when the server has no usable transport and that
	// has been reported (a transport or url of the wrong type, or neither
	// url nor command): Server.problems must not report it again.
	transportOK := true
	switch {
	case raw.Transport != nil:
		t, ok := b.str(raw.Transport, path.child("transport"))
		s.Transport, transportOK = Transport(strings.TrimSpace(t)), ok
	case targetTransport != "":
		s.Transport = targetTransport
	case s.URL != "":
		s.Transport = HTTP
		if hasCommand {
			b.warnf(path, "has both url and command; using transport http (set transport to choose)")
			s.Command = ""
		}
	case hasCommand:
		s.Transport = Stdio
	case !urlOK:
		transportOK = false
	default:
		transportOK = false
		// A value that expanded to "" is not missing: say why it is empty.
		empty := false
		for _, k := range []string{"url", "target", "command"} {
			if b.unsetIn(path.child(k)) != "" {
				b.errorf(path.child(k), "is empty")
				empty = true
			}
		}
		if !empty {
			b.errorf(path, "has neither url nor command (an http or sse server needs a url)")
		}
	}
	if s.Transport == Stdio { // not proxied: its url and auth do not matter
		return s, true
	}

	s.Headers = b.headers(raw.Headers, path.child("headers"))
	s.Auth = b.auth(raw.Auth, path.child("auth"))
	if !blank(raw.AccessToken) {
		b.warnf(path.child("access_token"), "is not used by the proxy, which authorizes with OAuth; "+
			"to send a static token set headers.Authorization and auth: {oauth: false}")
	}
	for _, p := range s.problems() {
		switch p.key.String() {
		case "url":
			if !urlOK { // already reported as a type error
				continue
			}
			if s.URL == "" && raw.URL != nil { // set, but blank
				p.msg = fmt.Sprintf("is empty (an %s server needs one)", s.Transport)
			}
		case "transport":
			if !transportOK { // already reported
				continue
			}
		}
		b.errorf(path.child(p.key...), "%s", p.msg)
	}
	if s.Auth.OAuth {
		for _, h := range sortedKeys(s.Headers) {
			if strings.EqualFold(h, "Authorization") || strings.EqualFold(h, "X-HF-Authorization") {
				b.warnf(path.child("headers", h), "OAuth is on, so the proxy replaces this header with the OAuth token; "+
					"set auth: {oauth: false} to send it as configured")
			}
		}
	}
	return s, transportOK
}

func (b *builder) headers(v any, path keyPath) map[string]string {
	m, ok := b.mapping(v, path)
	if !ok || len(m) == 0 {
		return nil
	}
	h := make(map[string]string, len(m))
	for _, name := range sortedKeys(m) {
		if val, ok := b.scalar(m[name], path.child(name)); ok {
			h[name] = val
		}
	}
	return h
}

// auth builds the auth section. A value of the wrong type is reported and
// leaves the default, so that Auth.problems does not report it again.
func (b *builder) auth(v any, path keyPath) Auth {
	a := DefaultAuth()
	m, ok := b.mapping(v, path)
	if !ok || m == nil {
		return a
	}
	var raw rawAuth
	b.decode(m, &raw, path, authKeys)

	if raw.OAuth != nil {
		if on, ok := parseBool(raw.OAuth); ok {
			a.OAuth = on
		} else {
			b.errorf(path.child("oauth"), "%s is not a boolean (want true or false)", show(raw.OAuth))
		}
	}
	if s, ok := b.str(raw.Persist, path.child("persist")); ok && raw.Persist != nil {
		a.Persist = strings.TrimSpace(s)
	}
	if raw.RedirectPort != nil {
		if port, msg := parsePort(raw.RedirectPort); msg == "" {
			a.RedirectPort = port
		} else {
			b.errorf(path.child("redirect_port"), "%s", msg)
		}
	}
	if s, ok := b.str(raw.RedirectPath, path.child("redirect_path")); ok && raw.RedirectPath != nil {
		a.RedirectPath = strings.TrimSpace(s)
	}
	a.Scope = b.scope(raw.Scope, path.child("scope"))
	id, _ := b.scalar(raw.ClientID, path.child("client_id"))
	secret, _ := b.scalar(raw.ClientSecret, path.child("client_secret"))
	cimd, _ := b.str(raw.ClientMetadataURL, path.child("client_metadata_url"))
	a.ClientID, a.ClientSecret, a.ClientMetadataURL = strings.TrimSpace(id), strings.TrimSpace(secret), strings.TrimSpace(cimd)
	a.Resource = b.resource(raw.Resource, path.child("resource"))
	a.AuthorizeParams = b.authorizeParams(raw.AuthorizeParams, path.child("authorize_params"))
	return a
}

// resource accepts a resource URI, or false (or "none") for no resource
// parameter at all, which is ResourceNone.
func (b *builder) resource(v any, path keyPath) string {
	if v == nil {
		return ""
	}
	if on, ok := v.(bool); ok {
		if on {
			b.errorf(path, "true is not a resource (want a URI, or false to send none)")
		}
		return ResourceNone
	}
	s, _ := b.str(v, path)
	return strings.TrimSpace(s)
}

// authorizeParams accepts a map of names to scalar values.
func (b *builder) authorizeParams(v any, path keyPath) map[string]string {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		b.errorf(path, "must be a map of parameter names to values, not %s", kind(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		if s, ok := b.scalar(x, path.child(k)); ok {
			out[k] = s
		}
	}
	return out
}

// scope accepts a string or a list of strings, as fast-agent does, and
// returns the scopes separated by single spaces.
func (b *builder) scope(v any, path keyPath) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return strings.Join(strings.Fields(v), " ")
	case []any:
		var scopes []string
		for i, x := range v {
			s, ok := x.(string)
			if !ok {
				b.errorf(path.child(indexKey(i)), "must be a string, not %s", kind(x))
				continue
			}
			scopes = append(scopes, strings.Fields(s)...)
		}
		return strings.Join(scopes, " ")
	}
	b.errorf(path, "must be a string or a list of strings, not %s", kind(v))
	return ""
}

// parseBool accepts YAML booleans and, for values that come from ${VAR},
// the strings pydantic accepts.
func parseBool(v any) (bool, bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case int:
		return v == 1, v == 0 || v == 1
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "t", "yes", "y", "on", "1":
			return true, true
		case "false", "f", "no", "n", "off", "0":
			return false, true
		}
	}
	return false, false
}

// parsePort returns an integer port, or why v is not one. Booleans are
// rejected (fast-agent does too); strings from ${VAR} are parsed. The range
// of an integer is checked by Auth.problems.
func parsePort(v any) (int, string) {
	const outOfRange = "%v is out of range (1-65535)"
	switch v := v.(type) {
	case bool:
		return 0, fmt.Sprintf("%t is not a port number", v)
	case int:
		return v, ""
	case int64:
		if v < math.MinInt32 || v > math.MaxInt32 {
			return 0, fmt.Sprintf(outOfRange, v)
		}
		return int(v), ""
	case uint64:
		return 0, fmt.Sprintf(outOfRange, v)
	case float64:
		if v != math.Trunc(v) {
			return 0, fmt.Sprintf("%v is not a whole number", v)
		}
		if v < 1 || v > 65535 {
			return 0, fmt.Sprintf(outOfRange, v)
		}
		return int(v), ""
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		switch {
		case errors.Is(err, strconv.ErrRange):
			return 0, fmt.Sprintf(outOfRange, strings.TrimSpace(v))
		case err != nil:
			return 0, fmt.Sprintf("%q is not a number", v)
		}
		return n, ""
	}
	return 0, fmt.Sprintf("must be a port number, not %s", kind(v))
}

// show renders a non-secret scalar for a message.
func show(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(v)
	}
	return kind(v)
}
