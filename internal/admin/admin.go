// Package admin serves serve's status page: a small server-rendered HTML
// page and the same data as JSON at /api/status. For each proxied server
// it shows the local URL, the upstream, the identity its tokens are stored
// under, the token's state (never the token: its fingerprint only), the
// link of a login waiting for the user and a "log out" button; below them
// a box to paste the callback URL of a login whose redirect cannot reach
// the proxy (a browser on another machine, a container), and the last
// exchanges with the upstreams and authorization servers, redacted.
//
// The page is for the local user only. The handler sits behind the proxy's
// Host and Origin guard ([proxy.Guard]), so a web page cannot read it
// through DNS rebinding, and its state-changing requests are POSTs that
// must come from the page itself (Sec-Fetch-Site: same-origin, or an
// Origin equal to the page's own), so another page cannot log the user
// out or feed it a code. Everything it renders goes through html/template.
package admin

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

// Auth is the authorization state of one server. *oauth.Handler
// implements it.
type Auth interface {
	// Identity is the identity the server's tokens are stored under.
	Identity() string
	// Current returns the token in use, or nil.
	Current() *oauth.Token
	// PendingLink returns the link of the login waiting for the user, or "".
	PendingLink() string
	// Logout forgets the identity's token and client registration.
	Logout() error
}

// Callbacks completes pending logins from pasted text. *oauth.Callbacks
// implements it.
type Callbacks interface {
	// Deliver completes a login from a pasted callback URL, query string
	// or code. Its error never repeats the pasted text.
	Deliver(input string) error
	// PendingLogins lists the logins waiting for their response.
	PendingLogins() []oauth.PendingInfo
}

// History returns the last exchanges, redacted, oldest first.
// *wire.Recorder implements it.
type History interface {
	Recent() []wire.Exchange
}

// Server is one proxied server as the page shows it.
type Server struct {
	Name      string
	LocalURL  string // the URL an MCP client uses, on the proxy's listener
	Upstream  string // the upstream URL; shown with its secrets redacted
	Transport string // "http" or "sse"; "" shows nothing
	Auth      Auth   // nil: OAuth is off for the server
}

// Options configures the handler made by [NewHandler].
type Options struct {
	// Servers are listed in this order.
	Servers []Server

	// Callbacks, when set, receives what is pasted in the callback box;
	// nil hides the box.
	Callbacks Callbacks

	// History, when set, supplies the exchanges listed; nil lists none.
	History History

	// Guard is the Host and Origin check of the page's listener: its
	// address, AllowRemote and extra allowed hosts, as for the proxy's
	// listeners.
	Guard proxy.GuardOptions

	// Logger receives refused requests and failed actions. Nil discards.
	Logger *slog.Logger

	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// handler serves the page, the JSON and the actions.
type handler struct {
	o   Options
	log *slog.Logger
}

// NewHandler returns the status page's handler, guarded. It serves
//
//	GET  /             the page
//	GET  /api/status   the same data as JSON ([Status])
//	POST /logout       form field identity: log that identity out
//	POST /callback     form field callback: complete a login from a paste
//
// and the page's style sheet and script under /static/. It reports an
// error for a malformed allowed host in o.Guard.
func NewHandler(o Options) (http.Handler, error) {
	h := &handler{o: o, log: o.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if o.Guard.Logger == nil {
		o.Guard.Logger = h.log
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.servePage)
	mux.HandleFunc("GET /api/status", h.serveJSON)
	mux.Handle("POST /logout", sameOrigin(http.HandlerFunc(h.logout)))
	mux.Handle("POST /callback", sameOrigin(http.HandlerFunc(h.paste)))
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	g, err := proxy.Guard(mux, o.Guard)
	if err != nil {
		return nil, errors.New("admin: " + err.Error())
	}
	return secureHeaders(g), nil
}

func (h *handler) now() time.Time {
	if h.o.Now != nil {
		return h.o.Now()
	}
	return time.Now()
}

// secureHeaders keeps the page out of caches and frames and limits what
// it may load to itself.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		// same-origin keeps the Origin header on the page's own POSTs
		// (no-referrer would make it "null") and sends no Referer to the
		// authorization server when the login link is followed.
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		next.ServeHTTP(w, r)
	})
}

// sameOrigin refuses a request that a browser sent from another origin:
// it needs Sec-Fetch-Site: same-origin or, from a client that sends no
// Sec-Fetch-Site, an Origin equal to this page's origin. A request with
// neither header is refused too: every browser sends one of them on a
// POST, and a script can set Origin.
func sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := false
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
			ok = site == "same-origin"
		} else if origin := r.Header.Get("Origin"); origin != "" {
			ok = origin == "http://"+r.Host
		}
		if !ok {
			http.Error(w, "mcp-oauth-proxy: refused a cross-origin request: use the status page's own buttons", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
