package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/config"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

// authFlags are the per-server OAuth settings a command line can give: for
// a URL target they are the whole configuration, for a configured server
// they override what the config says.
type authFlags struct {
	transport         string
	persist           string
	redirectPort      int
	scope             string
	clientID          string
	clientSecret      string
	clientMetadataURL string
	resource          string
	authorizeParams   []string // NAME=VALUE

	cmd *cobra.Command // to tell which flags were given
}

func (f *authFlags) register(cmd *cobra.Command) {
	f.cmd = cmd
	fl := cmd.Flags()
	fl.StringVar(&f.transport, "transport", "http", "transport of a URL target (given with a config, of every server): http or sse")
	fl.StringVar(&f.persist, "persist", "keyring", "where tokens of a URL target live: keyring or memory")
	fl.IntVar(&f.redirectPort, "redirect-port", 3030, "port of the login callback http://localhost:PORT/callback")
	fl.StringVar(&f.scope, "scope", "", "scopes to request, space-separated (default: what the server asks for)")
	fl.StringVar(&f.clientID, "client-id", "", "a pre-registered OAuth client ID")
	fl.StringVar(&f.clientSecret, "client-secret", "", "the pre-registered client's secret")
	fl.StringVar(&f.clientMetadataURL, "client-metadata-url", "", "a client ID metadata document URL (CIMD), used when the server supports it")
	fl.StringVar(&f.resource, "resource", "", "RFC 8707 resource to send instead of the discovered one, or none to send none (Entra ID v2)")
	fl.StringArrayVar(&f.authorizeParams, "authorize-param", nil, "extra authorization URL parameter NAME=VALUE, e.g. access_type=offline (repeatable)")
}

// apply overlays the flags that were given on s and checks the result as
// the config's own servers are checked, so that a bad override fails the
// command before anything starts.
func (f *authFlags) apply(s *config.Server) error {
	var names []string // the flags given, for the error
	changed := func(name string) bool {
		if !f.cmd.Flags().Changed(name) {
			return false
		}
		names = append(names, "--"+name)
		return true
	}
	if changed("transport") {
		// Validate accepts stdio (a configured stdio server is valid), but
		// it cannot be proxied or logged in to.
		t := config.Transport(f.transport)
		if t == config.Stdio {
			return errors.New("--transport stdio: stdio servers cannot be proxied (want http or sse)")
		}
		s.Transport = t
	}
	if changed("persist") {
		s.Auth.Persist = f.persist
	}
	if changed("redirect-port") {
		s.Auth.RedirectPort = f.redirectPort
	}
	if changed("scope") {
		s.Auth.Scope = f.scope
	}
	if changed("client-id") {
		s.Auth.ClientID = f.clientID
	}
	if changed("client-secret") {
		s.Auth.ClientSecret = f.clientSecret
	}
	if changed("client-metadata-url") {
		s.Auth.ClientMetadataURL = f.clientMetadataURL
	}
	if changed("resource") {
		s.Auth.Resource = strings.TrimSpace(f.resource)
	}
	if changed("authorize-param") {
		s.Auth.AuthorizeParams = maps.Clone(s.Auth.AuthorizeParams)
		if s.Auth.AuthorizeParams == nil {
			s.Auth.AuthorizeParams = make(map[string]string)
		}
		for _, p := range f.authorizeParams {
			// One pair per flag: a value may hold commas.
			name, value, ok := strings.Cut(p, "=")
			if !ok {
				return fmt.Errorf("--authorize-param %s: want NAME=VALUE", p)
			}
			s.Auth.AuthorizeParams[strings.TrimSpace(name)] = value
		}
	}
	if err := s.Validate(); err != nil {
		if len(names) > 0 {
			// The message names a config key the user may never have written.
			return fmt.Errorf("%s (on the command line): %w", strings.Join(names, ", "), err)
		}
		return err
	}
	return nil
}

// adHocServer builds the server of a URL target from the flags.
func (f *authFlags) adHocServer(rawURL string) (config.Server, error) {
	s, err := config.NewServer(adHocName(rawURL), rawURL, config.Transport(f.transport))
	if err != nil {
		return config.Server{}, err
	}
	return s, f.apply(&s)
}

// adHocName names the server of a URL target: its identity without user
// info. The name is printed, logged and quoted in errors, and user info
// may hold a password.
func adHocName(rawURL string) string {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		return "" // config.NewServer rejects the URL; its error then names no server
	}
	u.User = nil
	return oauth.Identity(u.String())
}

// engineFlags are the settings of the OAuth engine shared by every server.
type engineFlags struct {
	allowInsecureHTTP bool
	loginTimeout      time.Duration
	refreshMargin     time.Duration
	// callbackAllInterfaces binds the login callback beyond loopback
	// (serve --allow-remote: a container's published port).
	callbackAllInterfaces bool
	traffic               *traffic // set by serve (traffic.go); nil records only with -v
}

func (f *engineFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.allowInsecureHTTP, "allow-insecure-http", false,
		"allow plain-http authorization servers on non-loopback hosts")
	cmd.Flags().DurationVar(&f.loginTimeout, "login-timeout", 5*time.Minute, "how long a login waits for the browser")
	cmd.Flags().DurationVar(&f.refreshMargin, "refresh-margin", time.Minute, "refresh a token this long before it expires")
}

// newEngine builds the OAuth engine. When stdin is a terminal, a pasted
// callback URL (or code) completes a pending login, so a browser on
// another machine works too.
func (a *app) newEngine(ctx context.Context, f engineFlags) *oauth.Engine {
	callbacks := &oauth.Callbacks{Logger: a.logger, AllInterfaces: f.callbackAllInterfaces}
	if file, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		callbacks.PasteFrom("this terminal")
		go callbacks.ReadPastes(ctx, a.stdin, a.stderr)
	}
	return &oauth.Engine{
		Callbacks:         callbacks,
		Prompt:            a.loginPrompt(),
		Stderr:            a.stderr,
		Logger:            a.logger,
		AllowInsecureHTTP: f.allowInsecureHTTP,
		LoginTimeout:      f.loginTimeout,
		RefreshMargin:     f.refreshMargin,
		HTTPClient:        a.oauthHTTPClient(f.traffic),
	}
}

// loginPrompt returns how a login link is shown: nil (the engine's plain
// "Open this link to authorize …" line) with text logs. With JSON logs it is
// a record of its own, so that a log pipeline that parses every line (a
// sidecar's) keeps it, with the same message and the link as "link".
func (a *app) loginPrompt() func(target, link string) {
	if a.logFormat != "json" {
		return nil
	}
	return func(target, link string) {
		a.logger.Warn("Open this link to authorize "+target, "server", target, "link", link)
	}
}

// oauthServer describes a configured server to the engine.
func (a *app) oauthServer(s config.Server) oauth.Server {
	return oauth.Server{
		Name:              s.Name,
		URL:               s.URL,
		Transport:         string(s.Transport),
		Headers:           s.Headers,
		Store:             a.storeFor(s.Auth.Persist),
		Scope:             s.Auth.Scope,
		ClientID:          s.Auth.ClientID,
		ClientSecret:      s.Auth.ClientSecret,
		ClientMetadataURL: s.Auth.ClientMetadataURL,
		Resource:          s.Auth.Resource,
		OmitResource:      s.Auth.Resource == config.ResourceNone,
		AuthorizeParams:   s.Auth.AuthorizeParams,
		RedirectPort:      s.Auth.RedirectPort,
		RedirectPath:      s.Auth.RedirectPath,
	}
}

// resolveTarget returns the configured server named target, or an ad hoc
// server when target is a URL.
func (a *app) resolveTarget(target string, flags *authFlags) (config.Server, error) {
	if isURL(target) {
		return flags.adHocServer(target)
	}
	cfg, err := a.loadConfig(true)
	if err != nil {
		return config.Server{}, err
	}
	s, ok := cfg.Server(target)
	if !ok {
		return config.Server{}, fmt.Errorf("no server %q in %s (give a server name or an http(s) URL)", target, cfg.Path)
	}
	if s.Transport == config.Stdio {
		return config.Server{}, fmt.Errorf("server %q is a stdio server: it has no OAuth login", target)
	}
	if !s.Auth.OAuth {
		return config.Server{}, fmt.Errorf("server %q has OAuth turned off (auth.oauth: false)", target)
	}
	return s, flags.apply(&s)
}
