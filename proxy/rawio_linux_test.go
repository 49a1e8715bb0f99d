//go:build linux && !race && !386

package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRawIOInUse checks that both ends of the hot path read and write with
// raw system calls: the listener loop's client connections and the
// upstream transport's connections.
func TestRawIOInUse(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "up")
	}))
	defer up.Close()
	tr := newTestH1(t)
	if code, body := roundTrip(t, tr, "POST", up.URL, "{}"); code != 200 || body != "up" {
		t.Fatalf("upstream answered %d %q", code, body)
	}
	tr.mu.Lock()
	var upstream []string
	for _, conns := range tr.idle {
		for _, c := range conns {
			upstream = append(upstream, fmt.Sprintf("%T", c.nc))
		}
	}
	tr.mu.Unlock()
	if fmt.Sprint(upstream) != "[*proxy.rawIOConn]" {
		t.Errorf("the transport's idle connections are %v, want one *proxy.rawIOConn", upstream)
	}

	s, addr := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), nil)
	c := dialRaw(t, addr)
	c.send(postReq("/mcp", "{}"))
	if res, _ := c.response(); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	s.mu.Lock()
	var clients []string
	for hc := range s.conns {
		clients = append(clients, fmt.Sprintf("%T", hc.rwc))
	}
	s.mu.Unlock()
	if fmt.Sprint(clients) != "[*proxy.rawIOConn]" {
		t.Errorf("the listener's connections are %v, want one *proxy.rawIOConn", clients)
	}
}
