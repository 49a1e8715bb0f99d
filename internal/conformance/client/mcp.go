package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// testTool is the one tool of the suite's test MCP server.
const testTool = "test-tool"

// exercise does what the suite's example auth client does, through the
// proxy and without any OAuth: initialize, tools/list, tools/call, close.
func exercise(ctx context.Context, endpoint string, log *slog.Logger) error {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-oauth-proxy-conformance", Version: "1.0.0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint}, nil)
	if err != nil {
		return fmt.Errorf("initialize via %s: %w", endpoint, err)
	}
	defer cs.Close()
	log.Info("initialized", "endpoint", endpoint, "protocol", cs.InitializeResult().ProtocolVersion)

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	if !slices.ContainsFunc(tools.Tools, func(t *mcp.Tool) bool { return t.Name == testTool }) {
		return fmt.Errorf("tools/list: no %q among %d tools", testTool, len(tools.Tools))
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: testTool, Arguments: map[string]any{}})
	if err != nil {
		return fmt.Errorf("tools/call %s: %w", testTool, err)
	}
	if res.IsError {
		return fmt.Errorf("tools/call %s: the tool reported an error", testTool)
	}
	log.Info("called tool", "name", testTool)

	if err := cs.Close(); err != nil {
		return fmt.Errorf("closing the MCP session: %w", err)
	}
	return nil
}
