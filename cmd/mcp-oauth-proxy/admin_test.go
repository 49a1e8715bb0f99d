package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/admin"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

// getAdminStatus reads /api/status of the status page at pageURL.
func getAdminStatus(ctx context.Context, pageURL string) (admin.Status, error) {
	var st admin.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pageURL+"api/status", nil)
	if err != nil {
		return st, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return st, fmt.Errorf("GET /api/status: %s: %s", res.Status, b)
	}
	return st, json.NewDecoder(res.Body).Decode(&st)
}

// The status page of a running serve, without a browser: the pending
// login, auth status's live view, the exchanges recorded without any
// traffic flag, the token after the login, and logging out.
func TestServeStatusPage(t *testing.T) {
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true}, oauthtest.ResourceOptions{})
	kc := newFakeKeychain()
	s := startAdminServe(t, kc, rs.Endpoint, 0)
	adminAddr := strings.TrimSuffix(strings.TrimPrefix(s.pageURL, "http://"), "/")
	identity := oauth.Identity(rs.Endpoint)

	answer := s.firstRequest(t)
	link := s.waitPendingLink(t)

	// auth status asks the running serve.
	r := runCLI(t, kc, "auth", "status", "--admin", adminAddr)
	for _, want := range []string{"Running serve (live, from its status page " + s.pageURL, s.localURL, "login waiting",
		"Login waiting for " + s.name + ": " + link, "Keychain:"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("auth status during the login (exit %d) lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	r = runCLI(t, kc, "auth", "status", "--json", "--admin", adminAddr)
	var report statusReport
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("auth status --json: %v\n%s", err, r.stdout)
	}
	if report.Serve == nil || len(report.Serve.Servers) != 1 || report.Serve.Servers[0].Login == nil ||
		report.Serve.Servers[0].Login.Link != link || report.Serve.StatusPage != s.pageURL {
		t.Errorf("auth status --json: serve = %+v", report.Serve)
	}

	if res, err := as.FollowLink(testContext(t), link); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("following the link: %v %v", res, err)
	}
	if err := <-answer; err != nil {
		t.Fatalf("the client's request: %v", err)
	}

	var st admin.Status
	poll(t, "the token on /api/status", func() bool {
		var err error
		st, err = getAdminStatus(testContext(t), s.pageURL)
		return err == nil && len(st.Servers) == 1 && st.Servers[0].Token.Present
	})
	got := st.Servers[0]
	if got.Login != nil || got.Token.ExpiresAt == nil || got.Identity != identity || got.LocalURL != s.localURL || !got.OAuth {
		t.Errorf("server after the login: %+v", got)
	}
	// The exchanges are recorded although no traffic flag was given, and
	// no traffic line is logged.
	kinds := map[string]bool{}
	for _, x := range st.Exchanges {
		kinds[fmt.Sprintf("%s %d replay=%v", x.Kind, x.Status, x.Replay)] = true
	}
	for _, want := range []string{"mcp 401 replay=false", "oauth:token 200 replay=false", "mcp 200 replay=true"} {
		if !kinds[want] {
			t.Errorf("no exchange %q among %v", want, kinds)
		}
	}
	if strings.Contains(s.stderr.String(), "msg=exchange") {
		t.Errorf("traffic lines logged without -v or --log-traffic:\n%s", s.stderr)
	}

	r = runCLI(t, kc, "auth", "status", "--admin", adminAddr, rs.Endpoint)
	if !strings.Contains(r.stdout, "present, expires in") || strings.Contains(r.stdout, "Login waiting") {
		t.Errorf("auth status after the login:\n%s", r.stdout)
	}

	// Log out from the page, as its button does.
	form := url.Values{"identity": {identity}}
	req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost, s.pageURL+"logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", strings.TrimSuffix(s.pageURL, "/"))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /logout: %s", res.Status)
	}
	if _, ok := kc.entry("oauth:tokens:" + identity); ok {
		t.Errorf("the token is still in the keychain after logging out")
	}
	if st, err := getAdminStatus(testContext(t), s.pageURL); err != nil || st.Servers[0].Token.Present {
		t.Errorf("after logging out: %v %+v", err, st.Servers)
	}
}

// runServeApp runs serve in process with a, waits for its start table and
// stops it; it returns its output.
func runServeApp(t *testing.T, a *app, args ...string) cliResult {
	t.Helper()
	stdout, stderr := new(oauthtest.Buffer), new(oauthtest.Buffer)
	a.stdin, a.stdout, a.stderr = strings.NewReader(""), stdout, stderr
	if a.keychainBackend == nil {
		a.keychainBackend = newFakeKeychain()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, append([]string{"serve"}, args...)) }()
	wctx := testContext(t)
	if _, err := stdout.WaitFor(wctx, func(s string) bool { return strings.Count(s, "\n") >= 2 }); err != nil {
		cancel()
		t.Fatalf("serve did not start: %v\n%s", err, stderr)
	}
	cancel()
	code := <-done
	return cliResult{stdout.String(), stderr.String(), code}
}

// busyAddr returns an address someone else is listening on.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func TestServeStatusPageDefault(t *testing.T) {
	_, rs := protectedMCP(t, oauthtest.AuthServerOptions{}, oauthtest.ResourceOptions{})
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))

	// The default address is used without --admin.
	r := runServeApp(t, &app{adminDefault: addr}, "--url", rs.Endpoint)
	if r.code != 0 || !strings.Contains(r.stdout, "Status page: http://"+addr+"/\n") {
		t.Errorf("serve with a default status page: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// --admin off turns it off.
	r = runServeApp(t, &app{adminDefault: addr}, "--url", rs.Endpoint, "--admin", "off")
	if r.code != 0 || strings.Contains(r.stdout, "Status page") {
		t.Errorf("serve --admin off: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A taken default address is a warning, not a failure.
	busy := busyAddr(t)
	r = runServeApp(t, &app{adminDefault: busy}, "--url", rs.Endpoint)
	if r.code != 0 || strings.Contains(r.stdout, "Status page") || !strings.Contains(r.stderr, "status page not started") {
		t.Errorf("serve with the default address taken: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestServeAdminFlagErrors(t *testing.T) {
	busy := busyAddr(t)
	tests := []struct {
		admin string
		want  string
	}{
		{busy, "--admin " + busy + ": listen tcp"},
		{"0.0.0.0:0", "--admin 0.0.0.0:0: not a loopback address"},
		{"nonsense", "--admin nonsense: want HOST:PORT or off"},
	}
	for _, tt := range tests {
		r := runCLI(t, newFakeKeychain(), "serve", "--url", "http://127.0.0.1:9/mcp", "--admin", tt.admin)
		if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("serve --admin %s: exit %d, stderr %q; want an error with %q", tt.admin, r.code, r.stderr, tt.want)
		}
	}
}

// Without a serve answering, auth status prints exactly what it printed
// before the status page existed, also when something else answers on
// the address.
func TestAuthStatusWithoutServe(t *testing.T) {
	kc := newFakeKeychain()
	seedFastAgentLogin(kc, "https://example.com", fastAgentToken)
	cfg := writeConfig(t, threeServers)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"hello":"world"}`)
	}))
	defer other.Close()
	for _, args := range [][]string{{}, {"--json"}} {
		want := runCLI(t, kc, append([]string{"auth", "status", "--config", cfg, "--admin", "off"}, args...)...)
		if want.code != 0 {
			t.Fatalf("auth status: exit %d\n%s", want.code, want.stderr)
		}
		for _, addr := range []string{"127.0.0.1:" + strconv.Itoa(freePort(t)), strings.TrimPrefix(other.URL, "http://")} {
			got := runCLI(t, kc, append([]string{"auth", "status", "--config", cfg, "--admin", addr}, args...)...)
			if got != want {
				t.Errorf("auth status %q --admin %s (nothing of serve there) = %+v, want %+v", args, addr, got, want)
			}
		}
	}
}

// What answers on the status page's address need not be serve: its
// strings reach the terminal without control characters.
func TestAuthStatusLiveViewIsPrintable(t *testing.T) {
	const esc = "\x1b]0;owned\x07\x1b[2J"
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(admin.Status{Servers: []admin.ServerStatus{{
			Name: "evil" + esc, LocalURL: "http://127.0.0.1:1/" + esc, OAuth: true, Identity: "https://x" + esc,
			Login: &admin.Login{Link: "https://as.example/authorize" + esc},
		}}})
	}))
	t.Cleanup(page.Close)
	r := runCLI(t, newFakeKeychain(), "auth", "status", "--admin", strings.TrimPrefix(page.URL, "http://"))
	if !strings.Contains(r.stdout, "Login waiting for evil") {
		t.Fatalf("auth status did not show the live view (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.ContainsAny(r.stdout, "\x1b\x07") {
		t.Errorf("auth status printed control characters: %q", r.stdout)
	}
}
