package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
)

// fixedAuth is an Authorizer with a fixed token that never asks for
// another.
type fixedAuth string

func (a fixedAuth) Token(context.Context) (string, error) { return string(a), nil }

func (fixedAuth) Challenge(context.Context, *http.Response, string) (bool, error) { return false, nil }

// recordingUpstream records the bytes of every request it reads and answers each
// with the raw answer its X-Answer header names in answers.
type recordingUpstream struct {
	ln      net.Listener
	answers map[string]string
	mu      sync.Mutex
	got     []string // the requests' bytes, in order
}

func startRecordingUpstream(t testing.TB, answers map[string]string) *recordingUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &recordingUpstream{ln: ln, answers: answers}
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for _, c := range conns { // the proxies' idle connections
			c.Close()
		}
		u.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			conns = append(conns, c)
			u.mu.Unlock()
			wg.Go(func() { u.serve(c) })
		}
	})
	return u
}

// teeConn keeps what is read from a connection.
type teeConn struct {
	net.Conn
	read bytes.Buffer
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Write(p[:n])
	return n, err
}

func (u *recordingUpstream) serve(c net.Conn) {
	defer c.Close()
	tc := &teeConn{Conn: c}
	br := bufio.NewReader(tc)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		got := tc.read.Bytes()
		got = got[:len(got)-br.Buffered()]
		u.mu.Lock()
		u.got = append(u.got, string(got))
		u.mu.Unlock()
		tc.read.Next(len(got))
		answer, ok := u.answers[req.Header.Get("X-Answer")]
		if !ok || answer == "" { // hang up without an answer
			return
		}
		if _, err := io.WriteString(c, answer); err != nil || strings.Contains(answer, "Connection: close") ||
			strings.HasPrefix(req.Header.Get("X-Answer"), "hangs up") {
			return
		}
	}
}

func (u *recordingUpstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	got := u.got
	u.got = nil
	return got
}

// rawAnswer is an HTTP/1.1 answer with status line status, headers and a
// body of n bytes with a Content-Length (n < 0: none, the body is the
// rest).
func rawAnswer(status string, headers []string, body string, length bool) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 " + status + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if length {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

const fastRPC = `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}]}}`

// fastAnswers are the upstream's answers of TestFastPathMatchesFullPath,
// and whether the fast path passes each on itself.
var fastAnswers = []struct {
	name, raw string
	fast      bool
}{
	{"json", rawAnswer("200 OK", []string{"Content-Type: application/json", "Date: Thu, 26 Nov 2026 10:00:00 GMT", "Mcp-Session-Id: s-1"}, fastRPC, true), true},
	{"no date", rawAnswer("200 OK", []string{"Content-Type: application/json"}, fastRPC, true), true},
	{"lower-case names", rawAnswer("200 OK", []string{"content-type: application/json", "date: Thu, 26 Nov 2026 10:00:00 GMT", "mcp-session-id: s-1", "x-custom: 1"}, fastRPC, true), true},
	{"repeated and hop-by-hop headers", rawAnswer("200 OK", []string{"Content-Type: application/json", "Set-Cookie: a=1", "Set-Cookie: b=2", "Keep-Alive: timeout=5", "Proxy-Authenticate: Basic", "Vary: Accept", "Vary: Origin"}, fastRPC, true), true},
	{"no content type", rawAnswer("200 OK", nil, fastRPC, true), false},
	{"no content type, empty", rawAnswer("200 OK", nil, "", true), true},
	// The listener sniffs a type from the first write, which on the full
	// path is the first read of the body: here, what the 1 KiB read buffer
	// holds after the head.
	{"no content type, sniffed", rawAnswer("200 OK", []string{"X-Pad: " + strings.Repeat("p", 900)}, strings.Repeat("a", 300)+"\x00"+strings.Repeat("a", 200), true), false},
	{"accepted, empty", rawAnswer("202 Accepted", []string{"Date: Thu, 26 Nov 2026 10:00:00 GMT"}, "", true), true},
	{"not found", rawAnswer("404 Not Found", []string{"Content-Type: text/plain"}, "no such session\n", true), true},
	{"server error, odd reason", rawAnswer("500 Broken Here", []string{"Content-Type: application/json"}, `{"error":"x"}`, true), true},
	{"status without reason", rawAnswer("299", []string{"Content-Type: application/json"}, fastRPC, true), true},
	{"32 KiB", rawAnswer("200 OK", []string{"Content-Type: application/json"}, strings.Repeat("a", copyBufferSize), true), true},
	// Handed to the full path.
	{"unauthorized", rawAnswer("401 Unauthorized", []string{`WWW-Authenticate: Bearer realm="x", error="invalid_token"`}, "", true), false},
	{"insufficient scope", rawAnswer("403 Forbidden", []string{`WWW-Authenticate: Bearer error="insufficient_scope", scope="admin"`}, "", true), false},
	{"redirect on the upstream", rawAnswer("307 Temporary Redirect", []string{"Location: http://UPSTREAM/other"}, "", true), false},
	{"event stream", rawAnswer("200 OK", []string{"Content-Type: text/event-stream"}, "event: message\ndata: "+fastRPC+"\n\n", true), false},
	{"chunked", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n", false},
	{"closes", rawAnswer("200 OK", []string{"Content-Type: application/json", "Connection: close"}, fastRPC, true), false},
	{"no length, closes", rawAnswer("200 OK", []string{"Content-Type: application/json", "Connection: close"}, fastRPC, false), false},
	{"past 32 KiB", rawAnswer("200 OK", []string{"Content-Type: application/json"}, strings.Repeat("b", copyBufferSize+1), true), false},
	{"no content", rawAnswer("204 No Content", nil, "", false), false},
	{"early hints first", "HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n" + rawAnswer("200 OK", []string{"Content-Type: application/json"}, fastRPC, true), false},
	{"bare LF", "HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2\n\n{}", false},
	{"hangs up", "", false},
	{"hangs up in the body", rawAnswer("200 OK", []string{"Content-Type: application/json", "Content-Length: 100"}, `{"jsonrpc":`, false), true},
}

// fastRequests are the client's requests (head lines beyond Host and the
// length) and whether the fast path may take each.
var fastRequests = []fastRequest{
	{"plain", []string{"Content-Type: application/json", "Accept: application/json, text/event-stream", "Mcp-Session-Id: s-1", "Mcp-Protocol-Version: 2025-11-25"}, "", true},
	{"the listener's query", []string{"Content-Type: application/json"}, "?tenant=a", true},
	{"client credentials and browser headers", []string{"Content-Type: application/json", "Authorization: Bearer the-clients", "X-Hf-Authorization: hf", "Origin: http://localhost:6274", "Referer: http://localhost:6274/"}, "", true},
	{"forwarding headers", []string{"Content-Type: application/json", "Forwarded: for=1.2.3.4", "X-Forwarded-For: 1.2.3.4", "X-Forwarded-Host: a", "X-Forwarded-Proto: https"}, "", true},
	{"hop-by-hop headers", []string{"Content-Type: application/json", "Connection: keep-alive", "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive", "Proxy-Authorization: Basic eDp5"}, "", true},
	{"user agent", []string{"Content-Type: application/json", "User-Agent: client/1.0"}, "", true},
	{"empty user agent", []string{"Content-Type: application/json", "User-Agent:"}, "", true},
	{"lower case and repeated", []string{"content-type: application/json", "accept: application/json", "accept: text/event-stream", "x-zz: last", "a-first: 1"}, "", true},
	{"configured header sent too", []string{"Content-Type: application/json", "X-Api-Key: the-clients"}, "", true},
	{"another query", []string{"Content-Type: application/json"}, "?tenant=b", false},
	{"another path", []string{"Content-Type: application/json"}, "/other", false},
	{"closes", []string{"Content-Type: application/json", "Connection: close"}, "", false},
	{"names another header in Connection", []string{"Content-Type: application/json", "Connection: X-Hop", "X-Hop: 1"}, "", false},
}

// fastRequest is one of fastRequests.
type fastRequest struct {
	name  string
	lines []string
	query string
	fast  bool
}

// target is the request's target: the endpoint with the listener's
// query, or with the request's own query or path.
func (rq fastRequest) target() string {
	switch {
	case rq.name == "plain":
		return "/mcp"
	case strings.HasPrefix(rq.query, "?"):
		return "/mcp" + rq.query
	case rq.query != "":
		return rq.query
	}
	return "/mcp?tenant=a"
}

// head is the request's head lines, each ending in CRLF.
func (rq fastRequest) head() string { return strings.Join(rq.lines, "\r\n") + "\r\n" }

var dateRE = regexp.MustCompile(`(?m)^Date: .*\r$`)

// fastPair is two proxies in front of one recording upstream, one with the
// fast path and one without.
type fastPair struct {
	up         *recordingUpstream
	fast, full fastSide
}

type fastSide struct {
	p    *Proxy
	h    *handler
	rec  *wire.Recorder
	addr string // the listener's
}

func startFastPair(tb testing.TB) *fastPair {
	answers := map[string]string{}
	up := startRecordingUpstream(tb, answers)
	for _, a := range fastAnswers {
		answers[a.name] = strings.ReplaceAll(a.raw, "UPSTREAM", up.ln.Addr().String())
	}
	start := func(noFast bool) fastSide {
		rec := new(wire.Recorder)
		p, err := Start(context.Background(), []Server{{
			Name:     "crm",
			Upstream: "http://" + up.ln.Addr().String() + "/mcp?tenant=a",
			Auth:     fixedAuth("the-token"),
			Headers:  map[string]string{"X-Api-Key": "configured"},
		}}, Options{
			noFastPath: noFast,
			WrapTransport: func(server string, rt http.RoundTripper) http.RoundTripper {
				// As serve wraps it for its status page.
				return &wire.Transport{Base: rt, Server: server, Kind: wire.KindMCP, Recorder: rec}
			},
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { p.Shutdown(context.Background()) })
		return fastSide{p: p, h: p.listeners[0].srv.handler.(*handler), rec: rec, addr: p.Listeners()[0].Addr}
	}
	fp := &fastPair{up: up, fast: start(false), full: start(true)}
	if fp.fast.h.fast == nil || fp.full.h.fast != nil {
		tb.Fatalf("fast path set up: %v and %v; want it in the first proxy only", fp.fast.h.fast != nil, fp.full.h.fast != nil)
	}
	return fp
}

// exchange sends a POST to target with the header lines in head (each
// ending in CRLF) and the answer named answer through s, and returns what
// the client got (the Date and the listener's address replaced) and what
// the upstream got.
func (fp *fastPair) exchange(tb testing.TB, s fastSide, target, head, answer string) (string, []string) {
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}`
	addr := s.addr
	raw := "POST " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n" + head +
		"X-Answer: " + answer + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		tb.Fatal(err)
	}
	tc := &teeConn{Conn: c}
	br := bufio.NewReader(tc)
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode >= 200 {
			break
		}
	}
	// What the client read of the answer: not what came after it (an
	// answer to bytes the proxy took for a request of their own).
	got := string(tc.read.Bytes()[:tc.read.Len()-br.Buffered()])
	got = dateRE.ReplaceAllString(got, "Date: (date)\r")
	got = strings.ReplaceAll(got, addr, "(listener)") // in rewritten redirects
	return got, fp.up.take()
}

// compare sends the same request through both proxies and reports the
// differences, and whether the fast path answered it.
func (fp *fastPair) compare(tb testing.TB, target, head, answer string) (fastAnswered bool) {
	tb.Helper()
	return fp.compareSide(tb, fp.fast, target, head, answer)
}

// compareSide is compare with fast in place of fp.fast.
func (fp *fastPair) compareSide(tb testing.TB, fast fastSide, target, head, answer string) (fastAnswered bool) {
	tb.Helper()
	before := fast.h.fast.served.Load()
	gotFast, upFast := fp.exchange(tb, fast, target, head, answer)
	fastAnswered = fast.h.fast.served.Load() != before
	gotFull, upFull := fp.exchange(tb, fp.full, target, head, answer)
	if d := cmp.Diff(upFull, upFast); d != "" {
		tb.Errorf("upstream got (-full path +fast path):\n%s", d)
	}
	if d := cmp.Diff(gotFull, gotFast); d != "" {
		tb.Errorf("client got (-full path +fast path):\n%s", d)
	}
	// Each recorded the exchange (oldest first, at most RecentSize).
	recFast, recFull := newest(fast.rec.Recent(), len(upFast)), newest(fp.full.rec.Recent(), len(upFull))
	if d := cmp.Diff(recFull, recFast, cmpopts.IgnoreFields(wire.Exchange{}, "Time", "Duration")); d != "" {
		tb.Errorf("recorded (-full path +fast path):\n%s", d)
	}
	if fastAnswered && len(upFast) != 1 {
		tb.Errorf("the fast path answered after %d requests upstream", len(upFast))
	}
	return fastAnswered
}

// TestFastPathMatchesFullPath sends every request of fastRequests with
// every answer of fastAnswers through a fastPair, and requires the same
// bytes upstream, the same bytes to the client (the Date the proxy adds
// aside) and the same recorded exchanges; and that the fast path answered
// those it may answer.
func TestFastPathMatchesFullPath(t *testing.T) {
	fp := startFastPair(t)
	var fastOnes int // exchanges the fast path may answer
	for _, rq := range fastRequests {
		for _, a := range fastAnswers {
			t.Run(rq.name+"/"+a.name, func(t *testing.T) {
				want := rq.fast && a.fast
				if want {
					fastOnes++
				}
				if got := fp.compare(t, rq.target(), rq.head(), a.name); got != want {
					t.Errorf("fast path answered: %v, want %v", got, want)
				}
			})
		}
	}
	if n := fp.fast.h.fast.served.Load(); n != uint64(fastOnes) {
		t.Errorf("the fast path answered %d exchanges, want %d", n, fastOnes)
	} else {
		t.Logf("the fast path answered %d of %d exchanges", n, len(fastRequests)*len(fastAnswers))
	}
}

// TestFastPathOtherWriter is TestFastPathMatchesFullPath for the fast path
// under a ResponseWriter other than the listener's own, such as a wrapping
// middleware's, which it cannot hand the answer's header to.
func TestFastPathOtherWriter(t *testing.T) {
	fp := startFastPair(t)
	wrapped := fp.fast
	wrapped.addr = serveWrapped(t, fp.fast.h)
	var answered int
	for _, rq := range fastRequests {
		for _, a := range fastAnswers {
			t.Run(rq.name+"/"+a.name, func(t *testing.T) {
				if fp.compareSide(t, wrapped, rq.target(), rq.head(), a.name) {
					answered++
				}
			})
		}
	}
	if answered == 0 {
		t.Error("the fast path answered nothing")
	}
}

// wrappedWriter hides the listener's ResponseWriter, as a middleware's
// would, and unwraps to it for http.ResponseController.
type wrappedWriter struct{ http.ResponseWriter }

func (w wrappedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveWrapped serves h with each ResponseWriter wrapped, on a listener of
// its own, and returns its address.
func serveWrapped(t *testing.T, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newH1Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(wrappedWriter{w}, r)
	}), context.Background(), slog.New(slog.DiscardHandler))
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// FuzzFastPath sends requests with any header lines and any of the
// answers through a fastPair, which must give the same results.
func FuzzFastPath(f *testing.F) {
	for i, rq := range fastRequests {
		f.Add(strings.Join(rq.lines, "\n"), uint8(i))
	}
	f.Add("X-A: 1\nx-a: 2\nX-Api-Key: mine\nProxy-Authenticate: x\nTe: trailers", uint8(0))
	f.Add("Origin: http://evil.example", uint8(1))
	f.Add("Host: other\nUser-Agent: a\tb", uint8(2))
	fp := startFastPair(f)
	f.Fuzz(func(t *testing.T, lines string, answer uint8) {
		lower := strings.ToLower(lines)
		if strings.Contains(lower, "content-length") || strings.Contains(lower, "transfer-encoding") || strings.Contains(lower, "expect") ||
			strings.HasPrefix(lines, "\n") || strings.Contains(lines, "\n\n") || strings.HasSuffix(lines, "\n") {
			t.Skip("framing of its own, or an empty line that ends the head: more requests than one, or a client waiting for its deadline")
		}
		head := strings.ReplaceAll(lines, "\n", "\r\n")
		if head != "" {
			head += "\r\n"
		}
		fp.compare(t, "/mcp?tenant=a", head, fastAnswers[int(answer)%len(fastAnswers)].name)
	})
}

// newest returns the last n of xs, or all of them.
func newest[T any](xs []T, n int) []T {
	return xs[max(0, len(xs)-n):]
}

// A connection the fast path cannot open is the full path's failure: the
// client gets the same 502 from both. (An upstream that hangs up after the
// request is in TestFastPathMatchesFullPath, which also shows that the
// full path does not send it again.)
func TestFastPathDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, noFast := range []bool{false, true} {
		t.Run(fmt.Sprint("noFastPath=", noFast), func(t *testing.T) {
			p := startServer(t, Server{Name: "down", Upstream: "http://" + addr + "/mcp", Auth: fixedAuth("tok")}, Options{noFastPath: noFast})
			res, err := http.Post(p.Listeners()[0].URL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":3,"method":"ping"}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusBadGateway || !bytes.Contains(body, []byte(`"id":3`)) || !bytes.Contains(body, []byte("connection refused")) {
				t.Errorf("got %d %s; want a 502 JSON-RPC error for id 3 naming the refused connection", res.StatusCode, body)
			}
		})
	}
}

// swapAuth is an Authorizer whose token the test changes.
type swapAuth struct{ tok atomic.Value }

func (a *swapAuth) Token(context.Context) (string, error) { return a.tok.Load().(string), nil }

func (*swapAuth) Challenge(context.Context, *http.Response, string) (bool, error) { return false, nil }

// slowPost starts a POST of the endpoint on p whose body arrives in two
// parts; between them it calls between. It returns the client's answer.
func slowPost(t *testing.T, p *Proxy, between func()) string {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}`
	addr := p.Listeners()[0].Addr
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nX-Answer: json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body[:5])
	time.Sleep(50 * time.Millisecond) // the head is in, the body is being read
	between()
	io.WriteString(c, body[5:])
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err.Error()
	}
	got, _ := io.ReadAll(res.Body)
	return res.Proto + " " + res.Status + "\n" + string(got)
}

// A client that sends its body slowly gets it sent with the token of the
// moment its body is in, as on the full path: a refresh may have come
// meanwhile.
func TestFastPathTokenAfterBody(t *testing.T) {
	for _, noFast := range []bool{false, true} {
		t.Run(fmt.Sprint("noFastPath=", noFast), func(t *testing.T) {
			up := startRecordingUpstream(t, map[string]string{"json": fastAnswers[0].raw})
			auth := new(swapAuth)
			auth.tok.Store("old-token")
			p := startServer(t, Server{Name: "crm", Upstream: "http://" + up.ln.Addr().String() + "/mcp", Auth: auth}, Options{noFastPath: noFast})
			answer := slowPost(t, p, func() { auth.tok.Store("new-token") })
			got := up.take()
			if len(got) != 1 || !strings.Contains(got[0], "Authorization: Bearer new-token\r\n") || !strings.HasPrefix(answer, "HTTP/1.1 200 ") {
				t.Errorf("upstream got %q, client %q; want one request with the new token, answered", got, answer)
			}
		})
	}
}

// A request whose body is still coming in when the proxy shuts down is not
// sent: the client gets a 502 on both paths, and the upstream nothing.
func TestFastPathShutdownDuringBody(t *testing.T) {
	for _, noFast := range []bool{false, true} {
		t.Run(fmt.Sprint("noFastPath=", noFast), func(t *testing.T) {
			up := startRecordingUpstream(t, map[string]string{"json": fastAnswers[0].raw})
			p := startServer(t, Server{Name: "crm", Upstream: "http://" + up.ln.Addr().String() + "/mcp", Auth: fixedAuth("tok-1")}, Options{noFastPath: noFast})
			// An idle upstream connection in the pool, ready for the next.
			if answer := slowPost(t, p, func() {}); !strings.HasPrefix(answer, "HTTP/1.1 200 ") {
				t.Fatalf("first request: %q", answer)
			}
			up.take()
			done := make(chan error, 1)
			answer := slowPost(t, p, func() {
				go func() { done <- p.Shutdown(context.Background()) }()
				time.Sleep(50 * time.Millisecond)
			})
			<-done
			if got := up.take(); len(got) != 0 || !strings.HasPrefix(answer, "HTTP/1.1 502 ") {
				t.Errorf("upstream got %d requests, client %q; want none, and a 502", len(got), answer)
			}
		})
	}
}

// waitingAuth's Token waits for its context to end once armed, then
// returns a token anyway.
type waitingAuth struct{ armed atomic.Bool }

func (a *waitingAuth) Token(ctx context.Context) (string, error) {
	if a.armed.Load() {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
	return "tok-1", nil
}

func (*waitingAuth) Challenge(context.Context, *http.Response, string) (bool, error) {
	return false, nil
}

// A client that goes away while its token is being found does not get its
// request sent, on either path.
func TestFastPathClientGoneDuringToken(t *testing.T) {
	for _, noFast := range []bool{false, true} {
		t.Run(fmt.Sprint("noFastPath=", noFast), func(t *testing.T) {
			up := startRecordingUpstream(t, map[string]string{"json": fastAnswers[0].raw})
			auth := new(waitingAuth)
			p := startServer(t, Server{Name: "crm", Upstream: "http://" + up.ln.Addr().String() + "/mcp", Auth: auth}, Options{noFastPath: noFast})
			// An idle upstream connection in the pool: nothing to dial.
			if answer := slowPost(t, p, func() {}); !strings.HasPrefix(answer, "HTTP/1.1 200 ") {
				t.Fatalf("first request: %q", answer)
			}
			up.take()
			auth.armed.Store(true)
			addr := p.Listeners()[0].Addr
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			body := `{"jsonrpc":"2.0","id":8,"method":"tools/call"}`
			io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nX-Answer: json\r\nContent-Length: "+
				strconv.Itoa(len(body))+"\r\n\r\n"+body)
			time.Sleep(300 * time.Millisecond) // the proxy waits for the token
			c.Close()
			time.Sleep(300 * time.Millisecond) // it notices, and the token comes
			if got := up.take(); len(got) != 0 {
				t.Errorf("the upstream got %d requests of a client that had gone", len(got))
			}
		})
	}
}

// An answer the fast path hands over is recorded from when the request was
// sent, as the full path records it, not from when the full path took over.
func TestFastPathHandoverRecordedFromSend(t *testing.T) {
	const delay = 100 * time.Millisecond
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: message\ndata: {}\n\n")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: upstream}
	go srv.Serve(ln)
	defer srv.Close()
	for _, noFast := range []bool{false, true} {
		t.Run(fmt.Sprint("noFastPath=", noFast), func(t *testing.T) {
			rec := new(wire.Recorder)
			wrap := func(server string, rt http.RoundTripper) http.RoundTripper {
				return &wire.Transport{Base: rt, Server: server, Kind: wire.KindMCP, Recorder: rec}
			}
			p := startServer(t, Server{Name: "crm", Upstream: "http://" + ln.Addr().String() + "/mcp", Auth: fixedAuth("tok-1")},
				Options{noFastPath: noFast, WrapTransport: wrap})
			res, err := http.Post(p.Listeners()[0].URL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if x := rec.Recent(); len(x) != 1 || !x[0].Stream || x[0].Duration < delay {
				t.Errorf("recorded %+v; want one stream of at least %v", x, delay)
			}
		})
	}
}

// startServer starts a proxy for s alone, shut down when the test ends.
func startServer(t *testing.T, s Server, o Options) *Proxy {
	t.Helper()
	p, err := Start(t.Context(), []Server{s}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}
