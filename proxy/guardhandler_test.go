package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

func TestGuardHandler(t *testing.T) {
	tests := []struct {
		name   string
		opts   proxy.GuardOptions
		host   string // "%s" is the listener's port
		origin string
		want   int
	}{
		{name: "listener address", host: "127.0.0.1:%s", want: http.StatusOK},
		{name: "localhost", host: "localhost:%s", want: http.StatusOK},
		{name: "loopback origin", host: "127.0.0.1:%s", origin: "http://localhost:8080", want: http.StatusOK},
		{name: "foreign host", host: "evil.example:%s", want: http.StatusForbidden},
		{name: "foreign host without port", host: "evil.example", want: http.StatusForbidden},
		{name: "other port", host: "127.0.0.1:1", want: http.StatusForbidden},
		{name: "foreign origin", host: "127.0.0.1:%s", origin: "https://evil.example", want: http.StatusForbidden},
		{name: "null origin", host: "127.0.0.1:%s", origin: "null", want: http.StatusForbidden},
		{name: "allowed host", opts: proxy.GuardOptions{AllowedHosts: []string{"proxy.internal"}},
			host: "proxy.internal:%s", want: http.StatusOK},
		{name: "allowed host on another port", opts: proxy.GuardOptions{AllowedHosts: []string{"proxy.internal"}},
			host: "proxy.internal:1", want: http.StatusForbidden},
		{name: "listen host without AllowRemote", opts: proxy.GuardOptions{Listen: "box.lan:0"},
			host: "box.lan:%s", want: http.StatusForbidden},
		{name: "listen host with AllowRemote", opts: proxy.GuardOptions{Listen: "box.lan:0", AllowRemote: true},
			host: "box.lan:%s", want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reached atomic.Bool
			h, err := proxy.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached.Store(true)
				io.WriteString(w, "ok")
			}), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = strings.ReplaceAll(tt.host, "%s", u.Port())
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Fatalf("Host %q Origin %q: %d %s, want %d", req.Host, tt.origin, res.StatusCode, body, tt.want)
			}
			if reached.Load() != (tt.want == http.StatusOK) {
				t.Errorf("handler reached = %v, want %v", reached.Load(), tt.want == http.StatusOK)
			}
			if tt.want == http.StatusForbidden && !strings.Contains(string(body), "refused request") {
				t.Errorf("403 body %q does not say why", body)
			}
		})
	}
}

func TestGuardHandlerBadAllowedHost(t *testing.T) {
	_, err := proxy.Guard(http.NotFoundHandler(), proxy.GuardOptions{AllowedHosts: []string{"http://x/y"}})
	if err == nil || !strings.Contains(err.Error(), "http://x/y") {
		t.Errorf("Guard with a malformed allowed host: err = %v, want one naming it", err)
	}
}
