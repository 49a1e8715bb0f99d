package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/admin"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/shutdown"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

// defaultAdminAddr is where serve opens its status page unless --admin
// says otherwise, and where auth status looks for it. It avoids the
// callback port 3030 and the example config's 8101–8106.
const defaultAdminAddr = "127.0.0.1:3029"

// adminFlags is the --admin flag of serve and auth status.
type adminFlags struct {
	addr string // "" for the default; "off" for none
}

func (f *adminFlags) register(cmd *cobra.Command, usage string) {
	cmd.Flags().StringVar(&f.addr, "admin", "", usage+" (default "+defaultAdminAddr+")")
}

// target returns the address to use and whether it was given explicitly;
// "" means none.
func (f *adminFlags) target(a *app) (addr string, explicit bool) {
	switch {
	case strings.EqualFold(f.addr, "off"):
		return "", true
	case f.addr != "":
		return f.addr, true
	}
	return a.adminDefault, false
}

// statusPage is serve's status page listener.
type statusPage struct {
	ln  net.Listener
	srv *http.Server
	url string
}

// listenStatusPage binds the status page's address. It returns nil when
// the page is off, and also, with a warning, when the default address is
// taken, by another program or by one of servers' listeners or login
// callbacks: only an explicit --admin that cannot bind fails serve.
func (a *app) listenStatusPage(f *serveFlags, servers []servedServer) (*statusPage, error) {
	addr, explicit := f.admin.target(a)
	if addr == "" {
		return nil, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--admin %s: want HOST:PORT or off: %v", addr, err)
	}
	// The page is bound before the proxy's listeners, and the callbacks
	// bind only when a login starts: on a port of theirs, the page would
	// make them fail.
	if user := portUser(servers, port); user != "" {
		if explicit {
			return nil, fmt.Errorf("--admin %s: port %s is %s", addr, port, user)
		}
		a.logger.Warn("status page not started: its port is "+user+" (choose another with --admin ADDR, or --admin off)",
			"addr", addr)
		return nil, nil
	}
	if !isLoopbackName(host) {
		if !f.allowRemote {
			return nil, fmt.Errorf("--admin %s: not a loopback address; the status page can log you out and complete logins (add --allow-remote to use it anyway)", addr)
		}
		a.logger.Warn("the status page listens on a non-loopback address: anyone who can reach it sees your servers and can log you out", "addr", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if explicit {
			return nil, fmt.Errorf("--admin %s: %w", addr, err)
		}
		a.logger.Warn("status page not started: its address is taken (choose another with --admin ADDR, or --admin off)",
			"addr", addr, "err", err)
		return nil, nil
	}
	return &statusPage{ln: ln, url: "http://" + displayAddr(ln.Addr()) + "/"}, nil
}

// portUser describes what of servers uses port: a listener or a login
// callback, on any host. It returns "" when nothing does.
func portUser(servers []servedServer, port string) string {
	n, err := strconv.Atoi(port)
	if err != nil || n == 0 {
		return ""
	}
	for _, s := range servers {
		if _, p, ok := splitListen(s.listen); ok && p == n {
			return fmt.Sprintf("the listen address of server %q", s.Name)
		}
		if s.Auth.OAuth && s.Auth.RedirectPort == n {
			return fmt.Sprintf("the OAuth callback port of server %q", s.Name)
		}
	}
	return ""
}

// isLoopbackName reports whether host is localhost or a loopback IP.
func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// displayAddr is addr as a browser reaches it: a wildcard address is
// shown as loopback.
func displayAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// recordForStatusPage makes sure the exchanges are recorded for the page:
// with no traffic flag, it installs a recorder that only records. That
// costs next to nothing per request (no log lines, no body copies; the
// URL and JSON-RPC method are derived when the page shows them, see
// wire.Transport), so serve keeps the page on by default.
func (a *app) recordForStatusPage(f *serveFlags, t *traffic) *traffic {
	if t != nil {
		return t
	}
	t = &traffic{recorder: new(wire.Recorder), errLog: a.logger}
	f.engine.traffic = t
	return t
}

// serve starts serving the status page for the proxy's listeners.
func (p *statusPage) serve(a *app, f *serveFlags, infos []proxy.ListenerInfo, servers []servedServer,
	handlers []*oauth.Handler, callbacks *oauth.Callbacks, t *traffic) error {
	o := admin.Options{
		Guard: proxy.GuardOptions{
			Listen:       p.ln.Addr().String(),
			AllowRemote:  f.allowRemote,
			AllowedHosts: f.allowHosts,
		},
		Logger: a.logger,
	}
	if callbacks != nil {
		o.Callbacks = callbacks
	}
	if t != nil && t.recorder != nil {
		o.History = t.recorder
	}
	for _, info := range infos {
		i := slices.IndexFunc(servers, func(s servedServer) bool { return s.Name == info.Name })
		s := admin.Server{Name: info.Name, LocalURL: info.URL, Upstream: servers[i].URL, Transport: string(servers[i].Transport)}
		if h := handlers[i]; h != nil {
			s.Auth = h
		}
		o.Servers = append(o.Servers, s)
	}
	h, err := admin.NewHandler(o)
	if err != nil {
		return err
	}
	p.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
	}
	// A browser preconnects to a page it has open: Ctrl-C must not wait
	// for that connection.
	shutdown.CloseUnused(p.srv)
	go func() {
		if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("the status page stopped", "err", err)
		}
	}()
	return nil
}

// close stops the page, or just releases its port when it never served.
func (p *statusPage) close(ctx context.Context) {
	if p == nil {
		return
	}
	if p.srv == nil {
		p.ln.Close()
		return
	}
	if err := p.srv.Shutdown(ctx); err != nil {
		p.srv.Close()
	}
}

// liveTimeout bounds auth status's question to a running serve: a page
// that is not there answers at once (connection refused), and a stuck one
// must not delay the keychain view.
const liveTimeout = 300 * time.Millisecond

// liveStatus is what auth status shows of a running serve.
type liveStatus struct {
	StatusPage string               `json:"status_page"`
	Servers    []admin.ServerStatus `json:"servers"`
}

// liveStatus asks the status page at addr for serve's state, narrowed to
// the identity target when it is set. It returns nil when nothing answers
// there with the page's JSON.
func (a *app) liveStatus(ctx context.Context, addr, target string) *liveStatus {
	ctx, cancel := context.WithTimeout(ctx, liveTimeout)
	defer cancel()
	page := "http://" + addr + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, page+"api/status", nil)
	if err != nil {
		a.logger.Debug("no running serve asked", "admin", addr, "err", err)
		return nil
	}
	// Loopback only: no proxy from the environment, no redirects.
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		a.logger.Debug("no running serve answers", "admin", addr, "err", err)
		return nil
	}
	defer res.Body.Close()
	var st admin.Status
	if res.StatusCode != http.StatusOK {
		a.logger.Debug("the status page did not answer", "admin", addr, "status", res.StatusCode)
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 8<<20)).Decode(&st); err != nil || st.Servers == nil {
		a.logger.Debug("not a status page of serve", "admin", addr, "err", err)
		return nil
	}
	live := &liveStatus{StatusPage: page, Servers: []admin.ServerStatus{}}
	for _, s := range st.Servers {
		if target == "" || s.OAuth && s.Identity == redact.URL(target) {
			live.Servers = append(live.Servers, s)
		}
	}
	return live
}

// printable replaces control characters with "?": what answers on the
// status page's address need not be serve, and must not drive the
// terminal with escape sequences.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// printableLines is printable that keeps line breaks and tabs, for
// messages of several lines. Errors carry text that authorization servers
// choose (error_description), which must not drive the terminal either.
func printableLines(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return '?'
		}
		return r
	}, s)
}

// printLiveStatus prints serve's servers and the logins they wait on.
func (a *app) printLiveStatus(l *liveStatus) error {
	fmt.Fprintf(a.stdout, "Running serve (live, from its status page %s):\n\n", l.StatusPage)
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERVER\tLOCAL URL\tIDENTITY\tTOKEN")
	if len(l.Servers) == 0 {
		fmt.Fprintln(w, "(none)\t\t\t")
	}
	for _, s := range l.Servers {
		identity, token := "-", "oauth off"
		if s.OAuth {
			identity, token = s.Identity, tokenState(s.Token).String()
			switch {
			case s.Login != nil && !s.Token.Present:
				token = "none, login waiting"
			case s.Login != nil:
				token += "; login waiting"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", printable(s.Name), printable(s.LocalURL), printable(identity), printable(token))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, s := range l.Servers {
		if s.Login != nil {
			fmt.Fprintf(a.stdout, "Login waiting for %s: %s\n", printable(s.Name), printable(s.Login.Link))
		}
	}
	fmt.Fprintln(a.stdout)
	return nil
}
