package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
)

// guard refuses requests that do not come from a local, non-browser client
// of this listener: a Host that is not one of the listener's names means a
// DNS-rebinding page (or a misdirected request), an Origin that is not a
// loopback origin, or Sec-Fetch-Site: cross-site without one, means a web
// page.
type guard struct {
	hosts []allowedHost
	// remote names of the listener, accepted on its port with AllowRemote:
	// the host of Server.Listen (the connection's local IP is also accepted)
	listenHost  string
	allowRemote bool

	// last is the most recent local address, split: a listener has one
	// unless it listens on all addresses, and splitting it took a
	// String and a parse per request.
	last atomic.Pointer[localAddr]
}

type localAddr struct {
	ip       net.IP
	port     int
	ipString string
	portText string
}

// local returns the IP and port of a request's local address a.
func (g *guard) local(a net.Addr) (ip, port string) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		ip, port, _ = net.SplitHostPort(a.String())
		return ip, port
	}
	if l := g.last.Load(); l != nil && l.port == ta.Port && l.ip.Equal(ta.IP) && ta.Zone == "" {
		return l.ipString, l.portText
	}
	ip, port, _ = net.SplitHostPort(a.String())
	if ta.Zone == "" {
		g.last.Store(&localAddr{ip: ta.IP, port: ta.Port, ipString: ip, portText: port})
	}
	return ip, port
}

type allowedHost struct {
	host string // lower case, without brackets
	port string // "" for the listener's port
}

func newGuard(s Server, o Options) (*guard, error) {
	g := &guard{allowRemote: o.AllowRemote}
	for _, h := range o.AllowedHosts {
		a, err := parseAllowedHost(h)
		if err != nil {
			return nil, fmt.Errorf("proxy: allowed host %q: %w", h, err)
		}
		g.hosts = append(g.hosts, a)
	}
	if o.AllowRemote && s.Listen != "" {
		if host, _, err := net.SplitHostPort(s.Listen); err == nil {
			g.listenHost = strings.ToLower(host)
		}
	}
	return g, nil
}

func parseAllowedHost(s string) (allowedHost, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return allowedHost{}, fmt.Errorf("want a host name or host:port")
	}
	if host == "" || strings.ContainsAny(host, "/ @?#[]") || strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return allowedHost{}, fmt.Errorf("want a host name or host:port")
	}
	return allowedHost{host: host, port: port}, nil
}

// allow refuses a guarded request with 403, before anything is forwarded,
// and reports whether the request may go on.
func (g *guard) allow(w http.ResponseWriter, r *http.Request, log *slog.Logger) bool {
	if err := g.check(r); err != nil {
		log.Warn("refused request", "err", err, "remote", r.RemoteAddr)
		writeRPCError(w, http.StatusForbidden, nil, "mcp-oauth-proxy: "+err.Error(), "")
		return false
	}
	return true
}

func (g *guard) check(r *http.Request) error {
	var localIP, port string
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && a != nil {
		localIP, port = g.local(a)
	}
	if !g.hostAllowed(r.Host, localIP, port) {
		return fmt.Errorf("refused request with Host %q: not a name of this listener (allow it with --allow-host)", r.Host)
	}
	origins := r.Header.Values("Origin")
	for _, origin := range origins {
		// An Origin naming the Host the request was sent to (a name the
		// check above accepted) is this listener's own page, as a
		// loopback one is.
		if !loopbackOrigin(origin) && !strings.EqualFold(origin, "http://"+r.Host) {
			return fmt.Errorf("refused request with Origin %q: only local clients may use this listener", origin)
		}
	}
	// A browser sends no Origin with a GET a page makes by <img> or a
	// link, but says where it comes from in Sec-Fetch-Site.
	if len(origins) == 0 && strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") {
		return fmt.Errorf("refused a browser request from another site (Sec-Fetch-Site: cross-site): only local clients may use this listener")
	}
	return nil
}

// hostAllowed reports whether the Host header names this listener. port is
// the listener's port ("" when unknown, then any port is accepted for the
// loopback names).
func (g *guard) hostAllowed(hostport, localIP, port string) bool {
	host, hport := splitHost(hostport)
	if host == "" {
		return false
	}
	for _, a := range g.hosts {
		// An empty Host port ("name:") must not match the "any port" of a.port.
		if a.host == host && (a.port != "" && a.port == hport || a.port == "" && (port == "" || hport == port)) {
			return true
		}
	}
	if port != "" && hport != port {
		return false
	}
	if isLoopbackHost(host) {
		return true
	}
	return g.allowRemote && (host == g.listenHost || sameIP(host, localIP))
}

// splitHost splits a Host header into lower-case host (without brackets) and
// port, which defaults to 80.
func splitHost(hostport string) (host, port string) {
	hostport = strings.ToLower(hostport)
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		return hostport[1 : len(hostport)-1], "80"
	}
	if strings.Contains(hostport, ":") && net.ParseIP(hostport) == nil {
		return "", "" // a malformed host:port
	}
	return hostport, "80"
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	// netip parses without allocating; net.ParseIP refuses zones.
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.IsLoopback()
}

func sameIP(a, b string) bool {
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	return ia != nil && ib != nil && ia.Equal(ib) && !ia.IsUnspecified()
}

// loopbackOrigin reports whether origin is a page served from this machine
// (http or https on localhost, 127.0.0.0/8 or [::1], any port).
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" && u.Path != "/" {
		return false
	}
	return isLoopbackHost(strings.ToLower(u.Hostname()))
}
