// Package wire records the HTTP exchanges of the proxy and of the OAuth
// engine for debugging: one log line per exchange (two for an event
// stream: when it opens and when it closes), the last exchanges in memory
// for the status page ([Recorder]), and a HAR 1.2 file ([HARWriter]).
// Everything it keeps or prints is redacted by internal/redact: tokens,
// codes, verifiers, states and client secrets appear only as fingerprints.
//
// [Transport] is an http.RoundTripper that does the recording around
// another one. It is meant to be installed only while some recording is
// wanted: the proxy runs without it otherwise, so recording costs nothing
// when it is off.
package wire

import (
	"context"
	"sync"
	"time"
)

// Kinds of exchange, for Exchange.Kind.
const (
	KindMCP       = "mcp"             // a request of an MCP client, forwarded upstream
	KindDiscovery = "oauth:discovery" // protected resource or authorization server metadata
	KindRegister  = "oauth:register"  // dynamic client registration
	KindToken     = "oauth:token"     // an authorization code exchange
	KindRefresh   = "oauth:refresh"   // a refresh token grant
	KindProbe     = "oauth:probe"     // the engine's unauthenticated request to the MCP server

	// KindOAuth, as Transport.Kind, asks for the kind of each request to
	// be derived from the request: one of the oauth:… kinds above.
	KindOAuth = "oauth"
)

// Exchange is one HTTP request and its response, redacted.
type Exchange struct {
	Time   time.Time // when the request was sent
	Server string    // the server's name; for OAuth exchanges, the server they serve
	Kind   string    // KindMCP or one of the oauth:… kinds

	Method string
	URL    string // redacted: no password, secret query values fingerprinted

	// RPCMethod and RPCID are the JSON-RPC method and id of the request
	// body, when it is JSON-RPC; a batch lists them comma-separated.
	RPCMethod, RPCID string

	Status    int           // 0 when no response arrived
	Duration  time.Duration // until the response body ended (or, while Open, until the headers)
	ReqBytes  int64         // request body size; -1 when unknown
	RespBytes int64         // response body bytes read

	TokenFingerprint string // fingerprint of the bearer token sent; "" for none
	Replay           bool   // the proxy sent this request again after an authorization

	Stream bool // the response is an event stream
	Events int  // events seen on the stream
	Open   bool // the stream has not ended yet

	Err string // the transport's or the body's error, redacted
}

// RecentSize is how many exchanges a Recorder keeps.
const RecentSize = 100

// Recorder keeps the last RecentSize exchanges. The zero value is ready to
// use, and it is safe for concurrent use. A nil *Recorder records nothing.
type Recorder struct {
	mu   sync.Mutex
	ring [RecentSize]Exchange
	seq  [RecentSize]uint64 // the id of each slot's exchange
	n    uint64             // exchanges added so far
}

// Add records x and returns its id, for update.
func (r *Recorder) Add(x Exchange) uint64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	i := r.n % RecentSize
	r.ring[i], r.seq[i] = x, r.n
	return r.n
}

// update replaces the exchange id by x if it is still kept, else adds x:
// a stream that outlives a hundred exchanges shows again when it closes.
func (r *Recorder) update(id uint64, x Exchange) {
	if r == nil {
		return
	}
	r.mu.Lock()
	i := id % RecentSize
	if id != 0 && r.seq[i] == id {
		r.ring[i] = x
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.Add(x)
}

// Recent returns the last RecentSize exchanges, oldest first. Open streams
// appear where they opened.
func (r *Recorder) Recent() []Exchange {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := min(r.n, RecentSize)
	out := make([]Exchange, 0, k)
	for id := r.n - k + 1; id <= r.n; id++ {
		out = append(out, r.ring[id%RecentSize])
	}
	return out
}

type ctxKey int

const (
	replayKey ctxKey = iota
	serverKey
)

// WithReplay returns ctx marked as the context of a request the proxy
// sends again after an authorization. The proxy sets it; Transport reports
// it as Exchange.Replay.
func WithReplay(ctx context.Context) context.Context {
	return context.WithValue(ctx, replayKey, true)
}

// IsReplay reports whether ctx was marked by WithReplay.
func IsReplay(ctx context.Context) bool {
	v, _ := ctx.Value(replayKey).(bool)
	return v
}

// WithServer returns ctx naming the server its requests are made for. The
// OAuth engine sets it, so that its exchanges, which share one transport,
// are attributed to the server they serve.
func WithServer(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, serverKey, name)
}

// ServerFrom returns the name set by WithServer, or "".
func ServerFrom(ctx context.Context) string {
	v, _ := ctx.Value(serverKey).(string)
	return v
}
