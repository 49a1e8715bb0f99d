package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
)

// handler serves one server's listener.
type handler struct {
	name     string
	up       *url.URL // upstream URL
	upPath   string   // its escaped path, "/" when empty
	upName   string   // upstream URL for messages, without query
	legacy   bool     // the upstream speaks HTTP+SSE
	headers  http.Header
	maxBody  int64
	log      *slog.Logger
	guard    *guard
	rp       *httputil.ReverseProxy // copied per request, see forwarder
	mux      *chi.Mux               // routes every path to forward
	routes   sync.Pool              // *chi.Context, see serve
	small    bufferPool             // copy buffers of event streams
	large    bufferPool             // copy buffers of other responses
	upstream http.RoundTripper      // authTransport around the base transport
	fast     *fastPath              // nil: every request takes the full path
}

// newHandler builds the handler for s. base, when non-nil, is the upstream
// transport shared by every listener of a Proxy.
func newHandler(s Server, o Options, base http.RoundTripper) (*handler, error) {
	up, err := s.validate()
	if err != nil {
		return nil, err
	}
	g, err := newGuard(s, o)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("server", s.Name)
	if base == nil {
		base = o.Transport
	}
	if base == nil {
		base = newTransport()
	}
	if o.WrapTransport != nil {
		base = o.WrapTransport(s.Name, base)
	}
	h := &handler{
		name:    s.Name,
		up:      up,
		upPath:  up.EscapedPath(),
		upName:  redact(up),
		legacy:  s.Transport == "sse",
		headers: make(http.Header, len(s.Headers)),
		maxBody: o.MaxBodyBytes,
		log:     log,
		guard:   g,
		small:   bufferPool{size: streamBufferSize},
		large:   bufferPool{size: copyBufferSize},
	}
	if h.upPath == "" {
		h.upPath = "/"
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	for k, v := range s.Headers {
		h.headers.Set(k, v)
	}
	h.upstream = &authTransport{base: base, auth: s.Auth, upstream: h.upName, log: log}
	if !o.noFastPath {
		h.fast = newFastPath(h, base)
	}
	// FlushInterval stays zero: serve's flushWriter flushes every write.
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      h.upstream,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Every path goes upstream, to the one forwarder. chi answers the
	// methods it does not know with 405 and paths that do not start with
	// "/" (OPTIONS *) with 404. The guard and the body buffering run before
	// it as plain calls, not as chi middleware: see serve.
	h.mux = chi.NewRouter()
	h.mux.Handle("/*", (*forwarder)(h))
	if staticRoute(h.upPath) {
		// The MCP endpoint, where nearly all requests go, also gets a
		// static route: "/*" makes chi set the rest of the path as a path
		// value, which ReverseProxy copies with the request, four
		// allocations per request.
		h.mux.Handle(h.upPath, (*forwarder)(h))
	}
	h.routes.New = func() any { return chi.NewRouteContext() }
	return h, nil
}

// staticRoute reports whether path, an escaped path, is worth a static
// route: chi matches routes against the unescaped path when the request's
// is in its default encoding, so one with escapes would not match it; and
// braces and stars (escaped anyway) would make a pattern of it.
func staticRoute(path string) bool {
	return strings.HasPrefix(path, "/") && !strings.ContainsAny(path, "%{}*")
}

// ServeHTTP logs the request when debug logging is on and serves it.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.serveLogged(w, r)
		return
	}
	h.serve(w, r)
}

// serve guards and buffers one request and hands it to the router, which
// passes it to the forwarder. The guard and the buffering are calls made before
// the router rather than chi middleware, and no Compress, Timeout or RealIP
// middleware either (they break streams or trust client-supplied headers).
// A middleware's frame stays on the stack while the request is forwarded,
// and an open stream keeps its goroutine's stack at the size the deepest
// call of its request needed: past 8 KiB Go doubles it to 16 KiB, for
// every open stream (BENCHMARKS.md; bench/stackprobe measures it).
func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	var sent *sentRequest
	if h.fast != nil {
		var done bool
		if done, sent = h.serveFast(w, r); done {
			return
		}
	}
	rc := h.routes.Get().(*chi.Context)
	rc.Reset()
	rc.Routes = h.mux
	if r = h.admit(w, r, rc, sent); r != nil {
		h.mux.ServeHTTP(w, r)
	}
	// As chi does with its own: the request is over, streams included.
	h.routes.Put(rc)
}

// admit checks and buffers r and returns it with its request context, or
// nil when it has been answered. sent is the fast path's round trip, if it
// made one.
func (h *handler) admit(w http.ResponseWriter, r *http.Request, rc *chi.Context, sent *sentRequest) *http.Request {
	if !h.guard.allow(w, r, h.log) {
		return nil
	}
	info, ok := h.prepare(w, r)
	if !ok {
		return nil
	}
	info.sent = sent
	info.ctx = reqContext{Context: r.Context(), info: info, route: rc}
	return r.WithContext(&info.ctx)
}

// forwarder is the router's one route: it forwards a request upstream.
// Its own type, rather than an http.HandlerFunc of a method value, spares
// two frames on the request's stack.
type forwarder handler

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := (*handler)(f)
	info := infoFrom(r.Context())
	info.w.ResponseWriter = w
	info.buffers = responseBuffers{small: &h.small, large: &h.large}
	// A copy of the ReverseProxy per request, so that its BufferPool knows
	// the response it copies; it lives in info, which is allocated anyway.
	info.rp = *h.rp
	info.rp.BufferPool = &info.buffers
	info.rp.ServeHTTP(&info.w, r)
}

// reqContext is the context of a request on its way upstream. It carries
// the request's reqInfo, chi's routing context and, for the traffic
// recorder, the buffered body (wire.BodyKey), and it lives in the reqInfo:
// one allocation for all of it. With context.WithValue that would take two
// contexts, and chi, which finds no routing context of its own, would copy
// the request once more.
type reqContext struct {
	context.Context
	info  *reqInfo
	route *chi.Context
}

func (c *reqContext) Value(key any) any {
	switch key {
	case reqInfoKey{}:
		return c.info
	case chi.RouteCtxKey:
		return c.route
	case wire.BodyKey:
		if c.info.body == nil {
			return nil
		}
		return c.info
	case wire.SentKey:
		if c.info.sent == nil {
			return nil
		}
		return c.info.sent.start
	}
	return c.Context.Value(key)
}

// newTransport returns the default upstream transport: h1Transport for
// plain-http upstreams, net/http's Transport for the rest.
func newTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Pass the client's Accept-Encoding and the upstream's encoding through
	// untouched instead of decompressing streams on the way.
	t.DisableCompression = true
	// MCP clients send bursts of concurrent requests to one host.
	t.MaxIdleConnsPerHost = 32
	// A tool call may take minutes before its response headers arrive.
	t.ResponseHeaderTimeout = 0
	return newH1Transport(t)
}

// reqInfo is what the proxy knows about an inbound request; it travels in the
// request context to the transport, ModifyResponse and ErrorHandler.
type reqInfo struct {
	ctx      reqContext      // the request's context upstream, see admit
	host     string          // the Host the client named: the listener as "http://" + host
	body     []byte          // the buffered body; nil when there was none or it was streamed
	reader   io.ReadCloser   // reads body: the inbound request's Body once buffered
	streamed bool            // the body was too large to buffer and cannot be replayed
	w        flushWriter     // the response writer ReverseProxy writes to
	buffers  responseBuffers // ReverseProxy's BufferPool
	rp       httputil.ReverseProxy
	sent     *sentRequest // the fast path's round trip, for the full path's first
}

// RequestBody returns the buffered request body for wire.Transport, which
// finds it under wire.BodyKey. It is never changed after buffering.
func (info *reqInfo) RequestBody() []byte { return info.body }

type reqInfoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return info
	}
	return &reqInfo{}
}

// prepare buffers the request body (up to maxBody) so the transport can
// replay the request, and returns the request's reqInfo. It answers a body
// that cannot be read with 400 and reports false.
func (h *handler) prepare(w http.ResponseWriter, r *http.Request) (*reqInfo, bool) {
	info := &reqInfo{host: r.Host}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if err := h.buffer(r, info); err != nil {
			h.log.Debug("reading request body", "err", err)
			writeRPCError(w, http.StatusBadRequest, nil, "mcp-oauth-proxy: reading the request body: "+err.Error(), "")
			return nil, false
		}
	}
	return info, true
}

// flushWriter flushes after every write, so that whatever the upstream
// streams, of any Content-Type and length, reaches the client as it
// arrives. ReverseProxy's FlushInterval -1 would do that too, but it also
// flushes the headers of every response from a timer goroutine: a goroutine
// per request and, when the timer wins the race with the body, one more
// write and wake-up. A response of known length now leaves with its first
// bytes of body. The headers of a response that ReverseProxy streams (an
// event stream, or a body of unknown length) are sent at once by
// WriteHeader.
type flushWriter struct {
	http.ResponseWriter
	early bool // set by ModifyResponse: send the headers with WriteHeader
	apart bool // ... from a goroutine of their own (an event stream answering a GET)
}

func (w *flushWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if err == nil {
		// As ReverseProxy does: a failed flush shows in the next write.
		http.NewResponseController(w.ResponseWriter).Flush()
	}
	return n, err
}

// WriteHeader sends the headers of a streamed response at once, where
// ReverseProxy would start a timer goroutine that races with the first
// event. Writing headers is net/http's deepest call (3.8 KiB of stack):
// for an event stream answering a GET, which stays open and mostly idle
// for hours, it runs on a short-lived goroutine, so that the stream's own
// goroutine keeps a stack of 8 KiB rather than 16 (see serve).
func (w *flushWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	if !w.early || code < http.StatusOK {
		return
	}
	if !w.apart {
		http.NewResponseController(w.ResponseWriter).Flush()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		http.NewResponseController(w.ResponseWriter).Flush()
	}()
	<-done
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *flushWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (h *handler) buffer(r *http.Request, info *reqInfo) error {
	if h.maxBody < 0 {
		info.streamed = true
		return nil
	}
	var buf []byte
	var err error
	if r.ContentLength > 0 && r.ContentLength <= h.maxBody {
		// The length is known: one allocation of the right size.
		buf = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, buf)
	} else {
		buf, err = io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	}
	if err != nil {
		return err
	}
	if int64(len(buf)) > h.maxBody {
		info.streamed = true
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	info.body = buf
	info.reader = io.NopCloser(bytes.NewReader(buf))
	r.Body = info.reader
	r.ContentLength = int64(len(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// rewrite maps the inbound request onto the upstream origin.
func (h *handler) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.URL.Scheme, out.URL.Host, out.URL.User = h.up.Scheme, h.up.Host, nil
	out.Host = h.up.Host
	// ReverseProxy drops query parameters it cannot parse; keep them all.
	out.URL.RawQuery, out.URL.ForceQuery = in.URL.RawQuery, in.URL.ForceQuery
	if in.URL.RawQuery == "" && !in.URL.ForceQuery && in.URL.EscapedPath() == h.upPath {
		out.URL.RawQuery, out.URL.ForceQuery = h.up.RawQuery, h.up.ForceQuery
	}
	// Header keys are canonical for HTTP/1 and HTTP/2 requests, but
	// compare without case anyway: these must never leak upstream, not
	// even as trailers of a chunked body.
	for _, h := range []http.Header{out.Header, out.Trailer} {
		for k := range h {
			if strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "X-HF-Authorization") {
				delete(h, k)
			}
		}
	}
	out.Header.Del("Origin")
	out.Header.Del("Referer")
	for k, v := range h.headers {
		out.Header[k] = slices.Clone(v)
	}
	if h.legacy && out.Method == http.MethodGet {
		// The endpoint event must be readable to be rewritten.
		out.Header.Del("Accept-Encoding")
	}
	if info := infoFrom(in.Context()); info.reader != nil && in.Body == info.reader && out.Body != nil {
		// ReverseProxy wraps the body; unwrapped, the Transport sees an
		// in-memory body and sends headers and body in one write. Nothing
		// reads the inbound body once it is buffered (replays use
		// GetBody), so its unread reader goes.
		out.Body = info.reader
	}
}

// modifyResponse points same-origin redirects and the legacy endpoint event
// back at the listener.
func (h *handler) modifyResponse(res *http.Response) error {
	if res.StatusCode < 100 {
		// ReverseProxy's WriteHeader would panic: a 502 instead.
		return fmt.Errorf("proxy: upstream answered with status %03d", res.StatusCode)
	}
	info := infoFrom(res.Request.Context())
	// An event stream answering a GET stays open and mostly idle: it gets a
	// small copy buffer. One answering a POST ends with its answer, which
	// may be large: the default buffer.
	stream := isEventStream(res.Header)
	info.buffers.stream = res.Request.Method == http.MethodGet && stream
	// The responses ReverseProxy flushes as they come (its flushInterval).
	info.w.early = stream || res.ContentLength < 0
	info.w.apart = info.buffers.stream
	if loc := res.Header.Get("Location"); loc != "" {
		if local, ok := h.localURL(loc, info); ok {
			res.Header.Set("Location", local)
		} else if u, err := url.Parse(loc); err == nil && u.Host != "" {
			h.log.Info("upstream redirects to another origin; passing the redirect to the client without following it",
				"status", res.StatusCode, "location", redact(u))
		}
	}
	if h.legacy && res.Request.Method == http.MethodGet && res.StatusCode == http.StatusOK && isEventStream(res.Header) {
		if ce := res.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
			h.log.Warn("legacy SSE stream is compressed; its endpoint event cannot be rewritten", "content-encoding", ce)
			return nil
		}
		res.Body = newEndpointRewriter(res.Body, func(data string) string { return h.rewriteEndpoint(data, info) })
		// The rewrite may change the length.
		res.Header.Del("Content-Length")
		res.ContentLength = -1
	}
	return nil
}

func isEventStream(hdr http.Header) bool {
	// mime.ParseMediaType would allocate for every response.
	mt, _, _ := strings.Cut(hdr.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// rewriteEndpoint returns the legacy SSE endpoint URI the client should use.
func (h *handler) rewriteEndpoint(data string, info *reqInfo) string {
	uri := strings.TrimSpace(data)
	if local, ok := h.localURL(uri, info); ok {
		h.log.Debug("rewrote the SSE endpoint to the listener")
		return local
	}
	if u, err := url.Parse(uri); err != nil {
		h.log.Warn("SSE endpoint event is not a URI; passed on unchanged", "err", err)
	} else if u.Host != "" {
		h.log.Warn("SSE endpoint is on another origin; passed on unchanged, so the client will post there directly, without the proxy and its token",
			"endpoint", redact(u))
	}
	return data
}

// localURL rewrites an absolute URL on the upstream origin to the same path
// and query on the listener. Relative references need no change (paths map
// one to one) and other origins are left alone: both report false.
func (h *handler) localURL(ref string, info *reqInfo) (string, bool) {
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" || info.host == "" {
		return "", false
	}
	if u.Scheme == "" { // network-path reference, "//host/path"
		u.Scheme = h.up.Scheme
	}
	if !onUpstream(u, h.up) {
		return "", false
	}
	l, err := url.Parse("http://" + info.host)
	if err != nil {
		return "", false
	}
	u.Scheme, u.Host, u.User = l.Scheme, l.Host, nil
	return u.String(), true
}

// onUpstream reports whether u is on the upstream up's origin. Plain http
// on the default port of an https upstream's host counts too: a server
// behind a TLS-terminating proxy writes its own URLs (a legacy endpoint, a
// trailing-slash redirect) with the scheme it is spoken to in. Requests
// to it still go to up, over https.
func onUpstream(u, up *url.URL) bool {
	if sameOrigin(u, up) {
		return true
	}
	return strings.EqualFold(u.Scheme, "http") && strings.EqualFold(up.Scheme, "https") &&
		strings.EqualFold(u.Hostname(), up.Hostname()) && portOf(u) == "80" && portOf(up) == "443"
}

// sameOrigin reports whether a and b have the same scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// errorHandler answers a request the proxy could not complete.
func (h *handler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	id := requestID(infoFrom(r.Context()).body)
	if ae, ok := errors.AsType[*authError](err); ok {
		h.log.Warn("authorization", "status", ae.status, "err", ae)
		writeRPCError(w, ae.status, id, ae.Error(), ae.LoginURL())
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away, or the proxy is shutting down.
		h.log.Debug("request canceled", "method", r.Method, "path", r.URL.Path)
		writeRPCError(w, http.StatusBadGateway, id, "mcp-oauth-proxy: request to "+h.upName+" canceled", "")
		return
	}
	cause := err
	if ue, ok := errors.AsType[*url.Error](err); ok {
		cause = ue.Err // its URL may carry a query
	}
	h.log.Error("upstream request failed", "method", r.Method, "path", r.URL.Path, "err", cause)
	writeRPCError(w, http.StatusBadGateway, id, fmt.Sprintf("mcp-oauth-proxy: upstream %s: %v", h.upName, cause), "")
}

// serveLogged serves a request and logs it at debug level when it ends (for
// a stream, when the stream closes). The query is left out: it may carry
// session ids.
func (h *handler) serveLogged(w http.ResponseWriter, r *http.Request) {
	ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
	start := time.Now()
	defer func() {
		h.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", ww.Status(),
			"bytes", ww.BytesWritten(), "duration", time.Since(start).Round(time.Millisecond))
	}()
	h.serve(ww, r)
}
