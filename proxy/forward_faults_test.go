package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

// The upstream resets the connection in the middle of a response: the
// client sees a cut response (never a complete-looking one), the proxy
// logs it as the upstream's failure, and the next request goes through.
func TestFaultsUpstreamResetMidResponse(t *testing.T) {
	auth := &mcptest.Authorizer{}
	tok := auth.SetToken()
	up, _ := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/reset" {
			echoHandler().ServeHTTP(w, r)
			return
		}
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "10000")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"text":"`)
		http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
		conn.Close()
	}), auth.Verify)
	local, lb := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})

	for range 3 {
		status, _, body, err := tryPost(ctxTimeout(t), local.URL+"/reset", rpcBody(1, "tools/call"), nil)
		if err == nil && status == http.StatusOK && len(body) == 10000 {
			t.Fatalf("a reset response reached the client as complete: %q", body)
		}
		if err == nil && status != http.StatusBadGateway {
			t.Errorf("reset before the body: status %d, want 502 or a cut response", status)
		}
		if status, _, body := post(t, local.URL+"/mcp", rpcBody(2, "ping"), nil); status != http.StatusOK || !strings.Contains(body, `"id":2`) {
			t.Fatalf("the request after a reset: %d %s", status, body)
		}
	}
	if strings.Contains(lb.String(), tok) {
		t.Errorf("the logs show the token:\n%s", lb)
	}
}

// A slow upstream — headers after a while, then the body in pieces — is
// neither cut off by a timeout nor buffered: each piece reaches the client
// before the next is written, and other requests go through meanwhile.
func TestFaultsSlowUpstream(t *testing.T) {
	const pieces = 5
	headers := make(chan struct{})
	next := make(chan struct{})
	up, _ := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			echoHandler().ServeHTTP(w, r)
			return
		}
		select {
		case <-headers:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range pieces {
			io.WriteString(w, "data: piece "+strconv.Itoa(i)+"\n\n")
			http.NewResponseController(w).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}), nil)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp"}, proxy.Options{})

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	type result struct {
		res *http.Response
		err error
	}
	started := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, local.URL+"/slow", nil)
		res, err := http.DefaultClient.Do(req)
		started <- result{res, err}
	}()
	// While the slow request waits for its headers, others are served.
	for i := range 10 {
		if status, _, body := post(t, local.URL+"/mcp", rpcBody(i, "ping"), nil); status != http.StatusOK || !strings.Contains(body, `"id":`+strconv.Itoa(i)) {
			t.Fatalf("request %d beside the slow one: %d %s", i, status, body)
		}
	}
	// Longer than any sane default timeout on a request that is waiting.
	time.Sleep(2 * time.Second)
	select {
	case r := <-started:
		t.Fatalf("the slow request ended before its upstream answered: %v %v", r.res, r.err)
	default:
	}
	close(headers)
	r := <-started
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.res.Body.Close()
	br := bufio.NewReader(r.res.Body)
	for i := range pieces {
		line, err := br.ReadString('\n')
		if err != nil || line != "data: piece "+strconv.Itoa(i)+"\n" {
			t.Fatalf("piece %d: %q, %v", i, line, err)
		}
		if blank, err := br.ReadString('\n'); blank != "\n" || err != nil {
			t.Fatalf("piece %d: end %q, %v", i, blank, err)
		}
		next <- struct{}{} // the upstream writes the next piece only now
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the last piece: %q, %v", rest, err)
	}
}
