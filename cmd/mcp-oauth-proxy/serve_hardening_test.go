package main

// Hardening tests of `serve`, from outside: the real command runs in
// process against oauthtest's authorization server and protected
// resource, and the test plays the MCP clients and the user.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

// hardWait bounds every wait of these tests; generous for a loaded machine.
const hardWait = 60 * time.Second

// hardBurst is how many clients the load tests send at once.
const hardBurst = 200

// hardServe is `serve` running in process.
type hardServe struct {
	t              *testing.T
	args           []string
	stdout, stderr *oauthtest.Buffer
	cancel         context.CancelFunc
	exited         chan struct{}
	code           int
	url            string // the listener's URL for the upstream path
}

// hardStartServe runs `serve args…` with backend as the keychain and waits
// until it listens on listen (host:port, given to it with --listen or in
// the config). path is the upstream path clients use.
func hardStartServe(t *testing.T, backend store.Backend, listen, path string, args ...string) *hardServe {
	t.Helper()
	s := &hardServe{
		t:      t,
		args:   append([]string{"serve"}, args...),
		stdout: new(oauthtest.Buffer),
		stderr: new(oauthtest.Buffer),
		exited: make(chan struct{}),
		url:    "http://" + listen + path,
	}
	a := &app{stdin: strings.NewReader(""), stdout: s.stdout, stderr: s.stderr, keychainBackend: backend}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		s.code = a.run(runCtx, s.args)
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("%q stdout:\n%s\nstderr:\n%s", s.args, s.stdout, s.stderr)
		}
	})
	ctx, cancelWait := context.WithTimeout(context.Background(), hardWait)
	defer cancelWait()
	go func() {
		select {
		case <-s.exited:
			cancelWait()
		case <-ctx.Done():
		}
	}()
	// The start table: a header and one row.
	if _, err := s.stdout.WaitFor(ctx, func(out string) bool { return strings.Count(out, "\n") >= 2 }); err != nil {
		t.Fatalf("%q is not listening: %v (exit %d)\nstderr:\n%s", s.args, err, s.code, s.stderr)
	}
	return s
}

// stop cancels serve, as SIGINT does, and waits for it to return.
func (s *hardServe) stop() cliResult {
	s.t.Helper()
	s.cancel()
	select {
	case <-s.exited:
	case <-time.After(hardWait):
		s.t.Errorf("%q did not stop", s.args)
	}
	return cliResult{s.stdout.String(), s.stderr.String(), s.code}
}

// hardClient returns an HTTP client for many concurrent requests.
func hardClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: hardBurst, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// hardAnswer is what one client got.
type hardAnswer struct {
	status int
	header http.Header
	body   string
	err    error
}

// hardPost sends one JSON-RPC request; edit may change it first.
func hardPost(ctx context.Context, c *http.Client, url, body string, edit func(*http.Request)) hardAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return hardAnswer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if edit != nil {
		edit(req)
	}
	res, err := c.Do(req)
	if err != nil {
		return hardAnswer{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return hardAnswer{res.StatusCode, res.Header, string(b), err}
}

// hardCall is the JSON-RPC request of client i.
func hardCall(i int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"n":%d}}`, i, i)
}

// hardCheckEcho checks that body is oauthtest's echo of hardCall(i).
func hardCheckEcho(i int, a hardAnswer) error {
	if a.err != nil {
		return fmt.Errorf("client %d: %v", i, a.err)
	}
	if a.status != http.StatusOK {
		return fmt.Errorf("client %d: HTTP %d: %s", i, a.status, a.body)
	}
	var msg struct {
		ID     int `json:"id"`
		Result struct {
			Params struct{ N int } `json:"params"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(a.body), &msg); err != nil || msg.ID != i || msg.Result.Params.N != i {
		return fmt.Errorf("client %d got someone else's answer or none: %s", i, a.body)
	}
	return nil
}

// hardSend sends hardCall(0…n-1) at once and returns the answers in
// order once every client has one.
func hardSend(ctx context.Context, c *http.Client, url string, n int) []hardAnswer {
	answers := make([]hardAnswer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = hardPost(ctx, c, url, hardCall(i), nil) })
	}
	wg.Wait()
	return answers
}

// hardPoll waits until cond holds.
func hardPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hardWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hardRequests returns the resource server's MCP requests answered status
// (0: any).
func hardRequests(rs *oauthtest.ResourceServer, status int) []oauthtest.Request {
	var out []oauthtest.Request
	for _, r := range rs.Requests() {
		if r.Endpoint == oauthtest.EndpointMCP && (status == 0 || r.Status == status) {
			out = append(out, r)
		}
	}
	return out
}

// hardGrants returns the token requests of grantType.
func hardGrants(as *oauthtest.AuthServer, grantType string) []oauthtest.Request {
	var out []oauthtest.Request
	for _, r := range as.Requests() {
		if r.Endpoint == oauthtest.EndpointToken && r.Form.Get("grant_type") == grantType {
			out = append(out, r)
		}
	}
	return out
}

// hardIDs counts the JSON-RPC ids of requests.
func hardIDs(reqs []oauthtest.Request) map[int]int {
	ids := map[int]int{}
	for _, r := range reqs {
		var msg struct{ ID int }
		if json.Unmarshal(r.Body, &msg) == nil {
			ids[msg.ID]++
		}
	}
	return ids
}

// hardContext is the test's context with hardWait as deadline.
func hardContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), hardWait)
	t.Cleanup(cancel)
	return ctx
}

// The acceptance figure: 200 clients meet the upstream's 401 before anyone
// has logged in; one authorization flow (one link, one registration, one
// code exchange) serves them all, and each is replayed once and gets its
// own answer.
func TestHardeningServe200WaitersOneLogin(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	kc := newFakeKeychain()
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s := hardStartServe(t, kc, listen, "/mcp",
		"--url", rs.Endpoint, "--listen", listen, "--redirect-port", strconv.Itoa(freePort(t)))
	ctx := hardContext(t)

	done := make(chan []hardAnswer, 1)
	go func() { done <- hardSend(ctx, hardClient(t), s.url, hardBurst) }()
	hardPoll(t, "every client to meet the 401", func() bool { return len(hardRequests(rs, http.StatusUnauthorized)) == hardBurst })
	link, err := s.stderr.NextLink(ctx)
	if err != nil {
		t.Fatalf("no login link: %v", err)
	}
	select {
	case answers := <-done:
		t.Fatalf("clients were answered before the login: %+v", answers[0])
	default:
	}
	if res, err := as.FollowLink(ctx, link); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("following the link: %v %v", res, err)
	}
	answers := <-done

	lost := 0
	for i, a := range answers {
		if err := hardCheckEcho(i, a); err != nil {
			lost++
			if lost <= 5 {
				t.Error(err)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d requests lost", lost, hardBurst)
	}
	if n := len(oauthtest.Links(s.stderr.String())); n != 1 {
		t.Errorf("%d login links printed for %d waiting clients, want 1", n, hardBurst)
	}
	for _, c := range []struct {
		endpoint string
		want     int
	}{{oauthtest.EndpointRegister, 1}, {oauthtest.EndpointAuthorize, 1}, {oauthtest.EndpointToken, 1}} {
		if n := as.Count(c.endpoint); n != c.want {
			t.Errorf("%d %s requests, want %d", n, c.endpoint, c.want)
		}
	}
	replays := hardRequests(rs, http.StatusOK)
	if len(replays) != hardBurst {
		t.Errorf("the upstream answered %d replays, want %d", len(replays), hardBurst)
	}
	for i, n := range hardIDs(replays) {
		if n != 1 {
			t.Errorf("client %d was replayed %d times", i, n)
		}
	}
	stored, _ := kc.entry(oauth.TokensKey(oauth.Identity(rs.Endpoint)))
	for _, r := range replays {
		if tok := r.BearerToken(); tok == "" || !strings.Contains(stored, `"`+tok+`"`) {
			t.Errorf("a replay carried a token other than the stored one")
			break
		}
	}
}

// hardStoreLogin stores, as fast-agent or an earlier run would, tokens that
// as issued to clientID for rs, valid for an hour on the proxy's clock, and
// returns them.
func hardStoreLogin(t *testing.T, kc *fakeKeychain, as *oauthtest.AuthServer, rs *oauthtest.ResourceServer, clientID string) (access, refresh string) {
	t.Helper()
	access, refresh = as.IssueTokens(clientID, "", rs.Endpoint)
	b, err := json.Marshal(oauth.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	id := oauth.Identity(rs.Endpoint)
	if err := kc.Set(store.DefaultService, oauth.TokensKey(id), string(b)); err != nil {
		t.Fatal(err)
	}
	if err := kc.Set(store.DefaultService, oauth.IndexKey, `["`+id+`"]`); err != nil {
		t.Fatal(err)
	}
	return access, refresh
}

// hardStoredRefreshToken returns the refresh token in the keychain.
func hardStoredRefreshToken(t *testing.T, kc *fakeKeychain, rs *oauthtest.ResourceServer) string {
	t.Helper()
	raw, ok := kc.entry(oauth.TokensKey(oauth.Identity(rs.Endpoint)))
	var tok oauth.Token
	if !ok || json.Unmarshal([]byte(raw), &tok) != nil {
		t.Fatalf("no readable token in the keychain: %q", raw)
	}
	return tok.RefreshToken
}

// The acceptance figure for refreshes: 200 clients send a token the
// upstream no longer accepts; one refresh request serves them all. The
// authorization server rotates refresh tokens: the rotated one is saved
// and the old one is never sent again, also by the next process.
func TestHardeningServe200ExpiredOneRefresh(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{
		IssueRefreshTokens:  true,
		RotateRefreshTokens: true,
		PreRegistered:       map[string]string{"hard-client": ""},
	})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	kc := newFakeKeychain()
	_, firstRefresh := hardStoreLogin(t, kc, as, rs, "hard-client")
	ctx := hardContext(t)
	client := hardClient(t)

	run := func(round int) (sent string) {
		listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
		s := hardStartServe(t, kc, listen, "/mcp", "--url", rs.Endpoint, "--listen", listen,
			"--client-id", "hard-client", "--redirect-port", strconv.Itoa(freePort(t)))
		before := len(hardGrants(as, "refresh_token"))
		as.ExpireAccessTokens() // the upstream now refuses the token every client gets
		for i, a := range hardSend(ctx, client, s.url, hardBurst) {
			if err := hardCheckEcho(i, a); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		grants := hardGrants(as, "refresh_token")
		if n := len(grants) - before; n != 1 {
			t.Fatalf("round %d: %d refresh requests for %d clients with an expired token, want 1", round, n, hardBurst)
		}
		if n := len(oauthtest.Links(s.stderr.String())); n != 0 {
			t.Errorf("round %d: %d login links printed; the refresh token was good", round, n)
		}
		s.stop()
		return grants[len(grants)-1].Form.Get("refresh_token")
	}

	if sent := run(1); sent != firstRefresh {
		t.Errorf("round 1 refreshed with %q, want the stored refresh token", sent)
	}
	rotated := hardStoredRefreshToken(t, kc, rs)
	if rotated == firstRefresh {
		t.Fatal("the rotated refresh token was not saved")
	}
	// A new process reads the rotated token and uses it, never the old one.
	if sent := run(2); sent != rotated {
		t.Errorf("round 2 refreshed with %q, want the rotated %q", sent, rotated)
	}
	if n := as.RefreshTokenReuses(); n != 0 {
		t.Errorf("a rotated-out refresh token was sent %d times", n)
	}
	if n := as.Count(oauthtest.EndpointAuthorize); n != 0 {
		t.Errorf("%d browser logins, want none", n)
	}
}

// A login nobody completes times out: every waiting client gets a clear
// error with the link, promptly and at once, and the next request starts
// a fresh flow with a new link, which then works.
func TestHardeningServeLoginTimeout(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	// Long enough for every client to be waiting before it ends.
	s := hardStartServe(t, newFakeKeychain(), listen, "/mcp", "--url", rs.Endpoint, "--listen", listen,
		"--redirect-port", strconv.Itoa(freePort(t)), "--login-timeout", "8s")
	ctx := hardContext(t)
	client := hardClient(t)

	done := make(chan []hardAnswer, 1)
	go func() { done <- hardSend(ctx, client, s.url, hardBurst) }()
	hardPoll(t, "every client to wait for the login", func() bool { return len(hardRequests(rs, 0)) == hardBurst })
	first, err := s.stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range <-done {
		if a.err != nil || a.status != http.StatusUnauthorized {
			t.Fatalf("client %d: %d %v %s; want 401 once the login timed out", i, a.status, a.err, a.body)
		}
		var e struct {
			ID    int `json:"id"`
			Error struct {
				Message string
				Data    struct {
					LoginURL string `json:"loginURL"`
				}
			}
		}
		// No link: the login is over and its callback closed.
		if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.ID != i || e.Error.Data.LoginURL != "" ||
			!strings.Contains(e.Error.Message, "timed out") || strings.Contains(e.Error.Message, first) {
			t.Fatalf("client %d: %s; want its JSON-RPC id, \"timed out\" and no link", i, a.body)
		}
	}
	if n := len(oauthtest.Links(s.stderr.String())); n != 1 {
		t.Errorf("%d links for one timed-out login, want 1", n)
	}

	// The next request starts a fresh flow; this time the user follows it.
	next := make(chan hardAnswer, 1)
	go func() { next <- hardPost(ctx, client, s.url, hardCall(7), nil) }()
	second, err := s.stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || hardState(t, second) == hardState(t, first) {
		t.Errorf("the new flow reuses the timed-out one: %s", second)
	}
	if res, err := as.FollowLink(ctx, second); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("following the new link: %v %v", res, err)
	}
	if err := hardCheckEcho(7, <-next); err != nil {
		t.Error(err)
	}
}

// hardState returns the state parameter of a login link.
func hardState(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("state") == "" {
		t.Fatalf("link %q has no state", link)
	}
	return u.Query().Get("state")
}

// Every listener refuses a foreign Host or Origin before doing anything:
// the proxy's (nothing reaches the upstream) and the login callback's (the
// login stays pending and then completes normally).
func TestHardeningServeGuardsEveryListener(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cbPort := freePort(t)
	s := hardStartServe(t, newFakeKeychain(), listen, "/mcp", "--url", rs.Endpoint, "--listen", listen,
		"--redirect-port", strconv.Itoa(cbPort))
	ctx := hardContext(t)
	client := hardClient(t)

	for _, tt := range []struct {
		name string
		edit func(*http.Request)
	}{
		{"foreign Host", func(r *http.Request) { r.Host = "evil.example:" + strings.Split(listen, ":")[1] }},
		{"foreign Host on the listener's IP port", func(r *http.Request) { r.Host = "127.0.0.1:1" }},
		{"foreign Origin", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }},
		{"null Origin", func(r *http.Request) { r.Header.Set("Origin", "null") }},
		{"rebinding lookalike", func(r *http.Request) { r.Header.Set("Origin", "http://localhost.evil.example") }},
	} {
		a := hardPost(ctx, client, s.url, hardCall(1), tt.edit)
		if a.err != nil || a.status != http.StatusForbidden || !strings.Contains(a.body, "refused") {
			t.Errorf("proxy, %s: %d %v %s; want 403 saying why", tt.name, a.status, a.err, a.body)
		}
	}
	if n := len(hardRequests(rs, 0)); n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}

	// A login in progress: its callback listener is up.
	waiting := make(chan hardAnswer, 1)
	go func() { waiting <- hardPost(ctx, client, s.url, hardCall(2), nil) }()
	link, err := s.stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := oauthtest.Redirect(ctx, link) // the real callback URL, with a good code
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"evil.example:" + strconv.Itoa(cbPort), "localhost:1", "127.0.0.1.nip.io:" + strconv.Itoa(cbPort)} {
		status, body := hardGet(t, ctx, loc.String(), func(r *http.Request) { r.Host = host })
		if status != http.StatusForbidden || !strings.Contains(body, "localhost") {
			t.Errorf("callback with Host %s: %d %s; want 403 with a page saying why", host, status, body)
		}
	}
	if n := as.Count(oauthtest.EndpointToken); n != 0 {
		t.Fatalf("a refused callback completed the login (%d token requests)", n)
	}
	// The user's own browser still completes it.
	if status, body := hardGet(t, ctx, loc.String(), nil); status != http.StatusOK {
		t.Fatalf("the real callback: %d %s", status, body)
	}
	if err := hardCheckEcho(2, <-waiting); err != nil {
		t.Error(err)
	}
}

// The callback listener does not look at Origin. A browser's navigation
// to the redirect URI (a GET) sends none, so a foreign Origin can only be
// a script on another site; with a stolen or guessed state it could
// complete a login with its own code (login CSRF).
func TestHardeningCallbackRefusesForeignOrigin(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s := hardStartServe(t, newFakeKeychain(), listen, "/mcp", "--url", rs.Endpoint, "--listen", listen,
		"--redirect-port", strconv.Itoa(freePort(t)))
	ctx := hardContext(t)
	go hardPost(ctx, hardClient(t), s.url, hardCall(1), nil)
	link, err := s.stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := oauthtest.Redirect(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := hardGet(t, ctx, loc.String(), func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") })
	if status != http.StatusForbidden {
		t.Errorf("the callback listener accepted a request with Origin https://evil.example (HTTP %d); only the proxy listeners check Origin", status)
	}
}

// hardGet GETs url and returns the status and body.
func hardGet(t *testing.T, ctx context.Context, url string, edit func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// hardKeychain is a keychain backend whose calls for tokens can hang or
// fail while its start-up probe works (or hangs too).
type hardKeychain struct {
	*fakeKeychain
	hangAll   bool          // every call hangs, the probe too
	failSets  bool          // writes under fast-agent's service fail
	release   chan struct{} // closed when the test ends: hung calls return
	mu        sync.Mutex
	hungCalls int
}

var errHardKeychain = errors.New("the keychain refused the write")

func newHardKeychain(t *testing.T) *hardKeychain {
	k := &hardKeychain{fakeKeychain: newFakeKeychain(), release: make(chan struct{})}
	t.Cleanup(func() { close(k.release) })
	return k
}

func (k *hardKeychain) hang() {
	k.mu.Lock()
	k.hungCalls++
	k.mu.Unlock()
	<-k.release
}

func (k *hardKeychain) Get(service, user string) (string, error) {
	if k.hangAll {
		k.hang()
		return "", errHardKeychain
	}
	return k.fakeKeychain.Get(service, user)
}

func (k *hardKeychain) Set(service, user, password string) error {
	if k.hangAll {
		k.hang()
		return errHardKeychain
	}
	if k.failSets && service == store.DefaultService {
		return errHardKeychain
	}
	return k.fakeKeychain.Set(service, user, password)
}

func (k *hardKeychain) Delete(service, user string) error {
	if k.hangAll {
		k.hang()
		return errHardKeychain
	}
	return k.fakeKeychain.Delete(service, user)
}

// A keychain that never answers: serve starts after a bounded wait, says
// once that tokens stay in memory, and logs in and serves from memory.
// A keychain whose writes fail: the login is used all the same, from
// memory, with one loud warning.
func TestHardeningServeKeychainFaults(t *testing.T) {
	for _, tt := range []struct {
		name   string
		config func(*hardKeychain)
	}{
		{"hangs", func(k *hardKeychain) { k.hangAll = true }},
		{"write fails", func(k *hardKeychain) { k.failSets = true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true})
			rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
			kc := newHardKeychain(t)
			tt.config(kc)
			listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
			s := hardStartServe(t, kc, listen, "/mcp", "--url", rs.Endpoint, "--listen", listen,
				"--redirect-port", strconv.Itoa(freePort(t)))
			ctx := hardContext(t)
			client := hardClient(t)

			first := make(chan hardAnswer, 1)
			go func() { first <- hardPost(ctx, client, s.url, hardCall(0), nil) }()
			link, err := s.stderr.NextLink(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res, err := as.FollowLink(ctx, link); err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("following the link: %v %v", res, err)
			}
			if err := hardCheckEcho(0, <-first); err != nil {
				t.Fatal(err)
			}
			// The token lives in memory: later requests use it without a login.
			for i, a := range hardSend(ctx, client, s.url, 20) {
				if err := hardCheckEcho(i, a); err != nil {
					t.Fatal(err)
				}
			}
			if n := as.Count(oauthtest.EndpointAuthorize); n != 1 {
				t.Errorf("%d logins, want 1", n)
			}
			stderr := s.stderr.String()
			if n := strings.Count(stderr, "tokens stay in memory"); n != 1 {
				t.Errorf("the keychain warning appears %d times, want once:\n%s", n, stderr)
			}
			if !strings.Contains(stderr, "level=WARN") {
				t.Errorf("the keychain problem is not a warning:\n%s", stderr)
			}
			if _, ok := kc.entry(oauth.TokensKey(oauth.Identity(rs.Endpoint))); ok {
				t.Error("the token reached the broken keychain")
			}
			kc.mu.Lock()
			hung := kc.hungCalls
			kc.mu.Unlock()
			if tt.name == "hangs" && hung != 1 {
				t.Errorf("%d keychain calls hung, want 1: after the first, the keychain is not called again", hung)
			}
		})
	}
}
