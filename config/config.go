// Package config reads a fast-agent configuration (fastagent.config.yaml and
// the fastagent.secrets.yaml or fast-agent.secrets.yaml next to it) into
// plain structs: the MCP servers to proxy, how to authorize to each of them
// and where to listen for them.
//
// The schema is fast-agent's (mcp.servers.NAME with url, transport, headers
// and auth), plus two keys of ours: auth.client_id / auth.client_secret for a
// pre-registered OAuth client, and the top-level proxy.listen section mapping
// server names to local listener addresses. Keys fast-agent knows but the
// proxy does not use are accepted silently, so one file serves both.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Transport is how a server is reached.
type Transport string

// The transports fast-agent knows.
const (
	HTTP  Transport = "http"  // streamable HTTP
	SSE   Transport = "sse"   // the older HTTP+SSE transport
	Stdio Transport = "stdio" // a local process; never proxied
)

// Token persistence modes for Auth.Persist.
const (
	PersistKeyring = "keyring" // the OS keychain, shared with fast-agent
	PersistMemory  = "memory"  // process memory only
)

const (
	defaultRedirectPort = 3030
	defaultRedirectPath = "/callback"
)

// Config is a loaded and validated configuration.
type Config struct {
	Path        string            // the config file that was read
	SecretsPath string            // the secrets file merged over it; "" when there was none
	Servers     []Server          // every server, sorted by name; nil when there are none
	Listen      map[string]string // proxy.listen: server name → host:port; nil when there is no proxy.listen
	Warnings    []string          // unknown keys, unset variables, etc.; the caller logs them
}

// Server returns the server called name.
func (c *Config) Server(name string) (Server, bool) {
	for _, s := range c.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

// Server is one entry of mcp.servers. For a stdio server only Name,
// Transport, Command (and URL, if one was configured) are filled in: it is
// recognised, not proxied.
type Server struct {
	Name      string
	Transport Transport         // never empty in a loaded Server
	URL       string            // as configured (query kept), after ${VAR} expansion
	Command   string            // stdio servers: the command to run; "" otherwise
	Headers   map[string]string // sent upstream as configured; nil when there are none
	Auth      Auth              // DefaultAuth() when the server has no auth section
}

// Auth is a server's auth section. Its zero value is not valid: start from
// DefaultAuth.
type Auth struct {
	OAuth             bool   // authorize with OAuth on 401; default true
	Persist           string // PersistKeyring (default) or PersistMemory
	RedirectPort      int    // local port of the OAuth callback; default 3030
	RedirectPath      string // path of the OAuth callback; default "/callback"
	Scope             string // space-separated scopes to request; "" lets the server decide
	ClientID          string // pre-registered client; "" uses CIMD or dynamic registration
	ClientSecret      string // secret of the pre-registered client; "" for a public client
	ClientMetadataURL string // client ID metadata document URL (CIMD); "" when unset
	// Resource replaces the RFC 8707 resource indicator sent in the
	// authorization and token requests; "" sends the discovered one and
	// ResourceNone none at all (Entra ID v2 refuses it with scopes).
	Resource string
	// AuthorizeParams are added to the authorization URL (e.g. Google's
	// access_type=offline, Auth0's audience). The parameters of the flow
	// itself cannot be set.
	AuthorizeParams map[string]string
}

// ResourceNone is the Auth.Resource that sends no resource parameter:
// `resource: false` (or "none") in the config.
const ResourceNone = "none"

// reservedParams are the authorization request parameters the flow sets.
var reservedParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state",
	"code_challenge", "code_challenge_method", "resource"}

// DefaultAuth returns the settings of a server without an auth section.
func DefaultAuth() Auth {
	return Auth{
		OAuth:        true,
		Persist:      PersistKeyring,
		RedirectPort: defaultRedirectPort,
		RedirectPath: defaultRedirectPath,
	}
}

// NewServer builds a server that is not in a config file (for a URL given on
// the command line), with default auth. An empty transport means HTTP. The
// URL must be an absolute http or https URL with a host and without user
// info.
func NewServer(name, rawURL string, transport Transport) (Server, error) {
	if transport == "" {
		transport = HTTP
	}
	s := Server{Name: name, Transport: transport, URL: strings.TrimSpace(rawURL), Auth: DefaultAuth()}
	if transport == Stdio {
		return Server{}, s.errorf(problem{keyPath{"transport"}, "stdio servers cannot be proxied (want http or sse)"})
	}
	if err := s.Validate(); err != nil {
		return Server{}, err
	}
	return s, nil
}

// Validate applies the checks Load applies to a server, so that a server
// changed after loading (by command-line flags, say) can be checked again.
// It reports every problem, joined with errors.Join.
func (s Server) Validate() error {
	var errs []error
	for _, p := range s.problems() {
		errs = append(errs, s.errorf(p))
	}
	return errors.Join(errs...)
}

func (s Server) errorf(p problem) error {
	prefix := "config: "
	if s.Name != "" {
		prefix += fmt.Sprintf("server %q: ", s.Name)
	}
	if len(p.key) > 0 {
		prefix += p.key.String() + ": "
	}
	return errors.New(prefix + p.msg)
}

// A problem is a validation failure of the value at key, relative to the
// server. Messages never quote secret values (header values, the client
// secret) nor URLs, which may carry credentials in their query.
type problem struct {
	key keyPath
	msg string
}

// problems checks the typed fields; Load checks the YAML types before.
// A bad transport does not stop the other checks: every problem is
// reported at once.
func (s Server) problems() []problem {
	var ps []problem
	switch s.Transport {
	case HTTP, SSE:
		if s.URL == "" {
			ps = append(ps, problem{keyPath{"url"}, fmt.Sprintf("is missing (an %s server needs one)", s.Transport)})
		}
	case Stdio:
		return nil
	case "":
		ps = append(ps, problem{keyPath{"transport"}, "is empty (want http, sse or stdio)"})
	default:
		ps = append(ps, problem{keyPath{"transport"}, fmt.Sprintf("%q is not a transport (want http, sse or stdio)%s",
			string(s.Transport), suggest(string(s.Transport), []string{"http", "sse", "stdio"}))})
	}
	// Without a known transport a missing URL is not an error of its own
	// (the server may be meant as stdio), but a given one must be valid.
	if s.URL != "" {
		if msg := checkServerURL(s.URL); msg != "" {
			ps = append(ps, problem{keyPath{"url"}, msg})
		}
	}
	for _, name := range sortedKeys(s.Headers) {
		if msg := checkHeader(name, s.Headers[name]); msg != "" {
			ps = append(ps, problem{keyPath{"headers", name}, msg})
		}
	}
	return append(ps, s.Auth.problems()...)
}

func (a Auth) problems() []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{keyPath{"auth", key}, fmt.Sprintf(format, args...)})
	}
	switch a.Persist {
	case PersistKeyring, PersistMemory:
	default:
		add("persist", "%q is not a persistence mode (want keyring or memory)%s",
			a.Persist, suggest(a.Persist, []string{PersistKeyring, PersistMemory}))
	}
	if a.RedirectPort < 1 || a.RedirectPort > 65535 {
		add("redirect_port", "%d is out of range (1-65535)", a.RedirectPort)
	}
	if !strings.HasPrefix(a.RedirectPath, "/") {
		add("redirect_path", "%q must start with /", a.RedirectPath)
	} else if strings.ContainsAny(a.RedirectPath, "?#") {
		add("redirect_path", "%q must be a path without query or fragment", a.RedirectPath)
	}
	if a.ClientMetadataURL != "" {
		if msg := checkClientMetadataURL(a.ClientMetadataURL); msg != "" {
			add("client_metadata_url", "%s", msg)
		}
	}
	if a.Resource != "" && a.Resource != ResourceNone {
		if u, msg := parseURL(a.Resource); msg != "" {
			add("resource", "%s", msg)
		} else if !u.IsAbs() || u.Fragment != "" {
			add("resource", "%q must be an absolute URI without a fragment (RFC 8707), or false to send none", a.Resource)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.AuthorizeParams)) {
		switch {
		case k == "":
			add("authorize_params", "a parameter has no name")
		case slices.Contains(reservedParams, strings.ToLower(k)):
			ps = append(ps, problem{keyPath{"auth", "authorize_params", k},
				"is set by the authorization flow itself (use auth.scope or auth.resource for those)"})
		}
	}
	if a.ClientSecret != "" && a.ClientID == "" {
		add("client_secret", "is set but auth.client_id is not")
	}
	return ps
}

// checkServerURL returns why raw is not an absolute http(s) URL with a
// host, or "".
func checkServerURL(raw string) string {
	u, msg := parseURL(raw)
	switch {
	case msg != "":
		return msg
	case u.Scheme == "":
		return "must be an absolute URL (http:// or https://)"
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("has scheme %q (want http or https)", u.Scheme)
	case u.Hostname() == "":
		return "has no host"
	case u.User != nil:
		// The proxy refuses such an upstream. The message must not show
		// the user info, which holds a password.
		return `must not contain credentials (user info before "@"); use headers or auth instead`
	}
	return ""
}

// checkClientMetadataURL applies fast-agent's rule: https with a path other
// than "/", since the URL is the client's identifier.
func checkClientMetadataURL(raw string) string {
	u, msg := parseURL(raw)
	switch {
	case msg != "":
		return msg
	case u.Scheme != "https":
		return "must be an https URL"
	case u.Hostname() == "":
		return "has no host"
	case u.Path == "" || u.Path == "/":
		return "must have a path, e.g. https://example.com/client.json"
	}
	return ""
}

func parseURL(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, which may hold a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "is not a valid URL: " + err.Error()
	}
	return u, ""
}

// checkHeader returns why a configured header cannot be sent, or "". The
// rules are the proxy's; the message never shows the value, which is often
// a secret.
func checkHeader(name, value string) string {
	switch {
	case !validHeaderName(name):
		return "is not a valid HTTP header name"
	case strings.ContainsAny(value, "\r\n\x00"):
		return "the value contains a line break or NUL"
	case !validHeaderValue(value):
		return "the value contains a control character (only tab is allowed)"
	}
	return ""
}

// validHeaderValue reports whether v holds no control character but tab
// (RFC 9110 field-value: no CTL other than HTAB).
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
