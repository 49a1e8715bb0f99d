package proxy

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
)

// protoRecorder notes the protocol of every request that reaches next.
type protoRecorder struct {
	next http.Handler

	mu     sync.Mutex
	protos map[string]int // "HTTP/2.0" → requests
}

func (p *protoRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.protos[r.Proto]++
	p.mu.Unlock()
	p.next.ServeHTTP(w, r)
}

func (p *protoRecorder) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := make(map[string]int, len(p.protos))
	for k, v := range p.protos {
		c[k] = v
	}
	return c
}

// TestDefaultTransportProtocols runs a go-sdk client through the proxy,
// with the default upstream transport, to a go-sdk server: an https
// upstream that offers HTTP/2 gets every request over HTTP/2, event
// streams included, and a plain-http one gets HTTP/1.1 from the proxy's
// own transport. Only the test CA is added to the transport.
func TestDefaultTransportProtocols(t *testing.T) {
	for _, tls := range []bool{true, false} {
		name := "http"
		if tls {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			auth := &mcptest.Authorizer{}
			rec := &protoRecorder{
				next:   &mcptest.Bearer{Next: mcptest.StreamableHandler(mcptest.NewServer(), false), Verify: auth.Verify},
				protos: map[string]int{},
			}
			up := httptest.NewUnstartedServer(rec)
			tr := newTransport().(*h1Transport)
			if tls {
				up.EnableHTTP2 = true
				up.StartTLS()
				tr.fallback.TLSClientConfig = upstreamTLS(up)
			} else {
				up.Start()
			}
			defer up.Close()
			defer tr.CloseIdleConnections()

			h, err := NewHandler(Server{Name: "t", Upstream: up.URL + "/mcp", Auth: auth}, Options{Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			local := httptest.NewServer(h)
			defer local.Close()

			client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "v1"}, nil)
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: local.URL + "/mcp"}, nil)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			// Closed before the counts, and on every failure path: an open
			// event stream would hold local.Close.
			closeSession := sync.OnceValue(cs.Close)
			defer closeSession()
			for _, text := range []string{"one", "two"} {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: mcptest.EchoArgs{Text: text}})
				if err != nil {
					t.Fatalf("echo %q: %v", text, err)
				}
				if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != text {
					t.Errorf("echo %q = %v", text, res.Content)
				}
			}
			closeSession()

			got := rec.counts()
			want, other := "HTTP/1.1", "HTTP/2.0"
			if tls {
				want, other = other, want
			}
			// The login's 401, initialize, initialized, two calls, the
			// event stream's GET and the session's DELETE.
			if got[want] < 6 || got[other] != 0 {
				t.Errorf("upstream got %v, want only %s, at least 6", got, want)
			}
			// Which transport sent them: the proxy's own keeps its idle
			// connections, net/http's Transport its own.
			if idle := idleConns(tr); tls && idle != 0 || !tls && idle == 0 {
				t.Errorf("the proxy's own transport holds %d idle connections after the session", idle)
			}
		})
	}
}

// idleConns counts the idle connections t's own HTTP/1.1 pool holds.
func idleConns(t *h1Transport) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, conns := range t.idle {
		n += len(conns)
	}
	return n
}

// upstreamTLS trusts srv's certificate, as a system root would.
func upstreamTLS(srv *httptest.Server) *tls.Config {
	return &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
}
