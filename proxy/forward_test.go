package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

func TestHeaders(t *testing.T) {
	auth := &mcptest.Authorizer{}
	tok := auth.SetToken()
	up, rec := upstream(t, echoHandler(), auth.Verify)
	local, lb := serve(t, proxy.Server{
		Upstream: up.URL + "/mcp",
		Headers:  map[string]string{"X-Configured": "yes", "x-api-key": "configured"},
		Auth:     auth,
	}, proxy.Options{})

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, local.URL+"/mcp", strings.NewReader(rpcBody(1, "ping")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer junk")
	req.Header["x-hf-authorization"] = []string{"Bearer junk2"} // sent in this letter case
	req.Header.Set("Mcp-Session-Id", "session-1")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	req.Header.Set("Last-Event-ID", "ev-7")
	req.Header.Set("Mcp-Future-Thing", "x")
	req.Header.Set("X-Api-Key", "client") // replaced by the configured value
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Referer", "http://localhost:6274/page")
	req.AddCookie(&http.Cookie{Name: "c", Value: "v"})
	if status, _, body := do(t, req); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}

	reqs := rec.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	want := map[string]string{
		"Authorization":        "Bearer " + tok,
		"X-Hf-Authorization":   "",
		"Mcp-Session-Id":       "session-1",
		"Mcp-Protocol-Version": "2025-11-25",
		"Last-Event-Id":        "ev-7",
		"Mcp-Future-Thing":     "x",
		"X-Configured":         "yes",
		"X-Api-Key":            "configured",
		"Cookie":               "c=v",
		"Origin":               "",
		"Referer":              "",
		"Content-Type":         "application/json",
	}
	gotH := make(map[string]string)
	for k := range want {
		gotH[k] = strings.Join(got.Header.Values(k), ",")
	}
	if diff := cmp.Diff(want, gotH); diff != "" {
		t.Errorf("upstream headers (-want +got):\n%s", diff)
	}
	if got.Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("upstream Host = %q, want %q", got.Host, strings.TrimPrefix(up.URL, "http://"))
	}
	if string(got.Body) != rpcBody(1, "ping") {
		t.Errorf("upstream body = %q, want %q", got.Body, rpcBody(1, "ping"))
	}
	for _, secret := range []string{tok, "junk"} {
		if strings.Contains(lb.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

// A client's credentials in the trailers of a chunked body stay behind
// too.
func TestAuthorizationTrailersDropped(t *testing.T) {
	got := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // trailers arrive after the body
		got <- r.Trailer
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(up.Close)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp"}, proxy.Options{})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, local.URL+"/mcp",
		io.NopCloser(strings.NewReader(rpcBody(1, "ping")))) // no length: chunked
	req.Trailer = http.Header{
		"Authorization":      {"Bearer client-own"},
		"X-Hf-Authorization": {"Bearer client-own-hf"},
		"X-Checksum":         {"c1"},
	}
	if status, _, body := do(t, req); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	trailer := <-got
	if v := trailer.Get("Authorization") + trailer.Get("X-Hf-Authorization"); v != "" {
		t.Errorf("upstream got the client's credentials as trailers: %q", trailer)
	}
	if trailer.Get("X-Checksum") != "c1" {
		t.Errorf("upstream trailers = %q, want X-Checksum kept", trailer)
	}
}

func TestHeadersWithoutOAuth(t *testing.T) {
	up, rec := upstream(t, echoHandler(), nil)
	local, _ := serve(t, proxy.Server{
		Upstream: up.URL + "/mcp",
		Headers:  map[string]string{"Authorization": "Bearer configured"},
	}, proxy.Options{})
	post(t, local.URL+"/mcp", rpcBody(1, "ping"), map[string]string{"Authorization": "Bearer junk", "X-HF-Authorization": "junk"})
	post(t, local.URL+"/mcp", rpcBody(1, "ping"), nil)
	for i, r := range rec.Requests() {
		if got := r.Header.Values("Authorization"); !cmp.Equal(got, []string{"Bearer configured"}) {
			t.Errorf("request %d: Authorization = %q, want the configured one", i, got)
		}
		if got := r.Header.Values("X-Hf-Authorization"); got != nil {
			t.Errorf("request %d: X-HF-Authorization = %q, want none", i, got)
		}
	}
}

func TestQuery(t *testing.T) {
	up, rec := upstream(t, echoHandler(), nil)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp?login"}, proxy.Options{})
	tests := []struct {
		path      string
		wantPath  string
		wantQuery string
	}{
		{"/mcp", "/mcp", "login"},
		{"/mcp?x=1", "/mcp", "x=1"},
		{"/mcp?a=1;b=2&c", "/mcp", "a=1;b=2&c"}, // kept even where Go's parser gives up
		{"/mcp/", "/mcp/", ""},
		{"/messages?sessionId=abc", "/messages", "sessionId=abc"},
		{"/", "/", ""},
		{"/a%2Fb", "/a/b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			n := rec.Count()
			if status, _, body := post(t, local.URL+tt.path, rpcBody(1, "ping"), nil); status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			got := rec.Requests()[n]
			if got.Path != tt.wantPath || got.RawQuery != tt.wantQuery {
				t.Errorf("upstream got %s?%s, want %s?%s", got.Path, got.RawQuery, tt.wantPath, tt.wantQuery)
			}
		})
	}
}

// TestEndpointRoute checks upstream paths chi would read as patterns: the
// endpoint and other paths are forwarded as they are, and chi still
// answers unknown methods.
func TestEndpointRoute(t *testing.T) {
	for _, path := range []string{"/mcp", "/", "/v1/{id}/mcp", "/mcp*", "/a{", "/b}", "/c:d"} {
		t.Run(path, func(t *testing.T) {
			up, rec := upstream(t, echoHandler(), nil)
			local, _ := serve(t, proxy.Server{Upstream: up.URL + path}, proxy.Options{})
			for _, p := range []string{path, "/other", path + "/x"} {
				n := rec.Count()
				if status, _, body := post(t, local.URL+p, rpcBody(1, "ping"), nil); status != http.StatusOK {
					t.Fatalf("POST %s: status %d: %s", p, status, body)
				}
				if got := rec.Requests()[n].Path; got != p {
					t.Errorf("POST %s: upstream got %s", p, got)
				}
			}
			req, _ := http.NewRequest("PROPFIND", local.URL+path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("PROPFIND %s: status %d, want 405", path, res.StatusCode)
			}
		})
	}
}

func TestRedirects(t *testing.T) {
	var withAuth, total atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		total.Add(1)
		if r.Header.Get("Authorization") != "" {
			withAuth.Add(1)
		}
		io.WriteString(w, "other")
	}))
	t.Cleanup(other.Close)
	var upURL string
	auth := &mcptest.Authorizer{}
	auth.SetToken()
	up, rec := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, upURL+"/mcp2?x=1", http.StatusTemporaryRedirect)
		case "/relative":
			w.Header().Set("Location", "/mcp3")
			w.WriteHeader(http.StatusFound)
		case "/other":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		default:
			io.WriteString(w, "reached "+r.URL.Path)
		}
	}), auth.Verify)
	upURL = up.URL
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(c *http.Client, path string) (*http.Response, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, local.URL+path, nil)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	res, _ := get(noFollow, "/same")
	if got, want := res.Header.Get("Location"), local.URL+"/mcp2?x=1"; got != want {
		t.Errorf("same-origin Location = %q, want %q", got, want)
	}
	res, _ = get(noFollow, "/relative")
	if got := res.Header.Get("Location"); got != "/mcp3" {
		t.Errorf("relative Location = %q, want it unchanged", got)
	}
	res, _ = get(noFollow, "/other")
	if got, want := res.Header.Get("Location"), other.URL+"/steal"; got != want {
		t.Errorf("cross-origin Location = %q, want %q", got, want)
	}
	if total.Load() != 0 {
		t.Errorf("the proxy followed the redirect to the other origin")
	}

	// A client that follows redirects ends at the other origin on its
	// own, without the token; through the proxy for same-origin ones.
	if _, body := get(http.DefaultClient, "/same"); body != "reached /mcp2" {
		t.Errorf("following the same-origin redirect got %q", body)
	}
	if _, body := get(http.DefaultClient, "/other"); body != "other" {
		t.Errorf("following the cross-origin redirect got %q", body)
	}
	if total.Load() != 1 || withAuth.Load() != 0 {
		t.Errorf("other origin got %d requests, %d with Authorization; want 1, 0", total.Load(), withAuth.Load())
	}
	for _, r := range rec.Requests() {
		if r.Status != 0 {
			t.Errorf("upstream refused %s with %d", r.Path, r.Status)
		}
	}
}

func TestUpstreamDown(t *testing.T) {
	// Port 1 (tcpmux) is privileged and unused: connections are refused.
	// A port freed by closing a listener could be taken by the proxy's
	// own listener, which would then forward to itself.
	const addr = "127.0.0.1:1"
	auth := &mcptest.Authorizer{}
	tok := auth.SetToken()
	local, lb := serve(t, proxy.Server{Upstream: "http://" + addr + "/mcp?key=secret", Auth: auth}, proxy.Options{})

	tests := []struct {
		body   string
		wantID string
	}{
		{rpcBody(42, "tools/list"), "42"},
		{`{"jsonrpc":"2.0","id":"abc","method":"ping"}`, `"abc"`},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, "null"},
		{`[` + rpcBody(1, "ping") + `]`, "null"},
	}
	for _, tt := range tests {
		status, hdr, body := post(t, local.URL+"/mcp", tt.body, nil)
		if status != http.StatusBadGateway {
			t.Errorf("status = %d, want 502", status)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		e := parseRPCErr(t, body)
		if string(e.ID) != tt.wantID {
			t.Errorf("id = %s, want %s", e.ID, tt.wantID)
		}
		if e.Error.Code != -32603 {
			t.Errorf("code = %d, want -32603", e.Error.Code)
		}
		if !strings.Contains(e.Error.Message, "http://"+addr+"/mcp") || !strings.Contains(e.Error.Message, "refused") {
			t.Errorf("message %q does not name the upstream and the cause", e.Error.Message)
		}
		if strings.Contains(body, tok) || strings.Contains(body, "secret") {
			t.Errorf("body leaks the token or the query: %s", body)
		}
	}
	if strings.Contains(lb.String(), tok) || strings.Contains(lb.String(), "secret") {
		t.Errorf("logs leak the token or the query:\n%s", lb)
	}
}

func TestGuard(t *testing.T) {
	up, rec := upstream(t, echoHandler(), nil)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp"}, proxy.Options{AllowedHosts: []string{"proxy.test"}})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(local.URL, "http://"))
	tests := []struct {
		name   string
		host   string
		origin string
		want   int
	}{
		{"loopback IP", "127.0.0.1:" + port, "", http.StatusOK},
		{"localhost", "localhost:" + port, "", http.StatusOK},
		{"IPv6 loopback", "[::1]:" + port, "", http.StatusOK},
		{"allowed host", "proxy.test:" + port, "", http.StatusOK},
		{"loopback origin", "127.0.0.1:" + port, "http://localhost:6274", http.StatusOK},
		{"foreign host", "evil.example", "", http.StatusForbidden},
		{"foreign host with port", "evil.example:" + port, "", http.StatusForbidden},
		{"loopback on another port", "127.0.0.1:1", "", http.StatusForbidden},
		{"foreign origin", "127.0.0.1:" + port, "http://evil.example", http.StatusForbidden},
		{"null origin", "127.0.0.1:" + port, "null", http.StatusForbidden},
		{"rebound origin", "127.0.0.1:" + port, "http://evil.example:" + port, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := rec.Count()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, local.URL+"/mcp", strings.NewReader(rpcBody(1, "ping")))
			req.Host = tt.host
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			status, _, body := do(t, req)
			if status != tt.want {
				t.Fatalf("status = %d, want %d: %s", status, tt.want, body)
			}
			forwarded := rec.Count() - n
			if tt.want == http.StatusForbidden {
				parseRPCErr(t, body)
				if forwarded != 0 {
					t.Errorf("a refused request reached the upstream")
				}
			} else if forwarded != 1 {
				t.Errorf("upstream got %d requests, want 1", forwarded)
			}
		})
	}
}

// TestStreamsFlushed checks that each event reaches the client before the
// upstream writes the next one: the upstream waits for the client to signal
// that it got the first event.
func TestStreamsFlushed(t *testing.T) {
	const first, second = "id: 1\nevent: message\ndata: {\"n\":1}\n\n", "id: 2\nevent: message\ndata: {\"n\":2}\n\n"
	tests := []struct {
		name          string
		contentType   string
		contentLength bool
		transport     string
	}{
		{"sse chunked", "text/event-stream", false, "http"},
		{"sse with content-length", "text/event-stream", true, "http"},
		{"other stream with content-length", "application/octet-stream", true, "http"},
		{"legacy sse", "text/event-stream; charset=utf-8", false, "sse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotFirst := make(chan struct{})
			inOrder := make(chan bool, 1)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.contentLength {
					w.Header().Set("Content-Length", fmt.Sprint(len(first+second)))
				}
				io.WriteString(w, first)
				http.NewResponseController(w).Flush()
				select {
				case <-gotFirst:
					inOrder <- true
				case <-time.After(waitFor):
					inOrder <- false
				case <-r.Context().Done():
					inOrder <- false
					return
				}
				time.Sleep(300 * time.Millisecond) // events 300 ms apart at least
				io.WriteString(w, second)
			}))
			t.Cleanup(up.Close)
			local, _ := serve(t, proxy.Server{Upstream: up.URL + "/sse", Transport: tt.transport}, proxy.Options{})

			req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodGet, local.URL+"/sse", nil)
			req.Header.Set("Accept", "text/event-stream")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			var got bytes.Buffer
			for !strings.HasSuffix(got.String(), "\n\n") {
				line, err := br.ReadString('\n')
				got.WriteString(line)
				if err != nil {
					t.Fatalf("reading the first event: %v (got %q)", err, got.String())
				}
			}
			close(gotFirst)
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Fatalf("reading the rest: %v", err)
			}
			if !<-inOrder {
				t.Errorf("the client did not get the first event before the upstream wrote the second")
			}
			if got := got.String() + string(rest); got != first+second {
				t.Errorf("stream = %q, want %q", got, first+second)
			}
		})
	}
}

// TestStreamHeadersFirst checks that the headers of a streamed response
// reach the client before its first bytes of body exist: the upstream sends
// its headers and writes nothing more until the client has them.
func TestStreamHeadersFirst(t *testing.T) {
	tests := []struct {
		name, method, contentType string
	}{
		{"event stream answering a GET", http.MethodGet, "text/event-stream"},
		{"event stream answering a POST", http.MethodPost, "text/event-stream"},
		{"body of unknown length", http.MethodGet, "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotHeaders := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(http.StatusOK)
				http.NewResponseController(w).Flush()
				select {
				case <-gotHeaders:
					io.WriteString(w, "data: after\n\n")
				case <-time.After(waitFor):
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(up.Close)
			local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp"}, proxy.Options{})

			req, _ := http.NewRequestWithContext(ctxTimeout(t), tt.method, local.URL+"/mcp", strings.NewReader("{}"))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			close(gotHeaders)
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusOK || string(body) != "data: after\n\n" {
				t.Errorf("got %d %q, want the body written after the client had the headers", res.StatusCode, body)
			}
		})
	}
}

// TestStreamBytesIdentical sends a stream with comments, every line ending,
// unknown fields and multi-line data through both transports.
func TestStreamBytesIdentical(t *testing.T) {
	stream := ": comment first\r\n" +
		"retry: 1000\n" +
		"id: 1\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\n" +
		"foo: unknown field\n" +
		"data\n" + // a bare field name
		"data: line 1\ndata: line 2\n\n" +
		"event: cr\rdata: cr line\r\r" +
		":ping\n\n" +
		"data:no space\n\n" +
		"data: unterminated"
	for _, transport := range []string{"http", "sse"} {
		t.Run(transport, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, part := range strings.SplitAfter(stream, "\n") {
					io.WriteString(w, part)
					http.NewResponseController(w).Flush()
				}
			}))
			t.Cleanup(up.Close)
			local, _ := serve(t, proxy.Server{Upstream: up.URL + "/sse", Transport: transport}, proxy.Options{})
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, local.URL+"/sse", nil)
			status, _, body := do(t, req)
			if status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			if body != stream {
				t.Errorf("stream changed:\n got %q\nwant %q", body, stream)
			}
		})
	}
}

func TestUpstreamRestartMidStream(t *testing.T) {
	streaming := make(chan struct{}, 1)
	sse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: hello\n\n")
		http.NewResponseController(w).Flush()
		streaming <- struct{}{}
		<-r.Context().Done()
	})
	up := mcptest.StartAt(t, "", sse)
	addr := up.Listener.Addr().String()
	local, lb := serve(t, proxy.Server{Upstream: up.URL + "/mcp"}, proxy.Options{})

	req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodGet, local.URL+"/mcp", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	<-streaming
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if line != "data: hello\n" || err != nil {
		t.Fatalf("first line = %q, %v", line, err)
	}
	up.CloseClientConnections()
	up.Close()
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Log("stream ended with EOF")
	} else {
		t.Logf("stream ended with %v", err)
	}

	mcptest.StartAt(t, addr, echoHandler())
	if status, _, body := post(t, local.URL+"/mcp", rpcBody(1, "ping"), nil); status != http.StatusOK {
		t.Errorf("request after the restart: status %d: %s", status, body)
	}
	if strings.Contains(lb.String(), "level=ERROR") {
		t.Errorf("logged an error:\n%s", lb)
	}
}

func TestClientDisconnectNotAnError(t *testing.T) {
	started := make(chan struct{}, 2)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)              // until then the server does not notice a closed connection
		if r.Method == http.MethodGet { // a stream the client leaves
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
		}
		started <- struct{}{}
		<-r.Context().Done() // a POST is never answered before the client gives up
	}))
	t.Cleanup(up.Close)
	local, lb := serve(t, proxy.Server{Upstream: up.URL + "/mcp"}, proxy.Options{})

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, local.URL+"/mcp", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	res.Body.Close()

	ctx2, cancel2 := context.WithCancel(t.Context())
	req2, _ := http.NewRequestWithContext(ctx2, http.MethodPost, local.URL+"/mcp", strings.NewReader(rpcBody(1, "ping")))
	done := make(chan error)
	go func() {
		res, err := http.DefaultClient.Do(req2)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	<-started
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want context.Canceled", err)
	}
	poll(t, "the canceled request to be logged", func() bool {
		return strings.Contains(lb.String(), "request canceled")
	})
	if strings.Contains(lb.String(), "level=ERROR") || strings.Contains(lb.String(), "level=WARN") {
		t.Errorf("a client disconnect was logged as a problem:\n%s", lb)
	}
}
