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
	"net/url"
	"sync"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
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
//
// Recording is meant to cost next to nothing while only the status page
// reads it: a Transport that neither logs nor writes HAR hands it the
// request's URL and buffered body by reference, and Recent redacts and
// parses them, for the exchanges it returns only.
type Recorder struct {
	mu     sync.Mutex
	ring   [RecentSize]entry
	seq    [RecentSize]uint64 // the id of each slot's exchange
	gen    [RecentSize]uint64 // the write that set each slot
	n      uint64             // exchanges added so far
	writes uint64             // adds and updates so far
}

// entry is a recorded exchange, with what Recent still has to derive.
type entry struct {
	x    Exchange
	url  *url.URL      // when set, x.URL is still to be redacted from it
	rpc  []byte        // when set, x.RPCMethod and x.RPCID are still to be parsed from it
	live *countingBody // an open stream's body, whose counts Recent reads
}

// resolve derives what e holds by reference.
func (e *entry) resolve() {
	if e.url != nil {
		e.x.URL = redact.RequestURL(e.url)
	}
	if e.rpc != nil {
		e.x.RPCMethod, e.x.RPCID = parseRPC(e.rpc)
	}
	e.url, e.rpc = nil, nil
}

// Add records x and returns its id, for update.
func (r *Recorder) Add(x Exchange) uint64 {
	return r.add(entry{x: x})
}

func (r *Recorder) add(e entry) uint64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	r.writes++
	i := r.n % RecentSize
	r.ring[i], r.seq[i], r.gen[i] = e, r.n, r.writes
	return r.n
}

// update replaces the exchange id by e if it is still kept, else adds e:
// a stream that outlives a hundred exchanges shows again when it closes.
func (r *Recorder) update(id uint64, e entry) {
	if r == nil {
		return
	}
	r.mu.Lock()
	i := id % RecentSize
	if id != 0 && r.seq[i] == id {
		r.writes++
		r.ring[i], r.gen[i] = e, r.writes
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.add(e)
}

// Recent returns the last RecentSize exchanges, oldest first. Open streams
// appear where they opened.
func (r *Recorder) Recent() []Exchange {
	if r == nil {
		return nil
	}
	s := r.snapshot()
	// Redact and parse outside the lock, then keep the results, so that a
	// page polled every few seconds derives each exchange once.
	out := make([]Exchange, len(s.entries))
	resolved := false
	for j := range s.entries {
		e := &s.entries[j]
		if e.url != nil || e.rpc != nil {
			e.resolve()
			resolved = true
		}
		out[j] = e.x
		if e.live != nil && e.x.Open {
			// The stream's bytes and events so far; the entry itself is
			// written once more, when it closes.
			out[j].RespBytes, out[j].Events = e.live.progress()
		}
	}
	if resolved {
		r.keep(s)
	}
	return out
}

// snapshot is a copy of a Recorder's entries, oldest first.
type snapshot struct {
	first   uint64   // id of entries[0]
	gens    []uint64 // the write that set each entry's slot
	entries []entry
}

func (r *Recorder) snapshot() snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := min(r.n, RecentSize)
	s := snapshot{first: r.n - k + 1, gens: make([]uint64, k), entries: make([]entry, k)}
	for j := range s.entries {
		i := (s.first + uint64(j)) % RecentSize
		s.gens[j], s.entries[j] = r.gen[i], r.ring[i]
	}
	return s
}

// keep stores the entries of s in their slots, except where the slot was
// written after the snapshot (a stream that closed meanwhile).
func (r *Recorder) keep(s snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for j, e := range s.entries {
		if i := (s.first + uint64(j)) % RecentSize; r.gen[i] == s.gens[j] {
			r.ring[i] = e
		}
	}
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
