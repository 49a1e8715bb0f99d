package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

// The tests in this file open serve's status page in a real browser:
// headless Chromium, driven through the DevTools protocol. `make test`
// installs Chromium (scripts/install-test-deps.sh) and sets
// MCP_OAUTH_PROXY_BROWSER_TESTS=1, which makes a missing browser a
// failure; a plain `go test` skips them without one.

// browserEnv is the variable that makes the browser tests mandatory.
const browserEnv = "MCP_OAUTH_PROXY_BROWSER_TESTS"

// chromiumPath returns the browser to drive, or skips (fails under
// MCP_OAUTH_PROXY_BROWSER_TESTS=1) when there is none.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (apt-get install chromium, or run make test, which installs it)"
	if os.Getenv(browserEnv) == "1" {
		t.Fatalf("%s=1 but %s", browserEnv, msg)
	}
	t.Skipf("%s; skipping the browser test (set %s=1 to make this a failure)", msg, browserEnv)
	return ""
}

// browserLog collects chromedp's complaints, shown when a test fails.
type browserLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *browserLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, format+"\n", args...)
}

func (l *browserLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newBrowser starts headless Chromium with a fresh profile and returns
// the context of its first tab, valid until the test ends (or serveWait
// passes: a test never waits longer on the browser).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	profile := t.TempDir() // removed after the browser has exited (cleanups run last-in first-out)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // root in a container
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// The test machine's closed network refuses Chromium's own
		// connections; do not try them.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Under make test a private Secret Service session runs: keep
		// Chromium off that bus (no secrets stored, no accessibility bus
		// started in it).
		chromedp.Flag("password-store", "basic"),
		chromedp.Env("DBUS_SESSION_BUS_ADDRESS=disabled:", "NO_AT_BRIDGE=1"),
		chromedp.WindowSize(1200, 1000),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*serveWait)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	log := new(browserLog)
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithErrorf(log.logf), chromedp.WithLogf(log.logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // kills the browser and waits for it
		cancel()
		if t.Failed() {
			t.Logf("chromedp log:\n%s", log)
		}
	})
	// Start the browser now, so a failure to start is reported as such.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return tab
}

// screenshot saves the tab's full page as .artifacts/screenshots/name in
// the repository, for a human to look at.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(repoRoot(t), ".artifacts", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// repoRoot is the directory of go.mod above the test's directory.
func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

// pageText is the visible text of the status page's element sel.
func pageText(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	text, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return text
}

// During a pending login the status page, opened in a browser, shows the
// server and a working login link; the user clicks it, the authorization
// server sends the browser to the callback, and the page, which refreshes
// itself, then shows the token with its expiry.
func TestBrowserStatusPageLogin(t *testing.T) {
	tab := newBrowser(t)
	as, rs := protectedMCP(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true}, oauthtest.ResourceOptions{})
	s := startAdminServe(t, newFakeKeychain(), rs.Endpoint, 0)

	answer := s.firstRequest(t)
	link := s.waitPendingLink(t)

	if err := chromedp.Do(tab,
		chromedp.Navigate(s.pageURL),
		chromedp.WaitVisible(chromedp.CSS("a.login-link")),
	); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	if text := pageText(t, tab, "#servers"); !strings.Contains(text, s.name) || !strings.Contains(text, "A login is waiting for you") {
		t.Errorf("the status page does not show the server and its waiting login:\n%s", text)
	}
	href, err := chromedp.Run(tab, chromedp.AttributeValue(chromedp.CSS("a.login-link"), "href"))
	if err != nil || href.Value != link {
		t.Fatalf("the login link on the page is %q (%v), want %q", href.Value, err, link)
	}
	if !strings.HasPrefix(href.Value, as.URL+"/") {
		t.Errorf("the login link %q does not lead to the authorization server %s", href.Value, as.URL)
	}
	screenshot(t, tab, "status-login-pending.png")

	// The link opens the authorization server in a new tab; it approves
	// at once and sends the browser to the proxy's callback.
	opened := chromedp.WaitNewTarget(tab, func(info *target.Info) bool { return info.URL != "" })
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("a.login-link"))); err != nil {
		t.Fatalf("clicking the login link: %v", err)
	}
	loginTab, cancel := chromedp.NewContext(tab, chromedp.WithTargetID(<-opened))
	defer cancel()
	callbackPrefix := "http://localhost:" + strconv.Itoa(s.redirectPort) + "/callback?"
	var loc string
	poll(t, "the login tab to reach the callback", func() bool {
		loc, _ = chromedp.Run(loginTab, chromedp.Location())
		return strings.HasPrefix(loc, callbackPrefix)
	})
	if text := pageText(t, loginTab, "h1"); text != "Authorization complete" {
		t.Errorf("the callback page says %q", text)
	}
	screenshot(t, loginTab, "status-login-callback.png")
	if err := <-answer; err != nil {
		t.Fatalf("the client's request after the login: %v", err)
	}

	// The user closes the login tab and is back on the status page, which
	// refreshes itself: the token appears, with its expiry.
	cancel()
	statusTab := target.ActivateTargetParams{TargetID: chromedp.FromContext(tab).Target.TargetID}
	if _, err := chromedp.CallBrowser(tab, target.ActivateTarget, statusTab); err != nil {
		t.Fatalf("back to the status page's tab: %v", err)
	}
	if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS(`.token[data-present="true"]`))); err != nil {
		t.Fatalf("the status page never showed the token: %v", err)
	}
	if text := pageText(t, tab, ".token"); !strings.Contains(text, "valid, expires in ") || !strings.Contains(text, "fingerprint sha256:") {
		t.Errorf("token state %q lacks the expiry or the fingerprint", text)
	}
	if err := chromedp.Do(tab, chromedp.WaitNotPresent(chromedp.CSS("a.login-link"))); err != nil {
		t.Errorf("the login link stays after the login: %v", err)
	}
	if text := pageText(t, tab, "#exchanges"); !strings.Contains(text, "oauth:token") || !strings.Contains(text, "replayed after login") {
		t.Errorf("the exchanges lack the token request or the replay:\n%s", text)
	}
	screenshot(t, tab, "status-logged-in.png")
}

// When the callback port is taken, the browser's redirect cannot reach
// the proxy: the user pastes the address the browser ended on into the
// status page's box, and the login completes.
func TestBrowserStatusPagePaste(t *testing.T) {
	tab := newBrowser(t)
	_, rs := protectedMCP(t, oauthtest.AuthServerOptions{}, oauthtest.ResourceOptions{})
	// Someone else holds the callback port.
	blocker, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	s := startAdminServe(t, newFakeKeychain(), rs.Endpoint, blocker.Addr().(*net.TCPAddr).Port)

	answer := s.firstRequest(t)
	link := s.waitPendingLink(t)
	if err := chromedp.Do(tab,
		chromedp.Navigate(s.pageURL),
		chromedp.WaitVisible(chromedp.CSS("a.login-link")),
	); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	if text := pageText(t, tab, "#servers"); !strings.Contains(text, "the callback port is taken") {
		t.Errorf("the page does not say that only a paste completes the login:\n%s", text)
	}

	// The browser would end on the callback address, which nothing here
	// answers; the user copies it from the address bar.
	callback, err := oauthtest.Redirect(testContext(t), link)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.SendKeys(chromedp.ID("callback"), callback.String())); err != nil {
		t.Fatalf("typing in the paste box: %v", err)
	}
	screenshot(t, tab, "status-paste-typed.png")
	// What is typed survives the page's refreshes.
	waitRefreshed(t, tab)
	if v, err := chromedp.Run(tab, chromedp.Value(chromedp.ID("callback"))); err != nil || v != callback.String() {
		t.Fatalf("the paste box holds %q after a refresh (%v), want what was typed", v, err)
	}
	if err := chromedp.Do(tab,
		chromedp.Click(chromedp.CSS(`#paste button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.token[data-present="true"]`)),
	); err != nil {
		t.Fatalf("after submitting the paste, the page never showed the token: %v", err)
	}
	if text := pageText(t, tab, "main"); !strings.Contains(text, "Callback accepted") || !strings.Contains(text, "valid, expires in ") {
		t.Errorf("the page after the paste:\n%s", text)
	}
	if err := <-answer; err != nil {
		t.Fatalf("the client's request after the login: %v", err)
	}
	screenshot(t, tab, "status-paste-done.png")
}

// waitRefreshed waits until the status page in tab has refreshed itself:
// the time it shows has changed.
func waitRefreshed(t *testing.T, tab context.Context) {
	t.Helper()
	stamp := func() string {
		v, err := chromedp.Run(tab, chromedp.AttributeValue(chromedp.CSS("#updated time"), "datetime"))
		if err != nil {
			t.Fatalf("reading the page's time: %v", err)
		}
		return v.Value
	}
	first := stamp()
	poll(t, "the status page to refresh itself", func() bool { return stamp() != first })
}

// adminServe is a serve with its status page on a free port.
type adminServe struct {
	*serveRun
	name         string // the server's name (its identity, with --url)
	localURL     string
	pageURL      string
	redirectPort int
}

// startAdminServe serves upstream with --admin on a free port; a
// redirectPort of 0 picks a free one.
func startAdminServe(t *testing.T, kc *fakeKeychain, upstream string, redirectPort int) *adminServe {
	t.Helper()
	if redirectPort == 0 {
		redirectPort = freePort(t)
	}
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	r := startServe(t, kc, "--url", upstream, "--listen", listen, "--redirect-port", strconv.Itoa(redirectPort), "--admin", adminAddr)
	r.ready(1)
	want := "Status page: http://" + adminAddr + "/\n"
	ctx := testContext(t)
	if _, err := r.stdout.WaitFor(ctx, func(s string) bool { return strings.Contains(s, want) }); err != nil {
		t.Fatalf("serve did not print %q: %v\n%s", want, err, r.stdout)
	}
	return &adminServe{
		serveRun:     r,
		name:         oauth.Identity(upstream),
		localURL:     "http://" + listen + "/mcp",
		pageURL:      "http://" + adminAddr + "/",
		redirectPort: redirectPort,
	}
}

// firstRequest sends the client's initialize, which meets the 401 and
// waits for the login; the channel gets its outcome.
func (s *adminServe) firstRequest(t *testing.T) <-chan error {
	ctx := testContext(t)
	answer := make(chan error, 1)
	go func() {
		res, err := postRPC(ctx, s.localURL, initializeBody, nil)
		if err == nil && res.status != http.StatusOK {
			err = fmt.Errorf("status %d: %s", res.status, res.body)
		}
		if err == nil && !strings.Contains(string(res.body), `"serverInfo"`) {
			err = fmt.Errorf("answer %q is not an initialize result", res.body)
		}
		answer <- err
	}()
	return answer
}

// waitPendingLink waits until /api/status shows the waiting login and
// returns its link.
func (s *adminServe) waitPendingLink(t *testing.T) string {
	t.Helper()
	var link string
	poll(t, "a pending login on /api/status", func() bool {
		st, err := getAdminStatus(testContext(t), s.pageURL)
		if err != nil || len(st.Servers) != 1 || st.Servers[0].Login == nil {
			return false
		}
		link = st.Servers[0].Login.Link
		return true
	})
	return link
}
