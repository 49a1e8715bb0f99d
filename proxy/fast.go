package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
)

// fastPath forwards the request MCP clients send all the time, a buffered
// POST to the endpoint of a plain-http upstream, without ReverseProxy and
// the transports stacked under it. Through those the proxy added 25–40 µs
// per request more than a forwarder that only forwards (bench/minimal,
// BENCHMARKS.md), none of it in one place: copies of the request and its
// headers, the response, their header maps, contexts and hooks, each small
// and each run on cold caches at one request at a time.
//
// It sends what the full path would send, byte for byte: the request as
// ReverseProxy, handler.rewrite and authTransport make it, written as
// writeRequest writes it. It reads the answer with parseResponse, and
// passes on only an answer the full path would pass on unchanged and in
// the same writes (see passOn), copied as ReverseProxy copies it. Any
// other answer, and any failure, is handed to the full path as the result
// of its first round trip (sentRequest), so that challenges, redirects,
// streams and errors are handled in one place. TestFastPathMatchesFullPath
// holds the two paths to the same bytes upstream and to the client.
type fastPath struct {
	t    *h1Transport
	auth *authTransport
	rec  *wire.Transport // records exchanges when it only records; nil: none
	addr string          // the upstream's host:port
	url  *url.URL        // the upstream request's URL: the endpoint and its query
	uri  string          // its request target

	served atomic.Uint64 // answers passed on, for tests
}

// newFastPath returns the fast path of h, whose upstream transport is
// base (under the authTransport), or nil when its requests cannot take it.
func newFastPath(h *handler, base http.RoundTripper) *fastPath {
	rec, ok := base.(*wire.Transport)
	if ok {
		base = rec.Base
	}
	t, ok := base.(*h1Transport)
	if !ok || !canPeek || h.up.Scheme != "http" || !plainHost(h.up.Host) || h.legacy {
		return nil
	}
	u := *h.up
	u.User = nil
	uri := u.RequestURI()
	for i := range len(uri) {
		if uri[i] <= ' ' || uri[i] == 0x7f {
			return nil
		}
	}
	for k, vs := range h.headers {
		if !isToken(k) || fastSkipped(k) || k == "User-Agent" {
			return nil
		}
		for _, v := range vs {
			if !plainValue(v) {
				return nil
			}
		}
	}
	if t.viaProxy(&http.Request{Method: http.MethodPost, URL: &u, Header: http.Header{}}) {
		return nil
	}
	return &fastPath{t: t, auth: h.upstream.(*authTransport), rec: rec, addr: hostPort(&u), url: &u, uri: uri}
}

// sameQuery reports whether the full path sends a request to u upstream
// with the query of f.url: u has none (rewrite adds the upstream's), or
// the upstream's (the listener's URL carries it).
func (f *fastPath) sameQuery(u *url.URL) bool {
	return u.RawQuery == "" && !u.ForceQuery || u.RawQuery == f.url.RawQuery && u.ForceQuery == f.url.ForceQuery
}

// fastSkipped reports whether a request header named k (canonical) is one
// the full path does not send as the client sent it: hop-by-hop headers
// and forwarding headers (ReverseProxy), credentials and the browser's
// headers (rewrite), and the ones writeRequest writes itself.
func fastSkipped(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"Authorization", "X-Hf-Authorization", "Origin", "Referer",
		"Host", "User-Agent", "Content-Length", "Expect":
		return true
	}
	return false
}

// sentRequest is the first round trip of a request the fast path sent but
// did not answer: the full path takes it as its transport's result.
type sentRequest struct {
	c     *h1Conn        // the connection the request went on, its answer unread; or
	res   *http.Response // the answer, its head read; or
	err   error          // why the round trip failed
	token string         // the token sent, "" for none
	start time.Time      // when it was sent, for the recorder (wire.SentKey)
}

// result is what h1Transport.RoundTrip returns for req, the full path's
// copy of the request s sent.
func (s *sentRequest) result(t *h1Transport, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	switch {
	case s.res != nil:
		s.res.Request = req
		return s.res, nil
	case s.c != nil:
		res, err := s.c.receive(t, req)
		if err == nil {
			return res, nil
		}
		s.c.close()
		s.err = err
	}
	closeBody(req)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, s.err
}

// sentFrom returns the round trip the fast path made for the request of
// ctx and did not answer, or nil.
func sentFrom(ctx context.Context) *sentRequest {
	if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return info.sent
	}
	return nil
}

// serveFast answers r on the fast path and reports whether it did. When it
// did not, the full path serves r, and sent is the round trip the fast
// path made, if it made one, for the full path's first.
func (h *handler) serveFast(w http.ResponseWriter, r *http.Request) (done bool, sent *sentRequest) {
	f := h.fast
	if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody ||
		r.ContentLength <= 0 || r.ContentLength > min(maxDirectBody, h.maxBody) || r.Close ||
		len(r.TransferEncoding) > 0 || len(r.Trailer) > 0 || r.ProtoMajor != 1 ||
		!f.sameQuery(r.URL) || r.URL.EscapedPath() != h.upPath {
		return false, nil
	}
	ctx := r.Context()
	if f.rec != nil && !f.rec.Direct(ctx) {
		return false, nil // the exchange is logged or written to a HAR file
	}
	lines, ok := f.upstreamLines(r.Header, h.headers)
	if !ok || h.guard.check(r) != nil {
		return false, nil // the full path refuses it, with a reason
	}
	// As prepare buffers it; the full path buffers it again when it
	// takes over.
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		h.log.Debug("reading request body", "err", err)
		writeRPCError(w, http.StatusBadRequest, nil, "mcp-oauth-proxy: reading the request body: "+err.Error(), "")
		return true, nil
	}
	done, sent = h.forwardFast(w, r, lines, body)
	if !done {
		r.Body = io.NopCloser(bytes.NewReader(body)) // for the full path
	}
	return done, sent
}

// forwardFast sends r, whose body is body and whose header lines upstream
// are lines, and passes the answer on if passOn lets it, for serveFast.
func (h *handler) forwardFast(w http.ResponseWriter, r *http.Request, lines []headerLines, body []byte) (done bool, sent *sentRequest) {
	f, ctx := h.fast, r.Context()
	// The token now, as the full path takes it once the body is in: a
	// slow client's body may outlast a refresh.
	var tok string
	if f.auth.auth != nil {
		var err error
		tok, err = f.auth.auth.Token(ctx)
		// Without a token the full path decides (and logs why); one that
		// writeRequest would leave to Request.Write, which cleans it, too.
		if err != nil || tok == "" || !plainValue(tok) {
			return false, nil
		}
	}
	if ctx.Err() != nil {
		return false, nil // the client went away or the proxy is shutting down
	}

	start := time.Now()
	c, _, err := f.t.conn(ctx, f.addr)
	if err != nil {
		return false, &sentRequest{err: err, token: tok, start: start}
	}
	bw := c.startRequest(f.t, ctx)
	f.writeRequest(bw, r.Header, lines, tok, body)
	if err := c.endRequest(f.t, bw, nil); err != nil {
		c.close()
		return false, &sentRequest{err: err, token: tok, start: start}
	}
	if err := c.await(f.t); err != nil {
		c.close()
		return false, &sentRequest{err: err, token: tok, start: start}
	}
	res, direct := parseResponse(c.br, r)
	if !direct {
		return false, &sentRequest{c: c, token: tok, start: start}
	}
	res = c.direct(f.t, ctx, res, true)
	if !passOn(res) {
		return false, &sentRequest{res: res, token: tok, start: start}
	}
	f.served.Add(1)
	if f.rec != nil {
		f.rec.Answer(ctx, start, r.Method, f.url, tok, body, res)
	}
	// As ReverseProxy passes an answer on: its end-to-end headers, the
	// status, then the body as it reads it, each read flushed (as
	// flushWriter does for the full path).
	for k := range res.Header {
		if hopHeader(k) {
			delete(res.Header, k)
		}
	}
	var out io.Writer
	if rw, ok := w.(*response); ok && rw.adoptHeader(res.Header) {
		// The listener's response: the header needs no copy, and the
		// flush no ResponseController.
		out = (*flushingResponse)(rw)
	} else {
		hdr := w.Header()
		for k, vs := range res.Header {
			hdr[k] = append(hdr[k], vs...)
		}
		out = &flushWriter{ResponseWriter: w}
	}
	w.WriteHeader(res.StatusCode)
	b := h.large.get()
	err = h.copyBody(out, res.Body, *b)
	h.large.put(b)
	res.Body.Close()
	if err != nil {
		if ctx.Value(http.ServerContextKey) == nil {
			// As ReverseProxy: no server to recover the panic.
			h.rp.ErrorLog.Printf("suppressing panic for copyResponse error in test; copy error: %v", err)
			return true, nil
		}
		// The client must not take what it got for the whole answer.
		panic(http.ErrAbortHandler)
	}
	return true, nil
}

// passOn reports whether the fast path passes res on itself: an answer
// the full path would pass on unchanged, and in the same writes.
func passOn(res *http.Response) bool {
	switch {
	case res.StatusCode < http.StatusOK, res.StatusCode == http.StatusUnauthorized, res.StatusCode == http.StatusForbidden:
		return false // informational, or a challenge
	case res.ContentLength > copyBufferSize:
		return false // ReverseProxy copies it in more than one buffer
	case len(res.Header["Location"]) > 0, isEventStream(res.Header):
		return false // rewritten, or streamed
	case len(res.Header["Content-Type"]) == 0 && res.ContentLength > 0:
		// The listener sniffs one from the first write, and ReverseProxy
		// writes what each read of the body returns.
		return false
	}
	return true
}

// copyBody copies the answer's body to w as ReverseProxy.copyBuffer does,
// and logs a read error as it does.
func (h *handler) copyBody(w io.Writer, body io.Reader, buf []byte) error {
	for {
		nr, rerr := body.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			h.rp.ErrorLog.Printf("httputil: ReverseProxy read error during body copy: %v", rerr)
		}
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			if werr != nil {
				return werr
			}
			if nr != nw {
				return io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// hopHeader reports whether a response header named k (canonical) is one
// ReverseProxy does not pass on. parseResponse has refused answers with a
// Connection header, which could name more.
func hopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// upstreamLines returns the headers the full path sends upstream besides
// Host, User-Agent and Content-Length, sorted as writeRequest writes them,
// or false when the client's headers hold anything the full path would
// change in a way this one does not follow. Each has the client's values,
// the configured ones, or (with values nil) the token.
func (f *fastPath) upstreamLines(in, configured http.Header) ([]headerLines, bool) {
	if len(in["Te"]) > 0 || len(in["Upgrade"]) > 0 || len(in["Expect"]) > 0 || len(in["Transfer-Encoding"]) > 0 {
		return nil, false
	}
	if ua := in["User-Agent"]; len(ua) > 0 && !plainValue(ua[0]) {
		return nil, false // writeRequest leaves it to Request.Write, which cleans it
	}
	for _, v := range in["Connection"] {
		// ReverseProxy also drops the headers a Connection header names;
		// keep-alive names only Keep-Alive, which it drops anyway.
		if !strings.EqualFold(strings.TrimSpace(v), "keep-alive") {
			return nil, false
		}
	}
	lines := make([]headerLines, 0, len(in)+len(configured)+1)
	for k, vs := range in {
		if !isToken(k) {
			return nil, false
		}
		if fastSkipped(k) || configured[k] != nil || strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "X-Hf-Authorization") {
			continue
		}
		for _, v := range vs {
			if !plainValue(v) {
				return nil, false
			}
		}
		lines = append(lines, headerLines{k, vs})
	}
	for k, vs := range configured {
		lines = append(lines, headerLines{k, vs})
	}
	if f.auth.auth != nil {
		lines = append(lines, headerLines{name: "Authorization"})
	}
	slices.SortFunc(lines, func(a, b headerLines) int { return strings.Compare(a.name, b.name) })
	return lines, true
}

// writeRequest writes the request the full path would write for a client
// request with header in, lines from upstreamLines, the token tok and body.
func (f *fastPath) writeRequest(bw *bufio.Writer, in http.Header, lines []headerLines, tok string, body []byte) {
	bw.WriteString("POST ")
	bw.WriteString(f.uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(f.url.Host)
	bw.WriteString("\r\n")
	// ReverseProxy sends no User-Agent unless the client sent one.
	if ua := in["User-Agent"]; len(ua) > 0 && ua[0] != "" {
		writeField(bw, "User-Agent", ua[0])
	}
	writeLength(bw, int64(len(body)))
	for _, l := range lines {
		if l.values == nil {
			bw.WriteString("Authorization: Bearer ")
			bw.WriteString(tok)
			bw.WriteString("\r\n")
			continue
		}
		for _, v := range l.values {
			writeField(bw, l.name, v)
		}
	}
	bw.WriteString("\r\n")
	bw.Write(body)
}
