package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// Engine runs the MCP authorization flow for the upstream servers of one
// process. It owns the per-identity state that makes one refresh and one
// login at a time per identity, however many servers and requests share
// it. The zero value is ready to use.
type Engine struct {
	// HTTPClient makes discovery, registration and token requests. It must
	// not follow redirects. Nil means a client with a 30 s timeout that
	// follows none.
	HTTPClient *http.Client

	// Callbacks receives authorization responses. Nil means a private one;
	// share one with the paste reader and status page.
	Callbacks *Callbacks

	// Prompt shows the login link of a flow, once per flow. Nil writes
	// "Open this link to authorize <target>: <link>" on its own line to
	// Stderr. The engine never opens a browser.
	Prompt func(target, link string)

	// Stderr is where the default Prompt writes; nil means os.Stderr.
	Stderr io.Writer

	// Logger receives progress and failures; nil discards them.
	Logger *slog.Logger

	// AllowInsecureHTTP permits plain-http authorization servers on
	// non-loopback hosts.
	AllowInsecureHTTP bool

	// LoginTimeout bounds a browser login; 0 means 5 minutes.
	LoginTimeout time.Duration

	// RefreshMargin is how long before expiry a token is refreshed;
	// 0 means 60 seconds. A token is refreshed no earlier than halfway
	// through its lifetime.
	RefreshMargin time.Duration

	// ProtocolVersion is the MCP-Protocol-Version sent on discovery and
	// probe requests; "" means 2025-11-25.
	ProtocolVersion string

	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time

	initOnce  sync.Once
	ctx       context.Context // parent of every flow; cancelled by Close
	cancel    context.CancelFunc
	flights   sync.WaitGroup // logins and refreshes running
	flightsMu sync.Mutex     // orders starting flights with Close
	closed    bool           // guarded by flightsMu
	mu        sync.Mutex
	states    map[stateKey]*identityState
	callbacks *Callbacks
	client    *http.Client
}

type stateKey struct {
	identity string
	store    Store
}

func (e *Engine) init() {
	e.initOnce.Do(func() {
		e.ctx, e.cancel = context.WithCancel(context.Background())
		e.states = map[stateKey]*identityState{}
		e.callbacks = e.Callbacks
		if e.callbacks == nil {
			e.callbacks = &Callbacks{Logger: e.Logger}
		}
		e.client = e.HTTPClient
		if e.client == nil {
			e.client = &http.Client{
				Timeout:       30 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
		}
	})
}

// Close cancels every login and refresh in progress and waits for them to
// end, which their cancellation bounds. Handlers must not be used
// afterwards.
func (e *Engine) Close() {
	e.init()
	e.flightsMu.Lock()
	e.closed = true
	e.flightsMu.Unlock()
	e.cancel()
	e.flights.Wait()
}

// errClosed is the error of a flight asked for after Close.
var errClosed = errors.New("oauth: the engine is closed")

// startFlight runs fn in a goroutine that Close waits for, unless the
// engine is closed; it reports whether it did.
func (e *Engine) startFlight(fn func()) bool {
	e.flightsMu.Lock()
	defer e.flightsMu.Unlock()
	if e.closed {
		return false
	}
	e.flights.Go(fn)
	return true
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *Engine) loginTimeout() time.Duration {
	if e.LoginTimeout > 0 {
		return e.LoginTimeout
	}
	return 5 * time.Minute
}

func (e *Engine) refreshMargin() time.Duration {
	if e.RefreshMargin > 0 {
		return e.RefreshMargin
	}
	return time.Minute
}

func (e *Engine) protocolVersion() string {
	if e.ProtocolVersion != "" {
		return e.ProtocolVersion
	}
	return "2025-11-25"
}

func (e *Engine) prompt(target, link string) {
	if e.Prompt != nil {
		e.Prompt(target, link)
		return
	}
	w := e.Stderr
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "Open this link to authorize %s: %s\n", target, link)
}

func (e *Engine) discoverer() *Discoverer {
	return &Discoverer{
		HTTPClient:        e.client,
		ProtocolVersion:   e.protocolVersion(),
		AllowInsecureHTTP: e.AllowInsecureHTTP,
		Logger:            e.Logger,
	}
}

// Server describes one upstream MCP server to the engine.
type Server struct {
	// Name is shown in the login line; "" shows the identity instead.
	Name string
	// URL is the upstream MCP endpoint, query included.
	URL string
	// Transport is "http" (default) or "sse"; it decides how Login probes
	// the upstream.
	Transport string
	// Headers are the configured headers, sent on the probe.
	Headers map[string]string
	// Store keeps the tokens and client registration.
	Store Store

	// Scope, when set, is requested as given instead of the scope the
	// server suggests.
	Scope string
	// ClientID and ClientSecret name a pre-registered client.
	ClientID, ClientSecret string
	// ClientMetadataURL is a Client ID Metadata Document URL, used when
	// the authorization server supports them.
	ClientMetadataURL string

	// Resource, when set, is the RFC 8707 resource indicator sent instead
	// of the discovered one; OmitResource sends none (Entra ID v2 refuses
	// it alongside scopes).
	Resource     string
	OmitResource bool
	// AuthorizeParams are added to the authorization URL.
	AuthorizeParams map[string]string

	// RedirectPort and RedirectPath form the redirect URI
	// http://localhost:<port><path>; 0 and "" mean 3030 and /callback.
	RedirectPort int
	RedirectPath string
}

// resource returns the resource indicator to send for disc.
func (s Server) resource(disc *Discovery) string {
	switch {
	case s.OmitResource:
		return ""
	case s.Resource != "":
		return s.Resource
	}
	return disc.Resource
}

func (s Server) redirectPort() int {
	if s.RedirectPort > 0 {
		return s.RedirectPort
	}
	return 3030
}

func (s Server) redirectPath() string {
	if s.RedirectPath != "" {
		return s.RedirectPath
	}
	return "/callback"
}

// redirectURIs are the redirect URIs the callback server receives: ours
// first, then the one fast-agent registers (0.4.18 and later).
func (s Server) redirectURIs() []string {
	return []string{
		fmt.Sprintf("http://localhost:%d%s", s.redirectPort(), s.redirectPath()),
		fmt.Sprintf("http://127.0.0.1:%d%s", s.redirectPort(), s.redirectPath()),
	}
}

// Handler returns the authorization handler for s. Handlers of servers with
// the same identity and store share their tokens, refreshes and logins.
func (e *Engine) Handler(s Server) *Handler {
	e.init()
	id := Identity(s.URL)
	key := stateKey{id, s.Store}
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.states[key]
	if !ok {
		st = &identityState{
			identity:   id,
			candidates: IdentityCandidates(s.URL),
			creds:      &Credentials{Store: s.Store, Logger: e.Logger},
		}
		e.states[key] = st
	}
	return &Handler{e: e, srv: s, st: st}
}
