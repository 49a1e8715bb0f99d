package oauth

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/shutdown"
)

// Callbacks routes authorization responses to pending logins. It runs one
// loopback HTTP listener per redirect port, shared by every login expecting
// a redirect to that port, and routes each response by its state
// parameter. A login can also be completed from pasted text with
// [Callbacks.Deliver] when the browser cannot reach the listener.
//
// Use one Callbacks per process. The zero value is ready to use; its
// fields must not change after the first call to Expect.
type Callbacks struct {
	// Logger receives listener events. Codes and states are never logged.
	// Nil discards.
	Logger *slog.Logger

	// ShutdownTimeout bounds the graceful shutdown of a listener when the
	// last login on its port is closed; connections still open after it are
	// closed. Zero means 1s.
	ShutdownTimeout time.Duration

	// Listen binds the listeners. Nil means net.Listen. Tests inject
	// failures through it.
	Listen func(network, addr string) (net.Listener, error)

	// AllInterfaces binds every interface instead of loopback only: in a
	// container, a published port delivers the browser's redirect to the
	// container's network interface. Requests must still name localhost
	// in their Host header, as a browser following the redirect URI does.
	AllInterfaces bool

	mu        sync.Mutex
	pending   map[string]*Pending     // by state
	servers   map[int]*callbackServer // by port
	pasteFrom []string                // see PasteFrom
}

// PasteFrom records where the user can paste a callback URL for
// [Callbacks.Deliver], such as "this terminal" or "the status page".
// A login whose callback port cannot be bound names these places; with
// none, it fails at once, as nothing could complete it.
func (c *Callbacks) PasteFrom(where string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.pasteFrom, where) {
		c.pasteFrom = append(c.pasteFrom, where)
	}
}

// pastePlaces returns where a callback can be pasted, "" for nowhere.
func (c *Callbacks) pastePlaces() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.pasteFrom, " or ")
}

// Pending is a login waiting for its authorization response, created by
// [Callbacks.Expect]. Its methods are safe for concurrent use.
type Pending struct {
	c       *Callbacks
	state   string
	port    int
	path    string
	started time.Time

	done    chan struct{} // closed when res or err is set
	res     *CallbackResult
	err     error
	closed  bool // guarded by c.mu, like res and err until done is closed
	needIss bool // guarded by c.mu; see RequireIss
}

// PendingInfo describes a pending login for a status display. It carries
// no secret beyond the state, which is useless once the login ends.
type PendingInfo struct {
	State     string
	Port      int
	Path      string
	Started   time.Time
	Listening bool // a listener runs on Port; false means only a paste can complete the login
	Completed bool // the response arrived; the login is not closed yet
}

// CallbackResult is a successful authorization response. The caller checks
// Iss against the issuer it expects (RFC 9207) when the server supports it.
type CallbackResult struct {
	Code  string
	State string
	Iss   string // "" when the server sent none
}

// CallbackError is the authorization server's error response (error=…),
// RFC 6749 §4.1.2.1.
type CallbackError struct {
	Code        string // error, e.g. access_denied
	Description string // error_description, may be empty
	URI         string // error_uri, may be empty
}

func (e *CallbackError) Error() string {
	var b strings.Builder
	b.WriteString("oauth: authorization failed: ")
	b.WriteString(e.Code)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.URI != "" {
		b.WriteString(" (see ")
		b.WriteString(e.URI)
		b.WriteString(")")
	}
	return b.String()
}

// errLoginClosed is what Wait reports for a login closed before its
// response arrived.
var errLoginClosed = errors.New("oauth: login cancelled")

// Expect registers a pending login identified by state that will be
// redirected to http://localhost:port+path (a path without a leading slash
// gets one). It starts the listener for port unless one runs already; the
// listener binds 127.0.0.1 and, where available, ::1.
//
// listenErr reports that the port could not be bound. The pending login
// exists all the same and can be completed by [Callbacks.Deliver]; the next
// Expect for the port tries to bind again.
//
// The caller must Close p when the login ends. Expect panics when state is
// empty or already pending: states are random and single-use.
func (c *Callbacks) Expect(port int, path, state string) (p *Pending, listenErr error) {
	if state == "" {
		panic("oauth: Expect with an empty state")
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	p = &Pending{
		c:       c,
		state:   state,
		port:    port,
		path:    path,
		started: time.Now(),
		done:    make(chan struct{}),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.pending[state]; dup {
		panic("oauth: Expect with a state that is already pending")
	}
	if c.pending == nil {
		c.pending = make(map[string]*Pending)
		c.servers = make(map[int]*callbackServer)
	}
	c.pending[state] = p
	if c.servers[port] != nil {
		return p, nil
	}
	// Binding under the lock keeps concurrent Expects from racing for the
	// port; it is one quick syscall per address.
	s, err := c.listen(port)
	if err != nil {
		return p, err
	}
	c.servers[port] = s
	return p, nil
}

// State returns the state parameter identifying the login.
func (p *Pending) State() string { return p.state }

// RequireIss tells the login that its authorization server sends iss
// (RFC 9207). A pasted response without iss, such as a bare code, is then
// refused with a request for the whole address, and the login keeps
// waiting: the caller would have to reject it anyway.
func (p *Pending) RequireIss() {
	p.c.mu.Lock()
	p.needIss = true
	p.c.mu.Unlock()
}

// Wait blocks until the authorization response arrives or ctx is done. It
// returns a *CallbackError when the authorization server answered with an
// error, and ctx's error (wrapped) when ctx ends first. Wait may be called
// again after ctx ended, with a new ctx.
func (p *Pending) Wait(ctx context.Context) (*CallbackResult, error) {
	select {
	case <-p.done:
		// res and err are written before done is closed.
		return p.res, p.err
	case <-ctx.Done():
		return nil, fmt.Errorf("oauth: no authorization response received: %w", context.Cause(ctx))
	}
}

// Close forgets the login; a Wait in progress returns an error if the
// response has not arrived. When no other login is pending on its port the
// listener stops: Close returns once the port is released and the server
// has shut down (gracefully within ShutdownTimeout, then forcibly). Close
// may be called more than once.
func (p *Pending) Close() {
	c := p.c
	c.mu.Lock()
	if p.closed {
		c.mu.Unlock()
		return
	}
	p.closed = true
	delete(c.pending, p.state)
	p.finishLocked(nil, errLoginClosed)
	var stop *callbackServer
	if s := c.servers[p.port]; s != nil && !c.portInUseLocked(p.port) {
		delete(c.servers, p.port)
		// Release the port now, under the lock, so that an Expect right
		// after Close can bind it again.
		s.closeListeners()
		stop = s
	}
	c.mu.Unlock()
	if stop != nil {
		stop.shutdown(c.shutdownTimeout())
	}
}

// finishLocked completes p unless it is complete. c.mu must be held.
func (p *Pending) finishLocked(res *CallbackResult, err error) bool {
	select {
	case <-p.done:
		return false
	default:
	}
	p.res, p.err = res, err
	close(p.done)
	return true
}

func (p *Pending) completed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// PendingLogins returns the logins not yet closed, oldest first.
func (c *Callbacks) PendingLogins() []PendingInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	infos := make([]PendingInfo, 0, len(c.pending))
	for _, p := range c.pending {
		infos = append(infos, PendingInfo{
			State:     p.state,
			Port:      p.port,
			Path:      p.path,
			Started:   p.started,
			Listening: c.servers[p.port] != nil,
			Completed: p.completed(),
		})
	}
	slices.SortFunc(infos, func(a, b PendingInfo) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.State, b.State)
	})
	return infos
}

func (c *Callbacks) portInUseLocked(port int) bool {
	for _, p := range c.pending {
		if p.port == port {
			return true
		}
	}
	return false
}

func (c *Callbacks) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Callbacks) shutdownTimeout() time.Duration {
	if c.ShutdownTimeout <= 0 {
		return time.Second
	}
	return c.ShutdownTimeout
}

// callbackServer is the HTTP server of one port, serving one or two
// loopback listeners.
type callbackServer struct {
	srv *http.Server
	lns []net.Listener
	wg  sync.WaitGroup // Serve goroutines
}

// listen binds port on the loopback addresses and starts serving. c.mu
// must be held.
func (c *Callbacks) listen(port int) (*callbackServer, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("oauth: cannot listen for the authorization callback: invalid port %d", port)
	}
	listen := c.Listen
	if listen == nil {
		listen = net.Listen
	}
	log := c.logger()
	p := strconv.Itoa(port)
	if c.AllInterfaces {
		ln, err := listen("tcp", ":"+p)
		if err != nil {
			return nil, fmt.Errorf("oauth: cannot listen for the authorization callback on port %d: %w", port, err)
		}
		return c.serveCallbacks(port, []net.Listener{&onceCloseListener{Listener: ln}}), nil
	}
	ln4, err := listen("tcp4", net.JoinHostPort("127.0.0.1", p))
	if err != nil {
		return nil, fmt.Errorf("oauth: cannot listen for the authorization callback on 127.0.0.1:%d: %w", port, err)
	}
	lns := []net.Listener{&onceCloseListener{Listener: ln4}}
	// Browsers may resolve localhost to ::1. Without IPv6 the IPv4
	// listener is enough; if someone else holds [::1]:port, a browser
	// choosing ::1 reaches them instead, which deserves a warning.
	addr6 := net.JoinHostPort("::1", p)
	if ln6, err := listen("tcp6", addr6); err == nil {
		lns = append(lns, &onceCloseListener{Listener: ln6})
	} else if errors.Is(err, syscall.EADDRINUSE) {
		log.Warn("oauth: callback port is taken on ::1; browsers resolving localhost to ::1 will not reach this proxy", "addr", addr6, "err", err)
	} else {
		log.Debug("oauth: no IPv6 callback listener", "addr", addr6, "err", err)
	}
	return c.serveCallbacks(port, lns), nil
}

// serveCallbacks serves the redirect endpoint of port on lns.
func (c *Callbacks) serveCallbacks(port int, lns []net.Listener) *callbackServer {
	log := c.logger()
	s := &callbackServer{
		srv: &http.Server{
			Handler:           &callbackHandler{c: c, port: port},
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       30 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		lns: lns,
	}
	// The login ends when its server has shut down: a connection the
	// browser opened and never used must not hold that up.
	shutdown.CloseUnused(s.srv)
	for _, ln := range lns {
		log.Info("oauth: listening for authorization callbacks", "addr", ln.Addr().String())
		s.wg.Go(func() {
			err := s.srv.Serve(ln)
			if !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				log.Error("oauth: callback listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	return s
}

func (s *callbackServer) closeListeners() {
	for _, ln := range s.lns {
		ln.Close()
	}
}

func (s *callbackServer) shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	s.wg.Wait()
}

// onceCloseListener lets Close release the port before http.Server.Shutdown
// closes the listener again.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// callbackHandler serves the redirect endpoint of one port.
type callbackHandler struct {
	c    *Callbacks
	port int
}

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// DNS rebinding guard: a page on another origin whose name resolves to
	// 127.0.0.1 still sends its own name as Host.
	if !loopbackHost(r.Host, h.port) {
		writePage(w, http.StatusForbidden, page{
			Title:   "Forbidden",
			Message: "This address only answers requests for localhost.",
		})
		return
	}
	// A browser following the authorization server's redirect sends no
	// Origin; one from another site is a script trying to complete a login
	// with its own code.
	if origin := r.Header.Get("Origin"); origin != "" && !loopbackOrigin(origin) {
		writePage(w, http.StatusForbidden, page{
			Title:   "Forbidden",
			Message: "This address does not answer requests from other sites.",
		})
		return
	}
	if !h.c.servesPath(h.port, r.URL.Path) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	if r.Method == http.MethodHead {
		// Link checkers and previews must not use up the state.
		writePage(w, http.StatusOK, page{Title: "Authorization"})
		return
	}
	status, pg := h.c.receive(h.port, r.URL.Path, r.URL.RawQuery)
	writePage(w, status, pg)
}

// loopbackHost reports whether host is one of the names a browser sends
// for the loopback redirect URI on port.
func loopbackHost(host string, port int) bool {
	name, p, err := net.SplitHostPort(host)
	if err != nil {
		// No port: only valid when it is the scheme default.
		name, p = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "80"
	}
	if p != strconv.Itoa(port) {
		return false
	}
	return strings.EqualFold(name, "localhost") || name == "127.0.0.1" || name == "::1"
}

// loopbackOrigin reports whether origin (an Origin header) is a page served
// from this machine's loopback.
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	name := u.Hostname()
	return strings.EqualFold(name, "localhost") || name == "127.0.0.1" || name == "::1"
}

func (c *Callbacks) servesPath(port int, path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pending {
		if p.port == port && p.path == path {
			return true
		}
	}
	return false
}

// receive handles the query of a redirect to port and path and returns the
// page to show.
func (c *Callbacks) receive(port int, path, rawQuery string) (int, page) {
	log := c.logger()
	q, err := parseCallbackQuery(rawQuery)
	if err != nil {
		log.Debug("oauth: rejected callback", "err", err)
		return http.StatusBadRequest, page{
			Title:   "Authorization response not accepted",
			Message: "The request is not a valid authorization response.",
			Detail:  err.Error(),
		}
	}
	state := q.Get("state")
	if state == "" {
		log.Debug("oauth: rejected callback without state")
		return http.StatusBadRequest, page{
			Title:   "Authorization response not accepted",
			Message: "The response has no state parameter, so it cannot be matched to a login. Start the login again.",
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[state]
	if p == nil || p.port != port || p.path != path {
		log.Debug("oauth: rejected callback for an unknown login", "state", stateFingerprint(state))
		return http.StatusBadRequest, page{
			Title:   "Unknown login",
			Message: "No login is waiting for this response: it has expired, was already completed, or was started by another program. Start the login again.",
		}
	}
	if p.completed() {
		log.Debug("oauth: rejected second callback for a login", "state", stateFingerprint(state))
		return http.StatusBadRequest, page{
			Title:   "Login already completed",
			Message: "This authorization response was already received. You can close this tab.",
		}
	}
	if e := q.Get("error"); e != "" {
		cbErr := &CallbackError{Code: e, Description: q.Get("error_description"), URI: q.Get("error_uri")}
		p.finishLocked(nil, cbErr)
		log.Debug("oauth: authorization server returned an error", "state", stateFingerprint(state), "error", e)
		return http.StatusBadRequest, page{
			Title:   "Authorization failed",
			Message: "The authorization server answered: " + cbErr.Code,
			Detail:  cbErr.Description,
		}
	}
	code := q.Get("code")
	if code == "" {
		log.Debug("oauth: rejected callback without code", "state", stateFingerprint(state))
		return http.StatusBadRequest, page{
			Title:   "Authorization response not accepted",
			Message: "The response has neither a code nor an error.",
		}
	}
	p.finishLocked(&CallbackResult{Code: code, State: state, Iss: q.Get("iss")}, nil)
	log.Debug("oauth: authorization response received", "state", stateFingerprint(state))
	return http.StatusOK, page{
		Title:   "Authorization complete",
		Message: "You can close this tab and return to your terminal.",
	}
}

// parseCallbackQuery parses an authorization response query, refusing
// repeated parameters (RFC 6749 §3.1).
func parseCallbackQuery(rawQuery string) (url.Values, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("oauth: malformed callback query: %w", err)
	}
	for _, k := range []string{"code", "state", "iss", "error", "error_description", "error_uri"} {
		if len(q[k]) > 1 {
			return nil, fmt.Errorf("oauth: callback parameter %s is repeated", k)
		}
	}
	return q, nil
}

// stateFingerprint identifies state in debug lines without revealing any
// of it.
func stateFingerprint(state string) string { return redact.Fingerprint(state) }

type page struct {
	Title, Message, Detail string
}

// html/template escapes every field, so the authorization server's error
// text cannot inject markup.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;line-height:1.5}pre{white-space:pre-wrap}</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{with .Message}}<p>{{.}}</p>{{end}}
{{with .Detail}}<pre>{{.}}</pre>{{end}}
</body>
</html>
`))

func writePage(w http.ResponseWriter, status int, pg page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	pageTemplate.Execute(w, pg)
}
