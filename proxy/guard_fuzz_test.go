package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// fzLoopbackName reports whether host (lower case, no brackets) is a
// loopback name: localhost or an IP in 127.0.0.0/8 or ::1.
func fzLoopbackName(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// FuzzGuard sends arbitrary Host and Origin headers to a listener on
// 127.0.0.1:7001. A request gets through only when Host names this
// listener (a loopback name, or the allowed box.local, on port 7001) and
// the Origin, if any, is an http(s) page on a loopback host.
func FuzzGuard(f *testing.F) {
	for _, s := range []struct{ host, origin string }{
		{"127.0.0.1:7001", ""},
		{"localhost:7001", "http://localhost:6274"},
		{"[::1]:7001", "https://[::1]"},
		{"box.local:7001", ""},
		{"evil.example:7001", ""},
		{"127.0.0.1:7001", "https://evil.example"},
		{"127.0.0.1:7001", "null"},
		{"localhost", ""},
		{"LOCALHOST:7001", "HTTP://LOCALHOST:1"},
		{"127.0.0.1:7001", "http://localhost.evil.example"},
		{"127.0.0.1:7001", "http://127.0.0.1:7001/path"},
	} {
		f.Add(s.host, s.origin)
	}
	g, err := newGuard(Server{}, Options{AllowedHosts: []string{"box.local"}})
	if err != nil {
		f.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7001}
	f.Fuzz(func(t *testing.T, host, origin string) {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
		r.Host = host
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if g.check(r) != nil {
			return
		}
		name, port, err := net.SplitHostPort(strings.ToLower(host))
		if err != nil || port != "7001" || !fzLoopbackName(name) && name != "box.local" {
			t.Fatalf("let through Host %q", host)
		}
		if origin == "" {
			return
		}
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !fzLoopbackName(strings.ToLower(u.Hostname())) {
			t.Fatalf("let through Origin %q", origin)
		}
	})
}

// TestGuardFollowsLocalAddress checks that the guard judges each request by
// its own connection's local address, which differs between connections of
// a listener on all addresses.
func TestGuardFollowsLocalAddress(t *testing.T) {
	g, err := newGuard(Server{Listen: "0.0.0.0:7001"}, Options{AllowRemote: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		local net.Addr
		host  string
		ok    bool
	}{
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 7001}, "10.0.0.1:7001", true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 7001}, "10.0.0.1:7001", false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 7001}, "10.0.0.2:7001", true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 7002}, "10.0.0.2:7001", false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 7001, Zone: "eth0"}, "10.0.0.2:7001", false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 7001}, "10.0.0.2:7001", true},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, "10.0.0.2:7001", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tt.local))
		r.Host = tt.host
		if err := g.check(r); (err == nil) != tt.ok {
			t.Errorf("local %v, Host %q: check = %v, want allowed %v", tt.local, tt.host, err, tt.ok)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":        true,
		"127.0.0.1":        true,
		"127.255.0.9":      true,
		"::1":              true,
		"::ffff:127.0.0.1": true, // as net.IP sees it
		"::1%lo":           false,
		"fe80::1%lo":       false,
		"0127.0.0.1":       false,
		"128.0.0.1":        false,
		"::2":              false,
		"localhost.":       false,
		"":                 false,
	} {
		if got := isLoopbackHost(host); got != want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", host, got, want)
		}
		if ip := net.ParseIP(host); host != "localhost" && want != (ip != nil && ip.IsLoopback()) {
			t.Errorf("isLoopbackHost(%q) differs from net.IP", host)
		}
	}
}
