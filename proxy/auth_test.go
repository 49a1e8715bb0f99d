package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

// TestReplayHeldRequest checks that a request meeting a 401 is held until the
// login ends and then replayed, body identical, with the new token.
func TestReplayHeldRequest(t *testing.T) {
	hold := make(chan struct{})
	auth := &mcptest.Authorizer{Hold: hold}
	up, rec := upstream(t, echoHandler(), auth.Verify)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})

	body := rpcBody(7, "tools/list")
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, _, b, err := tryPost(t.Context(), local.URL+"/mcp", body, nil)
		done <- result{status, b, err}
	}()
	poll(t, "the login to start", func() bool { return auth.Challenges() == 1 })
	select {
	case r := <-done:
		t.Fatalf("the client got an answer before the login ended: %d %s", r.status, r.body)
	default:
	}
	close(hold)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if want := fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"result":{"len":%d}}`, len(body)); r.body != want {
		t.Errorf("answer = %s, want %s", r.body, want)
	}
	reqs := rec.Requests()
	if diff := cmp.Diff([]int{401, 0}, statuses(rec)); diff != "" {
		t.Fatalf("upstream statuses (-want +got):\n%s", diff)
	}
	if reqs[0].Header.Get("Authorization") != "" || reqs[1].Header.Get("Authorization") != "Bearer token-1" {
		t.Errorf("Authorization: first %q, replay %q", reqs[0].Header.Get("Authorization"), reqs[1].Header.Get("Authorization"))
	}
	for i, r := range reqs {
		if string(r.Body) != body {
			t.Errorf("request %d body = %q, want %q", i, r.Body, body)
		}
	}
	if auth.Logins() != 1 {
		t.Errorf("logins = %d, want 1", auth.Logins())
	}
}

func TestReplayGETStream(t *testing.T) {
	auth := &mcptest.Authorizer{}
	up, rec := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "id: 1\ndata: {}\n\n")
	}), auth.Verify)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, local.URL+"/mcp", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "0")
	status, hdr, body := do(t, req)
	if status != http.StatusOK || body != "id: 1\ndata: {}\n\n" || hdr.Get("Content-Type") != "text/event-stream" {
		t.Errorf("got %d %q %q", status, hdr.Get("Content-Type"), body)
	}
	reqs := rec.Requests()
	if diff := cmp.Diff([]int{401, 0}, statuses(rec)); diff != "" {
		t.Fatalf("upstream statuses (-want +got):\n%s", diff)
	}
	if got := reqs[1].Header.Get("Last-Event-ID"); got != "0" {
		t.Errorf("replayed Last-Event-ID = %q", got)
	}
}

// TestConcurrentFirstRequests sends 100 requests before any login: all reach
// the upstream (the proxy does not serialise them), all are held, one login
// serves them all and every one is replayed with its own body.
func TestConcurrentFirstRequests(t *testing.T) {
	const n = 100
	hold := make(chan struct{})
	auth := &mcptest.Authorizer{Hold: hold}
	up, rec := upstream(t, echoHandler(), auth.Verify)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := rpcBody(i, "tools/call")
			status, _, got, err := tryPost(t.Context(), local.URL+"/mcp", body, nil)
			want := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":{"len":%d}}`, i, len(body))
			if err != nil || status != http.StatusOK || got != want {
				errs <- fmt.Errorf("request %d: %d %s %v, want 200 %s", i, status, got, err, want)
			}
		})
	}
	poll(t, "every request to meet a 401", func() bool { return rec.Count() == n })
	close(hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := auth.Logins(); got != 1 {
		t.Errorf("logins = %d, want 1", got)
	}
	if got := rec.Count(); got != 2*n {
		t.Errorf("upstream got %d requests, want %d", got, 2*n)
	}
}

func TestStepUp(t *testing.T) {
	call := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"admin","arguments":{}}}`
	t.Run("granted", func(t *testing.T) {
		auth := &mcptest.Authorizer{Grantable: []string{"admin"}}
		auth.SetToken("read")
		up, rec := upstream(t, echoHandler(), auth.Verify)
		local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
		status, _, body := post(t, local.URL+"/mcp", call, nil)
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		if diff := cmp.Diff([]int{403, 0}, statuses(rec)); diff != "" {
			t.Errorf("upstream statuses (-want +got):\n%s", diff)
		}
		if auth.Logins() != 1 {
			t.Errorf("logins = %d, want 1", auth.Logins())
		}
	})
	t.Run("limit reached", func(t *testing.T) {
		auth := &mcptest.Authorizer{} // never grants "admin"
		auth.SetToken("read")
		up, rec := upstream(t, echoHandler(), auth.Verify)
		local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})

		status, hdr, body := post(t, local.URL+"/mcp", call, nil)
		if diff := cmp.Diff([]int{403, 403, 403, 403}, statuses(rec)); diff != "" {
			t.Errorf("upstream statuses (-want +got):\n%s", diff)
		}
		// The upstream's last answer, as it is.
		if status != http.StatusForbidden {
			t.Errorf("status = %d, want 403", status)
		}
		wantAuth := `Bearer error="insufficient_scope", scope="admin", error_description="tool needs scope admin"`
		if got := hdr.Get("WWW-Authenticate"); got != wantAuth {
			t.Errorf("WWW-Authenticate = %q, want %q", got, wantAuth)
		}
		if want := `{"error":"insufficient_scope","scope":"admin"}`; body != want {
			t.Errorf("body = %q, want %q", body, want)
		}
		if auth.Logins() != 3 {
			t.Errorf("logins = %d, want 3", auth.Logins())
		}
	})
}

// TestNoReplayLoop checks that an upstream refusing every token gets the
// request a bounded number of times and the client its 401 as it is.
func TestNoReplayLoop(t *testing.T) {
	auth := &mcptest.Authorizer{}
	up, rec := upstream(t, echoHandler(), func(string) ([]string, bool) { return nil, false })
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
	status, hdr, body := post(t, local.URL+"/mcp", rpcBody(1, "ping"), nil)
	if status != http.StatusUnauthorized || body != "unauthorized\n" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("got %d %q %q, want the upstream's 401", status, hdr.Get("WWW-Authenticate"), body)
	}
	if got := rec.Count(); got != 3 {
		t.Errorf("upstream got %d requests, want 3 (first + 2 replays)", got)
	}
}

// funcAuth is an Authorizer made of functions.
type funcAuth struct {
	token     func() (string, error)
	challenge func(ctx context.Context) (bool, error)
}

func (a funcAuth) Token(context.Context) (string, error) { return a.token() }
func (a funcAuth) Challenge(ctx context.Context, _ *http.Response, _ string) (bool, error) {
	return a.challenge(ctx)
}

func TestChallengeOutcomes(t *testing.T) {
	loginErr := &mcptest.LoginError{URL: "https://auth.example/login?flow=9", Err: errors.New("login timed out")}
	tests := []struct {
		name       string
		challenge  func(ctx context.Context) (bool, error)
		wantStatus int
		wantAsIs   bool   // the upstream's 401 as it is
		wantLogin  string // loginURL in the JSON-RPC error
	}{
		{"no retry", func(context.Context) (bool, error) { return false, nil }, 401, true, ""},
		{"retry with the same token", func(context.Context) (bool, error) { return true, nil }, 401, true, ""},
		{"login timed out", func(context.Context) (bool, error) { return false, loginErr }, 401, false, loginErr.URL},
		{"other error", func(context.Context) (bool, error) { return false, errors.New("discovery failed") }, 401, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := funcAuth{token: func() (string, error) { return "stale", nil }, challenge: tt.challenge}
			up, rec := upstream(t, echoHandler(), func(string) ([]string, bool) { return nil, false })
			local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
			status, hdr, body := post(t, local.URL+"/mcp", rpcBody(5, "ping"), nil)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			if rec.Count() != 1 {
				t.Errorf("upstream got %d requests, want 1", rec.Count())
			}
			if tt.wantAsIs {
				if body != "unauthorized\n" || hdr.Get("WWW-Authenticate") == "" {
					t.Errorf("got %q %q, want the upstream's answer", hdr.Get("WWW-Authenticate"), body)
				}
				return
			}
			e := parseRPCErr(t, body)
			if string(e.ID) != "5" {
				t.Errorf("id = %s, want 5", e.ID)
			}
			if e.Error.Data.LoginURL != tt.wantLogin {
				t.Errorf("loginURL = %q, want %q", e.Error.Data.LoginURL, tt.wantLogin)
			}
			if tt.wantLogin != "" && !strings.Contains(e.Error.Message, tt.wantLogin) {
				t.Errorf("message %q lacks the login link", e.Error.Message)
			}
			if strings.Contains(body, "stale") {
				t.Errorf("body leaks the token: %s", body)
			}
		})
	}
}

func TestLoginFails(t *testing.T) {
	auth := &mcptest.Authorizer{URL: "https://auth.example/authorize?x=1", Fail: errors.New("login timed out after 5m0s")}
	up, _ := upstream(t, echoHandler(), auth.Verify)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
	status, _, body := post(t, local.URL+"/mcp", rpcBody(11, "initialize"), nil)
	if status != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", status)
	}
	e := parseRPCErr(t, body)
	if string(e.ID) != "11" || e.Error.Data.LoginURL != auth.URL ||
		!strings.Contains(e.Error.Message, auth.URL) || !strings.Contains(e.Error.Message, "timed out") {
		t.Errorf("error = %s", body)
	}
}

// TestBodyOverLimit checks that a body larger than the buffer still streams
// upstream, and that a 401 for it gives the client the login link.
func TestBodyOverLimit(t *testing.T) {
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"pad":"` + strings.Repeat("p", 4096) + `"}}`
	t.Run("authorized", func(t *testing.T) {
		auth := &mcptest.Authorizer{}
		auth.SetToken()
		up, rec := upstream(t, echoHandler(), auth.Verify)
		local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{MaxBodyBytes: 1024})
		if status, _, body := post(t, local.URL+"/mcp", big, nil); status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		if got := rec.Requests()[0].Body; string(got) != big {
			t.Errorf("upstream body differs (%d bytes, want %d)", len(got), len(big))
		}
	})
	t.Run("meets 401", func(t *testing.T) {
		hold := make(chan struct{})
		t.Cleanup(func() { close(hold) })
		auth := &mcptest.Authorizer{Hold: hold, URL: "https://auth.example/authorize?flow=big"}
		up, rec := upstream(t, echoHandler(), auth.Verify)
		local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{MaxBodyBytes: 1024})
		status, _, body := post(t, local.URL+"/mcp", big, nil)
		if status != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", status)
		}
		e := parseRPCErr(t, body)
		if e.Error.Data.LoginURL != auth.URL || !strings.Contains(e.Error.Message, auth.URL) {
			t.Errorf("error lacks the login link: %s", body)
		}
		if rec.Count() != 1 || string(rec.Requests()[0].Body) != big {
			t.Errorf("upstream got %d requests, want the one with the full body", rec.Count())
		}
	})
	t.Run("meets a refusal the Authorizer lets stand", func(t *testing.T) {
		// As for a small body, the upstream's answer goes to the client:
		// no login would follow, so there is nothing to send again.
		up, _ := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="admin"`)
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"upstream":"says no"}`)
		}), nil)
		auth := funcAuth{token: func() (string, error) { return "tok", nil },
			challenge: func(context.Context) (bool, error) { return false, nil }}
		local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{MaxBodyBytes: 1024})
		status, hdr, body := post(t, local.URL+"/mcp", big, nil)
		if status != http.StatusForbidden || body != `{"upstream":"says no"}` || !strings.Contains(hdr.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("got %d %q (WWW-Authenticate %q), want the upstream's 403", status, body, hdr.Get("WWW-Authenticate"))
		}
	})
}

// TestTokenError checks that a request goes out without a token when the
// Authorizer cannot give one, so the 401 leads to a login.
func TestTokenError(t *testing.T) {
	var mu sync.Mutex
	tok := ""
	auth := funcAuth{
		token: func() (string, error) {
			mu.Lock()
			defer mu.Unlock()
			if tok == "" {
				return "", errors.New("refresh failed")
			}
			return tok, nil
		},
		challenge: func(context.Context) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			tok = "fresh"
			return true, nil
		},
	}
	up, rec := upstream(t, echoHandler(), func(s string) ([]string, bool) { return nil, s == "fresh" })
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
	if status, _, body := post(t, local.URL+"/mcp", rpcBody(1, "ping"), nil); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if diff := cmp.Diff([]int{401, 0}, statuses(rec)); diff != "" {
		t.Errorf("upstream statuses (-want +got):\n%s", diff)
	}
	var got []string
	for _, r := range rec.Requests() {
		got = append(got, r.Header.Get("Authorization"))
	}
	if diff := cmp.Diff([]string{"", "Bearer fresh"}, got); diff != "" {
		t.Errorf("Authorization (-want +got):\n%s", diff)
	}
}

// TestTokenChangesBetweenRequests checks that each request carries the
// token current when it is sent: the header value is made once per token.
func TestTokenChangesBetweenRequests(t *testing.T) {
	var mu sync.Mutex
	var tok string
	auth := funcAuth{
		token: func() (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return tok, nil
		},
		challenge: func(context.Context) (bool, error) { return false, nil },
	}
	up, rec := upstream(t, echoHandler(), nil)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
	for i, current := range []string{"one", "one", "two", "two", "one"} {
		mu.Lock()
		tok = current
		mu.Unlock()
		if status, _, body := post(t, local.URL+"/mcp", rpcBody(i, "ping"), nil); status != http.StatusOK {
			t.Fatalf("request %d: status %d: %s", i, status, body)
		}
	}
	var got []string
	for _, r := range rec.Requests() {
		got = append(got, r.Header.Get("Authorization"))
	}
	want := []string{"Bearer one", "Bearer one", "Bearer two", "Bearer two", "Bearer one"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Authorization (-want +got):\n%s", diff)
	}
}

// TestNotificationReplay checks a notification (no id) and a batch.
func TestNotificationReplay(t *testing.T) {
	auth := &mcptest.Authorizer{}
	up, rec := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}), auth.Verify)
	local, _ := serve(t, proxy.Server{Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{})
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`[` + rpcBody(1, "ping") + `,` + rpcBody(2, "ping") + `]`,
	} {
		n := rec.Count()
		if status, _, got := post(t, local.URL+"/mcp", body, nil); status != http.StatusAccepted || got != "" {
			t.Errorf("%s: got %d %q, want 202", body, status, got)
		}
		last := rec.Requests()[rec.Count()-1]
		if string(last.Body) != body || rec.Count()-n < 1 {
			t.Errorf("upstream body = %q, want %q", last.Body, body)
		}
	}
}
