package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

// These tests run `serve` in process, wired as the binary is (config →
// OAuth engine → proxy), between a go-sdk MCP client that knows nothing of
// OAuth and a go-sdk MCP server behind a fake authorization server. The
// proxy's own behaviour is tested with a fake Authorizer in proxy/.

// TestServeUnawareClient: the first request of a client is held through one
// login and answered; later calls need no login, and a client's own
// Authorization never reaches the upstream.
func TestServeUnawareClient(t *testing.T) {
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true},
		oauthtest.ResourceOptions{Handler: streamableMCP(true)})
	port := freePort(t)
	cfg := writeConfig(t, "mcp:\n  servers:\n    docs:\n      url: "+rs.Endpoint+"\n")
	kc := newFakeKeychain()
	srv := startServe(t, kc, "--config", cfg, "--listen", fmt.Sprintf("docs=127.0.0.1:%d", port),
		"--redirect-port", strconv.Itoa(freePort(t)))
	endpoint := localURL(port, "/mcp")
	if table := srv.ready(1); !strings.Contains(table, endpoint) || !strings.Contains(table, "docs") {
		t.Errorf("start table does not show docs at %s:\n%s", endpoint, table)
	}
	ctx := testContext(t)

	type answer struct {
		res rawResponse
		err error
	}
	held := make(chan answer, 1)
	go func() {
		res, err := postRPC(ctx, endpoint, initializeBody, nil)
		held <- answer{res, err}
	}()
	link, err := srv.stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-held:
		t.Fatalf("initialize answered before the login: %d %s %v", a.res.status, a.res.body, a.err)
	default:
	}
	// The user opens the link; the browser follows the redirect to the callback.
	page, err := http.Get(link)
	if err != nil {
		t.Fatalf("following the link: %v", err)
	}
	page.Body.Close()
	if page.StatusCode != http.StatusOK {
		t.Errorf("callback page: %s", page.Status)
	}
	a := <-held
	if a.err != nil || a.res.status != http.StatusOK {
		t.Fatalf("held initialize: %d %s %v", a.res.status, a.res.body, a.err)
	}
	if err := initializeResult(a.res.body); err != nil {
		t.Error(err)
	}

	// A client with its own credentials: they are replaced, never forwarded.
	junk := &http.Client{Transport: headerTransport{"Authorization", "Bearer junk"}}
	cs := connectMCP(t, ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: junk}, nil)
	for i := range 20 {
		callEcho(t, ctx, cs, "call "+strconv.Itoa(i))
	}
	res, err := postRPC(ctx, endpoint, initializeBody, func(r *http.Request) { r.Header.Set("Authorization", "Bearer junk") })
	if err != nil || res.status != http.StatusOK {
		t.Errorf("raw POST with Bearer junk: %d %s %v", res.status, res.body, err)
	}

	if n := as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations, want 1", n)
	}
	if links := srv.links(); len(links) != 1 {
		t.Errorf("%d links printed, want 1: %q", len(links), links)
	}
	var calls int
	for _, r := range rs.Requests() {
		for _, v := range r.Header.Values("Authorization") {
			if strings.Contains(v, "junk") {
				t.Errorf("%s %s reached the upstream with the client's Authorization %q", r.Method, r.Path, v)
			}
		}
		if bytes.Contains(r.Body, []byte(`"tools/call"`)) && r.Status == http.StatusOK {
			calls++
		}
	}
	if calls != 20 {
		t.Errorf("%d tool calls answered 200 upstream, want 20", calls)
	}
	identity := oauth.Identity(rs.Endpoint)
	stored, ok := kc.entry(oauth.TokensKey(identity))
	if !ok {
		t.Fatalf("no %s in the keychain", oauth.TokensKey(identity))
	}
	var tok oauth.Token
	if err := json.Unmarshal([]byte(stored), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("stored token %v", err)
	}
	if out := srv.stdout.String() + srv.stderr.String(); strings.Contains(out, tok.AccessToken) || strings.Contains(out, tok.RefreshToken) {
		t.Error("serve printed a token")
	}
}

// TestServeStreamsEventsAsSent: progress notifications on a tool call's SSE
// answer reach the client one by one: the upstream writes the next tick
// only after the client has received the previous one.
func TestServeStreamsEventsAsSent(t *testing.T) {
	const ticks = 4
	ctx := testContext(t)
	received := make(chan float64)
	server := mcptest.NewServer()
	mcp.AddTool(server, &mcp.Tool{Name: "ticks", Description: "sends progress ticks"},
		func(tctx context.Context, req *mcp.CallToolRequest, in struct {
			N int `json:"n"`
		}) (*mcp.CallToolResult, any, error) {
			for i := 1; i <= in.N; i++ {
				if i > 1 {
					time.Sleep(300 * time.Millisecond) // ticks at intervals
				}
				err := req.Session.NotifyProgress(tctx, &mcp.ProgressNotificationParams{
					ProgressToken: req.Params.GetProgressToken(), Progress: float64(i), Total: float64(in.N),
				})
				if err != nil {
					return nil, nil, err
				}
				select {
				case got := <-received:
					if got != float64(i) {
						return nil, nil, fmt.Errorf("the client got tick %v, want %d", got, i)
					}
				case <-time.After(serveWait / 2): // before the client gives up
					return nil, nil, fmt.Errorf("tick %d did not reach the client", i)
				case <-tctx.Done():
					return nil, nil, tctx.Err()
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%d ticks", in.N)}}}, nil, nil
		})
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{},
		oauthtest.ResourceOptions{Handler: mcptest.StreamableHandler(server, false)})
	port := freePort(t)
	srv := startServe(t, newFakeKeychain(), "--url", rs.Endpoint, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--persist", "memory", "--redirect-port", strconv.Itoa(freePort(t)))
	srv.ready(1)
	srv.followLinks(as)

	// No standalone GET stream: only the tool call's answer streams here.
	transport := &mcp.StreamableClientTransport{Endpoint: localURL(port, "/mcp"), DisableStandaloneSSE: true}
	cs := connectMCP(t, ctx, transport, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			select {
			case received <- req.Params.Progress:
			case <-ctx.Done():
			}
		},
	})
	params := &mcp.CallToolParams{Name: "ticks", Arguments: map[string]any{"n": ticks}}
	params.SetProgressToken("tick")
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("ticks: %v", err)
	}
	if res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != fmt.Sprintf("%d ticks", ticks) {
		t.Errorf("ticks answered %+v", res.Content[0])
	}
	if n := as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations, want 1", n)
	}
}

// TestServeLegacySSE: a `transport: sse` server: the endpoint event points
// at the listener, and the client's POSTs there are answered on its stream.
func TestServeLegacySSE(t *testing.T) {
	sse := mcptest.SSEHandler(mcptest.NewServer())
	absolute := mcptest.AbsoluteEndpoint(sse, func(r *http.Request) string { return "http://" + r.Host })
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{},
		oauthtest.ResourceOptions{Path: "/sse", Handler: absolute})
	port := freePort(t)
	cfg := writeConfig(t, "mcp:\n  servers:\n    legacy:\n      transport: sse\n      url: "+rs.Endpoint+"\n")
	srv := startServe(t, newFakeKeychain(), "--config", cfg, "--listen", fmt.Sprintf("legacy=127.0.0.1:%d", port),
		"--persist", "memory", "--redirect-port", strconv.Itoa(freePort(t)))
	srv.ready(1)
	srv.followLinks(as)
	ctx := testContext(t)

	cs := connectMCP(t, ctx, &mcp.SSEClientTransport{Endpoint: localURL(port, "/sse")}, nil)
	callEcho(t, ctx, cs, "legacy")
	callEcho(t, ctx, cs, "again")

	// What a client reads as the endpoint event.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, localURL(port, "/sse"), nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var event []string
	for sc := bufio.NewScanner(res.Body); sc.Scan() && sc.Text() != ""; {
		event = append(event, sc.Text())
	}
	if len(event) != 2 || event[0] != "event: endpoint" || !strings.HasPrefix(event[1], "data: "+localURL(port, "/sse?sessionid=")) {
		t.Errorf("endpoint event = %q, want data on the listener %s", event, localURL(port, "/sse?sessionid="))
	}

	if n := as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations, want 1", n)
	}
	var posts int
	for _, r := range rs.Requests() {
		if r.Method != http.MethodPost {
			continue
		}
		posts++
		if _, ok := as.Valid(r.BearerToken()); !ok || r.Status != http.StatusAccepted || !r.Query.Has("sessionid") {
			t.Errorf("POST %s?%s: status %d, valid token %v", r.Path, r.Query.Encode(), r.Status, ok)
		}
	}
	if posts < 3 { // initialize, initialized, two tools/call
		t.Errorf("%d POSTs reached the upstream, want at least 3", posts)
	}
}

// TestServeRefusesForeignHostAndOrigin: a DNS-rebinding Host or a web
// page's Origin is refused before anything is forwarded or authorized.
func TestServeRefusesForeignHostAndOrigin(t *testing.T) {
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{}, oauthtest.ResourceOptions{Handler: streamableMCP(true)})
	port := freePort(t)
	srv := startServe(t, newFakeKeychain(), "--url", rs.Endpoint, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--persist", "memory", "--redirect-port", strconv.Itoa(freePort(t)))
	srv.ready(1)
	ctx := testContext(t)
	for _, tt := range []struct {
		name string
		edit func(*http.Request)
	}{
		{"Host evil.example", func(r *http.Request) { r.Host = "evil.example" }},
		{"Host evil.example:port", func(r *http.Request) { r.Host = fmt.Sprintf("evil.example:%d", port) }},
		{"Origin http://evil.example", func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") }},
		{"GET with Origin", func(r *http.Request) {
			r.Method = http.MethodGet
			r.Header.Set("Origin", "http://evil.example")
		}},
	} {
		res, err := postRPC(ctx, localURL(port, "/mcp"), initializeBody, tt.edit)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res.status != http.StatusForbidden || !strings.Contains(string(res.body), "refused") {
			t.Errorf("%s: %d %s, want 403", tt.name, res.status, res.body)
		}
	}
	if reqs := rs.Requests(); len(reqs) != 0 {
		t.Errorf("%d requests reached the upstream, want none", len(reqs))
	}
	if reqs := as.Requests(); len(reqs) != 0 {
		t.Errorf("%d requests reached the authorization server, want none", len(reqs))
	}
	if links := srv.links(); len(links) != 0 {
		t.Errorf("login links printed: %q", links)
	}
}

// TestServeRefusesRemoteListen: a non-loopback listener needs --allow-remote.
func TestServeRefusesRemoteListen(t *testing.T) {
	port := freePort(t)
	cfg := writeConfig(t, "mcp:\n  servers:\n    docs:\n      url: http://127.0.0.1:9/mcp\n")
	for _, args := range [][]string{
		{"--config", cfg, "--listen", fmt.Sprintf("docs=0.0.0.0:%d", port)},
		{"--url", "http://127.0.0.1:9/mcp", "--listen", fmt.Sprintf("0.0.0.0:%d", port)},
	} {
		srv := startServe(t, newFakeKeychain(), append(args, "--persist", "memory")...)
		r := srv.wait()
		if r.code == 0 {
			t.Errorf("%q exited 0", args)
		}
		for _, want := range []string{"0.0.0.0", "loopback"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%q: message lacks %q:\n%s", args, want, r.stderr)
			}
		}
		if r.stdout != "" {
			t.Errorf("%q printed a start table:\n%s", args, r.stdout)
		}
	}
}

// TestServeRemoteListenNamesFlag: the refusal tells the user how to allow it.
func TestServeRemoteListenNamesFlag(t *testing.T) {
	srv := startServe(t, newFakeKeychain(), "--url", "http://127.0.0.1:9/mcp", "--persist", "memory",
		"--listen", fmt.Sprintf("0.0.0.0:%d", freePort(t)))
	if r := srv.wait(); r.code == 0 || !strings.Contains(r.stderr, "--allow-remote") {
		t.Errorf("exit %d, message does not name --allow-remote:\n%s", r.code, r.stderr)
	}
}

// TestServeConcurrentFirstRequests: 100 clients arriving before any login
// share one login and are all answered.
func TestServeConcurrentFirstRequests(t *testing.T) {
	const clients = 100
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{}, oauthtest.ResourceOptions{Handler: streamableMCP(true)})
	port := freePort(t)
	srv := startServe(t, newFakeKeychain(), "--url", rs.Endpoint, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--persist", "memory", "--redirect-port", strconv.Itoa(freePort(t)))
	srv.ready(1)
	ctx := testContext(t)

	var wg sync.WaitGroup
	answers := make([]rawResponse, clients)
	errs := make([]error, clients)
	for i := range clients {
		wg.Go(func() { answers[i], errs[i] = postRPC(ctx, localURL(port, "/mcp"), initializeBody, nil) })
	}
	// Every request has met the upstream's 401 before the user logs in.
	poll(t, "100 unauthorized requests upstream", func() bool {
		return countRequests(rs, func(r oauthtest.Request) bool {
			return r.Endpoint == oauthtest.EndpointMCP && r.Method == http.MethodPost && r.Status == http.StatusUnauthorized
		}) >= clients
	})
	followNextLink(t, srv.stderr, as)
	wg.Wait()
	for i := range clients {
		if errs[i] != nil || answers[i].status != http.StatusOK {
			t.Errorf("client %d: %d %s %v", i, answers[i].status, answers[i].body, errs[i])
		} else if err := initializeResult(answers[i].body); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	if n := as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations, want 1", n)
	}
	if links := srv.links(); len(links) != 1 {
		t.Errorf("%d links printed, want 1", len(links))
	}
	if n := as.CountGrant("authorization_code"); n != 1 {
		t.Errorf("%d code exchanges, want 1", n)
	}
}

// TestServeStepUp: a tool needing mcp:write is refused with 403
// insufficient_scope; serve authorizes again with the union of scopes and
// the call succeeds.
func TestServeStepUp(t *testing.T) {
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{}, oauthtest.ResourceOptions{
		Handler:        streamableMCP(true),
		ChallengeScope: "mcp:read",
		RequiredScopes: func(_ *http.Request, body []byte) []string {
			var msg struct {
				Method string `json:"method"`
				Params struct {
					Name string `json:"name"`
				} `json:"params"`
			}
			if json.Unmarshal(body, &msg) == nil && msg.Method == "tools/call" && msg.Params.Name == "admin" {
				return []string{"mcp:write"}
			}
			return nil
		},
	})
	port := freePort(t)
	srv := startServe(t, newFakeKeychain(), "--url", rs.Endpoint, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--persist", "memory", "--redirect-port", strconv.Itoa(freePort(t)))
	srv.ready(1)
	srv.followLinks(as)
	ctx := testContext(t)

	cs := connectMCP(t, ctx, &mcp.StreamableClientTransport{Endpoint: localURL(port, "/mcp")}, nil)
	callEcho(t, ctx, cs, "read")
	if got := callTool(t, ctx, cs, "admin", struct{}{}); got != "admin ok" {
		t.Errorf("admin = %q", got)
	}
	callEcho(t, ctx, cs, "still")

	links := srv.links()
	if len(links) != 2 {
		t.Fatalf("%d links printed, want 2: %q", len(links), links)
	}
	var scopes []string
	for _, r := range as.Requests() {
		if r.Endpoint == oauthtest.EndpointAuthorize {
			scopes = append(scopes, r.Query.Get("scope"))
		}
	}
	if want := []string{"mcp:read", "mcp:read mcp:write"}; !slices.Equal(scopes, want) {
		t.Errorf("authorized scopes %q, want %q", scopes, want)
	}
	var refused int
	for _, r := range rs.Requests() {
		if r.Status == http.StatusForbidden {
			refused++
			if r.Error != "insufficient_scope" {
				t.Errorf("403 with error %q", r.Error)
			}
		}
	}
	if refused != 1 {
		t.Errorf("%d requests refused for scope, want 1", refused)
	}
}

// TestServeStoredTokenAndRefresh: a token already in the keychain is used
// without a login, and an expired one is refreshed on the upstream's 401
// without a link.
func TestServeStoredTokenAndRefresh(t *testing.T) {
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{
		IssueRefreshTokens: true,
		PreRegistered:      map[string]string{"stored-client": ""},
	}, oauthtest.ResourceOptions{Handler: streamableMCP(true)})
	identity := oauth.Identity(rs.Endpoint)
	at, rt := as.IssueTokens("stored-client", "", rs.Endpoint)
	kc := newFakeKeychain()
	creds := &oauth.Credentials{Store: &store.Keychain{Backend: kc}}
	if err := creds.SaveClient(identity, &oauth.ClientInfo{ClientID: "stored-client", TokenEndpointAuthMethod: "none"}); err != nil {
		t.Fatal(err)
	}
	err := creds.SaveToken(identity, &oauth.Token{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: 3600, RefreshToken: rt,
		ExpiresAt: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	srv := startServe(t, kc, "--url", rs.Endpoint, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--redirect-port", strconv.Itoa(freePort(t)))
	if table := srv.ready(1); !strings.Contains(table, "present, expires in") {
		t.Errorf("start table does not show the stored token:\n%s", table)
	}
	ctx := testContext(t)
	cs := connectMCP(t, ctx, &mcp.StreamableClientTransport{Endpoint: localURL(port, "/mcp")}, nil)
	callEcho(t, ctx, cs, "stored")
	if n := len(as.Requests()); n != 0 {
		t.Errorf("the stored token led to %d authorization server requests, want none", n)
	}

	as.ExpireAccessTokens()
	callEcho(t, ctx, cs, "refreshed")
	callEcho(t, ctx, cs, "again")

	if n := as.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	if n := as.Count(oauthtest.EndpointAuthorize); n != 0 {
		t.Errorf("%d authorizations, want none", n)
	}
	if links := srv.links(); len(links) != 0 {
		t.Errorf("links printed: %q", links)
	}
	// The refreshed token was saved where fast-agent reads it.
	raw, _ := kc.entry(oauth.TokensKey(identity))
	var tok oauth.Token
	if err := json.Unmarshal([]byte(raw), &tok); err != nil || tok.AccessToken == at {
		t.Errorf("the keychain still holds the expired token (%v)", err)
	} else if _, ok := as.Valid(tok.AccessToken); !ok {
		t.Errorf("the keychain holds a token the authorization server does not accept")
	}
}

// TestServeShutdownWithOpenStream: cancelling serve's context (SIGINT) with
// a client's SSE stream open ends the stream and exits 0.
func TestServeShutdownWithOpenStream(t *testing.T) {
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{},
		oauthtest.ResourceOptions{Path: "/sse", Handler: mcptest.SSEHandler(mcptest.NewServer())})
	port := freePort(t)
	srv := startServe(t, newFakeKeychain(), "--url", rs.Endpoint, "--transport", "sse",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--persist", "memory", "--redirect-port", strconv.Itoa(freePort(t)))
	srv.ready(1)
	srv.followLinks(as)

	req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, localURL(port, "/sse"), nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "event: endpoint\n" {
		t.Fatalf("first line of the stream %q, %v", line, err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, br)
		ended <- err
	}()

	r := srv.stop()
	if r.code != 0 {
		t.Errorf("serve exited %d after cancellation:\n%s", r.code, r.stderr)
	}
	select {
	case <-ended:
	case <-time.After(serveWait):
		t.Error("the client's stream is still open after serve exited")
	}
}

// TestServeAdHocURL: serve --url without any config.
func TestServeAdHocURL(t *testing.T) {
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{}, oauthtest.ResourceOptions{Handler: streamableMCP(false)})
	t.Chdir(t.TempDir()) // no fastagent.config.yaml here
	port := freePort(t)
	srv := startServe(t, newFakeKeychain(), "--url", rs.Endpoint, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--persist", "memory", "--redirect-port", strconv.Itoa(freePort(t)))
	if table := srv.ready(1); !strings.Contains(table, localURL(port, "/mcp")) {
		t.Errorf("start table lacks the listener:\n%s", table)
	}
	srv.followLinks(as)
	ctx := testContext(t)
	cs := connectMCP(t, ctx, &mcp.StreamableClientTransport{Endpoint: localURL(port, "/mcp")}, nil)
	callEcho(t, ctx, cs, "ad hoc")
	if n := as.Count(oauthtest.EndpointAuthorize); n != 1 {
		t.Errorf("%d authorizations, want 1", n)
	}
}

// TestServeOAuthOff: with auth.oauth false the upstream's 401 reaches the
// client unchanged and no login starts; a configured Authorization header
// is sent as is.
func TestServeOAuthOff(t *testing.T) {
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{PreRegistered: map[string]string{"static": ""}},
		oauthtest.ResourceOptions{Handler: streamableMCP(true), ChallengeScope: "mcp:read"})
	static, _ := as.IssueTokens("static", "mcp:read", rs.Endpoint)
	requestsBefore := len(as.Requests())
	openPort, staticPort := freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`
mcp:
  servers:
    open:
      url: %[1]s
      auth: {oauth: false}
    static:
      url: %[1]s
      headers: {Authorization: "Bearer %[2]s"}
      auth: {oauth: false}
`, rs.Endpoint, static))
	srv := startServe(t, newFakeKeychain(), "--config", cfg,
		"--listen", fmt.Sprintf("open=127.0.0.1:%d", openPort), "--listen", fmt.Sprintf("static=127.0.0.1:%d", staticPort),
		"--redirect-port", strconv.Itoa(freePort(t)))
	if table := srv.ready(2); strings.Count(table, "oauth off") != 2 {
		t.Errorf("start table does not show OAuth off twice:\n%s", table)
	}
	ctx := testContext(t)

	direct, err := postRPC(ctx, rs.Endpoint, initializeBody, nil)
	if err != nil {
		t.Fatal(err)
	}
	proxied, err := postRPC(ctx, localURL(openPort, "/mcp"), initializeBody, nil)
	if err != nil {
		t.Fatal(err)
	}
	if proxied.status != http.StatusUnauthorized || proxied.status != direct.status {
		t.Errorf("status %d, want the upstream's %d", proxied.status, direct.status)
	}
	if got, want := proxied.header.Get("WWW-Authenticate"), direct.header.Get("WWW-Authenticate"); got != want || got == "" {
		t.Errorf("WWW-Authenticate %q, want the upstream's %q", got, want)
	}
	if !bytes.Equal(proxied.body, direct.body) {
		t.Errorf("body %q, want the upstream's %q", proxied.body, direct.body)
	}

	withHeader, err := postRPC(ctx, localURL(staticPort, "/mcp"), initializeBody, nil)
	if err != nil || withHeader.status != http.StatusOK {
		t.Errorf("with the configured Authorization: %d %s %v", withHeader.status, withHeader.body, err)
	}

	if n := len(as.Requests()); n != requestsBefore {
		t.Errorf("%d requests reached the authorization server, want none", n-requestsBefore)
	}
	if links := srv.links(); len(links) != 0 {
		t.Errorf("links printed: %q", links)
	}
}
