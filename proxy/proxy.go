// Package proxy forwards MCP traffic from local listeners to remote MCP
// servers. It adds the stored OAuth bearer token to every upstream request
// and, when an upstream answers 401 (or 403 insufficient_scope), asks its
// [Authorizer] to refresh or log in, holds the client's request meanwhile and
// replays it, so that MCP clients that know nothing about OAuth can use
// OAuth-protected servers.
//
// Each upstream gets its own local listener (see [Start]) whose paths and
// queries map one to one onto the upstream's origin: a server configured as
// https://example.com/mcp?login is reached at http://127.0.0.1:PORT/mcp?login.
// Both MCP HTTP transports are supported: Streamable HTTP and the legacy
// HTTP+SSE transport, whose "endpoint" event is rewritten to point back at the
// listener.
//
// Toward the upstream the proxy:
//   - forwards the method, path, query, body bytes and every header the client
//     sent (Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, cookies, …);
//   - removes the client's Authorization and X-HF-Authorization headers, adds
//     the server's configured headers and then the Authorizer's token as
//     "Authorization: Bearer …" (so the token wins over a configured
//     Authorization header, which is used as is when there is no token);
//   - removes Origin and Referer: they name the local client, and an upstream
//     that validates Origin (as the MCP specification asks servers to) would
//     refuse a localhost origin;
//   - never follows redirects, so the token only ever goes to the configured
//     upstream origin; a redirect to the upstream origin is rewritten to the
//     listener, any other is passed to the client untouched.
//
// Toward the client it streams responses as they arrive (Server-Sent Events
// are flushed event by event) and answers upstream failures with a JSON-RPC
// error.
//
// Requests whose Host is not one of the listener's own loopback names, or
// whose Origin is not a loopback origin, are refused with 403 before anything
// is forwarded (browsers and DNS rebinding).
package proxy

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// DefaultMaxBodyBytes is the request body size up to which a request is
// buffered so it can be replayed after an authorization, when
// Options.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 4 << 20

// Server describes one upstream MCP server and its local listener.
type Server struct {
	// Name identifies the server in logs, errors and [ListenerInfo].
	Name string

	// Upstream is the remote MCP endpoint: an absolute http or https URL,
	// including path and query.
	Upstream string

	// Transport is the MCP transport the upstream speaks: "http" for
	// Streamable HTTP or "sse" for the legacy HTTP+SSE transport. Empty
	// means "http".
	Transport string

	// Headers are set on every upstream request, replacing any header of
	// the same name sent by the client. An Authorization header here is
	// sent only while Auth has no token (or Auth is nil).
	Headers map[string]string

	// Auth supplies the bearer token and handles the upstream's
	// authorization challenges. Nil turns OAuth off: requests are
	// forwarded without a token and 401s are passed to the client.
	Auth Authorizer

	// Listen is the local address, host:port, that [Start] binds. Empty
	// means 127.0.0.1 on a free port. It must be a loopback address unless
	// Options.AllowRemote is set.
	Listen string
}

// Options configures the proxy. The zero value is ready to use.
type Options struct {
	// MaxBodyBytes is the size up to which a request body is buffered so the
	// request can be replayed after an authorization. A larger body is
	// streamed upstream and, if it meets a 401, the client gets an error
	// with the login link instead of a replay. Zero means
	// DefaultMaxBodyBytes; a negative value disables buffering.
	MaxBodyBytes int64

	// AllowRemote permits non-loopback listen addresses. Anyone who can
	// reach such a listener acts with the user's tokens. With AllowRemote
	// the listener's own address (and the host in Server.Listen) also
	// count as valid Host names.
	AllowRemote bool

	// AllowedHosts are extra Host header values the listeners accept,
	// besides their loopback names: "name" accepts that name on the
	// listener's port, "name:port" accepts exactly that.
	AllowedHosts []string

	// Transport performs the upstream requests. Nil means the proxy's own
	// HTTP/1.1 transport for plain-http upstreams (no goroutines per
	// connection; see BENCHMARKS.md) and, for everything else (https with
	// HTTP/2 where offered, HTTP proxies from the environment), a clone of
	// http.DefaultTransport tuned for streaming (no transparent
	// decompression, more idle connections per host). It must not follow
	// redirects (an http.RoundTripper never does).
	Transport http.RoundTripper

	// WrapTransport, when set, is called once per server with its name and
	// the upstream transport, and the transport it returns is used for
	// that server instead: beneath the authorization layer, so it sees
	// every request as sent, bearer token included, and replays as
	// separate requests whose context is marked by wire.WithReplay. The
	// traffic log and HAR export use it; nil adds nothing.
	WrapTransport func(server string, rt http.RoundTripper) http.RoundTripper

	// Logger receives the proxy's logs. Nil discards them. Tokens are never
	// logged; URLs are logged without their query.
	Logger *slog.Logger

	// noFastPath sends every request through ReverseProxy (fast.go), for
	// the tests that compare the two paths.
	noFastPath bool
}

// NewHandler returns the handler of one server's listener: it guards the
// listener against foreign Host and Origin headers, buffers request bodies
// for replay and forwards everything to s.Upstream. [Start] serves it on its
// own listener; tests can serve it with net/http/httptest.
//
// The listener's port is taken from the connection (http.LocalAddrContextKey),
// so the same handler works on any port.
func NewHandler(s Server, o Options) (http.Handler, error) {
	h, err := newHandler(s, o, nil)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// validate checks s and returns its parsed upstream URL.
func (s *Server) validate() (*url.URL, error) {
	if s.Upstream == "" {
		return nil, fmt.Errorf("proxy: server %q: no upstream URL", s.Name)
	}
	up, err := url.Parse(s.Upstream)
	if err != nil {
		return nil, fmt.Errorf("proxy: server %q: upstream URL: %w", s.Name, err)
	}
	up.Scheme = strings.ToLower(up.Scheme)
	if (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return nil, fmt.Errorf("proxy: server %q: upstream %q is not an absolute http or https URL", s.Name, redact(up))
	}
	if up.User != nil {
		return nil, fmt.Errorf("proxy: server %q: upstream %q must not contain credentials", s.Name, redact(up))
	}
	switch s.Transport {
	case "", "http", "sse":
	default:
		return nil, fmt.Errorf("proxy: server %q: transport %q: want \"http\" or \"sse\"", s.Name, s.Transport)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Headers)) {
		if !isToken(k) {
			return nil, fmt.Errorf("proxy: server %q: header %q: invalid name", s.Name, k)
		}
		if !validHeaderValue(s.Headers[k]) {
			return nil, fmt.Errorf("proxy: server %q: header %q: invalid value", s.Name, k)
		}
	}
	return up, nil
}

// redact returns u as a string without its query, fragment and user info:
// queries may carry session ids or keys that do not belong in logs.
func redact(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return v.String()
}

// isToken reports whether s is an RFC 9110 token (section 5.6.2), as a
// header name and a method must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(c byte) bool { return c < 0x80 && tokenChars[c] }

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validHeaderValue reports whether v holds no control characters but tab.
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
