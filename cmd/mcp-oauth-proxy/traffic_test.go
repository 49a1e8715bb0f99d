package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

// issuedTokens collects every token the fake AS issues.
type issuedTokens struct {
	mu     sync.Mutex
	tokens []string
}

func (i *issuedTokens) record(resp map[string]any) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if s, ok := resp[k].(string); ok && s != "" {
			i.tokens = append(i.tokens, s)
		}
	}
}

func (i *issuedTokens) all() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.tokens)
}

// trafficPost sends a JSON-RPC request to the proxy and reads the answer.
func trafficPost(ctx context.Context, url, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// A whole login, replay and refresh with the traffic log, the bodies and
// the HAR file on shows no token, code, verifier, state or client secret
// anywhere, only their fingerprints.
func TestServeTrafficLogHidesSecrets(t *testing.T) {
	var issued issuedTokens
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{
		IssueRefreshTokens:       true,
		RotateRefreshTokens:      true,
		TokenEndpointAuthMethods: []string{"client_secret_post"}, // DCR hands out a secret
		EditTokenResponse:        issued.record,
	})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	harPath := filepath.Join(t.TempDir(), "traffic.har")
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))

	var stdout oauthtest.Buffer
	stderr := new(oauthtest.Buffer)
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: stderr, keychainBackend: newFakeKeychain()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	cfg := keyHeaderConfig(t, rs.Endpoint, listen)
	go func() {
		done <- a.run(ctx, []string{"serve", "--config", cfg, "-v", "--log-format", "json",
			"--log-traffic", "--log-bodies", "--har", harPath})
	}()
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	local := "http://" + listen + "/mcp"
	if _, err := stdout.WaitFor(rctx, func(text string) bool { return strings.Contains(text, listen) }); err != nil {
		t.Fatalf("serve did not list its listener: %v\n%s", err, stderr)
	}

	// The first request meets a 401, waits for the login and is replayed.
	answer := make(chan error, 1)
	go func() {
		code, body, err := trafficPost(rctx, local, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
		if err == nil && (code != http.StatusOK || !strings.Contains(body, "serverInfo")) {
			err = &httpError{code, body}
		}
		answer <- err
	}()
	link := followNextLink(t, stderr, as)
	if err := <-answer; err != nil {
		t.Fatalf("initialize through the proxy: %v\n%s", err, stderr)
	}

	// An expired token is refreshed and the request replayed.
	as.ExpireAccessTokens()
	if code, body, err := trafficPost(rctx, local, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); err != nil || code != http.StatusOK {
		t.Fatalf("tools/list after expiry: %d %s %v\n%s", code, body, err, stderr)
	}
	if n := as.CountGrant("refresh_token"); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop:\n%s", stderr)
	}
	harBytes, err := os.ReadFile(harPath)
	if err != nil {
		t.Fatal(err)
	}
	har := string(harBytes)

	// Every secret of the flow, from both sides.
	secrets := map[string]string{apiKey: "configured header"}
	if !strings.Contains(har, redact.Fingerprint(apiKey)) {
		t.Error("the HAR file lacks the fingerprint of the configured header")
	}
	for _, tok := range issued.all() {
		secrets[tok] = "issued token"
	}
	for _, r := range as.Requests() {
		for _, k := range []string{"code", "code_verifier", "client_secret", "refresh_token", "state"} {
			if v := r.Form.Get(k); v != "" {
				secrets[v] = "token request " + k
			}
			if v := r.Query.Get(k); v != "" {
				secrets[v] = "query " + k
			}
		}
	}
	for _, r := range rs.Requests() {
		if tok := r.BearerToken(); tok != "" {
			secrets[tok] = "bearer token"
		}
	}
	kinds := map[string]bool{}
	for _, what := range secrets {
		kinds[strings.Fields(what)[len(strings.Fields(what))-1]] = true
	}
	for _, want := range []string{"token", "code", "code_verifier", "client_secret", "refresh_token", "state"} {
		if !kinds[want] {
			t.Errorf("the flow produced no %s to look for: %v", want, kinds)
		}
	}
	if len(issued.all()) < 4 { // access and refresh token, twice
		t.Errorf("the AS issued %d tokens, want 4", len(issued.all()))
	}

	// The login line must carry the state: it is the one place allowed.
	var shown strings.Builder
	for line := range strings.Lines(stderr.String()) {
		if !strings.Contains(line, link) {
			shown.WriteString(line)
		}
	}
	for secret, what := range secrets {
		for name, text := range map[string]string{"stdout": stdout.String(), "stderr": shown.String(), "HAR file": har} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows a secret: %s", name, what)
			}
		}
	}

	// Their fingerprints are there to match lines by.
	for _, r := range as.Requests() {
		if r.Endpoint != oauthtest.EndpointToken {
			continue
		}
		for _, k := range []string{"code", "code_verifier", "client_secret", "refresh_token"} {
			if v := r.Form.Get(k); v != "" && !strings.Contains(har, redact.Fingerprint(v)) {
				t.Errorf("the HAR file lacks the fingerprint of the %s sent", k)
			}
		}
	}
	for _, tok := range issued.all() {
		if !strings.Contains(har, redact.Fingerprint(tok)) {
			t.Error("the HAR file lacks the fingerprint of an issued token")
		}
	}
	for _, r := range rs.Requests() {
		if tok := r.BearerToken(); tok != "" && !strings.Contains(stderr.String(), `"token":"`+redact.Fingerprint(tok)+`"`) {
			t.Error("the traffic log lacks the fingerprint of a bearer token sent")
		}
	}

	checkTrafficLog(t, stderr.String())
	checkHAR(t, harBytes)
}

type httpError struct {
	code int
	body string
}

func (e *httpError) Error() string { return strconv.Itoa(e.code) + " " + e.body }

// checkTrafficLog checks the JSON traffic lines: one per exchange, of
// every kind, with the replays marked.
func checkTrafficLog(t *testing.T, stderr string) {
	t.Helper()
	kinds := map[string]int{}
	replays := 0
	for line := range strings.Lines(stderr) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "exchange" {
			continue
		}
		kinds[m["kind"].(string)]++
		if m["replay"] == true {
			replays++
			if m["status"] != 200.0 {
				t.Errorf("replay answered %v", m["status"])
			}
		}
		for _, k := range []string{"server", "method", "url", "status", "duration", "req_bytes", "resp_bytes", "req_body", "resp_body"} {
			if _, ok := m[k]; !ok {
				t.Errorf("traffic line without %s: %s", k, line)
			}
		}
	}
	for _, k := range []string{"mcp", "oauth:discovery", "oauth:register", "oauth:token", "oauth:refresh"} {
		if kinds[k] == 0 {
			t.Errorf("no %s exchange logged: %v", k, kinds)
		}
	}
	if replays != 2 {
		t.Errorf("%d replays logged, want 2 (after the login and after the refresh)", replays)
	}
}

// checkHAR checks that the file is HAR 1.2 with the required fields in
// every entry, the OAuth exchanges included.
func checkHAR(t *testing.T, raw []byte) {
	t.Helper()
	var doc struct {
		Log struct {
			Version string           `json:"version"`
			Creator map[string]any   `json:"creator"`
			Entries []map[string]any `json:"entries"`
		} `json:"log"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("the HAR file does not parse: %v", err)
	}
	if doc.Log.Version != "1.2" || doc.Log.Creator["name"] == nil || doc.Log.Creator["version"] == nil {
		t.Errorf("log: version %q, creator %v", doc.Log.Version, doc.Log.Creator)
	}
	required := map[string][]string{
		"":         {"startedDateTime", "time", "request", "response", "cache", "timings"},
		"request":  {"method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"},
		"response": {"status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL", "headersSize", "bodySize"},
		"content":  {"size", "mimeType"},
		"timings":  {"send", "wait", "receive"},
	}
	kinds := map[string]bool{}
	for i, e := range doc.Log.Entries {
		kinds[e["_kind"].(string)] = true
		objects := map[string]map[string]any{"": e}
		objects["request"], _ = e["request"].(map[string]any)
		objects["response"], _ = e["response"].(map[string]any)
		objects["timings"], _ = e["timings"].(map[string]any)
		objects["content"], _ = objects["response"]["content"].(map[string]any)
		for obj, keys := range required {
			for _, k := range keys {
				if _, ok := objects[obj][k]; !ok {
					t.Errorf("entry %d: %s lacks %s", i, obj, k)
				}
			}
		}
	}
	for _, k := range []string{"mcp", "oauth:discovery", "oauth:register", "oauth:token", "oauth:refresh"} {
		if !kinds[k] {
			t.Errorf("no %s entry in the HAR file: %v", k, kinds)
		}
	}
}

// `auth login -v` logs the OAuth exchanges, redacted.
func TestAuthLoginVerboseLogsOAuthTraffic(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{
		IssueRefreshTokens:       true,
		TokenEndpointAuthMethods: []string{"client_secret_post"},
	})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	stderr, wait := startCLI(t, newFakeKeychain(), "auth", "login", rs.Endpoint, "-v",
		"--redirect-port", strconv.Itoa(freePort(t)))
	link := followNextLink(t, stderr, as)
	r := wait()
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"kind=oauth:probe", "kind=oauth:discovery", "kind=oauth:register", "kind=oauth:token", "server=" + oauth.Identity(rs.Endpoint)} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, req := range as.Requests() {
		for _, k := range []string{"code", "code_verifier", "client_secret"} {
			if v := req.Form.Get(k); v != "" && strings.Contains(r.stdout+r.stderr, v) {
				t.Errorf("auth login -v shows the %s", k)
			}
		}
		if v := req.Query.Get("state"); v != "" && strings.Contains(strings.ReplaceAll(r.stderr, link, ""), v) {
			t.Error("auth login -v shows the state outside the login link")
		}
	}
}

// apiKey is the value of a configured header that holds an API key under
// a name that does not say so.
const apiKey = "hf_configured_key_0123456789"

// keyHeaderConfig writes a config with one server "up" at endpoint,
// listening on listen, with the header X-Key: apiKey.
func keyHeaderConfig(t *testing.T, endpoint, listen string) string {
	t.Helper()
	return writeConfig(t, `
mcp:
  servers:
    up:
      url: `+endpoint+`
      headers: {X-Key: `+apiKey+`}
      auth: {redirect_port: `+strconv.Itoa(freePort(t))+`}
proxy:
  listen: {up: "`+listen+`"}
`)
}

func TestServeHARFileErrorNamesTheFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "no-such-dir", "x.har")
	r := runCLI(t, newFakeKeychain(), "serve", "--url", "http://127.0.0.1:9/mcp", "--har", bad)
	if r.code == 0 || !strings.Contains(r.stderr, bad) {
		t.Errorf("serve --har into a missing directory: exit %d, stderr %q; want an error naming the file", r.code, r.stderr)
	}
}

// The first refresh after start probes the upstream through the OAuth
// engine's client, with the server's configured headers: the HAR file
// fingerprints them there too.
func TestServeHARProbeHidesConfiguredHeader(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	harPath := filepath.Join(t.TempDir(), "traffic.har")
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	kc := newFakeKeychain()
	creds := &oauth.Credentials{Store: &store.Keychain{Backend: kc}}
	// A stored token inside the refresh margin: serve refreshes at once.
	if err := creds.SaveToken(oauth.Identity(rs.Endpoint), &oauth.Token{AccessToken: "at-old", TokenType: "Bearer",
		RefreshToken: "rt-old", ExpiresAt: time.Now().Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	cfg := keyHeaderConfig(t, rs.Endpoint, listen)
	var stdout oauthtest.Buffer
	stderr := new(oauthtest.Buffer)
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: stderr, keychainBackend: kc}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"serve", "--config", cfg, "--admin", "off", "--har", harPath}) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	// The refresh (probe, discovery, token request) ends with a failure
	// line: rt-old is unknown to the authorization server.
	if _, err := stderr.WaitFor(wctx, func(text string) bool { return strings.Contains(text, "token refresh failed") }); err != nil {
		t.Fatalf("no refresh: %v\n%s", err, stderr)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, stderr)
	}
	har, err := os.ReadFile(harPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(har), `"oauth:probe"`) {
		t.Fatalf("the HAR file has no probe:\n%s", har)
	}
	if strings.Contains(string(har), apiKey) || !strings.Contains(string(har), redact.Fingerprint(apiKey)) {
		t.Errorf("the HAR file shows the configured header in clear, or lacks its fingerprint")
	}
}
