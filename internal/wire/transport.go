package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
)

// DefaultMaxBody is how much of each request and response body is kept
// for the log and the HAR file when Transport.MaxBody is zero.
const DefaultMaxBody = 64 << 10

// rpcPeek is how much of a request body is read for its JSON-RPC method
// and id when bodies are not kept.
const rpcPeek = 4 << 10

// BodyKey is the context key under which a request's context may offer the
// request's whole body, in memory, to Transport: the value has a method
// RequestBody() []byte that returns it, and the bytes must not change
// afterwards. A Transport that only records then keeps a reference instead
// of a copy. The proxy's contexts offer the bodies it buffered.
var BodyKey = &contextKey{"request-body"}

// SentKey is the context key under which a request's context may offer,
// as a time.Time, when the request was sent: by a caller that sent it
// before RoundTrip, which then only reads the answer. The exchange's Time
// and Duration start there.
var SentKey = &contextKey{"sent"}

// contextKey is the type of BodyKey and SentKey, as net/http's context keys.
type contextKey struct{ name string }

func (k *contextKey) String() string { return "wire context key " + k.name }

// Transport records every exchange made through Base: it logs it, adds it
// to Recorder and writes it to HAR, each when set. It never buffers a
// response: it counts (and, for the log and HAR, keeps the first MaxBody
// bytes of) the body as the caller reads it, and the exchange ends when
// the body does; for an event stream a line is also logged when it opens.
// Request bodies are read through GetBody when there is one (the proxy
// buffers them), else counted as Base sends them.
//
// With only a Recorder (no Logger enabled at Info, no HAR, no Bodies, not
// KindOAuth), as serve's status page has it, an exchange costs one
// allocation, of the exchange itself: the URL and a body offered under
// BodyKey are kept by reference (of a body larger than 4 KiB, a copy of its
// start), and Recorder.Recent redacts and parses them for the exchanges it
// returns. Nothing of the response body is kept.
type Transport struct {
	// Base makes the requests; nil means http.DefaultTransport.
	Base http.RoundTripper

	// Server names the server in every Exchange; "" means the name set on
	// the request's context by WithServer.
	Server string

	// Kind is every Exchange's kind; "" means KindMCP. KindOAuth derives
	// an oauth:… kind from each request.
	Kind string

	// Recorder, when set, keeps the last exchanges.
	Recorder *Recorder

	// Logger, when set, receives one line per exchange at Info, and two
	// for an event stream.
	Logger *slog.Logger

	// Bodies adds the redacted request and response bodies to the log
	// lines. The HAR file always has them.
	Bodies bool

	// HAR, when set, receives every exchange.
	HAR *HARWriter

	// SecretHeaders names request headers (any case) whose values the HAR
	// file fingerprints whatever their names say: the headers a server is
	// configured with hold API keys under names like X-Key.
	SecretHeaders []string

	// MaxBody is how much of each body is kept for the log and the HAR
	// file; the rest is counted, not kept. Zero means DefaultMaxBody.
	MaxBody int

	// fp caches the fingerprint of the last bearer token sent: a token
	// serves many requests, and hashing it for each cost more than the
	// rest of the recording.
	fp atomic.Pointer[fingerprint]
}

type fingerprint struct{ token, fp string }

func (t *Transport) base() http.RoundTripper {
	if t.Base == nil {
		return http.DefaultTransport
	}
	return t.Base
}

// keepBodies reports whether bodies are kept, for the log or HAR.
func (t *Transport) keepBodies() bool { return t.Bodies || t.HAR != nil }

// keep returns how much of each body to keep for the log or HAR.
func (t *Transport) keep() int {
	if t.MaxBody > 0 {
		return t.MaxBody
	}
	return DefaultMaxBody
}

// logs reports whether exchanges are logged.
func (t *Transport) logs(ctx context.Context) bool {
	return t.Logger != nil && t.Logger.Enabled(ctx, slog.LevelInfo)
}

// fingerprint returns redact.Fingerprint(tok), from the cache when tok is
// the token of the last request.
func (t *Transport) fingerprint(tok string) string {
	if c := t.fp.Load(); c != nil && c.token == tok {
		return c.fp
	}
	fp := redact.Fingerprint(tok)
	t.fp.Store(&fingerprint{token: tok, fp: fp})
	return fp
}

// RoundTrip implements http.RoundTripper. It is kept small, its work done
// in calls that return before the request is sent: the proxy forwards
// every request through it, and each frame here adds to the stack that
// an open stream keeps.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	x, out := t.begin(req)
	res, err := t.base().RoundTrip(out)
	return x.response(res, err)
}

// begin starts the exchange of req and returns it with the request to
// send.
func (t *Transport) begin(req *http.Request) (*exchange, *http.Request) {
	ctx := req.Context()
	start, ok := ctx.Value(SentKey).(time.Time)
	if !ok {
		start = time.Now()
	}
	x := &exchange{t: t, start: start, logs: t.logs(ctx)}
	x.Exchange = Exchange{
		Time:   x.start,
		Server: t.Server,
		Kind:   t.Kind,
		Method: req.Method,
		Replay: IsReplay(ctx),
	}
	if x.Server == "" {
		x.Server = ServerFrom(ctx)
	}
	if tok := bearer(req.Header); tok != "" {
		x.token = tok
		x.TokenFingerprint = t.fingerprint(tok)
	}
	x.reqType = req.Header.Get("Content-Type")
	// Only the Recorder reads the exchange: hold what it derives by
	// reference, for Recent.
	lazy := !x.logs && !t.keepBodies() && t.Kind != KindOAuth
	if lazy {
		x.url = req.URL
	} else {
		x.URL = redact.RequestURL(req.URL)
	}
	out := x.readRequest(req, lazy)
	if x.Kind == "" {
		x.Kind = KindMCP
	} else if x.Kind == KindOAuth {
		x.Kind = oauthKind(req, x.reqType, x.reqBody)
	}
	if t.HAR != nil {
		x.har = newHARRequest(req, t.SecretHeaders)
	}
	return x, out
}

// response records the response headers (or err) and returns res with its
// body counted.
func (x *exchange) response(res *http.Response, err error) (*http.Response, error) {
	x.headers = time.Now()
	if err != nil {
		x.finish(err)
		return nil, err
	}
	x.Status = res.StatusCode
	x.respType = res.Header.Get("Content-Type")
	x.Stream = isEventStream(x.respType)
	if x.t.HAR != nil {
		x.har.setResponse(res)
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// The body is the connection, read and written by the caller.
		x.finish(nil)
		return res, nil
	}
	body := &x.body
	*body = countingBody{rc: res.Body, x: x}
	if x.t.keepBodies() {
		body.keep = x.t.keep()
	}
	if x.Stream {
		body.sse = new(sseCounter)
		x.Open, x.Duration = true, x.headers.Sub(x.start)
		e := x.entry()
		e.live = body
		x.id = x.t.Recorder.add(e)
		if x.logs {
			x.log("stream opened", nil)
		}
	}
	res.Body = body
	return res, nil
}

// exchange is one exchange in progress: a single allocation per request,
// the response body's counter included.
type exchange struct {
	Exchange
	t       *Transport
	start   time.Time
	headers time.Time // when the response headers arrived
	logs    bool      // lines are logged
	token   string    // bearer token sent, to scrub from errors and kept bodies
	id      uint64    // Recorder id of an open stream

	url *url.URL // the request's URL, when x.URL is left to the Recorder
	rpc []byte   // the request's body, when its method and id are left to the Recorder

	reqType  string // request Content-Type
	respType string // response Content-Type
	reqBody  []byte // the kept part of the request body
	reqCount *countingBody
	respBody []byte // the kept part of the response body
	har      *harEntry
	body     countingBody // the response body

	once sync.Once
}

// entry returns what the Recorder keeps of x.
func (x *exchange) entry() entry {
	return entry{x: x.Exchange, url: x.url, rpc: x.rpc}
}

// requestBody is what a context offers under BodyKey.
type requestBody interface{ RequestBody() []byte }

// readRequest notes the request body's size and JSON-RPC method and id,
// keeping as much of the body as the log or HAR need, and returns the
// request to send: req itself, or a copy whose body is counted as sent.
// When lazy, a body the context offers under BodyKey is held by reference
// instead of read.
func (x *exchange) readRequest(req *http.Request, lazy bool) *http.Request {
	if req.Body == nil || req.Body == http.NoBody {
		return req
	}
	peek := rpcPeek
	if x.t.keepBodies() {
		peek = x.t.keep()
	}
	if lazy {
		if rb, ok := req.Context().Value(BodyKey).(requestBody); ok {
			if b := rb.RequestBody(); int64(len(b)) == req.ContentLength {
				// The Recorder holds at most rpcPeek bytes per exchange:
				// the start of a larger body is copied.
				x.ReqBytes, x.rpc = req.ContentLength, b
				if cap(b) > rpcPeek {
					x.rpc = append([]byte(nil), b[:rpcPeek]...)
				}
				return req
			}
		}
	}
	if req.GetBody != nil {
		x.ReqBytes = req.ContentLength
		if rc, err := req.GetBody(); err == nil {
			x.reqBody, _ = io.ReadAll(io.LimitReader(rc, int64(peek)))
			rc.Close()
		}
		if x.ReqBytes < 0 {
			x.ReqBytes = -1 // unknown
		}
		x.RPCMethod, x.RPCID = parseRPC(x.reqBody)
		return req
	}
	// A body sent as it is read: count it on the way.
	x.reqCount = &countingBody{rc: req.Body, keep: peek}
	out := new(http.Request)
	*out = *req
	out.Body = x.reqCount
	return out
}

// finish ends the exchange once: it records, logs and writes it.
func (x *exchange) finish(err error) {
	x.once.Do(func() { x.end(err) })
}

func (x *exchange) end(err error) {
	end := time.Now()
	if x.headers.IsZero() {
		x.headers = end
	}
	x.Duration = end.Sub(x.start)
	x.Open = false
	if c := x.reqCount; c != nil {
		n, kept := c.result()
		x.ReqBytes, x.reqBody = n, kept
		if x.RPCMethod == "" && x.RPCID == "" {
			x.RPCMethod, x.RPCID = parseRPC(x.reqBody)
		}
	}
	switch {
	case err == nil || errors.Is(err, io.EOF):
	case errors.Is(err, context.Canceled):
		// How a client ends a stream; before any answer, it gave up.
		if x.Status == 0 {
			x.Err = "cancelled: the client gave up before the answer came"
		}
	default:
		x.Err = redact.Scrub(redact.Text(err.Error()), x.token)
	}
	if x.Stream {
		x.t.Recorder.update(x.id, x.entry())
	} else {
		x.t.Recorder.add(x.entry())
	}
	if !x.logs && x.t.HAR == nil {
		return
	}
	msg := "exchange"
	if x.Stream {
		msg = "stream closed"
	}
	var reqText, reqNote, respText, respNote string
	if x.t.keepBodies() {
		reqText, reqNote = x.bodyText(x.reqType, x.reqBody, x.ReqBytes)
		respText, respNote = x.bodyText(x.respType, x.respBody, x.RespBytes)
	}
	if x.logs && x.t.Bodies {
		x.log(msg, []slog.Attr{
			slog.String("req_body", withNote(reqText, reqNote)),
			slog.String("resp_body", withNote(respText, respNote)),
		})
	} else if x.logs {
		x.log(msg, nil)
	}
	if x.t.HAR != nil {
		x.har.finish(x, end, reqText, reqNote, respText, respNote)
		x.t.HAR.add(x.har)
	}
}

// log writes the exchange's line.
func (x *exchange) log(msg string, extra []slog.Attr) {
	l := x.t.Logger
	a := make([]slog.Attr, 0, 16+len(extra))
	a = append(a,
		slog.String("server", x.Server),
		slog.String("kind", x.Kind),
		slog.String("method", x.Method),
		slog.String("url", x.URL),
	)
	if x.RPCMethod != "" {
		a = append(a, slog.String("rpc_method", x.RPCMethod))
	}
	if x.RPCID != "" {
		a = append(a, slog.String("rpc_id", x.RPCID))
	}
	a = append(a,
		slog.Int("status", x.Status),
		slog.Duration("duration", x.Duration),
		slog.Int64("req_bytes", x.ReqBytes),
	)
	if !x.Open {
		a = append(a, slog.Int64("resp_bytes", x.RespBytes))
	}
	if x.TokenFingerprint != "" {
		a = append(a, slog.String("token", x.TokenFingerprint))
	}
	a = append(a, slog.Bool("replay", x.Replay))
	if x.Stream && !x.Open {
		a = append(a, slog.Int("events", x.Events))
	}
	if x.Err != "" {
		a = append(a, slog.String("err", x.Err))
	}
	a = append(a, extra...)
	l.LogAttrs(context.Background(), slog.LevelInfo, msg, a...)
}

// bodyText returns the kept part of a body, redacted, and a note when it
// is not the whole body or cannot be shown.
func (x *exchange) bodyText(contentType string, kept []byte, size int64) (text, note string) {
	if len(kept) == 0 {
		return "", ""
	}
	cut := size < 0 || int64(len(kept)) < size
	if cut {
		kept = trimPartialRune(kept)
	}
	if !utf8.Valid(kept) {
		return "", fmt.Sprintf("binary body of %s not kept", sizeText(size))
	}
	text = redact.Scrub(redact.Body(contentType, kept), x.token)
	if cut {
		note = fmt.Sprintf("truncated: the first %d bytes of %s are kept", len(kept), sizeText(size))
	}
	return text, note
}

func sizeText(n int64) string {
	if n < 0 {
		return "a body of unknown size"
	}
	return fmt.Sprintf("%d bytes", n)
}

func withNote(text, note string) string {
	if note == "" {
		return text
	}
	if text == "" {
		return "(" + note + ")"
	}
	return text + " …(" + note + ")"
}

// trimPartialRune drops a multi-byte character cut at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			return b
		}
	}
	return b
}

// countingBody counts (and keeps the first bytes of) a body as it is read,
// and, for a response, ends the exchange when the body does.
type countingBody struct {
	rc   io.ReadCloser
	keep int         // bytes to keep
	x    *exchange   // the exchange to end; nil for a request body
	sse  *sseCounter // nil unless an event stream

	mu   sync.Mutex // Close may race with Read
	n    int64
	kept []byte
	done bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	if !b.done {
		b.n += int64(n)
		if room := b.keep - len(b.kept); room > 0 {
			b.kept = append(b.kept, p[:min(n, room)]...)
		}
		if b.sse != nil {
			b.sse.scan(p[:n])
		}
	}
	b.mu.Unlock()
	if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *countingBody) Close() error {
	err := b.rc.Close()
	b.end(nil)
	return err
}

// end ends a response's exchange, once; a request body only stops counting.
func (b *countingBody) end(err error) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	if x := b.x; x != nil {
		x.RespBytes, x.respBody = b.n, b.kept
		if b.sse != nil {
			x.Events = b.sse.events
		}
		x.finish(err)
	}
}

// progress returns the bytes and events counted so far.
func (b *countingBody) progress() (n int64, events int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sse != nil {
		events = b.sse.events
	}
	return b.n, events
}

// result returns the bytes counted and kept so far.
func (b *countingBody) result() (int64, []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, b.kept
}

func bearer(h http.Header) string {
	scheme, tok, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// isEventStream reports whether contentType is text/event-stream, with
// any parameters (mime.ParseMediaType would allocate for every response).
func isEventStream(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// sseCounter counts the events of a Server-Sent Events stream as it
// passes: an event is a block of lines with at least one field (comments,
// such as keep-alives, do not count) ended by a blank line.
type sseCounter struct {
	events  int
	lineLen int  // bytes in the current line
	comment bool // the current line is a comment
	field   bool // the current event has a field
	afterCR bool // the last byte was \r: a following \n ends the same line
}

func (s *sseCounter) scan(p []byte) {
	for _, c := range p {
		if s.afterCR && c == '\n' {
			s.afterCR = false
			continue
		}
		s.afterCR = c == '\r'
		if c == '\n' || c == '\r' {
			if s.lineLen == 0 {
				if s.field {
					s.events++
					s.field = false
				}
			} else if !s.comment {
				s.field = true
			}
			s.lineLen, s.comment = 0, false
			continue
		}
		if s.lineLen == 0 && c == ':' {
			s.comment = true
		}
		s.lineLen++
	}
}

// Direct reports whether an exchange made for ctx may be recorded with
// Answer rather than sent through RoundTrip: only the Recorder reads it
// (nothing is logged, no HAR, no bodies kept), so a caller that sends the
// request itself loses nothing by bypassing the Transport.
func (t *Transport) Direct(ctx context.Context) bool {
	return !t.logs(ctx) && !t.keepBodies() && t.Kind != KindOAuth
}

// Answer records an exchange made without RoundTrip (see Direct) as
// RoundTrip records one: a request with method to u, with body (held by
// reference, as RoundTrip holds a buffered body) and the bearer token tok,
// sent at start and answered with res. It counts res.Body as RoundTrip
// does, and the exchange is recorded when the body ends.
func (t *Transport) Answer(ctx context.Context, start time.Time, method string, u *url.URL, tok string, body []byte, res *http.Response) {
	x := &exchange{t: t, start: start}
	x.Exchange = Exchange{
		Time:   start,
		Server: t.Server,
		Kind:   t.Kind,
		Method: method,
		Replay: IsReplay(ctx),
	}
	if x.Server == "" {
		x.Server = ServerFrom(ctx)
	}
	if x.Kind == "" {
		x.Kind = KindMCP
	}
	if tok != "" {
		x.token = tok
		x.TokenFingerprint = t.fingerprint(tok)
	}
	x.url = u
	x.ReqBytes, x.rpc = int64(len(body)), body
	if cap(body) > rpcPeek {
		x.rpc = append([]byte(nil), body[:rpcPeek]...)
	}
	x.response(res, nil)
}
