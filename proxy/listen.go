package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// ErrNotLoopback is returned by [Start] for a listen address that is not a
// loopback address while Options.AllowRemote is not set.
var ErrNotLoopback = errors.New("not a loopback address; remote listeners must be allowed explicitly")

// shutdownWait bounds how long Shutdown waits for handlers to return after
// it has ended their streams.
const shutdownWait = 5 * time.Second

// ListenerInfo describes one running listener.
type ListenerInfo struct {
	// Name is the server's name.
	Name string
	// Addr is the bound address, host:port.
	Addr string
	// URL is what an MCP client should use: the listener's origin with the
	// upstream's path and query, e.g. http://127.0.0.1:7001/mcp?login.
	URL string
	// Upstream is the server's upstream URL without its query.
	Upstream string
}

// Proxy runs one listener per server. Create it with [Start].
type Proxy struct {
	log       *slog.Logger
	listeners []*listener
	cancel    context.CancelFunc // ends every request context
	wg        sync.WaitGroup     // Serve goroutines
}

type listener struct {
	info ListenerInfo
	srv  *h1Server
	ln   net.Listener
}

// Start binds one listener per server and serves them in the background
// until [Proxy.Shutdown]. It fails, binding nothing, if a server is invalid,
// a listen address is not loopback and o.AllowRemote is not set, or any
// address cannot be bound.
//
// Every request context derives from ctx, so cancelling ctx ends all open
// requests and streams, with ctx's cause (listeners keep accepting until
// Shutdown). Those the listeners serve themselves end a moment after
// cancel returns, from a goroutine of their own; Shutdown ends them
// before it waits.
func Start(ctx context.Context, servers []Server, o Options) (*Proxy, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := o.Transport
	if base == nil {
		base = newTransport()
	}
	seen := make(map[string]bool)
	handlers := make([]*handler, len(servers))
	addrs := make([]string, len(servers))
	for i, s := range servers {
		if seen[s.Name] {
			return nil, fmt.Errorf("proxy: server %q listed twice", s.Name)
		}
		seen[s.Name] = true
		addr := s.Listen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		loopback, err := loopbackAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("proxy: server %q: listen address %q: %w", s.Name, addr, err)
		}
		if !loopback && !o.AllowRemote {
			return nil, fmt.Errorf("proxy: server %q: listen address %q: %w", s.Name, addr, ErrNotLoopback)
		}
		h, err := newHandler(s, o, base)
		if err != nil {
			return nil, err
		}
		handlers[i], addrs[i] = h, addr
	}

	baseCtx, cancel := context.WithCancel(ctx)
	p := &Proxy{log: log, cancel: cancel}
	var lc net.ListenConfig
	for i, s := range servers {
		ln, err := lc.Listen(ctx, "tcp", addrs[i])
		if err != nil {
			for _, l := range p.listeners {
				l.ln.Close()
			}
			cancel()
			return nil, fmt.Errorf("proxy: server %q: %w", s.Name, err)
		}
		l := &listener{ln: ln, info: listenerInfo(s.Name, ln.Addr(), handlers[i].up)}
		if loopback, _ := loopbackAddr(addrs[i]); !loopback {
			log.Warn("listening on a non-loopback address: anyone who can reach it acts with your tokens",
				"server", s.Name, "addr", l.info.Addr)
		}
		// The listener's own loop serves the usual POSTs and hands
		// connections with anything else to net/http's server (server.go).
		l.srv = newH1Server(handlers[i], baseCtx, log)
		p.listeners = append(p.listeners, l)
	}
	for _, l := range p.listeners {
		p.wg.Go(func() {
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("listener stopped", "server", l.info.Name, "err", err)
			}
		})
		log.Debug("listening", "server", l.info.Name, "addr", l.info.Addr, "upstream", l.info.Upstream)
	}
	return p, nil
}

// loopbackAddr reports whether addr (host:port) is a loopback address: an
// IP in 127.0.0.0/8, ::1, or the name localhost. Other names are not
// resolved and count as remote; an empty host means every interface.
func loopbackAddr(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return false, fmt.Errorf("invalid port %q", port)
	}
	return isLoopbackHost(host), nil
}

func listenerInfo(name string, addr net.Addr, up *url.URL) ListenerInfo {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		// Bound to every interface: loopback reaches it too.
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	u := url.URL{
		Scheme:     "http",
		Host:       net.JoinHostPort(host, port),
		Path:       up.Path,
		RawPath:    up.RawPath,
		RawQuery:   up.RawQuery,
		ForceQuery: up.ForceQuery,
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return ListenerInfo{Name: name, Addr: addr.String(), URL: u.String(), Upstream: redact(up)}
}

// Listeners describes the running listeners, in the order the servers were
// given to Start.
func (p *Proxy) Listeners() []ListenerInfo {
	infos := make([]ListenerInfo, len(p.listeners))
	for i, l := range p.listeners {
		infos[i] = l.info
	}
	return infos
}

// Shutdown stops accepting connections, ends open requests and streams
// (their contexts are cancelled, so upstream requests and waits for a login
// end too), closes the connections on which no request has started, and
// waits for the handlers to return, until ctx is done or at most a few
// seconds; then it closes the remaining connections and returns the
// context's error. Calling it again does nothing.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.cancel()
	for _, l := range p.listeners {
		// At once, where the base context's AfterFunc would end them
		// from a goroutine of its own.
		l.srv.cancelRequests()
	}
	ctx, cancel := context.WithTimeout(ctx, shutdownWait)
	defer cancel()
	errs := make([]error, len(p.listeners))
	var wg sync.WaitGroup
	for i, l := range p.listeners {
		wg.Go(func() {
			if err := l.srv.Shutdown(ctx); err != nil {
				l.srv.Close()
				errs[i] = fmt.Errorf("proxy: server %q: shutdown: %w", l.info.Name, err)
			}
		})
	}
	wg.Wait()
	p.wg.Wait()
	return errors.Join(errs...)
}
