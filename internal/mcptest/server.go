package mcptest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// EchoArgs are the arguments of the "echo" tool.
type EchoArgs struct {
	Text string `json:"text"`
}

// BigArgs are the arguments of the "big" tool.
type BigArgs struct {
	Size int `json:"size"`
}

// NewServer returns a go-sdk MCP server with these tools:
//   - echo {text}: returns text;
//   - big {size}: returns a text of size bytes ("x" repeated);
//   - admin {}: returns "admin ok" (give it a scope in Bearer.ToolScopes).
func NewServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcptest", Version: "v0.0.1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "returns its text"},
		func(_ context.Context, _ *mcp.CallToolRequest, in EchoArgs) (*mcp.CallToolResult, any, error) {
			return textResult(in.Text), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "big", Description: "returns size bytes"},
		func(_ context.Context, _ *mcp.CallToolRequest, in BigArgs) (*mcp.CallToolResult, any, error) {
			return textResult(strings.Repeat("x", in.Size)), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "admin", Description: "needs a scope"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return textResult("admin ok"), nil, nil
		})
	return s
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// StreamableHandler serves s over Streamable HTTP; jsonResponse makes POSTs
// answer application/json instead of text/event-stream.
func StreamableHandler(s *mcp.Server, jsonResponse bool) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{JSONResponse: jsonResponse})
}

// SSEHandler serves s over the legacy HTTP+SSE transport; its endpoint
// event is a relative URI ("/path?sessionid=…").
func SSEHandler(s *mcp.Server) http.Handler {
	return mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s }, nil)
}

// StartAt serves h on addr (host:port; "" for 127.0.0.1 on a free port),
// so a test can stop an upstream and start another on the same address. The
// server is closed at the end of the test.
func StartAt(t testing.TB, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("mcptest: listen on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
