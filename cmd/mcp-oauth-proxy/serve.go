package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/config"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

// The engine's handlers are what the proxy calls on a challenge.
var _ proxy.Authorizer = (*oauth.Handler)(nil)

type serveFlags struct {
	url          string
	listen       []string
	allowRemote  bool
	allowHosts   []string
	maxBodyBytes int64
	auth         authFlags
	engine       engineFlags
	traffic      trafficFlags // traffic.go
	admin        adminFlags   // admin.go
}

func (a *app) serveCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Open one local listener per HTTP/SSE server and forward with OAuth",
		Long: `serve opens one local listener per HTTP or SSE server of the config (stdio servers are
skipped) and forwards every request and stream to the upstream URL with the stored bearer
token, replacing any Authorization the client sends. When the upstream asks for
authorization, it refreshes the token or prints a login link, waits for the login, and
replays the request the client is still waiting on.

A client uses the listener's URL with the upstream's path and query, e.g. a server at
https://huggingface.co/mcp?login is reached at http://127.0.0.1:PORT/mcp?login. The address
comes from --listen NAME=HOST:PORT, else proxy.listen.NAME in the config, else a free port.

Without a config: serve --url URL [--transport http|sse] [--listen HOST:PORT].

serve also opens a status page on loopback, printed at start (--admin ADDR moves it,
--admin off turns it off): each server's token state and waiting login link, a box to
paste the callback URL of a login whose browser cannot reach this machine, a log-out
button, and the last exchanges, redacted. Its data is at /api/status; auth status shows
it while serve runs.`,
		Args: usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd.Context(), &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "", "serve this one upstream `URL` instead of the config's servers")
	fl.StringArrayVar(&f.listen, "listen", nil, "listen address: NAME=HOST:PORT for a configured server, HOST:PORT with --url (repeatable)")
	fl.BoolVar(&f.allowRemote, "allow-remote", false, "allow non-loopback listen addresses (anyone who can reach them acts with your tokens)")
	fl.StringArrayVar(&f.allowHosts, "allow-host", nil, "also accept this Host header (repeatable), e.g. a container name")
	fl.Int64Var(&f.maxBodyBytes, "max-body", proxy.DefaultMaxBodyBytes, "request bodies up to this many bytes are buffered so they can be replayed after a login")
	f.auth.register(cmd)
	f.engine.register(cmd)
	f.traffic.register(cmd)
	f.admin.register(cmd, "status page `ADDR`, HOST:PORT on loopback, or off")
	return cmd
}

// servedServer is a configured server with its listen address.
type servedServer struct {
	config.Server
	listen     string
	listenFrom string // where listen was given, for errors: "--listen …" or "proxy.listen.NAME (ADDR)"
}

func (a *app) serve(ctx context.Context, f *serveFlags) error {
	servers, err := a.servedServers(f)
	if err != nil {
		return err
	}
	if len(servers) == 0 {
		return errors.New("no HTTP or SSE servers to serve: add one under mcp.servers in the config, or use --url")
	}
	if f.allowRemote {
		a.logger.Warn("--allow-remote: anyone who can reach a non-loopback listener acts with your tokens; the login callback listens on every interface too")
		f.engine.callbackAllInterfaces = true
	}

	// Bound first: an explicit --admin that cannot bind fails serve
	// before anything else starts (admin.go).
	page, err := a.listenStatusPage(f, servers)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		page.close(ctx)
	}()

	// --log-traffic, --log-bodies, --har and -v: see traffic.go.
	tr, err := a.startTraffic(f)
	if err != nil {
		return err
	}
	defer tr.close()
	if page != nil {
		// The page lists the last exchanges.
		tr = a.recordForStatusPage(f, tr)
	}

	// Configured headers often hold API keys under any name: the HAR file
	// fingerprints them, on the proxy's requests and the engine's probes.
	secretHeaders := make(map[string][]string)
	for _, s := range servers {
		secretHeaders[s.Name] = slices.Collect(maps.Keys(s.Headers))
		if tr != nil {
			tr.oauthSecrets = append(tr.oauthSecrets, secretHeaders[s.Name]...)
		}
	}
	engine := a.newEngine(ctx, f.engine)
	defer engine.Close()
	var ps []proxy.Server
	var handlers []*oauth.Handler
	for _, s := range servers {
		p := proxy.Server{
			Name:      s.Name,
			Upstream:  s.URL,
			Transport: string(s.Transport),
			Headers:   s.Headers,
			Listen:    s.listen,
		}
		var h *oauth.Handler
		if s.Auth.OAuth {
			h = engine.Handler(a.oauthServer(s.Server))
			// Read the stored token now, so no request waits on the keychain.
			if _, err := h.Token(ctx); err != nil {
				return err
			}
			p.Auth = h
		}
		ps = append(ps, p)
		handlers = append(handlers, h)
	}

	if page != nil {
		// Before the listeners take requests: a login they start may
		// need to say where to paste.
		engine.Callbacks.PasteFrom("the status page")
	}
	px, err := proxy.Start(ctx, ps, proxy.Options{
		MaxBodyBytes: f.maxBodyBytes,
		AllowRemote:  f.allowRemote,
		AllowedHosts: f.allowHosts,
		Logger:       a.logger,

		WrapTransport: tr.wrapUpstream(secretHeaders),
	})
	if err != nil {
		if errors.Is(err, proxy.ErrNotLoopback) {
			return fmt.Errorf("%w (pass --allow-remote to allow it)", err)
		}
		return err
	}
	a.printListeners(px.Listeners(), servers, handlers)
	if page != nil {
		if err := page.serve(a, f, px.Listeners(), servers, handlers, engine.Callbacks, tr); err != nil {
			px.Shutdown(context.Background())
			return err
		}
		fmt.Fprintf(a.stdout, "Status page: %s\n", page.url)
	}

	<-ctx.Done()
	a.logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return px.Shutdown(shutdownCtx)
}

// servedServers returns the servers to serve with their listen addresses,
// checked after the command line's overrides.
func (a *app) servedServers(f *serveFlags) ([]servedServer, error) {
	redirectFlag := f.auth.cmd.Flags().Changed("redirect-port")
	if f.url != "" {
		if a.configSet {
			// The config would be silently ignored.
			return nil, exitError{code: 2, err: errors.New("--url and --config: give one (a URL target is served without the config)")}
		}
		s, err := f.auth.adHocServer(f.url)
		if err != nil {
			return nil, err
		}
		served := servedServer{Server: s}
		for _, l := range f.listen {
			if strings.Contains(l, "=") {
				return nil, fmt.Errorf("--listen %s: with --url, give HOST:PORT", l)
			}
			served.listen, served.listenFrom = l, "--listen "+l
		}
		redirectFrom := "the default; change it with --redirect-port"
		if redirectFlag {
			redirectFrom = "--redirect-port"
		}
		out := []servedServer{served}
		return out, checkListen(out, redirectFrom)
	}

	cfg, err := a.loadConfig(true)
	if err != nil {
		return nil, err
	}
	listen, listenFrom := map[string]string{}, map[string]string{}
	for name, addr := range cfg.Listen {
		listen[name], listenFrom[name] = addr, fmt.Sprintf("proxy.listen.%s (%s)", name, addr)
	}
	for _, l := range f.listen {
		name, addr, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("--listen %s: give NAME=HOST:PORT (HOST:PORT alone only with --url)", l)
		}
		if s, ok := cfg.Server(name); !ok || s.Transport == config.Stdio {
			return nil, fmt.Errorf("--listen %s: no HTTP or SSE server %q in %s", l, name, cfg.Path)
		}
		listen[name], listenFrom[name] = addr, "--listen "+l
	}
	var out []servedServer
	for _, s := range cfg.Servers {
		if s.Transport == config.Stdio {
			a.logger.Debug("skipping stdio server", "server", s.Name)
			continue
		}
		if err := f.auth.apply(&s); err != nil {
			return nil, err
		}
		out = append(out, servedServer{Server: s, listen: listen[s.Name], listenFrom: listenFrom[s.Name]})
	}
	redirectFrom := "auth.redirect_port"
	if redirectFlag {
		redirectFrom = "--redirect-port"
	}
	return out, checkListen(out, redirectFrom)
}

// checkListen applies Load's checks of proxy.listen to the addresses
// serve ends up with, --listen and --redirect-port included: no two
// listeners on one address, and no listener on a login callback's port.
// Without it, the first clash fails serve with a bind error naming no
// flag, and the second breaks the next login. redirectFrom says where the
// callback ports come from.
func checkListen(servers []servedServer, redirectFrom string) error {
	for i, s := range servers {
		host, port, ok := splitListen(s.listen)
		if !ok || port == 0 {
			continue // no address, a free port, or one the proxy reports as bad
		}
		// The callback listens on localhost, or on every interface with
		// --allow-remote: any host collides.
		for _, o := range servers {
			if o.Auth.OAuth && o.Auth.RedirectPort == port {
				return fmt.Errorf("%s: port %d is the OAuth callback port of server %q (%s)", s.listenFrom, port, o.Name, redirectFrom)
			}
		}
		for _, o := range servers[:i] {
			oHost, oPort, ok := splitListen(o.listen)
			if !ok || oPort != port || !sameListenHost(host, oHost) {
				continue
			}
			// Name the address from the command line: Load has checked
			// the config's own against each other.
			this, other := s, o
			if !strings.HasPrefix(this.listenFrom, "--") {
				this, other = o, s
			}
			return fmt.Errorf("%s: %s is also the listen address of server %q", this.listenFrom, this.listen, other.Name)
		}
	}
	return nil
}

// splitListen splits a listen address; ok is false when it is not
// HOST:PORT with a port number.
func splitListen(addr string) (host string, port int, ok bool) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, false
	}
	return host, port, true
}

// sameListenHost reports whether listeners on hosts a and b, on the same
// port, would collide: the same host, or either one every interface.
func sameListenHost(a, b string) bool {
	norm := func(h string) string {
		if strings.EqualFold(h, "localhost") {
			return "127.0.0.1" // what net.Listen binds for it
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip.IsUnspecified() {
				return ""
			}
			return ip.String()
		}
		return strings.ToLower(h)
	}
	na, nb := norm(a), norm(b)
	return na == "" || nb == "" || na == nb
}

func (a *app) printListeners(infos []proxy.ListenerInfo, servers []servedServer, handlers []*oauth.Handler) {
	now := time.Now()
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERVER\tLOCAL URL\tUPSTREAM\tIDENTITY\tTOKEN")
	for _, info := range infos {
		i := slices.IndexFunc(servers, func(s servedServer) bool { return s.Name == info.Name })
		s, h := servers[i], handlers[i]
		identity, token := "-", "oauth off"
		if h != nil {
			identity = redact.URL(h.Identity())
			token = newTokenState(h.Current(), now).String()
		}
		// The local URL keeps the upstream's query whole: clients need it
		// to reach the upstream. The upstream is shown redacted.
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", info.Name, info.URL, redact.URLString(s.URL), identity, token)
	}
	w.Flush()
}
