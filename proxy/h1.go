package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxDirectBody is the largest request body h1Transport sends itself.
	// A body this small is in the socket buffers before the upstream can
	// answer, so writing it cannot hide an early answer (a 401 sent
	// before the body was read); larger ones go to net/http's Transport,
	// which reads the answer while it writes.
	maxDirectBody = 64 << 10

	// maxResponseHeaderBytes bounds a response's headers, as net/http's
	// Transport does by default.
	maxResponseHeaderBytes = 10 << 20

	// h1ReadBufferSize is the size of a connection's read buffer. An open
	// stream holds it, so it is small: response headers and small bodies
	// fit, and larger reads bypass it.
	h1ReadBufferSize = 1 << 10

	// h1WriteBufferSize is the size of the pooled buffers requests are
	// written through; a connection holds one only while it writes.
	h1WriteBufferSize = 4 << 10
)

// h1Transport sends requests to plain-http upstreams over HTTP/1.1 on the
// caller's goroutine: it writes the request and reads the response headers
// itself, and the response body reads straight from the connection and
// gives it back to the idle pool at its end. net/http's Transport runs two
// goroutines per connection and hands every request and response between
// them; for the proxy's small JSON-RPC exchanges that was a third of its CPU
// time, and for an idle SSE stream two more goroutine stacks and buffers.
// The usual small request and response are written and read by
// writeRequest and parseResponse, the others by net/http's Request.Write
// and ReadResponse.
//
// It handles only what it can do exactly as net/http's Transport would and
// passes everything else to fallback: https (TLS, HTTP/2 where the upstream
// offers it), upstreams the environment routes through an HTTP proxy,
// CONNECT, protocol upgrades, Expect: 100-continue, and request bodies that
// are not in memory or larger than maxDirectBody.
//
// An idle connection is checked before it is reused, so that a POST is not
// written to a connection the upstream has closed meanwhile (net/http's
// Transport notices that with its reading goroutine). Requests without a
// body and with an idempotent method are retried once on a new connection
// when a reused one fails before any answer, as net/http's Transport does.
type h1Transport struct {
	fallback    *http.Transport
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int           // idle connections kept per host
	idleTimeout time.Duration // idle connections are closed after this; 0: never

	proxied sync.Map // host:port → bool: fallback.Proxy names a proxy for it

	mu      sync.Mutex
	idle    map[string][]*h1Conn // by host:port, most recently used last
	janitor *time.Timer          // closes idle connections past idleTimeout

	watches lazyList // round trips not yet tied to their contexts
}

func newH1Transport(fallback *http.Transport) *h1Transport {
	dial := fallback.DialContext
	if dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	return &h1Transport{
		fallback:    fallback,
		dial:        dial,
		maxIdle:     max(fallback.MaxIdleConnsPerHost, http.DefaultMaxIdleConnsPerHost),
		idleTimeout: fallback.IdleConnTimeout,
	}
}

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if s := sentFrom(req.Context()); s != nil {
		// The fast path sent the request already (fast.go).
		infoFrom(req.Context()).sent = nil
		return s.result(t, req)
	}
	if !t.handles(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	// Checked here because a round trip ties its connection to ctx only
	// once it has run for lazyWatch (see h1Conn.watch).
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	addr := hostPort(req.URL)
	for retried := false; ; retried = true {
		c, reused, err := t.conn(ctx, addr)
		if err != nil {
			closeBody(req)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		res, err := c.roundTrip(t, req)
		if err == nil {
			return res, nil
		}
		c.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if retried || !reused || c.answered || !retryable(req) {
			return nil, err
		}
	}
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, conns := range idle {
		for _, c := range conns {
			c.close()
		}
	}
	t.fallback.CloseIdleConnections()
}

// handles reports whether t sends req itself.
func (t *h1Transport) handles(req *http.Request) bool {
	if !canPeek || req.URL.Scheme != "http" || req.URL.Host == "" || req.Method == http.MethodConnect {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody &&
		(req.GetBody == nil || req.ContentLength < 0 || req.ContentLength > maxDirectBody) {
		return false
	}
	h := req.Header
	if len(h["Upgrade"]) > 0 || len(h["Expect"]) > 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	return !t.viaProxy(req)
}

// viaProxy reports whether fallback.Proxy sends req's host through a proxy;
// the answer is kept per host (the environment is read once anyway).
func (t *h1Transport) viaProxy(req *http.Request) bool {
	if t.fallback.Proxy == nil {
		return false
	}
	if v, ok := t.proxied.Load(req.URL.Host); ok {
		return v.(bool)
	}
	u, err := t.fallback.Proxy(req)
	via := err != nil || u != nil // on an error, let net/http report it
	t.proxied.Store(req.URL.Host, via)
	return via
}

// retryable reports whether req may be sent again after a reused connection
// failed before answering: net/http's rule for requests without a body.
func retryable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hostPort returns u's host with the default port added.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// conn returns an idle connection to addr that is still open, or a new one.
func (t *h1Transport) conn(ctx context.Context, addr string) (c *h1Conn, reused bool, err error) {
	now := time.Now()
	for {
		t.mu.Lock()
		conns := t.idle[addr]
		if len(conns) == 0 {
			t.mu.Unlock()
			break
		}
		c = conns[len(conns)-1]
		conns[len(conns)-1] = nil
		t.idle[addr] = conns[:len(conns)-1]
		t.mu.Unlock()
		if !t.expired(c, now) && c.alive() {
			return c, true, nil
		}
		c.close()
	}
	nc, err := t.dialApart(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	c = &h1Conn{nc: nc, addr: addr, limit: -1}
	c.br = bufio.NewReaderSize(c, h1ReadBufferSize)
	return c, false, nil
}

// dialApart dials addr on a goroutine of its own and waits for it, as
// net/http's Transport does. A dial is the deepest call of a request's
// path (3 KiB of stack), and an event stream's goroutine keeps the stack its
// deepest call needed for as long as the stream is open: dialed here, it
// keeps 8 KiB rather than 16. The dial ends with ctx.
func (t *h1Transport) dialApart(ctx context.Context, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := t.dial(ctx, "tcp", addr)
		if err == nil {
			c = rawIO(c)
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// put makes c available for the next request, or closes it when enough
// connections to its host are idle.
func (t *h1Transport) put(c *h1Conn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	if len(t.idle[c.addr]) >= t.maxIdle {
		t.mu.Unlock()
		c.close()
		return
	}
	if t.idle == nil {
		t.idle = make(map[string][]*h1Conn)
	}
	t.idle[c.addr] = append(t.idle[c.addr], c)
	if t.janitor == nil && t.idleTimeout > 0 {
		t.janitor = time.AfterFunc(t.idleTimeout, t.closeExpired)
	}
	t.mu.Unlock()
}

// closeExpired closes the connections idle for longer than idleTimeout and
// runs again while any are left.
func (t *h1Transport) closeExpired() {
	now := time.Now()
	var expired []*h1Conn
	t.mu.Lock()
	for addr, conns := range t.idle {
		keep := conns[:0]
		for _, c := range conns {
			if t.expired(c, now) {
				expired = append(expired, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(conns[len(keep):])
		if len(keep) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = keep
		}
	}
	if len(t.idle) > 0 {
		t.janitor.Reset(t.idleTimeout)
	} else {
		t.janitor = nil
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
}

func (t *h1Transport) expired(c *h1Conn, now time.Time) bool {
	return t.idleTimeout > 0 && now.Sub(c.idleSince) >= t.idleTimeout
}

// h1Conn is one connection to an upstream. The response body owns it while
// it is read; otherwise it is idle in the transport's pool.
type h1Conn struct {
	nc        net.Conn
	br        *bufio.Reader // reads through the h1Conn, so limit applies
	addr      string
	idleSince time.Time
	limit     int64 // bytes that reads may still return; < 0: no limit
	answered  bool  // the upstream sent bytes of an answer
	peek      *peeker

	// The round trip's context, and once it has run for lazyWatch, the
	// hold of that context on the connection: under the lock of the
	// transport's watches (see watch).
	ctx  context.Context
	stop func() bool // context.AfterFunc's
	item lazyItem
}

func (c *h1Conn) Read(p []byte) (int, error) {
	if c.limit >= 0 {
		if c.limit == 0 {
			return 0, errors.New("proxy: upstream response headers too large")
		}
		if int64(len(p)) > c.limit {
			p = p[:c.limit]
		}
	}
	n, err := c.nc.Read(p)
	if n > 0 {
		c.answered = true
		if c.limit >= 0 {
			c.limit -= int64(n)
		}
	}
	return n, err
}

func (c *h1Conn) close() { c.nc.Close() }

// watch ties c to ctx until unwatch: when ctx ends, c's reads and writes
// return. context.AfterFunc would do that at once, for a few µs and five
// allocations per request at one request at a time (BENCHMARKS.md); nearly
// all round trips are over within lazyWatch, so c is only listed in l,
// whose timer calls AfterFunc for a round trip still running after it.
func (c *h1Conn) watch(l *lazyList, ctx context.Context) {
	// Listed even if ctx never ends: asking would make its Done channel,
	// an allocation per request.
	if c.item.start == nil {
		c.item.start = c.holdOpen
	}
	c.ctx = ctx // before add takes the lock: holdOpen reads it under it
	l.add(&c.item)
}

// holdOpen runs under the lock of the list c is in.
func (c *h1Conn) holdOpen() {
	c.stop = context.AfterFunc(c.ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
}

// unwatch ends what watch started and reports whether the end of the
// context left c alone; false: its deadline may be set, it cannot be reused.
func (c *h1Conn) unwatch(l *lazyList) bool {
	l.mu.Lock()
	l.unlink(&c.item)
	stop := c.stop
	c.ctx, c.stop = nil, nil
	l.mu.Unlock()
	return stop == nil || stop()
}

// aLongTimeAgo is a deadline that makes blocked reads and writes return.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes req and reads the response headers. On success the
// response body owns c.
func (c *h1Conn) roundTrip(t *h1Transport, req *http.Request) (*http.Response, error) {
	bw := c.startRequest(t, req.Context())
	written, err := writeRequest(bw, req)
	if !written {
		err = req.Write(bw)
	}
	if err := c.endRequest(t, bw, err); err != nil {
		return nil, err
	}
	return c.receive(t, req)
}

// startRequest returns the writer for a request on c. The context may end
// while the request is written or any time before the answer's end: c is
// unblocked then, and closed after.
func (c *h1Conn) startRequest(t *h1Transport, ctx context.Context) *bufio.Writer {
	c.answered = false
	c.watch(&t.watches, ctx)
	return getWriter(c.nc) // pooled: used only while a request is written
}

// endRequest sends what the writer of startRequest holds, unless err (the
// error of writing it) is set, and returns the error.
func (c *h1Conn) endRequest(t *h1Transport, bw *bufio.Writer, err error) error {
	if err == nil {
		err = bw.Flush()
	}
	putWriter(bw)
	if err != nil {
		c.unwatch(&t.watches)
	}
	return err
}

// receive reads the response headers to req, which has been sent on c. On
// success the response body owns c.
func (c *h1Conn) receive(t *h1Transport, req *http.Request) (*http.Response, error) {
	if err := c.await(t); err != nil {
		return nil, err
	}
	if res, direct := parseResponse(c.br, req); direct {
		return c.direct(t, req.Context(), res, !req.Close), nil
	}
	return c.readResponse(t, req)
}

// await waits for the first byte of the answer. On an error c is no
// longer watched.
func (c *h1Conn) await(t *h1Transport) error {
	c.limit = maxResponseHeaderBytes
	// Wait for the answer here, not in parseResponse: bufio hands out a
	// read error (a reset) only once, and it is the one to report.
	_, err := c.br.Peek(1)
	c.limit = -1
	if err != nil {
		c.unwatch(&t.watches)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // as http.ReadResponse says it
		}
	}
	return err
}

// direct gives res, which parseResponse read, the body that owns c; keep
// tells whether c may be reused after it.
func (c *h1Conn) direct(t *h1Transport, ctx context.Context, res *http.Response, keep bool) *http.Response {
	body := &h1Body{t: t, c: c, ctx: ctx, keep: keep, left: res.ContentLength}
	if res.ContentLength == 0 {
		res.Body = http.NoBody
		body.release(body.keep)
	} else {
		res.Body = body
	}
	return res
}

// readResponse reads the answer to req with http.ReadResponse, passing
// informational answers on.
func (c *h1Conn) readResponse(t *h1Transport, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var res *http.Response
	var err error
	for {
		c.limit = maxResponseHeaderBytes
		res, err = http.ReadResponse(c.br, req)
		c.limit = -1
		if err != nil {
			c.unwatch(&t.watches)
			return nil, err
		}
		if res.StatusCode == http.StatusSwitchingProtocols {
			c.unwatch(&t.watches)
			return nil, errors.New("proxy: upstream switched protocols without being asked to")
		}
		if res.StatusCode < 100 {
			// ReverseProxy cannot pass it on (WriteHeader panics), and
			// net/http's Transport would not reuse the connection.
			c.unwatch(&t.watches)
			return nil, fmt.Errorf("proxy: upstream answered with status %03d", res.StatusCode)
		}
		if res.StatusCode >= 200 {
			break
		}
		// An informational answer (103 Early Hints): ReverseProxy passes
		// it on through the trace hook, as with net/http's Transport.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header)); err != nil {
				c.unwatch(&t.watches)
				return nil, err
			}
		}
	}
	keep := !res.Close && !req.Close
	if res.Body == http.NoBody {
		(&h1Body{t: t, c: c}).release(keep)
		return res, nil
	}
	res.Body = &h1Body{t: t, c: c, body: res.Body, ctx: ctx, keep: keep}
	return res, nil
}

// h1Body is a response body that owns its connection until its end.
type h1Body struct {
	t    *h1Transport
	c    *h1Conn
	body io.ReadCloser // as http.ReadResponse made it; nil: read left bytes from c.br
	left int64
	ctx  context.Context
	keep bool        // the connection may be reused after the body
	eof  bool        // Read returned io.EOF
	done atomic.Bool // the connection was released
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.done.Load() {
		return 0, errors.New("proxy: read on closed response body")
	}
	var n int
	var err error
	if b.body != nil {
		n, err = b.body.Read(p)
	} else {
		n, err = b.readLeft(p)
	}
	switch {
	case err == io.EOF:
		b.eof = true
		b.release(b.keep)
	case err != nil:
		b.release(false)
		if ctxErr := b.ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
	}
	return n, err
}

// readLeft reads the body parseResponse found: the next left bytes, then
// io.EOF, which comes with the last of them, as net/http's body does.
func (b *h1Body) readLeft(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.br.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// Close releases the connection; one whose body was not read to its end is
// closed, as net/http's Transport does.
func (b *h1Body) Close() error {
	b.release(false)
	return nil
}

// release gives the connection back to the pool when keep is true and the
// context did not end meanwhile, and closes it otherwise. Only the first
// call counts.
func (b *h1Body) release(keep bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	// Unless the context ended (the deadline is set) or the upstream sent
	// more than the response. Only Read's goroutine passes keep.
	if alone := b.c.unwatch(&b.t.watches); keep && (!alone || b.c.br.Buffered() > 0) {
		keep = false
	}
	if keep {
		b.t.put(b.c)
	} else {
		b.c.close()
	}
}
