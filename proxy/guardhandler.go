package proxy

import (
	"log/slog"
	"net/http"
)

// GuardOptions configures [Guard]. The zero value accepts the loopback
// names of the listener (localhost, 127.0.0.0/8, [::1]) on its port.
type GuardOptions struct {
	// Listen is the listener's address as configured, host:port. With
	// AllowRemote its host also counts as a name of the listener. Empty
	// adds nothing.
	Listen string

	// AllowRemote also accepts the listener's own address (and the host
	// of Listen) as Host, as Options.AllowRemote does for the proxy.
	AllowRemote bool

	// AllowedHosts are extra Host header values to accept: "name" on the
	// listener's port, "name:port" exactly.
	AllowedHosts []string

	// Logger receives a warning per refused request. Nil discards.
	Logger *slog.Logger
}

// Guard returns next behind the Host and Origin check of the proxy's
// listeners: a request whose Host is not a name of the listener (a
// DNS-rebinding page) or whose Origin is not a loopback origin is refused
// with 403 and a plain-text reason. Other local services, such as the
// status page, use it to refuse what the proxy refuses. It reports an
// error for a malformed allowed host.
func Guard(next http.Handler, o GuardOptions) (http.Handler, error) {
	g, err := newGuard(Server{Listen: o.Listen}, Options{AllowRemote: o.AllowRemote, AllowedHosts: o.AllowedHosts})
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.check(r); err != nil {
			log.Warn("refused request", "err", err, "remote", r.RemoteAddr)
			http.Error(w, "mcp-oauth-proxy: "+err.Error(), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}
