package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
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
	mux      http.Handler
	upstream http.RoundTripper // authTransport around the base transport
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
	rp := &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      h.upstream,
		FlushInterval:  -1, // SSE and other streams: flush every write
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// No Compress, Timeout or RealIP middleware: they break streams or trust
	// client-supplied headers.
	r := chi.NewRouter()
	r.Use(h.logRequests, g.middleware(h), h.prepare)
	r.Handle("/*", rp)
	h.mux = r
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// newTransport returns the default upstream transport.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Pass the client's Accept-Encoding and the upstream's encoding through
	// untouched instead of decompressing streams on the way.
	t.DisableCompression = true
	// MCP clients send bursts of concurrent requests to one host.
	t.MaxIdleConnsPerHost = 32
	// A tool call may take minutes before its response headers arrive.
	t.ResponseHeaderTimeout = 0
	return t
}

// reqInfo is what the proxy knows about an inbound request; it travels in the
// request context to the transport, ModifyResponse and ErrorHandler.
type reqInfo struct {
	local    string // origin of the listener as the client named it, "http://" + Host
	body     []byte // the buffered body; nil when there was none or it was streamed
	streamed bool   // the body was too large to buffer and cannot be replayed
}

type reqInfoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return info
	}
	return &reqInfo{}
}

// prepare buffers the request body (up to maxBody) so the transport can replay
// the request, and records the request's reqInfo.
func (h *handler) prepare(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &reqInfo{local: "http://" + r.Host}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			if err := h.buffer(r, info); err != nil {
				h.log.Debug("reading request body", "err", err)
				writeRPCError(w, http.StatusBadRequest, nil, "mcp-oauth-proxy: reading the request body: "+err.Error(), "")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info)))
	})
}

func (h *handler) buffer(r *http.Request, info *reqInfo) error {
	if h.maxBody < 0 {
		info.streamed = true
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		return err
	}
	if int64(len(buf)) > h.maxBody {
		info.streamed = true
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	info.body = buf
	r.Body = io.NopCloser(bytes.NewReader(buf))
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
	for k := range out.Header {
		// Header keys are canonical for HTTP/1 and HTTP/2 requests, but
		// compare without case anyway: these must never leak upstream.
		if strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "X-HF-Authorization") {
			delete(out.Header, k)
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
}

// modifyResponse points same-origin redirects and the legacy endpoint event
// back at the listener.
func (h *handler) modifyResponse(res *http.Response) error {
	info := infoFrom(res.Request.Context())
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
	mt, _, _ := mime.ParseMediaType(hdr.Get("Content-Type"))
	return mt == "text/event-stream"
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
	if err != nil || u.Host == "" || info.local == "" {
		return "", false
	}
	if u.Scheme == "" { // network-path reference, "//host/path"
		u.Scheme = h.up.Scheme
	}
	if !sameOrigin(u, h.up) {
		return "", false
	}
	l, err := url.Parse(info.local)
	if err != nil {
		return "", false
	}
	u.Scheme, u.Host, u.User = l.Scheme, l.Host, nil
	return u.String(), true
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

// logRequests logs each request at debug level when it ends (for a stream,
// when the stream closes). The query is left out: it may carry session ids.
func (h *handler) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		defer func() {
			h.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", ww.Status(),
				"bytes", ww.BytesWritten(), "duration", time.Since(start).Round(time.Millisecond))
		}()
		next.ServeHTTP(ww, r)
	})
}
