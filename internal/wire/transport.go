package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
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

// Transport records every exchange made through Base: it logs it, adds it
// to Recorder and writes it to HAR, each when set. It never buffers a
// response: it counts (and keeps the first MaxBody bytes of) the body as
// the caller reads it, and the exchange ends when the body does; for an
// event stream a line is also logged when it opens. Request bodies are
// read through GetBody when there is one (the proxy buffers them), else
// counted as Base sends them.
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

	// MaxBody is how much of each body is kept for the log and the HAR
	// file; the rest is counted, not kept. Zero means DefaultMaxBody.
	MaxBody int
}

func (t *Transport) base() http.RoundTripper {
	if t.Base == nil {
		return http.DefaultTransport
	}
	return t.Base
}

// keep returns how much of each body to keep.
func (t *Transport) keep() int {
	switch {
	case t.HAR == nil && !t.Bodies:
		return rpcPeek // enough for the JSON-RPC method and id
	case t.MaxBody > 0:
		return t.MaxBody
	}
	return DefaultMaxBody
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	x := &exchange{t: t, start: time.Now(), keep: t.keep()}
	x.Exchange = Exchange{
		Time:   x.start,
		Server: t.Server,
		Kind:   t.Kind,
		Method: req.Method,
		URL:    redact.RequestURL(req.URL),
		Replay: IsReplay(ctx),
	}
	if x.Server == "" {
		x.Server = ServerFrom(ctx)
	}
	if tok := bearer(req.Header); tok != "" {
		x.token = tok
		x.TokenFingerprint = redact.Fingerprint(tok)
	}
	x.reqType = req.Header.Get("Content-Type")
	out := x.readRequest(req)
	if x.Kind == "" {
		x.Kind = KindMCP
	} else if x.Kind == KindOAuth {
		x.Kind = oauthKind(req, x.reqType, x.reqBody)
	}
	if t.HAR != nil {
		x.har = newHARRequest(req)
	}

	res, err := t.base().RoundTrip(out)
	x.headers = time.Now()
	if err != nil {
		x.finish(err)
		return nil, err
	}
	x.Status = res.StatusCode
	x.respType = res.Header.Get("Content-Type")
	x.Stream = isEventStream(x.respType)
	if t.HAR != nil {
		x.har.setResponse(res)
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// The body is the connection, read and written by the caller.
		x.finish(nil)
		return res, nil
	}
	body := &countingBody{rc: res.Body, keep: x.keep, x: x}
	if x.Stream {
		body.sse = new(sseCounter)
		x.Open, x.Duration = true, x.headers.Sub(x.start)
		x.id = t.Recorder.Add(x.Exchange)
		x.log("stream opened", nil)
	}
	res.Body = body
	return res, nil
}

// exchange is one exchange in progress.
type exchange struct {
	Exchange
	t       *Transport
	start   time.Time
	headers time.Time // when the response headers arrived
	keep    int       // body bytes to keep
	token   string    // bearer token sent, to scrub from bodies
	id      uint64    // Recorder id of an open stream

	reqType  string // request Content-Type
	respType string // response Content-Type
	reqBody  []byte // the kept part of the request body
	reqCount *countingBody
	respBody []byte // the kept part of the response body
	har      *harEntry

	once sync.Once
}

// readRequest reads the kept part of the request body, and returns the
// request to send: req itself, or a copy whose body is counted as sent.
func (x *exchange) readRequest(req *http.Request) *http.Request {
	if req.Body == nil || req.Body == http.NoBody {
		return req
	}
	if req.GetBody != nil {
		x.ReqBytes = req.ContentLength
		if rc, err := req.GetBody(); err == nil {
			x.reqBody, _ = io.ReadAll(io.LimitReader(rc, int64(x.keep)))
			rc.Close()
		}
		if x.ReqBytes < 0 {
			x.ReqBytes = -1 // unknown
		}
		x.RPCMethod, x.RPCID = parseRPC(x.reqBody)
		return req
	}
	// A body sent as it is read: count it on the way.
	x.reqCount = &countingBody{rc: req.Body, keep: x.keep}
	out := new(http.Request)
	*out = *req
	out.Body = x.reqCount
	return out
}

// finish ends the exchange once: it records, logs and writes it.
func (x *exchange) finish(err error) {
	x.once.Do(func() {
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
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
			x.Err = redact.Scrub(redact.Text(err.Error()), x.token)
		}
		if x.Stream {
			x.t.Recorder.update(x.id, x.Exchange)
		} else {
			x.t.Recorder.Add(x.Exchange)
		}
		msg := "exchange"
		if x.Stream {
			msg = "stream closed"
		}
		var reqText, reqNote, respText, respNote string
		if x.t.Bodies || x.t.HAR != nil {
			reqText, reqNote = x.bodyText(x.reqType, x.reqBody, x.ReqBytes)
			respText, respNote = x.bodyText(x.respType, x.respBody, x.RespBytes)
		}
		if x.t.Bodies {
			x.log(msg, []slog.Attr{
				slog.String("req_body", withNote(reqText, reqNote)),
				slog.String("resp_body", withNote(respText, respNote)),
			})
		} else {
			x.log(msg, nil)
		}
		if x.t.HAR != nil {
			x.har.finish(x, end, reqText, reqNote, respText, respNote)
			x.t.HAR.add(x.har)
		}
	})
}

// log writes the exchange's line.
func (x *exchange) log(msg string, extra []slog.Attr) {
	l := x.t.Logger
	if l == nil || !l.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
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

func isEventStream(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/event-stream"
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
