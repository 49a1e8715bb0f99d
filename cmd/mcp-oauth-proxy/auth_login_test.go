package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

// startCLI runs the command in process in the background; stderr is a
// buffer the test can watch while the command writes.
func startCLI(t *testing.T, kc *fakeKeychain, args ...string) (stderr *oauthtest.Buffer, wait func() cliResult) {
	t.Helper()
	stderr = new(oauthtest.Buffer)
	var stdout oauthtest.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: stderr, keychainBackend: kc}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, args) }()
	t.Cleanup(cancel)
	return stderr, func() cliResult {
		select {
		case code := <-done:
			return cliResult{stdout.String(), stderr.String(), code}
		case <-time.After(60 * time.Second):
			t.Fatalf("%q did not finish; stderr:\n%s", args, stderr.String())
			return cliResult{}
		}
	}
}

func freePort(t *testing.T) int { return oauthtest.FreePort(t) }

// followNextLink plays the user: it waits for the login line and follows it.
func followNextLink(t *testing.T, stderr *oauthtest.Buffer, as *oauthtest.AuthServer) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	link, err := stderr.NextLink(ctx)
	if err != nil {
		t.Fatalf("no login link: %v\n%s", err, stderr.String())
	}
	res, err := as.FollowLink(ctx, link)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("following the link: %v %v", res, err)
	}
	return link
}

func TestAuthLoginURL(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	kc := newFakeKeychain()
	port := freePort(t)
	stderr, wait := startCLI(t, kc, "auth", "login", rs.Endpoint, "--redirect-port", strconv.Itoa(port))
	link := followNextLink(t, stderr, as)
	r := wait()
	if r.code != 0 {
		t.Fatalf("auth login exited %d:\n%s", r.code, r.stderr)
	}
	identity := oauth.Identity(rs.Endpoint)
	raw, ok := kc.entry("oauth:tokens:" + identity)
	if !ok {
		t.Fatalf("no oauth:tokens:%s in the keychain", identity)
	}
	var tok oauth.Token
	if err := json.Unmarshal([]byte(raw), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("stored token %q: %v", raw, err)
	}
	if idx, _ := kc.entry("oauth:index"); idx != `["`+identity+`"]` {
		t.Errorf("oauth:index = %s", idx)
	}
	if n := as.Count(oauthtest.EndpointRegister); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
	if n := as.Count(oauthtest.EndpointToken); n != 1 {
		t.Errorf("%d code exchanges, want 1", n)
	}
	if !strings.Contains(link, "code_challenge_method=S256") || !strings.Contains(link, "state=") {
		t.Errorf("link lacks S256 or state: %s", link)
	}
	for _, req := range as.Requests() {
		var resource string
		switch req.Endpoint {
		case oauthtest.EndpointAuthorize:
			resource = req.Query.Get("resource")
		case oauthtest.EndpointToken:
			resource = req.Form.Get("resource")
		default:
			continue
		}
		if resource != rs.Endpoint {
			t.Errorf("%s resource = %q, want %q", req.Endpoint, resource, rs.Endpoint)
		}
	}
	for _, want := range []string{"Logged in", identity, "oauth:tokens:" + identity, "Expires:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, tok.AccessToken) || strings.Contains(r.stdout+r.stderr, tok.RefreshToken) {
		t.Error("auth login printed a token")
	}

	// auth status now shows it with its expiry.
	st := runCLI(t, kc, "auth", "status", rs.Endpoint)
	if st.code != 0 || !strings.Contains(st.stdout, identity) || !strings.Contains(st.stdout, "expires in") {
		t.Errorf("auth status after login: exit %d\n%s", st.code, st.stdout)
	}
}

// With --log-format json every line on stderr is a JSON record, the login
// link's too: a sidecar's log pipeline keeps it, and the link in it works.
func TestAuthLoginLinkInJSONLogs(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	kc := newFakeKeychain()
	stderr, wait := startCLI(t, kc, "auth", "login", rs.Endpoint, "--redirect-port", strconv.Itoa(freePort(t)), "--log-format", "json")
	link := followNextLink(t, stderr, as)
	r := wait()
	if r.code != 0 {
		t.Fatalf("auth login exited %d:\n%s", r.code, r.stderr)
	}
	if _, ok := kc.entry(oauth.TokensKey(oauth.Identity(rs.Endpoint))); !ok {
		t.Fatal("no token stored")
	}
	var prompts int
	for line := range strings.Lines(r.stderr) {
		var rec struct {
			Level, Msg, Server, Link string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not a JSON record (%v): %q", err, line)
			continue
		}
		if strings.HasPrefix(rec.Msg, oauthtest.LinkPrefix) {
			prompts++
			// The target is named as on the plain line: an ad hoc server by its origin.
			target := strings.TrimPrefix(rec.Msg, oauthtest.LinkPrefix+" ")
			if rec.Level != "WARN" || target == "" || !strings.HasPrefix(rs.Endpoint, target) || rec.Server != target || rec.Link != link {
				t.Errorf("login record: level %q, msg %q, server %q, link %q; want WARN, the upstream's origin in msg and server, and the link followed (%s)",
					rec.Level, rec.Msg, rec.Server, rec.Link, link)
			}
		}
	}
	if prompts != 1 {
		t.Errorf("%d login records, want 1:\n%s", prompts, r.stderr)
	}
}

func TestAuthLoginConfiguredServer(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{
		NoDCR:                    true,
		PreRegistered:            map[string]string{"pre-id": "pre-secret"},
		TokenEndpointAuthMethods: []string{"client_secret_basic"},
	})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{PRM: oauthtest.PRMCustom})
	port := freePort(t)
	cfg := writeConfig(t, `
mcp:
  servers:
    crm:
      url: `+rs.Endpoint+`?tenant=a
      auth:
        client_id: pre-id
        client_secret: pre-secret
        redirect_port: `+strconv.Itoa(port)+`
        scope: [crm.read, crm.write]
`)
	kc := newFakeKeychain()
	stderr, wait := startCLI(t, kc, "auth", "login", "crm", "--config", cfg)
	link := followNextLink(t, stderr, as)
	r := wait()
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(link, "scope=crm.read+crm.write") || !strings.Contains(link, "client_id=pre-id") {
		t.Errorf("link = %s", link)
	}
	if !strings.Contains(stderr.String(), "Open this link to authorize crm: ") {
		t.Errorf("login line does not name the server:\n%s", stderr.String())
	}
	// The probe kept the configured query.
	probed := false
	for _, req := range rs.Requests() {
		if req.Endpoint == oauthtest.EndpointMCP && req.Query.Get("tenant") == "a" {
			probed = true
		}
	}
	if !probed {
		t.Error("the upstream was not probed at the configured URL with its query")
	}
	if strings.Contains(r.stdout+r.stderr, "pre-secret") {
		t.Error("the client secret was printed")
	}
}

func TestAuthLoginRefusesWhenItCannotPersist(t *testing.T) {
	cfg := writeConfig(t, "mcp:\n  servers:\n    m:\n      url: http://127.0.0.1:9/mcp\n      auth: {persist: memory}\n")
	r := runCLI(t, newFakeKeychain(), "auth", "login", "m", "--config", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, "memory") {
		t.Errorf("login with persist: memory: exit %d, %q", r.code, r.stderr)
	}
	r = runCLI(t, newFakeKeychain(), "auth", "login", "http://127.0.0.1:9/mcp", "--persist", "memory")
	if r.code == 0 || !strings.Contains(r.stderr, "memory") {
		t.Errorf("login --persist memory: exit %d, %q", r.code, r.stderr)
	}
	r = runCLI(t, brokenKeychain(), "auth", "login", "http://127.0.0.1:9/mcp")
	if r.code == 0 || !strings.Contains(r.stderr, "keychain") {
		t.Errorf("login with a broken keychain: exit %d, %q", r.code, r.stderr)
	}
}

func TestAuthLoginBadTargets(t *testing.T) {
	cfg := writeConfig(t, threeServers)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"auth", "login", "fs", "--config", cfg}, "stdio"},
		{[]string{"auth", "login", "nosuch", "--config", cfg}, `no server "nosuch"`},
		{[]string{"auth", "login", "ftp://example.com/mcp"}, "ftp"},
		{[]string{"auth", "login", "http://127.0.0.1:9/mcp", "--transport", "ws"}, "transport"},
		{[]string{"auth", "login"}, "accepts 1 arg"},
	} {
		r := runCLI(t, newFakeKeychain(), tt.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want an error with %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// brokenKeychain fails every call, as a locked keychain without a prompt does.
func brokenKeychain() *fakeKeychain {
	kc := newFakeKeychain()
	kc.fail = true
	return kc
}

// A password in the URL given to auth login is not shown: the ad hoc
// server is named without the URL's user info.
func TestAuthLoginURLWithPassword(t *testing.T) {
	const password = "SECRETPW-4711"
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	target := strings.Replace(rs.Endpoint, "://", "://user:"+password+"@", 1)
	stderr, wait := startCLI(t, newFakeKeychain(), "auth", "login", target, "--redirect-port", strconv.Itoa(freePort(t)))
	// The config may refuse credentials in a URL; then the error must not
	// show them either.
	ctx := testContext(t)
	text, err := stderr.WaitFor(ctx, func(s string) bool {
		return len(oauthtest.Links(s)) > 0 || strings.Contains(s, "mcp-oauth-proxy: ")
	})
	if err != nil {
		t.Fatal(err)
	}
	if links := oauthtest.Links(text); len(links) > 0 {
		if res, err := as.FollowLink(ctx, links[0]); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("following the link: %v %v", res, err)
		}
	}
	r := wait()
	if strings.Contains(r.stdout+r.stderr, password) {
		t.Errorf("auth login printed the URL's password (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := "Logged in to " + oauth.Identity(rs.Endpoint) + ".\n"; r.code == 0 && !strings.Contains(r.stdout, want) {
		t.Errorf("auth login: stdout lacks %q:\n%s", want, r.stdout)
	}
}

// Ctrl-C while auth login waits for the browser is a cancellation, with
// the shell's exit code for SIGINT, not a login failure.
func TestAuthLoginCancelled(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	var stdout, stderr oauthtest.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, keychainBackend: newFakeKeychain()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- a.run(ctx, []string{"auth", "login", rs.Endpoint, "--redirect-port", strconv.Itoa(freePort(t))})
	}()
	wctx := testContext(t)
	if _, err := stderr.NextLink(wctx); err != nil {
		t.Fatalf("no login link: %v\n%s", err, stderr.String())
	}
	cancel() // what main's signal.NotifyContext does on Ctrl-C
	var code int
	select {
	case code = <-done:
	case <-wctx.Done():
		t.Fatalf("auth login did not return after the cancellation:\n%s", stderr.String())
	}
	if code != 130 {
		t.Errorf("exit %d, want 130", code)
	}
	if !strings.Contains(stderr.String(), "cancelled") || strings.Contains(stderr.String(), "still pending") {
		t.Errorf("stderr does not say the login was cancelled:\n%s", stderr.String())
	}
	if stdout.String() != "" {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}

// --resource and --authorize-param (auth.resource, auth.authorize_params)
// reach the authorization and token requests: identity providers such as
// Entra ID v2 refuse a resource, Google wants access_type=offline.
func TestAuthLoginResourceAndAuthorizeParams(t *testing.T) {
	for _, tc := range []struct {
		name         string
		flags        []string
		wantResource string // "" for none
		wantParams   map[string]string
	}{
		{"none", []string{"--resource", "none", "--authorize-param", "access_type=offline", "--authorize-param", "audience=https://a,b"},
			"", map[string]string{"access_type": "offline", "audience": "https://a,b"}},
		{"another", []string{"--resource", "https://api.example.com/"}, "https://api.example.com/", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{})
			rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
			args := append([]string{"auth", "login", rs.Endpoint, "--redirect-port", strconv.Itoa(freePort(t))}, tc.flags...)
			stderr, wait := startCLI(t, newFakeKeychain(), args...)
			followNextLink(t, stderr, as)
			if r := wait(); r.code != 0 {
				t.Fatalf("auth login exited %d:\n%s", r.code, r.stderr)
			}
			for _, req := range as.Requests() {
				var got url.Values
				switch req.Endpoint {
				case oauthtest.EndpointAuthorize:
					got = req.Query
					for k, v := range tc.wantParams {
						if got.Get(k) != v {
							t.Errorf("authorize %s = %q, want %q", k, got.Get(k), v)
						}
					}
				case oauthtest.EndpointToken:
					got = req.Form
				default:
					continue
				}
				if _, sent := got["resource"]; sent != (tc.wantResource != "") || got.Get("resource") != tc.wantResource {
					t.Errorf("%s resource = %q (sent %v), want %q", req.Endpoint, got.Get("resource"), sent, tc.wantResource)
				}
			}
		})
	}

	r := runCLI(t, newFakeKeychain(), "auth", "login", "https://mcp.example.com/mcp", "--authorize-param", "state=x")
	if r.code == 0 || !strings.Contains(r.stderr, "auth.authorize_params.state") {
		t.Errorf("--authorize-param state=x: exit %d, stderr %q; want an error naming it", r.code, r.stderr)
	}
}
