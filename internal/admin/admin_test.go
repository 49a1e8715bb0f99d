package admin_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/admin"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

var (
	_ admin.Auth      = (*oauth.Handler)(nil)
	_ admin.Callbacks = (*oauth.Callbacks)(nil)
	_ admin.History   = (*wire.Recorder)(nil)
)

// fakeAuth is one identity's state.
type fakeAuth struct {
	identity  string
	link      string
	logoutErr error

	mu      sync.Mutex
	tok     *oauth.Token
	logouts int
}

func (f *fakeAuth) Identity() string    { return f.identity }
func (f *fakeAuth) PendingLink() string { return f.link }

func (f *fakeAuth) Current() *oauth.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tok
}

func (f *fakeAuth) Logout() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logouts++
	if f.logoutErr != nil {
		return f.logoutErr
	}
	f.tok = nil
	return nil
}

func (f *fakeAuth) loggedOut() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logouts
}

// fakeCallbacks records pastes.
type fakeCallbacks struct {
	pending []oauth.PendingInfo
	err     error

	mu     sync.Mutex
	pastes []string
}

func (f *fakeCallbacks) PendingLogins() []oauth.PendingInfo { return f.pending }

func (f *fakeCallbacks) Deliver(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pastes = append(f.pastes, s)
	return f.err
}

func (f *fakeCallbacks) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.pastes...)
}

type fakeHistory []wire.Exchange

func (h fakeHistory) Recent() []wire.Exchange { return h }

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	accessToken  = "at-SECRET-access-token"
	refreshToken = "rt-SECRET-refresh-token"
	pendingLink  = "https://as.example/authorize?client_id=c1&state=st4te&code_challenge=xyz"
)

// fixture is a page with three servers: one logged in, one waiting for a
// login whose callback port is taken, one without OAuth.
type fixture struct {
	srv       *httptest.Server
	loggedIn  *fakeAuth
	waiting   *fakeAuth
	callbacks *fakeCallbacks
}

func newFixture(t *testing.T, edit func(*admin.Options)) *fixture {
	t.Helper()
	f := &fixture{
		loggedIn: &fakeAuth{identity: "https://mcp.example", tok: &oauth.Token{
			AccessToken: accessToken, RefreshToken: refreshToken, Scope: "mcp:read mcp:write",
			ExpiresAt: now.Add(59*time.Minute + 30*time.Second),
		}},
		waiting: &fakeAuth{identity: "https://other.example", link: pendingLink},
		callbacks: &fakeCallbacks{pending: []oauth.PendingInfo{
			{State: "st4te", Port: 3030, Path: "/callback", Started: now.Add(-time.Minute), Listening: false},
		}},
	}
	o := admin.Options{
		Servers: []admin.Server{
			{Name: "work", LocalURL: "http://127.0.0.1:8101/mcp", Upstream: "https://mcp.example/mcp?api_key=SECRET-KEY", Transport: "http", Auth: f.loggedIn},
			{Name: "other", LocalURL: "http://127.0.0.1:8102/sse", Upstream: "https://other.example/sse", Transport: "sse", Auth: f.waiting},
			{Name: "open", LocalURL: "http://127.0.0.1:8103/mcp", Upstream: "https://open.example/mcp", Transport: "http"},
		},
		Callbacks: f.callbacks,
		History: fakeHistory{
			{Time: now.Add(-3 * time.Second), Server: "work", Kind: wire.KindRefresh, Method: "POST", URL: "https://as.example/token",
				Duration: 300 * time.Microsecond, ReqBytes: -1, Err: "dial tcp: connection refused"},
			{Time: now.Add(-2 * time.Second), Server: "other", Kind: wire.KindMCP, Method: "POST", URL: "https://other.example/sse",
				Status: 401, Duration: 12 * time.Millisecond, ReqBytes: 10, RespBytes: 0},
			{Time: now.Add(-time.Second), Server: "work", Kind: wire.KindMCP, Method: "POST", URL: "https://mcp.example/mcp",
				RPCMethod: "tools/call", RPCID: "7", Status: 200, Duration: 1500 * time.Millisecond, ReqBytes: 80, RespBytes: 120,
				TokenFingerprint: redact.Fingerprint(accessToken), Replay: true},
		},
		Now: func() time.Time { return now },
	}
	if edit != nil {
		edit(&o)
	}
	h, err := admin.NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// response is an answer read in full.
type response struct {
	status   int
	header   http.Header
	body     string
	location string
}

// do sends a request without following redirects; edit may change it.
func (f *fixture) do(t *testing.T, method, path string, form url.Values, edit func(*http.Request)) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if edit != nil {
		edit(req)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, string(b), res.Header.Get("Location")}
}

func (f *fixture) get(t *testing.T, path string) response {
	t.Helper()
	return f.do(t, http.MethodGet, path, nil, nil)
}

// post sends a form as the page does: from its own origin.
func (f *fixture) post(t *testing.T, path string, form url.Values) response {
	t.Helper()
	return f.do(t, http.MethodPost, path, form, func(r *http.Request) {
		r.Header.Set("Origin", f.srv.URL)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	})
}

func TestPage(t *testing.T) {
	f := newFixture(t, nil)
	r := f.get(t, "/")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		// every server, its local URL and upstream
		"<h3>work</h3>", "http://127.0.0.1:8101/mcp", "https://mcp.example/mcp?api_key=" + redact.Fingerprint("SECRET-KEY"),
		"<h3>other</h3>", "http://127.0.0.1:8102/sse", "https://other.example/sse", "(sse)",
		"<h3>open</h3>", "OAuth</dt><dd>off",
		// the identities and the token's state
		"https://mcp.example", "valid, expires in 59m (at ", "scope: mcp:read mcp:write",
		"fingerprint " + redact.Fingerprint(accessToken),
		// the waiting login, as a link, and that only a paste completes it
		`<a class="login-link" href="https://as.example/authorize?client_id=c1&amp;state=st4te&amp;code_challenge=xyz"`,
		"the callback port is taken",
		// one log-out button, for the identity with a token
		`<input type="hidden" name="identity" value="https://mcp.example">`, "Log out of https://mcp.example",
		// the paste box
		`<form method="post" action="/callback">`, `<textarea id="callback" name="callback"`,
		// the exchanges
		"tools/call", "replayed after login", "1500 ms", "12 ms", "0.3 ms", "<td>401</td>", "<td>200</td>",
		"<td>none</td>", "dial tcp: connection refused",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(r.body, `action="/logout"`); n != 1 {
		t.Errorf("%d log-out buttons, want 1 (only the identity with a token)", n)
	}
	// Newest exchange first.
	if i, j := strings.Index(r.body, "tools/call"), strings.Index(r.body, "<td>401</td>"); i > j {
		t.Errorf("the exchanges are not newest first")
	}
	for _, secret := range []string{accessToken, refreshToken, "SECRET-KEY"} {
		if strings.Contains(r.body, secret) {
			t.Errorf("the page shows the secret %q", secret)
		}
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Cache-Control", "Referrer-Policy"} {
		if r.header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
}

func TestTokenStates(t *testing.T) {
	tests := []struct {
		name string
		tok  *oauth.Token
		want string
	}{
		{"none", nil, "<dd class=\"token\" data-present=\"false\">none"},
		{"no expiry", &oauth.Token{AccessToken: "a"}, "valid, expiry unknown"},
		{"expired", &oauth.Token{AccessToken: "a", RefreshToken: "r", ExpiresAt: now.Add(-3 * time.Minute)},
			"expired 3m ago (it is refreshed on the next request)"},
		{"days", &oauth.Token{AccessToken: "a", ExpiresAt: now.Add(50 * time.Hour)}, "valid, expires in 2d2h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *admin.Options) {
				o.Servers = []admin.Server{{Name: "s", LocalURL: "http://127.0.0.1:1/", Upstream: "https://s.example/",
					Auth: &fakeAuth{identity: "https://s.example", tok: tt.tok}}}
			})
			if r := f.get(t, "/"); !strings.Contains(r.body, tt.want) {
				t.Errorf("the page lacks %q:\n%s", tt.want, r.body)
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	f := newFixture(t, nil)
	r := f.get(t, "/api/status")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/status: %d %s", r.status, r.header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	want := map[string]any{
		"time":  "2026-03-01T12:00:00Z",
		"paste": true,
		"servers": []any{
			map[string]any{
				"name": "work", "local_url": "http://127.0.0.1:8101/mcp", "transport": "http", "oauth": true,
				"upstream": "https://mcp.example/mcp?api_key=" + redact.Fingerprint("SECRET-KEY"),
				"identity": "https://mcp.example",
				"token": map[string]any{
					"present": true, "expires_at": "2026-03-01T12:59:30Z", "expires_in_seconds": 3570.0,
					"scope": "mcp:read mcp:write", "refresh_token": true, "fingerprint": redact.Fingerprint(accessToken),
				},
			},
			map[string]any{
				"name": "other", "local_url": "http://127.0.0.1:8102/sse", "transport": "sse", "oauth": true,
				"upstream": "https://other.example/sse", "identity": "https://other.example",
				"token": map[string]any{"present": false},
				"login": map[string]any{"link": pendingLink, "started": "2026-03-01T11:59:00Z", "listening": false},
			},
			map[string]any{
				"name": "open", "local_url": "http://127.0.0.1:8103/mcp", "transport": "http", "oauth": false,
				"upstream": "https://open.example/mcp", "token": map[string]any{"present": false},
			},
		},
		"exchanges": []any{
			map[string]any{"time": "2026-03-01T11:59:57Z", "server": "work", "kind": "oauth:refresh", "method": "POST",
				"url": "https://as.example/token", "status": 0.0, "duration_ms": 0.3, "req_bytes": -1.0, "resp_bytes": 0.0,
				"error": "dial tcp: connection refused"},
			map[string]any{"time": "2026-03-01T11:59:58Z", "server": "other", "kind": "mcp", "method": "POST",
				"url": "https://other.example/sse", "status": 401.0, "duration_ms": 12.0, "req_bytes": 10.0, "resp_bytes": 0.0},
			map[string]any{"time": "2026-03-01T11:59:59Z", "server": "work", "kind": "mcp", "method": "POST",
				"url": "https://mcp.example/mcp", "rpc_method": "tools/call", "rpc_id": "7", "status": 200.0,
				"duration_ms": 1500.0, "req_bytes": 80.0, "resp_bytes": 120.0,
				"token": redact.Fingerprint(accessToken), "replay": true},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/api/status (-want +got):\n%s", diff)
	}
	// It decodes into the exported types.
	var st admin.Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || len(st.Servers) != 3 || st.Servers[1].Login == nil {
		t.Errorf("decoding into admin.Status: %v %+v", err, st)
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t, nil)
	r := f.post(t, "/logout", url.Values{"identity": {"https://mcp.example"}})
	if r.status != http.StatusSeeOther || r.location != "/?done=logout" {
		t.Fatalf("POST /logout: %d %q %s", r.status, r.location, r.body)
	}
	if n := f.loggedIn.loggedOut(); n != 1 {
		t.Errorf("Logout called %d times, want 1", n)
	}
	if n := f.waiting.loggedOut(); n != 0 {
		t.Errorf("the other identity was logged out %d times", n)
	}
	page := f.get(t, r.location)
	if !strings.Contains(page.body, "Logged out") || !strings.Contains(page.body, `data-present="false">none`) {
		t.Errorf("the page after logging out:\n%s", page.body)
	}
	if strings.Contains(page.body, `action="/logout"`) {
		t.Errorf("a log-out button is left after logging out")
	}
}

// Two servers of one identity in different stores are both logged out.
func TestLogoutEveryServerOfIdentity(t *testing.T) {
	a := &fakeAuth{identity: "https://mcp.example", tok: &oauth.Token{AccessToken: "a"}}
	b := &fakeAuth{identity: "https://mcp.example", tok: &oauth.Token{AccessToken: "b"}}
	f := newFixture(t, func(o *admin.Options) {
		o.Servers = []admin.Server{{Name: "a", Auth: a}, {Name: "b", Auth: b}}
	})
	if r := f.post(t, "/logout", url.Values{"identity": {"https://mcp.example"}}); r.status != http.StatusSeeOther {
		t.Fatalf("POST /logout: %d %s", r.status, r.body)
	}
	if a.loggedOut() != 1 || b.loggedOut() != 1 {
		t.Errorf("logouts: %d and %d, want 1 and 1", a.loggedOut(), b.loggedOut())
	}
}

func TestLogoutErrors(t *testing.T) {
	f := newFixture(t, nil)
	r := f.post(t, "/logout", url.Values{"identity": {"https://nobody.example"}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "No server uses that identity") {
		t.Errorf("unknown identity: %d %s", r.status, r.body)
	}
	f.loggedIn.logoutErr = errors.New("keychain is locked")
	r = f.post(t, "/logout", url.Values{"identity": {"https://mcp.example"}})
	if r.status != http.StatusInternalServerError || !strings.Contains(r.body, "Log out failed: keychain is locked") {
		t.Errorf("failing Logout: %d %s", r.status, r.body)
	}
}

func TestPaste(t *testing.T) {
	f := newFixture(t, nil)
	pasted := "http://localhost:3030/callback?code=SECRET-CODE&state=st4te"
	r := f.post(t, "/callback", url.Values{"callback": {pasted}})
	if r.status != http.StatusSeeOther || r.location != "/?done=callback" {
		t.Fatalf("POST /callback: %d %q %s", r.status, r.location, r.body)
	}
	if diff := cmp.Diff([]string{pasted}, f.callbacks.got()); diff != "" {
		t.Errorf("Deliver (-want +got):\n%s", diff)
	}
	if page := f.get(t, r.location); !strings.Contains(page.body, "Callback accepted") {
		t.Errorf("the page after the paste lacks the notice:\n%s", page.body)
	}
}

func TestPasteError(t *testing.T) {
	f := newFixture(t, nil)
	f.callbacks.err = errors.New("oauth: no login is waiting for the pasted response: it expired")
	r := f.post(t, "/callback", url.Values{"callback": {"http://localhost:3030/callback?code=SECRET-CODE&state=old"}})
	if r.status != http.StatusBadRequest {
		t.Fatalf("POST /callback: %d %s", r.status, r.body)
	}
	if want := "The pasted callback was not accepted: no login is waiting for the pasted response: it expired"; !strings.Contains(r.body, want) {
		t.Errorf("the page lacks %q:\n%s", want, r.body)
	}
	if strings.Contains(r.body, "SECRET-CODE") {
		t.Errorf("the page repeats the pasted code")
	}
	// The rest of the page is there, so the user can try again.
	if !strings.Contains(r.body, "<h3>work</h3>") || !strings.Contains(r.body, `<textarea id="callback"`) {
		t.Errorf("the error page lacks the servers or the paste box")
	}
}

func TestNoPasteWithoutCallbacks(t *testing.T) {
	f := newFixture(t, func(o *admin.Options) { o.Callbacks = nil })
	if r := f.get(t, "/"); strings.Contains(r.body, `action="/callback"`) {
		t.Errorf("a paste box without Callbacks")
	}
	if r := f.post(t, "/callback", url.Values{"callback": {"code"}}); r.status != http.StatusNotFound {
		t.Errorf("POST /callback without Callbacks: %d", r.status)
	}
}

// Only the page itself may log out or paste: another page's POST (a
// cross-site form, or a local web app on another port) is refused.
func TestCrossOriginPostRefused(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string // "%s" is the page's origin
		want    int
	}{
		{"same origin by Sec-Fetch-Site", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
		{"same origin by Origin", map[string]string{"Origin": "%s"}, http.StatusSeeOther},
		{"no header", nil, http.StatusForbidden},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"local app on another port", map[string]string{"Origin": "http://localhost:1"}, http.StatusForbidden},
		{"null origin", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "%s"}, http.StatusForbidden},
		{"same-site", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			set := func(r *http.Request) {
				for k, v := range tt.headers {
					r.Header.Set(k, strings.ReplaceAll(v, "%s", f.srv.URL))
				}
			}
			if r := f.do(t, http.MethodPost, "/logout", url.Values{"identity": {"https://mcp.example"}}, set); r.status != tt.want {
				t.Errorf("POST /logout: %d %s, want %d", r.status, r.body, tt.want)
			}
			if r := f.do(t, http.MethodPost, "/callback", url.Values{"callback": {"?code=c&state=st4te"}}, set); r.status != tt.want {
				t.Errorf("POST /callback: %d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want == http.StatusForbidden && (f.loggedIn.loggedOut() != 0 || len(f.callbacks.got()) != 0) {
				t.Errorf("a refused request acted: %d logouts, pastes %q", f.loggedIn.loggedOut(), f.callbacks.got())
			}
		})
	}
}

// Opened under an allowed host name, the page's own buttons work: the
// browser's Origin is then that name, not a loopback one.
func TestOwnPostUnderAllowedHost(t *testing.T) {
	f := newFixture(t, func(o *admin.Options) { o.Guard.AllowedHosts = []string{"proxy.internal"} })
	u, err := url.Parse(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	host := "proxy.internal:" + u.Port()
	r := f.do(t, http.MethodPost, "/logout", url.Values{"identity": {"https://mcp.example"}}, func(r *http.Request) {
		r.Host = host
		r.Header.Set("Origin", "http://"+host)
	})
	if r.status != http.StatusSeeOther || f.loggedIn.loggedOut() != 1 {
		t.Errorf("POST /logout from http://%s: %d %s; want the log-out done", host, r.status, r.body)
	}
}

func TestForeignHostRefused(t *testing.T) {
	f := newFixture(t, nil)
	for _, path := range []string{"/", "/api/status", "/static/refresh.js"} {
		r := f.do(t, http.MethodGet, path, nil, func(r *http.Request) { r.Host = "rebind.evil.example" })
		if r.status != http.StatusForbidden || strings.Contains(r.body, "mcp.example") {
			t.Errorf("GET %s with a foreign Host: %d %s", path, r.status, r.body)
		}
	}
	r := f.do(t, http.MethodPost, "/logout", url.Values{"identity": {"https://mcp.example"}}, func(r *http.Request) {
		r.Host = "rebind.evil.example"
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	})
	if r.status != http.StatusForbidden || f.loggedIn.loggedOut() != 0 {
		t.Errorf("POST /logout with a foreign Host: %d, %d logouts", r.status, f.loggedIn.loggedOut())
	}
	// A name allowed for the listener works.
	g := newFixture(t, func(o *admin.Options) { o.Guard.AllowedHosts = []string{"proxy.internal"} })
	u, _ := url.Parse(g.srv.URL)
	r = g.do(t, http.MethodGet, "/", nil, func(r *http.Request) { r.Host = "proxy.internal:" + u.Port() })
	if r.status != http.StatusOK {
		t.Errorf("GET / with an allowed Host: %d", r.status)
	}
}

func TestBadAllowedHost(t *testing.T) {
	if _, err := admin.NewHandler(admin.Options{}); err != nil {
		t.Fatalf("zero options: %v", err)
	}
	o := admin.Options{}
	o.Guard.AllowedHosts = []string{"a/b"}
	if _, err := admin.NewHandler(o); err == nil || !strings.HasPrefix(err.Error(), "admin: ") {
		t.Errorf("a malformed allowed host: err = %v", err)
	}
}

func TestHostileValuesEscaped(t *testing.T) {
	f := newFixture(t, func(o *admin.Options) {
		o.Servers = []admin.Server{{
			Name:      `<script>alert("name")</script>`,
			LocalURL:  `http://127.0.0.1:1/"><script>alert(1)</script>`,
			Upstream:  `https://up.example/<img src=x onerror=alert(2)>`,
			Transport: `<b>http</b>`,
			Auth: &fakeAuth{
				identity: `https://id.example/"><script>alert(3)</script>`,
				link:     `javascript:alert(4)`,
				tok:      &oauth.Token{AccessToken: "a", Scope: `<img src=x onerror=alert(5)>`},
			},
		}}
		o.History = fakeHistory{{Server: `<script>alert(6)</script>`, Method: "GET", URL: `/"><img src=x onerror=alert(7)>`,
			RPCMethod: `<svg onload=alert(8)>`, Err: `<script>alert(9)</script>`}}
	})
	r := f.get(t, "/")
	if r.status != http.StatusOK {
		t.Fatalf("GET /: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"<script>alert", "<img src=x", "<svg", "<b>http", `href="javascript:`} {
		if strings.Contains(r.body, bad) {
			t.Errorf("the page contains %q unescaped", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;", `href="#ZgotmplZ"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the page lacks the escaped %q", want)
		}
	}
}

func TestStaticFiles(t *testing.T) {
	f := newFixture(t, nil)
	for path, want := range map[string]string{
		"/static/refresh.js": "text/javascript",
		"/static/style.css":  "text/css",
	} {
		r := f.get(t, path)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), want) || r.body == "" {
			t.Errorf("GET %s: %d %q", path, r.status, r.header.Get("Content-Type"))
		}
	}
	if r := f.get(t, "/nosuch"); r.status != http.StatusNotFound {
		t.Errorf("GET /nosuch: %d", r.status)
	}
	if r := f.get(t, "/logout"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /logout: %d, want 405", r.status)
	}
}
