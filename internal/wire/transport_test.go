package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
)

// waitFor is how long a test waits for something that should happen soon.
const waitFor = 15 * time.Second

// logLines is a concurrency-safe JSON log sink whose lines can be decoded.
type logLines struct{ oauthtest.Buffer }

// lines decodes every line whose msg is msg.
func (l *logLines) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		if m["msg"] == msg {
			delete(m, "time")
			out = append(out, m)
		}
	}
	return out
}

// waitLines waits until n lines with msg were logged.
func (l *logLines) waitLines(t *testing.T, msg string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		if got := l.lines(t, msg); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d %q lines in:\n%s", n, msg, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newLog(t *testing.T) (*slog.Logger, *logLines) {
	t.Helper()
	l := new(logLines)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", l)
		}
	})
	return slog.New(slog.NewJSONHandler(l, nil)), l
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestTransportLogLine(t *testing.T) {
	const answer = `{"jsonrpc":"2.0","id":7,"result":{}}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	defer up.Close()
	log, lines := newLog(t)
	var rec Recorder
	c := &http.Client{Transport: &Transport{Server: "hf", Recorder: &rec, Logger: log}}
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}`
	req, _ := http.NewRequest(http.MethodPost, up.URL+"/mcp?login&code=c-1", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer at-0123456789")
	req.Header.Set("Content-Type", "application/json")
	res, got := do(t, c, req)
	if res.StatusCode != 200 || !strings.Contains(string(got), `"id":7`) {
		t.Fatalf("response %d %s", res.StatusCode, got)
	}

	l := lines.waitLines(t, "exchange", 1)[0]
	if d, ok := l["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration = %v", l["duration"])
	}
	delete(l, "duration")
	want := map[string]any{
		"level": "INFO", "msg": "exchange",
		"server": "hf", "kind": "mcp", "method": "POST",
		"url":        up.URL + "/mcp?login&code=" + redact.Fingerprint("c-1"),
		"rpc_method": "tools/list", "rpc_id": "7",
		"status": 200.0, "req_bytes": float64(len(body)), "resp_bytes": float64(len(answer)),
		"token": redact.Fingerprint("at-0123456789"), "replay": false,
	}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("log line (-want +got):\n%s", diff)
	}
	if strings.Contains(lines.String(), "at-0123456789") || strings.Contains(lines.String(), "c-1") {
		t.Error("the log shows a secret")
	}

	recent := rec.Recent()
	if len(recent) != 1 {
		t.Fatalf("recorded %d exchanges", len(recent))
	}
	x := recent[0]
	if x.Server != "hf" || x.Kind != KindMCP || x.RPCMethod != "tools/list" || x.RPCID != "7" || x.Status != 200 ||
		x.RespBytes != int64(len(answer)) || x.ReqBytes != int64(len(body)) || x.TokenFingerprint != redact.Fingerprint("at-0123456789") ||
		x.Replay || x.Stream || x.Open || x.Duration <= 0 || x.Time.IsZero() || x.URL != want["url"] {
		t.Errorf("recorded %+v", x)
	}
}

func TestTransportServerFromContext(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	var rec Recorder
	c := &http.Client{Transport: &Transport{Recorder: &rec, Kind: KindOAuth}}
	req, _ := http.NewRequestWithContext(WithReplay(WithServer(t.Context(), "crm")), http.MethodGet,
		up.URL+"/.well-known/oauth-authorization-server", nil)
	do(t, c, req)
	x := rec.Recent()[0]
	if x.Server != "crm" || x.Kind != KindDiscovery || !x.Replay || x.ReqBytes != 0 {
		t.Errorf("recorded %+v", x)
	}
}

func TestTransportEventStream(t *testing.T) {
	const firstEvent = ": keep-alive\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"a\"}\n\n"
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, firstEvent)
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "id: 2\r\ndata: {\"access_token\":\"at-sse-123\"}\r\n\r\ndata: one\rdata: two\r\r: ping\n\ndata: unfinished")
	}))
	defer up.Close()
	log, lines := newLog(t)
	var rec Recorder
	c := &http.Client{Transport: &Transport{Server: "s", Recorder: &rec, Logger: log, Bodies: true}}
	req, _ := http.NewRequest(http.MethodGet, up.URL+"/sse", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()

	open := lines.waitLines(t, "stream opened", 1)[0]
	if open["status"] != 200.0 || open["url"] != up.URL+"/sse" || open["events"] != nil {
		t.Errorf("open line: %v", open)
	}
	if got := rec.Recent(); len(got) != 1 || !got[0].Open || !got[0].Stream || got[0].Duration <= 0 {
		t.Errorf("while open, recorded %+v", got)
	}
	// The status page shows an open stream's events so far.
	if _, err := io.ReadFull(res.Body, make([]byte, len(firstEvent))); err != nil {
		t.Fatal(err)
	}
	if got := rec.Recent(); len(got) != 1 || !got[0].Open || got[0].Events != 1 || got[0].RespBytes != int64(len(firstEvent)) {
		t.Errorf("after the first event, recorded %+v; want it open with 1 event and %d bytes", got, len(firstEvent))
	}
	if n := len(lines.lines(t, "stream closed")); n != 0 {
		t.Fatalf("%d close lines before the stream ended", n)
	}
	close(release)
	if _, err := io.ReadAll(res.Body); err != nil {
		t.Fatal(err)
	}
	closed := lines.waitLines(t, "stream closed", 1)[0]
	if closed["events"] != 3.0 {
		t.Errorf("events = %v, want 3 (comments and an unfinished event do not count)", closed["events"])
	}
	body, _ := closed["resp_body"].(string)
	if strings.Contains(body, "at-sse-123") || !strings.Contains(body, redact.Fingerprint("at-sse-123")) || !strings.Contains(body, "data: two") {
		t.Errorf("resp_body = %q", body)
	}
	got := rec.Recent()
	if len(got) != 1 || got[0].Open || got[0].Events != 3 || got[0].RespBytes == 0 {
		t.Errorf("after the close, recorded %+v", got)
	}
}

func TestTransportBodiesRedactedAndTruncated(t *testing.T) {
	big := `{"jsonrpc":"2.0","id":"x","result":{"refresh_token":"rt-big-1","pad":"` + strings.Repeat("é", 300) + `"}}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, big)
	}))
	defer up.Close()
	log, lines := newLog(t)
	c := &http.Client{Transport: &Transport{Logger: log, Bodies: true, MaxBody: 101}}
	form := "grant_type=authorization_code&code=code-123&code_verifier=verifier-123&client_secret=secret-123"
	req, _ := http.NewRequest(http.MethodPost, up.URL+"/token", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, got := do(t, c, req)
	if string(got) != big {
		t.Fatal("the response was changed")
	}
	l := lines.waitLines(t, "exchange", 1)[0]
	reqBody, respBody := l["req_body"].(string), l["resp_body"].(string)
	for _, secret := range []string{"code-123", "verifier-123", "secret-123", "rt-big-1"} {
		if strings.Contains(lines.String(), secret) {
			t.Errorf("the log shows %s", secret)
		}
	}
	if !strings.Contains(reqBody, "code="+redact.Fingerprint("code-123")) || !strings.Contains(reqBody, "grant_type=authorization_code") {
		t.Errorf("req_body = %q", reqBody)
	}
	if l["resp_bytes"] != float64(len(big)) {
		t.Errorf("resp_bytes = %v, want %d: the whole body is counted", l["resp_bytes"], len(big))
	}
	wantNote := fmt.Sprintf("truncated: the first 100 bytes of %d bytes are kept", len(big)) // 101 cuts an é
	if !strings.Contains(respBody, redact.Fingerprint("rt-big-1")) || !strings.HasSuffix(respBody, "…("+wantNote+")") {
		t.Errorf("resp_body = %q; want the fingerprint and the note %q", respBody, wantNote)
	}
}

func TestTransportStreamedRequestBody(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer up.Close()
	var rec Recorder
	c := &http.Client{Transport: &Transport{Recorder: &rec}}
	payload := `{"jsonrpc":"2.0","method":"notifications/initialized"}` + strings.Repeat(" ", 10000)
	// No GetBody: the body is counted as it is sent.
	req, _ := http.NewRequest(http.MethodPost, up.URL, io.NopCloser(strings.NewReader(payload)))
	res, _ := do(t, c, req)
	if res.StatusCode != http.StatusAccepted {
		t.Fatal(res.Status)
	}
	x := rec.Recent()[0]
	if x.ReqBytes != int64(len(payload)) || x.RPCMethod != "notifications/initialized" || x.RPCID != "" {
		t.Errorf("recorded %+v", x)
	}
}

func TestTransportError(t *testing.T) {
	log, lines := newLog(t)
	var rec Recorder
	fail := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("dial tcp: refused; access_token=at-err-1")
	})
	c := &http.Client{Transport: &Transport{Base: fail, Server: "s", Recorder: &rec, Logger: log}}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9/mcp", nil)
	if _, err := c.Do(req); err == nil {
		t.Fatal("no error")
	}
	x := rec.Recent()[0]
	if x.Status != 0 || !strings.Contains(x.Err, "refused") || strings.Contains(x.Err, "at-err-1") {
		t.Errorf("recorded %+v", x)
	}
	if l := lines.waitLines(t, "exchange", 1)[0]; l["err"] != x.Err {
		t.Errorf("logged %v", l)
	}
}

func TestOAuthKind(t *testing.T) {
	tests := []struct {
		method, contentType, accept, body, want string
	}{
		{"GET", "", "application/json", "", KindDiscovery},
		{"GET", "", "text/event-stream", "", KindProbe},
		{"POST", "application/json", "", `{"redirect_uris":["http://localhost:3030/callback"],"client_name":"x"}`, KindRegister},
		{"POST", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"initialize"}`, KindProbe},
		{"POST", "application/x-www-form-urlencoded", "", "grant_type=authorization_code&code=c", KindToken},
		{"POST", "application/x-www-form-urlencoded; charset=utf-8", "", "grant_type=refresh_token&refresh_token=r", KindRefresh},
		{"DELETE", "", "", "", KindProbe},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://x/", strings.NewReader(tt.body))
		req.Header.Set("Accept", tt.accept)
		if got := oauthKind(req, tt.contentType, []byte(tt.body)); got != tt.want {
			t.Errorf("%s %s %q: %s, want %s", tt.method, tt.contentType, tt.body, got, tt.want)
		}
	}
}

func TestParseRPC(t *testing.T) {
	tests := []struct{ body, method, id string }{
		{`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, "initialize", "1"},
		{`{"params":{"a":[1,{"b":2}]},"method":"tools/call","id":"abc","jsonrpc":"2.0"}`, "tools/call", "abc"},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, "notifications/initialized", ""},
		{`{"jsonrpc":"2.0","id":3,"result":{}}`, "", "3"},
		{`{"jsonrpc":"2.0","id":null,"error":{}}`, "", ""},
		{`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]`, "a,b", "1,"},
		{` {"jsonrpc":"2.0","id":9,"method":"cut","params":{"x":"abc`, "cut", "9"},
		{`{"method":"not-rpc"}`, "", ""},
		{`grant_type=x`, "", ""},
		{``, "", ""},
	}
	for _, tt := range tests {
		m, id := parseRPC([]byte(tt.body))
		if m != tt.method || id != tt.id {
			t.Errorf("parseRPC(%s) = %q, %q; want %q, %q", tt.body, m, id, tt.method, tt.id)
		}
	}
}

func TestTrimPartialRune(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"aé", "aé"},
		{"a\xc3", "a"},
		{"a\xe2\x82", "a"},
		{"a€", "a€"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := string(trimPartialRune([]byte(tt.in))); got != tt.want {
			t.Errorf("trimPartialRune(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A request the client gives up on before the answer says so, in the
// status page's list (and so in the log and the HAR comment).
func TestTransportClientGaveUp(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer up.Close()
	defer close(release)
	var rec Recorder
	c := &http.Client{Transport: &Transport{Server: "s", Recorder: &rec}}
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, up.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`))
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Do(req); err == nil {
		t.Fatal("the cancelled request got an answer")
	}
	got := rec.Recent()
	if len(got) != 1 || got[0].Status != 0 || !strings.Contains(got[0].Err, "client gave up") {
		t.Errorf("recorded %+v; want no status and the client's giving up as the error", got)
	}
}

// bufferedBody offers a request body under BodyKey, as the proxy's
// request context does.
type bufferedBody []byte

func (b bufferedBody) RequestBody() []byte { return b }

// Direct holds only while the Recorder alone reads exchanges, and Answer
// then records what RoundTrip records.
func TestTransportDirect(t *testing.T) {
	har, err := CreateHAR(t.TempDir()+"/x.har", HAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer har.Close()
	info := slog.New(slog.NewTextHandler(io.Discard, nil))
	warn := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, tt := range []struct {
		name string
		t    *Transport
		want bool
	}{
		{"recorder", &Transport{}, true},
		{"mcp kind, as serve has it", &Transport{Kind: KindMCP}, true},
		{"logger above info", &Transport{Logger: warn}, true},
		{"logger", &Transport{Logger: info}, false},
		{"bodies", &Transport{Bodies: true}, false},
		{"har", &Transport{HAR: har}, false},
		{"oauth", &Transport{Kind: KindOAuth}, false},
	} {
		if got := tt.t.Direct(t.Context()); got != tt.want {
			t.Errorf("%s: Direct = %v, want %v", tt.name, got, tt.want)
		}
	}

	var cut atomic.Bool // the second answer's body ends early
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "36")
		if cut.Load() {
			io.WriteString(w, `{"jsonrpc"`)
			return
		}
		io.WriteString(w, `{"jsonrpc":"2.0","id":4,"result":{}}`)
	}))
	defer up.Close()
	body := []byte(`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`)
	var viaRoundTrip, viaAnswer Recorder
	rt := &Transport{Server: "crm", Kind: KindMCP, Recorder: &viaRoundTrip}
	an := &Transport{Server: "crm", Kind: KindMCP, Recorder: &viaAnswer}
	ctx := context.WithValue(t.Context(), BodyKey, bufferedBody(body))
	exchange := func(rec func(*http.Request, *http.Response)) *http.Request {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, up.URL+"/mcp?key=s3cret", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok-123456")
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		rec(req, res)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return req
	}
	for _, c := range []bool{false, true} {
		cut.Store(c)
		// Through RoundTrip, with the upstream's answer as its base's.
		exchange(func(req *http.Request, res *http.Response) {
			rt.Base = roundTripFunc(func(*http.Request) (*http.Response, error) { return res, nil })
			if got, err := rt.RoundTrip(req); err != nil || got != res {
				t.Fatalf("RoundTrip: %v", err)
			}
		})
		exchange(func(req *http.Request, res *http.Response) {
			an.Answer(ctx, time.Now(), http.MethodPost, req.URL, "tok-123456", body, res)
		})
	}
	ignore := cmpopts.IgnoreFields(Exchange{}, "Time", "Duration")
	got, want := viaAnswer.Recent(), viaRoundTrip.Recent()
	if d := cmp.Diff(want, got, ignore); d != "" {
		t.Errorf("recorded (-RoundTrip +Answer):\n%s", d)
	}
	if len(got) != 2 || got[0].RPCMethod != "tools/list" || got[0].RespBytes != 36 || got[1].Err == "" || strings.Contains(got[1].Err, "tok-123456") {
		t.Errorf("Answer recorded %+v; want the whole first answer, and the second's error without the token", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
