package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"
	"strings"
	"testing"
)

// The benchmarks of the request path, without the network unless named so:
// run them with -benchmem (BENCHMARKS.md has the numbers and bench/ the
// end-to-end harness).

// benchBody is a small JSON-RPC request, as MCP clients send.
const benchBody = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"query":"hello"}}}`

// staticAuth always has the same token.
type staticAuth string

func (a staticAuth) Token(context.Context) (string, error) { return string(a), nil }

func (staticAuth) Challenge(context.Context, *http.Response, string) (bool, error) {
	return false, nil
}

// cannedTransport answers every request with the same small JSON response.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	const answer = `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}]}}`
	return &http.Response{
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(answer))}},
		Body:          io.NopCloser(strings.NewReader(answer)),
		ContentLength: int64(len(answer)),
		Request:       req,
	}, nil
}

// clientRequest is a POST as an MCP client sends it to the listener.
func clientRequest(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7001/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Mcp-Session-Id", "0123456789abcdef")
	r.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	r.Header.Set("Authorization", "Bearer client-must-not-leak")
	r.Header.Set("User-Agent", "bench-client/1.0")
	return r
}

func benchHandler(b *testing.B, rt http.RoundTripper) *handler {
	b.Helper()
	h, err := newHandler(Server{
		Name:     "bench",
		Upstream: "http://127.0.0.1:9/mcp",
		Headers:  map[string]string{"X-Api-Key": "configured"},
		Auth:     staticAuth("token"),
	}, Options{Transport: rt}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct {
	hdr    http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.hdr }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Flush()                      {}

// BenchmarkRewrite is the header rewrite of an outgoing request, with the
// copy of the request that ReverseProxy makes before it.
func BenchmarkRewrite(b *testing.B) {
	h := benchHandler(b, cannedTransport{})
	in := clientRequest("")
	in.Header.Set("Origin", "http://localhost:3000")
	ctx := context.WithValue(in.Context(), reqInfoKey{}, &reqInfo{host: "127.0.0.1:7001"})
	in = in.WithContext(ctx)
	b.ReportAllocs()
	for b.Loop() {
		out := in.Clone(ctx)
		h.rewrite(&httputil.ProxyRequest{In: in, Out: out})
		if out.Header["Authorization"] != nil || out.Header.Get("X-Api-Key") != "configured" {
			b.Fatalf("rewritten headers: %v", out.Header)
		}
	}
}

// BenchmarkAuthTransport is the token lookup and injection of one request
// that the upstream accepts.
func BenchmarkAuthTransport(b *testing.B) {
	t := &authTransport{base: cannedTransport{}, auth: staticAuth("token"), upstream: "bench"}
	req := clientRequest("")
	b.ReportAllocs()
	for b.Loop() {
		res, err := t.RoundTrip(req)
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatal(res, err)
		}
		if got := res.Request.Header.Get("Authorization"); got != "Bearer token" {
			b.Fatalf("Authorization = %q", got)
		}
	}
}

// BenchmarkBuffer is the buffering of request bodies for replay: a small
// JSON-RPC request, and a large one that reaches the buffer's limit.
func BenchmarkBuffer(b *testing.B) {
	h := benchHandler(b, cannedTransport{})
	for _, size := range []int{len(benchBody), 1 << 20} {
		body := bytes.Repeat([]byte("x"), size)
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			r := clientRequest("")
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(size)
				info := &reqInfo{}
				if err := h.buffer(r, info); err != nil || len(info.body) != size {
					b.Fatal(err, len(info.body))
				}
			}
		})
	}
}

// BenchmarkHandler is a whole request through the listener's handler (guard,
// buffering, ReverseProxy, token) to an upstream answered in memory: what
// the proxy adds per request besides HTTP parsing and the network.
func BenchmarkHandler(b *testing.B) {
	h := benchHandler(b, cannedTransport{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{hdr: http.Header{}}
		r := clientRequest("")
		body := []byte(benchBody)
		for pb.Next() {
			clear(w.hdr)
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			h.ServeHTTP(w, r)
			if w.status != http.StatusOK {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
}

// BenchmarkUpstreamTransport is one small POST round trip over loopback
// through h1Transport and through net/http's Transport, with connections
// kept alive.
func BenchmarkUpstreamTransport(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":7,"result":{}}`)
	}))
	b.Cleanup(up.Close)
	h1 := newTransport().(*h1Transport)
	b.Cleanup(h1.CloseIdleConnections)
	for _, tt := range []struct {
		name string
		rt   http.RoundTripper
	}{{"h1", h1}, {"net-http", h1.fallback}} {
		b.Run(tt.name, func(b *testing.B) {
			body := []byte(benchBody)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, up.URL+"/mcp", bytes.NewReader(body))
					res, err := tt.rt.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		})
	}
}
