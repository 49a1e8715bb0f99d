package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/shutdown"
	"golang.org/x/net/http/httpguts"
)

// h1Server serves a listener's connections. It serves the requests MCP
// clients send all the time, HTTP/1.1 POSTs with a Content-Length and plain
// headers, on a loop of its own, and hands a connection to net/http's
// server, for good, as soon as its next request is anything else (a GET, an
// Expect, a chunked body, an upgrade, a long or unusual head).
//
// net/http's server costs the proxy 15–25 % of its CPU per request and tens
// of microseconds of latency (BENCHMARKS.md): a goroutine per request that
// watches for the client going away, a response buffer in front of the
// connection's, and the generality no MCP client needs. This loop watches
// for the client only once a request has run for lazyWatch, and writes the
// response straight into the connection's buffer. The head is checked byte
// by byte against a grammar narrower than net/http's, and only a head
// inside it is parsed here, into the request http.ReadRequest would make
// of it (FuzzReadPlainHead); anything outside goes to net/http's server
// untouched, so both cannot disagree on framing (FuzzH1Server compares
// them).
type h1Server struct {
	handler           http.Handler
	baseCtx           context.Context
	reqBase           context.Context // what request contexts derive from (newH1Server)
	log               *slog.Logger
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration

	std     *http.Server // serves the connections handed over
	handoff handoffListener

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*serverConn]struct{}
	closing atomic.Bool // set under mu, read without it
	connsWG sync.WaitGroup

	handedOff atomic.Int64 // connections given to std, for tests

	sweep    *time.Timer // under mu: ends the waits past their deadline
	sweeping bool        // under mu: sweep is set or running

	watches watchList
	date    dateCache
}

// dateCache formats the Date of responses once a second rather than per
// response (an allocation and time's formatting code each time).
type dateCache struct{ p atomic.Pointer[cachedDate] }

type cachedDate struct {
	sec int64
	s   string
}

// get returns now, in UTC, as an HTTP date.
func (d *dateCache) get(now time.Time) string {
	sec := now.Unix()
	if c := d.p.Load(); c != nil && c.sec == sec {
		return c.s
	}
	c := &cachedDate{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	d.p.Store(c)
	return c.s
}

// maxDiscard is how much unread request body is read and dropped after the
// handler to keep the connection, as net/http's server does.
const maxDiscard = 256 << 10

func newH1Server(h http.Handler, baseCtx context.Context, log *slog.Logger) *h1Server {
	s := &h1Server{
		handler:           h,
		baseCtx:           baseCtx,
		log:               log,
		readHeaderTimeout: 10 * time.Second,
		idleTimeout:       2 * time.Minute,
		conns:             make(map[*serverConn]struct{}),
	}
	// A request context derived from baseCtx itself would be listed in it
	// and taken off again: two locks of one mutex that every listener and
	// connection shares, and a map entry, per request, the largest cost
	// of a request's context (BENCHMARKS.md). So baseCtx's end comes to
	// the requests through the server instead. A deadline would not.
	s.reqBase = baseCtx
	if _, ok := baseCtx.Deadline(); !ok && baseCtx.Done() != nil {
		s.reqBase = context.WithoutCancel(baseCtx)
		context.AfterFunc(baseCtx, s.cancelRequests)
	}
	s.handoff.conns = make(chan net.Conn)
	s.handoff.done = make(chan struct{})
	s.std = &http.Server{
		Handler: h,
		// No WriteTimeout: it would cut long streams.
		ReadHeaderTimeout: s.readHeaderTimeout,
		IdleTimeout:       s.idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Shutdown ends every request: nothing to wait for on a connection
	// handed off before its head was complete.
	shutdown.CloseUnused(s.std)
	return s
}

// Serve accepts connections on ln until it is closed, as http.Server.Serve
// does, and returns http.ErrServerClosed after Shutdown or Close.
func (s *h1Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.handoff.addr = ln.Addr()
	s.std.ReadHeaderTimeout, s.std.IdleTimeout = s.readHeaderTimeout, s.idleTimeout
	s.mu.Unlock()
	go s.std.Serve(&s.handoff)
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				// Out of file descriptors and the like: back off and
				// retry, as net/http's server does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accepting a connection", "err", err, "retry in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		hc := s.newConn(rawIO(c))
		if hc == nil {
			c.Close()
			continue
		}
		go hc.serve()
	}
}

func (s *h1Server) newConn(c net.Conn) *serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	hc := &serverConn{srv: s, rwc: c, remote: c.RemoteAddr().String()}
	hc.cr.c = c
	hc.cr.cond.L = &hc.cr.mu
	hc.state.Store(int32(http.StateNew))
	s.conns[hc] = struct{}{}
	s.connsWG.Add(1)
	if every := s.sweepEvery(); every > 0 && !s.sweeping {
		s.sweeping = true
		if s.sweep == nil {
			s.sweep = time.AfterFunc(every, s.sweepWaits)
		} else {
			s.sweep.Reset(every)
		}
	}
	return hc
}

// sweepEvery is how often the waits for requests are checked against their
// deadlines, a tenth of the shorter timeout, from a millisecond to a second:
// a timeout ends up to that much late. Zero: there are no timeouts.
func (s *h1Server) sweepEvery() time.Duration {
	every := time.Duration(0)
	for _, d := range []time.Duration{s.readHeaderTimeout, s.idleTimeout} {
		if d > 0 && (every == 0 || d < every) {
			every = d
		}
	}
	if every == 0 {
		return 0
	}
	return min(max(every/10, time.Millisecond), time.Second)
}

// sweepWaits ends the waits whose deadline has passed, and runs again while
// the server has connections.
func (s *h1Server) sweepWaits() {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		s.sweeping = false
		return
	}
	for hc := range s.conns {
		hc.expire(now)
	}
	s.sweep.Reset(s.sweepEvery())
}

// cancelRequests ends the context of every request being served, with
// baseCtx's cause, once baseCtx has ended: from a goroutine of its own
// (context.AfterFunc), or at once from Proxy.Shutdown. A request that
// begins after it finds baseCtx ended (serveRequest).
func (s *h1Server) cancelRequests() {
	if s.baseCtx.Err() == nil {
		return
	}
	cause := context.Cause(s.baseCtx)
	s.mu.Lock()
	defer s.mu.Unlock()
	for hc := range s.conns {
		hc.cr.cancelRequest(cause)
	}
}

func (s *h1Server) forget(hc *serverConn) {
	s.mu.Lock()
	delete(s.conns, hc)
	s.mu.Unlock()
	s.connsWG.Done()
}

// Shutdown stops accepting connections, closes those waiting for a request
// and waits, until ctx is done, for the others to finish their request;
// net/http's server shuts down the connections handed to it the same way,
// meanwhile. It returns ctx's error if ctx ended first. Request contexts
// are not cancelled: the caller cancels the base context for that.
func (s *h1Server) Shutdown(ctx context.Context) error {
	s.startClosing()
	stdDone := make(chan error, 1)
	go func() { stdDone <- s.std.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() {
		s.connsWG.Wait()
		close(done)
	}()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		s.closeIdle()
		select {
		case <-done:
			return <-stdDone
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// Close closes the listener and every connection at once.
func (s *h1Server) Close() error {
	s.startClosing()
	s.mu.Lock()
	for hc := range s.conns {
		hc.rwc.Close()
	}
	s.mu.Unlock()
	return s.std.Close()
}

func (s *h1Server) startClosing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return
	}
	s.closing.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	s.handoff.close()
}

// closeIdle closes the connections waiting for their next (or first)
// request.
func (s *h1Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for hc := range s.conns {
		if st := http.ConnState(hc.state.Load()); st == http.StateNew || st == http.StateIdle {
			hc.rwc.Close()
		}
	}
}

// handoffListener gives net/http's server the connections handed to it.
type handoffListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.close()
	return nil
}

func (l *handoffListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *handoffListener) Addr() net.Addr { return l.addr }

// waitDeadline is when a connection's wait for the next request ends,
// kept by the server's sweeper. A deadline on the socket itself is a
// runtime timer: set and cleared for every request, it woke an idle thread
// whenever it became its P's earliest, as the watch's timers did (see
// watchList), which cost a few µs at one request at a time.
type waitDeadline struct {
	mu      sync.Mutex
	at      time.Time // zero: no deadline
	expired bool      // the sweeper set the socket's read deadline in the past
}

// serverConn is one client connection served by h1Server.
type serverConn struct {
	srv    *h1Server
	rwc    net.Conn
	remote string
	state  atomic.Int32 // http.ConnState, for closeIdle
	cr     connReader
	wait   waitDeadline
	// The handler set a read deadline (http.ResponseController): cleared
	// before the next request.
	handlerDeadline atomic.Bool
	br              *bufio.Reader
	bw              *bufio.Writer
	ctx             context.Context
	w               response
}

func (c *serverConn) serve() {
	handedOff := false
	defer func() {
		if !handedOff {
			if c.bw != nil {
				// As net/http: what reached the connection's buffer goes
				// out, also after a handler's panic.
				c.bw.Flush()
			}
			c.rwc.Close()
		}
		putReader(c.br)
		if c.bw != nil {
			putWriter(c.bw)
		}
		c.srv.forget(c)
	}()
	c.br = getReader(&c.cr)
	defer c.srv.watches.remove(&c.cr)
	served := false
	for {
		if c.srv.closing.Load() {
			return
		}
		if c.handlerDeadline.Swap(false) {
			c.rwc.SetReadDeadline(time.Time{}) // as net/http, the handler's ends with it
		}
		// As net/http: the first request has readHeaderTimeout from the
		// start; a later one has idleTimeout to send its first four bytes
		// (fewer, then the end, close the connection without an answer).
		if served {
			c.setWaitDeadline(c.srv.idleTimeout)
			if _, err := c.br.Peek(4); err != nil {
				return
			}
			c.setWaitDeadline(c.srv.readHeaderTimeout)
		} else {
			c.setWaitDeadline(c.srv.readHeaderTimeout)
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		if served {
			// As net/http: tolerate the stray CRLF old clients send after a POST.
			discardLeadingCRLF(c.br)
		}
		head, err := bufferHead(c.br)
		if err != nil {
			return // the client went away or timed out in its head
		}
		if head == nil || !plainHead(head) {
			handedOff = c.handOff(nil)
			return
		}
		req, err := readPlainHead(head)
		if err != nil {
			// plainHead let through what http.ReadRequest refuses (a
			// target url.ParseRequestURI does not take): net/http's
			// server has the answer for that.
			handedOff = c.handOff(nil)
			return
		}
		c.br.Discard(len(head))
		c.setWaitDeadline(0)
		served = true
		if c.bw == nil {
			// Made on the first request served here: a connection handed
			// off at once (an event stream's GET) needs none of it.
			c.bw = getWriter(c.rwc)
			c.ctx = context.WithValue(c.srv.reqBase, http.LocalAddrContextKey, c.rwc.LocalAddr())
			c.ctx = context.WithValue(c.ctx, http.ServerContextKey, c.srv.std)
			c.w.c = c
		}
		// Active only now, as with net/http: Shutdown closes a connection
		// whose request has not arrived whole.
		c.setState(http.StateActive)
		if !c.serveRequest(req) {
			return
		}
		c.setState(http.StateIdle)
	}
}

// Connection buffers are pooled, as net/http pools its own: a connection
// handed off at once, as every event stream's is, then costs no buffer of
// its own for longer than its first request's head, and the upstream
// transport holds a writer only while it writes a request.
var readerPool, writerPool sync.Pool

func getReader(r io.Reader) *bufio.Reader {
	if br, ok := readerPool.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, 4<<10)
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

func getWriter(w io.Writer) *bufio.Writer {
	if bw, ok := writerPool.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, h1WriteBufferSize)
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writerPool.Put(bw)
}

// setWaitDeadline sets when the wait for the next request's bytes ends:
// d from now, or never when d <= 0. The server's sweeper enforces it.
func (c *serverConn) setWaitDeadline(d time.Duration) {
	var at time.Time
	if d > 0 {
		at = time.Now().Add(d)
	}
	c.wait.mu.Lock()
	c.wait.at = at
	if c.wait.expired {
		// The read it ended returned all the same (the bytes came as the
		// deadline passed): the socket's deadline must not stay past.
		c.wait.expired = false
		c.rwc.SetReadDeadline(time.Time{})
	}
	c.wait.mu.Unlock()
}

// expire ends the connection's wait for a request when its deadline has
// passed, with a read deadline in the past: what is waiting fails as it
// would have at a deadline of its own.
func (c *serverConn) expire(now time.Time) {
	c.wait.mu.Lock()
	defer c.wait.mu.Unlock()
	if !c.wait.at.IsZero() && !c.wait.expired && !now.Before(c.wait.at) {
		c.wait.expired = true
		c.rwc.SetReadDeadline(aLongTimeAgo)
	}
}

func (c *serverConn) setState(s http.ConnState) { c.state.Store(int32(s)) }

// handOff gives the connection to net/http's server: consumed (head bytes
// taken from the reader) first, then what the reader holds, then the
// connection. It reports false, having closed nothing, when the server is
// shutting down.
func (c *serverConn) handOff(consumed []byte) bool {
	c.wait.mu.Lock()
	headBy := c.wait.at
	c.wait.mu.Unlock()
	c.setWaitDeadline(0)
	c.rwc.SetReadDeadline(time.Time{})
	// A copy, so that the connection keeps none of this loop's buffers.
	rest, _ := c.br.Peek(c.br.Buffered())
	pending := make([]byte, 0, len(consumed)+len(rest)+1)
	pending = append(append(pending, consumed...), rest...)
	c.cr.mu.Lock()
	if c.cr.has {
		// The byte a watch read while the reader still held a pipelined
		// request: it comes after what the reader holds.
		pending = append(pending, c.cr.b[0])
		c.cr.has = false
	}
	c.cr.mu.Unlock()
	c.srv.handedOff.Add(1)
	select {
	case c.srv.handoff.conns <- &replayConn{Conn: c.rwc, pending: pending, headBy: headBy}:
		return true
	case <-c.srv.handoff.done:
		c.srv.handedOff.Add(-1)
		return false
	}
}

// replayConn is a connection handed to net/http's server, with the bytes
// already read from it first.
type replayConn struct {
	net.Conn
	pending []byte
	// headBy is when the head this loop began to read had to be complete
	// (zero: no limit). The first read deadline net/http's server sets is
	// the one for that head, from the moment it takes the connection:
	// headBy bounds it, so that a slow head handed off once it filled the
	// reader does not get a second ReadHeaderTimeout.
	headBy  time.Time
	bounded atomic.Bool // the first SetReadDeadline has been seen
}

func (c *replayConn) SetReadDeadline(t time.Time) error {
	if !c.headBy.IsZero() && c.bounded.CompareAndSwap(false, true) && (t.IsZero() || t.After(c.headBy)) {
		t = c.headBy
	}
	return c.Conn.SetReadDeadline(t)
}

// CloseWrite lets net/http's server half-close the connection, as it does
// before it closes one whose client may still be sending.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return n, nil
}

// discardLeadingCRLF drops the CRs and LFs among the next request's first
// four bytes, as net/http's server does after a POST.
func discardLeadingCRLF(br *bufio.Reader) {
	peek, _ := br.Peek(4)
	n := 0
	for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
		n++
	}
	br.Discard(n)
}

// bufferHead reads until the reader holds a whole request head and returns
// it (up to and including its empty line), still unread. A head ends where
// net/http's reader ends it: at an empty line, ended by CRLF or a bare LF.
// It returns nil when the head does not fit the reader's buffer, or when
// reading fails with bytes buffered (net/http's server has the answer for
// those), and an error when it fails with none or times out.
func bufferHead(br *bufio.Reader) ([]byte, error) {
	from := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		for i := from; i+1 < len(buf); i++ {
			if buf[i] != '\n' {
				continue
			}
			if buf[i+1] == '\n' {
				return buf[:i+2], nil
			}
			if buf[i+1] == '\r' && i+2 < len(buf) && buf[i+2] == '\n' {
				return buf[:i+3], nil
			}
		}
		if len(buf) == br.Size() {
			return nil, nil
		}
		from = max(len(buf)-2, 0)
		if _, err := br.Peek(len(buf) + 1); err != nil {
			var ne net.Error
			if len(buf) == 0 || errors.As(err, &ne) && ne.Timeout() {
				return nil, err
			}
			return nil, nil
		}
	}
}

// plainHead reports whether head is a request head this loop serves: a
// POST, HTTP/1.1, an origin-form target of visible ASCII, exactly one Host
// of the characters a host name or address has (plainHost), at most one Content-Length
// of digits, header names that are tokens and values of visible ASCII,
// spaces and tabs, each line ending in CRLF, and none of Transfer-Encoding,
// Expect, Upgrade, TE, Trailer, HTTP2-Settings or a Connection header other
// than "keep-alive" or "close". Every request it accepts, net/http's server
// would read the same way.
func plainHead(head []byte) bool {
	const line1 = "POST /"
	if len(head) < len(line1) || string(head[:len(line1)]) != line1 {
		return false
	}
	i := len(line1)
	for ; i < len(head) && head[i] != ' '; i++ {
		if head[i] <= ' ' || head[i] >= 0x7f {
			return false
		}
	}
	const proto = " HTTP/1.1\r\n"
	if len(head)-i < len(proto) || string(head[i:i+len(proto)]) != proto {
		return false
	}
	i += len(proto)
	hosts, lengths := 0, 0
	for {
		if i+2 > len(head) {
			return false
		}
		if head[i] == '\r' {
			return head[i+1] == '\n' && i+2 == len(head) && hosts == 1
		}
		start := i
		for ; i < len(head) && isTokenByte(head[i]); i++ {
		}
		if i == start || i == len(head) || head[i] != ':' {
			return false
		}
		name := head[start:i]
		i++
		vstart := i
		for ; i < len(head) && head[i] != '\r'; i++ {
			if b := head[i]; (b < ' ' && b != '\t') || b >= 0x7f {
				return false
			}
		}
		if i+1 >= len(head) || head[i+1] != '\n' {
			return false
		}
		value := textproto.TrimBytes(head[vstart:i])
		i += 2
		switch {
		case asciiEqualFold(name, "Host"):
			hosts++
			if !plainHost(value) {
				return false
			}
		case asciiEqualFold(name, "Content-Length"):
			lengths++
			if lengths > 1 || len(value) == 0 || len(value) > 18 {
				return false
			}
			for _, b := range value {
				if b < '0' || b > '9' {
					return false
				}
			}
		case asciiEqualFold(name, "Connection"):
			if !asciiEqualFold(value, "keep-alive") && !asciiEqualFold(value, "close") {
				return false
			}
		case asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"),
			asciiEqualFold(name, "Upgrade"), asciiEqualFold(name, "TE"),
			asciiEqualFold(name, "Trailer"), asciiEqualFold(name, "HTTP2-Settings"):
			return false
		}
	}
}

// readPlainHead makes of head, which plainHead accepted, the request
// http.ReadRequest makes of it, and fails where ReadRequest fails. It takes
// what plainHead has already checked for granted, and all the request's
// strings are parts of one: http.ReadRequest costs about a fifth of the
// loop's own time per request (its reader, its MIME-header machinery, a
// body the loop replaces). FuzzReadPlainHead holds the two to the same
// requests.
func readPlainHead(head []byte) (*http.Request, error) {
	s := string(head)
	const method, proto = "POST ", " HTTP/1.1\r\n"
	end := len(method) + strings.IndexByte(s[len(method):], ' ')
	target := s[len(method):end]
	u, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	lines := s[end+len(proto) : len(s)-2] // without the blank line
	n := strings.Count(lines, "\n")
	h := make(http.Header, n)
	// One array for the values, as textproto has it: a key's first value
	// is a slice of it with no room to grow, so a second one copies.
	values := make([]string, n)
	for i := 0; len(lines) > 0; i++ {
		eol := strings.IndexByte(lines, '\r')
		line := lines[:eol]
		lines = lines[eol+2:]
		colon := strings.IndexByte(line, ':')
		key := headerKey(line[:colon])
		values[i] = strings.Trim(line[colon+1:], " \t")
		if vv, ok := h[key]; ok {
			h[key] = append(vv, values[i])
		} else {
			h[key] = values[i : i+1 : i+1]
		}
	}
	// As http.ReadRequest: an HTTP/1.0 cache's Pragma stands for
	// Cache-Control.
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	req := &http.Request{
		Method:     http.MethodPost,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Host:       h.Get("Host"), // and out of the header, as http.ReadRequest
		RequestURI: target,
		Close:      httpguts.HeaderValuesContainsToken(h["Connection"], "close"),
	}
	delete(h, "Host")
	if cl := h["Content-Length"]; len(cl) > 0 {
		// plainHead let through up to 18 digits: no overflow.
		req.ContentLength, _ = strconv.ParseInt(cl[0], 10, 64)
	}
	return req, nil
}

// parseTarget is url.ParseRequestURI. An MCP endpoint's path of letters,
// digits, "-._~" and "/" alone, the usual target, is a URL with that Path
// and nothing else, found without the parser's general work.
func parseTarget(target string) (*url.URL, error) {
	plain := target != "" && target[0] == '/'
	for i := 0; plain && i < len(target); i++ {
		c := target[i]
		plain = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '/' || c == '-' || c == '.' || c == '_' || c == '~'
	}
	if plain {
		return &url.URL{Path: target}, nil
	}
	return url.ParseRequestURI(target)
}

// mcpHeaderKeys are the names MCP clients send that net/http does not
// intern: sent in lower case, as clients built on fetch do, each would cost
// an allocation per request in http.CanonicalHeaderKey.
var mcpHeaderKeys = [...]string{"Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-Id"}

// headerKey is http.CanonicalHeaderKey for name, a token.
func headerKey(name string) string {
	for _, k := range mcpHeaderKeys {
		if len(name) == len(k) && strings.EqualFold(name, k) {
			return k
		}
	}
	return http.CanonicalHeaderKey(name)
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// serveRequest runs the handler for req and finishes its response. It
// reports whether the connection can serve another request.
func (c *serverConn) serveRequest(req *http.Request) bool {
	delete(req.Header, "Host")
	req.RemoteAddr = c.remote
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	// The request is this loop's own: it takes its context in place, where
	// a copy would cost an allocation of the whole request.
	*req = *req.WithContext(ctx)
	c.cr.begin(cancel)
	if c.srv.baseCtx.Err() != nil {
		cancel(context.Cause(c.srv.baseCtx)) // cancelRequests ran before begin
	}
	body := &requestBody{c: c, n: req.ContentLength, sawEOF: req.ContentLength == 0, closing: req.Close}
	if req.ContentLength > 0 {
		req.Body = body
	} else {
		c.srv.watches.add(&c.cr)
	}
	c.w.reset(req, body)

	ok := c.runHandler(req)

	c.srv.watches.remove(&c.cr)
	c.cr.abortPendingRead()
	cancel(nil)
	if !ok {
		// The reader goes back to its pool: a reader of the body left
		// behind must not reach it.
		body.abandon()
		return false
	}
	keep, linger := c.w.finish()
	c.w.release()
	if linger {
		c.closeWriteAndWait()
	}
	return keep
}

// closeWriteAndWait half-closes the connection and waits a moment before
// it is closed, as net/http's server does when a client may still be
// sending a request body: closing at once would reset the connection, and
// many TCP stacks then drop the response the client has not read yet.
func (c *serverConn) closeWriteAndWait() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	time.Sleep(rstAvoidanceDelay)
}

// rstAvoidanceDelay is net/http's.
const rstAvoidanceDelay = 500 * time.Millisecond

// runHandler calls the handler and reports false if it panicked, after
// logging the panic unless it was http.ErrAbortHandler, as net/http does.
func (c *serverConn) runHandler(req *http.Request) (ok bool) {
	defer func() {
		if err := recover(); err != nil {
			ok = false
			if err == http.ErrAbortHandler {
				return
			}
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.log.Error("panic serving a request", "remote", c.remote, "panic", fmt.Sprint(err), "stack", string(buf))
		}
	}()
	c.srv.handler.ServeHTTP(&c.w, req)
	return true
}

// connReader reads the connection for the request reader and, while a
// request whose body has been read runs for longer than lazyWatch, waits
// for the client's next byte in a goroutine of its own, so that the
// request's context ends when the client goes away (net/http's connReader
// does this for every request, at once).
type connReader struct {
	c       net.Conn
	mu      sync.Mutex
	cond    sync.Cond
	gen     uint64                  // the request being served, counted
	armed   uint64                  // the request watches.add was called for
	cancel  context.CancelCauseFunc // ends the request's context
	inRead  bool                    // the background read is running
	aborted bool                    // ... and is being stopped with a past deadline
	done    bool                    // the handler returned: no background read may start
	has     bool                    // b holds a byte the background read got
	b       [1]byte

	item lazyItem // in the server's watchList; start is watch
}

func (r *connReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.inRead {
		r.mu.Unlock()
		return 0, errors.New("proxy: concurrent read of a connection")
	}
	if r.has && len(p) > 0 {
		p[0], r.has = r.b[0], false
		r.mu.Unlock()
		return 1, nil
	}
	r.mu.Unlock()
	return r.c.Read(p)
}

// begin starts the next request, whose context cancel ends.
func (r *connReader) begin(cancel context.CancelCauseFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.done = false
	r.cancel = cancel
}

// cancelRequest ends the context of the request being served, if any,
// with cause.
func (r *connReader) cancelRequest(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel(cause)
	}
}

// watch starts the background read for the request it was listed for,
// unless its handler has returned or another request has started since (the
// list's timer can fire while the request is being removed).
func (r *connReader) watch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.armed != r.gen || r.done || r.inRead || r.has {
		return
	}
	r.inRead = true
	cancel := r.cancel
	go func() {
		n, err := r.c.Read(r.b[:])
		r.mu.Lock()
		if n == 1 {
			r.has = true // a pipelined request: kept for the reader
		}
		var ne net.Error
		if err != nil && !(r.aborted && errors.As(err, &ne) && ne.Timeout()) {
			// The client went away, or half-closed its side: as net/http,
			// the request ends, and what the reader still holds is
			// served (the next read finds the error again).
			cancel(nil)
		}
		r.inRead, r.aborted = false, false
		r.mu.Unlock()
		r.cond.Broadcast()
	}()
}

// abortPendingRead stops the background read, if one is running, and keeps
// any from starting until the next request.
func (r *connReader) abortPendingRead() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	r.cancel = nil
	if !r.inRead {
		return
	}
	r.aborted = true
	r.c.SetReadDeadline(aLongTimeAgo)
	for r.inRead {
		r.cond.Wait()
	}
	r.c.SetReadDeadline(time.Time{})
}

// watchList starts the watch of each listed request lazyWatch after it was
// listed, on one timer for all of a server's connections (see lazyList).
type watchList struct{ lazyList }

// add lists the request r is serving, unless its handler has returned
// (what is left of its body is being discarded).
func (l *watchList) add(r *connReader) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.armed = r.gen
	if r.item.start == nil {
		r.item.start = r.watch
	}
	r.mu.Unlock()
	l.lazyList.add(&r.item)
}

// remove takes r off the list, if it is on it.
func (l *watchList) remove(r *connReader) { l.lazyList.remove(&r.item) }
