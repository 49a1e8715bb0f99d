package oauthtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLinks(t *testing.T) {
	const u1 = "http://127.0.0.1:4000/authorize?client_id=c&state=s1"
	const u2 = "http://127.0.0.1:4000/authorize?client_id=c&state=s2"
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"one line", "starting\nOpen this link to authorize https://up.example/mcp: " + u1 + "\nwaiting\n", []string{u1}},
		{"no trailing newline", "Open this link to authorize x: " + u1, []string{u1}},
		{"fast-agent style", "Open this link to authorize:\n  " + u1 + "\nWaiting for OAuth callback\n", []string{u1}},
		{"server URL and next line", "Open this link to authorize https://up.example/mcp:\n" + u1 + "\n", []string{u1}},
		{"slog quoted", `time=x level=INFO msg="Open this link to authorize up: ` + u1 + `"` + "\n", []string{u1}},
		{"two", "Open this link to authorize a: " + u1 + "\nOpen this link to authorize b: " + u2 + "\n", []string{u1, u2}},
		{"no URL", "Open this link to authorize a: soon\nhttp://127.0.0.1/not-after-a-colon\n", nil},
		{"marker missing", "Visit " + u1 + "\n", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Links(tt.text)); diff != "" {
				t.Errorf("Links (-want +got):\n%s", diff)
			}
			link, ok := LinkFrom(tt.text)
			if ok != (len(tt.want) > 0) || (ok && link != tt.want[0]) {
				t.Errorf("LinkFrom = %q, %v", link, ok)
			}
		})
	}
}

// callbackServer is a stand-in for the proxy's redirect listener: it
// records the query it got and answers like a login page would, through
// a redirect to a "done" page.
func callbackServer(t *testing.T) (*httptest.Server, func() url.Values) {
	var (
		mu  sync.Mutex
		got url.Values
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/callback":
			mu.Lock()
			got = r.URL.Query()
			mu.Unlock()
			if e := r.URL.Query().Get("error"); e != "" {
				http.Error(w, "login failed: "+e, http.StatusBadRequest)
				return
			}
			http.Redirect(w, r, "/done", http.StatusFound)
		case "/away":
			http.Redirect(w, r, "https://example.com/", http.StatusFound)
		case "/done":
			fmt.Fprint(w, "Authorization complete")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() url.Values {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func TestFollowLink(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{IssParameter: true})
	cbSrv, received := callbackServer(t)
	// Port 1 stands for a callback server that is not running.
	_, reg := postJSON(t, as.RegistrationEndpoint, map[string]any{"redirect_uris": []string{cbSrv.URL + "/callback", "https://app.example/cb", "http://127.0.0.1:1/callback", cbSrv.URL + "/away"}})
	id := reg["client_id"].(string)
	link := func(redirect string) string {
		return as.AuthorizationEndpoint + "?" + url.Values{
			"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect},
			"code_challenge": {testS256}, "code_challenge_method": {"S256"}, "state": {"s1"},
		}.Encode()
	}
	ctx := testContext(t)

	resp, err := as.FollowLink(ctx, link(cbSrv.URL+"/callback"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "Authorization complete" {
		t.Errorf("final page %s %q", resp.Status, b)
	}
	if q := received(); q.Get("code") == "" || q.Get("state") != "s1" || q.Get("iss") != as.Issuer {
		t.Errorf("callback got %v, want a code, state s1 and iss", q)
	}

	as.DenyNext("no thanks")
	resp, err = FollowLink(ctx, link(cbSrv.URL+"/callback"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 400 || !strings.Contains(string(b), "access_denied") {
		t.Errorf("denied: %s %q, want the callback's 400 page", resp.Status, b)
	}
	if q := received(); q.Get("error_description") != "no thanks" {
		t.Errorf("callback got %v after a denial", q)
	}

	errs := []struct {
		name, link, want string
		follow           func(context.Context, string) (*http.Response, error)
	}{
		{"not loopback", "https://example.com/authorize?x=1", "not an http(s) URL on a loopback host", FollowLink},
		{"javascript", "javascript:alert(1)", "not an http(s) URL on a loopback host", FollowLink},
		{"not a redirect", as.AuthorizationEndpoint + "?client_id=nobody", "answered 400 Bad Request, not a redirect: oauthtest: authorization error invalid_client", FollowLink},
		{"redirect off loopback", link("https://app.example/cb"), `redirected: "https://app.example/cb?`, FollowLink},
		{"callback redirects off loopback", link(cbSrv.URL + "/away"), `"https://example.com/" is not an http(s) URL on a loopback host`, FollowLink},
		{"callback down", link("http://127.0.0.1:1/callback"), "oauthtest: callback", FollowLink},
		{"not the AS", as.TokenEndpoint + "?a=b", "does not point at the authorization endpoint", as.FollowLink},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.follow(ctx, tt.link)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "oauthtest: ") {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBufferWaitFor(t *testing.T) {
	var b Buffer
	ctx := testContext(t)
	go func() {
		for i := range 50 {
			fmt.Fprintf(&b, "line %d\n", i)
		}
		io.WriteString(&b, "ready\n")
	}()
	text, err := b.WaitFor(ctx, func(s string) bool { return strings.Contains(s, "ready") })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "line 0\nline 1\n") || !strings.HasSuffix(text, "line 49\nready\n") {
		t.Errorf("text = %q", text)
	}
	if b.String() != text {
		t.Errorf("String() = %q, want %q", b.String(), text)
	}

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err = b.WaitFor(short, func(s string) bool { return strings.Contains(s, "never") })
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") || !strings.Contains(err.Error(), "line 49\nready") {
		t.Errorf("timeout error %v, want the deadline and the text so far", err)
	}
}

func TestBufferNextLink(t *testing.T) {
	var b Buffer
	ctx := testContext(t)
	const first, second = "http://127.0.0.1:1/authorize?n=1", "http://127.0.0.1:1/authorize?n=2"
	fmt.Fprintf(&b, "Open this link to authorize up: %s\n", first)
	if got, err := b.NextLink(ctx); err != nil || got != first {
		t.Fatalf("NextLink = %q, %v, want %q", got, err, first)
	}

	got := make(chan string, 1)
	go func() {
		link, err := b.NextLink(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- link
	}()
	// Written in pieces, the way a process writes to a pipe.
	io.WriteString(&b, "Open this link to authorize up: ")
	io.WriteString(&b, second[:20])
	io.WriteString(&b, second[20:]+"\n")
	if link := <-got; link != second {
		t.Errorf("second NextLink = %q, want %q", link, second)
	}

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := b.NextLink(short); err == nil || !strings.Contains(err.Error(), "login link #3") {
		t.Errorf("NextLink without a third link: %v", err)
	}
}
