package wire

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// benchBody is a small JSON-RPC request, as MCP clients send.
const benchBody = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"query":"hello"}}}`

// cannedTransport answers every request with the same small JSON response.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	const answer = `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}]}}`
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(answer))}},
		Body:          io.NopCloser(strings.NewReader(answer)),
		ContentLength: int64(len(answer)),
		Request:       req,
	}, nil
}

// heldBody offers a request's body under BodyKey, as the proxy's contexts do.
type heldBody struct {
	context.Context
	body []byte
}

func (c *heldBody) Value(key any) any {
	if key == BodyKey {
		return c
	}
	return c.Context.Value(key)
}

func (c *heldBody) RequestBody() []byte { return c.body }

// BenchmarkTransport is what recording adds to a proxied request: "base" is
// the upstream answered in memory without recording, "recorder" adds a
// Recorder only, as serve's status page has it, "log" the traffic log.
func BenchmarkTransport(b *testing.B) {
	body := []byte(benchBody)
	for _, tt := range []struct {
		name string
		t    http.RoundTripper
	}{
		{"base", cannedTransport{}},
		{"recorder", &Transport{Base: cannedTransport{}, Server: "bench", Recorder: new(Recorder)}},
		{"log", &Transport{Base: cannedTransport{}, Server: "bench", Recorder: new(Recorder),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/mcp", nil)
			req.Header.Set("Authorization", "Bearer bench-token-0123456789abcdef")
			req.Header.Set("Content-Type", "application/json")
			req = req.WithContext(&heldBody{Context: req.Context(), body: body})
			req.ContentLength = int64(len(body))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(benchBody)), nil }
			sr := strings.NewReader(benchBody)
			req.Body = io.NopCloser(sr)
			b.ReportAllocs()
			for b.Loop() {
				sr.Reset(benchBody)
				res, err := tt.t.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			if t, ok := tt.t.(*Transport); ok {
				if got := t.Recorder.Recent(); len(got) == 0 || got[len(got)-1].RPCMethod != "tools/call" {
					b.Fatalf("recorded %+v", got)
				}
			}
		})
	}
}
