package wire_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

// The proxy hands each server's upstream transport to WrapTransport and
// marks replays, so the wire log names the server and tells the refused
// request from its replay.
func TestProxyReplayIsRecorded(t *testing.T) {
	auth := &mcptest.Authorizer{}
	stale := auth.SetToken()
	auth.Revoke()
	upstream := &mcptest.Bearer{
		Verify: auth.Verify,
		Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
		}),
	}
	up := httptest.NewServer(upstream)
	defer up.Close()

	var rec wire.Recorder
	var wrapped []string
	h, err := proxy.NewHandler(proxy.Server{Name: "hf", Upstream: up.URL + "/mcp", Auth: auth}, proxy.Options{
		WrapTransport: func(server string, rt http.RoundTripper) http.RoundTripper {
			wrapped = append(wrapped, server)
			return &wire.Transport{Base: rt, Server: server, Recorder: &rec}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	local := httptest.NewServer(h)
	defer local.Close()

	res, err := http.Post(local.URL+"/mcp", "application/json",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if len(wrapped) != 1 || wrapped[0] != "hf" {
		t.Errorf("WrapTransport called for %q, want once for hf", wrapped)
	}
	fresh, _ := auth.Token(t.Context())
	got := rec.Recent()
	if len(got) != 2 {
		t.Fatalf("recorded %d exchanges, want the refused one and its replay: %+v", len(got), got)
	}
	first, replay := got[0], got[1]
	if first.Status != http.StatusUnauthorized || first.Replay || first.TokenFingerprint != redact.Fingerprint(stale) {
		t.Errorf("first exchange %+v", first)
	}
	if replay.Status != http.StatusOK || !replay.Replay || replay.TokenFingerprint != redact.Fingerprint(fresh) {
		t.Errorf("replay %+v", replay)
	}
	for _, x := range got {
		if x.Server != "hf" || x.Kind != wire.KindMCP || x.RPCMethod != "tools/list" || x.RPCID != "1" {
			t.Errorf("exchange %+v", x)
		}
	}
}
