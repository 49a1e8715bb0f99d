package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
)

// serveWait is how long a serve test waits for something that should
// happen soon; generous, for a loaded machine.
const serveWait = 30 * time.Second

// serveRun is a `serve` running in process against a fake keychain.
type serveRun struct {
	t              *testing.T
	args           []string
	stdout, stderr *oauthtest.Buffer
	cancel         context.CancelFunc // what SIGINT does to the real binary
	exited         chan struct{}      // closed when serve has returned code
	code           int
}

// startServe runs `serve args…` in the background. At the end of the test
// it is cancelled and waited for, and its output is logged if the test
// failed.
func startServe(t *testing.T, kc *fakeKeychain, args ...string) *serveRun {
	t.Helper()
	r := &serveRun{
		t:      t,
		args:   append([]string{"serve"}, args...),
		stdout: new(oauthtest.Buffer),
		stderr: new(oauthtest.Buffer),
		exited: make(chan struct{}),
	}
	a := &app{stdin: strings.NewReader(""), stdout: r.stdout, stderr: r.stderr, keychainBackend: kc}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.code = a.run(ctx, r.args)
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("%q stdout:\n%s\nstderr:\n%s", r.args, r.stdout, r.stderr)
		}
	})
	return r
}

// wait waits for serve to exit by itself.
func (r *serveRun) wait() cliResult {
	r.t.Helper()
	select {
	case <-r.exited:
		return cliResult{r.stdout.String(), r.stderr.String(), r.code}
	case <-time.After(serveWait):
		r.t.Errorf("%q did not exit", r.args)
		return cliResult{r.stdout.String(), r.stderr.String(), -1}
	}
}

// stop cancels serve's context, as SIGINT does, and waits for it to exit.
func (r *serveRun) stop() cliResult {
	r.t.Helper()
	r.cancel()
	return r.wait()
}

// ready waits for the start table (a header and one row per server) and
// returns it. It fails the test if serve exits first.
func (r *serveRun) ready(servers int) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), serveWait)
	defer cancel()
	go func() {
		select {
		case <-r.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	table, err := r.stdout.WaitFor(ctx, func(s string) bool { return strings.Count(s, "\n") >= servers+1 })
	if err != nil {
		select {
		case <-r.exited:
			r.t.Fatalf("serve exited %d before listening:\n%s", r.code, r.stderr)
		default:
		}
		r.t.Fatalf("no start table: %v\nstderr:\n%s", err, r.stderr)
	}
	return table
}

// links returns every login link printed so far.
func (r *serveRun) links() []string { return oauthtest.Links(r.stderr.String()) }

// followLinks plays a user who follows every login link serve prints until
// the test ends.
func (r *serveRun) followLinks(as *oauthtest.AuthServer) {
	t := r.t
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for {
			link, err := r.stderr.NextLink(ctx)
			if err != nil {
				return
			}
			res, err := as.FollowLink(ctx, link)
			if ctx.Err() != nil {
				return
			}
			if err != nil || res.StatusCode != http.StatusOK {
				t.Errorf("following %s: %v %v", link, res, err)
				return
			}
		}
	})
}

// localURL is the listener's URL for an upstream path.
func localURL(port int, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
}

// protectedMCP starts an authorization server and, behind its tokens, a
// resource server in front of h (an MCP handler) at path.
func protectedMCP(t *testing.T, asOpts oauthtest.AuthServerOptions, rsOpts oauthtest.ResourceOptions) (*oauthtest.AuthServer, *oauthtest.ResourceServer) {
	t.Helper()
	as := oauthtest.NewAuthServer(t, asOpts)
	return as, oauthtest.NewResourceServer(t, as, rsOpts)
}

// streamableMCP is the test tools served over Streamable HTTP.
func streamableMCP(jsonResponse bool) http.Handler {
	return mcptest.StreamableHandler(mcptest.NewServer(), jsonResponse)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), serveWait)
	t.Cleanup(cancel)
	return ctx
}

// connectMCP connects a go-sdk client, which knows nothing of OAuth.
func connectMCP(t *testing.T, ctx context.Context, transport mcp.Transport, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "unaware", Version: "v1"}, opts)
	cs, err := c.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// callTool calls name and returns its text.
func callTool(t *testing.T, ctx context.Context, cs *mcp.ClientSession, name string, args any) string {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("%s: error result %+v", name, res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("%s: content %T", name, res.Content[0])
	}
	return tc.Text
}

func callEcho(t *testing.T, ctx context.Context, cs *mcp.ClientSession, text string) {
	t.Helper()
	if got := callTool(t, ctx, cs, "echo", mcptest.EchoArgs{Text: text}); got != text {
		t.Errorf("echo = %q, want %q", got, text)
	}
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// rawResponse is an answer read in full.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// postRPC POSTs a JSON-RPC message as a Streamable HTTP client does; edit
// may change the request first.
func postRPC(ctx context.Context, url, body string, edit func(*http.Request)) (rawResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return rawResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if edit != nil {
		edit(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return rawResponse{res.StatusCode, res.Header, b}, err
}

// initializeResult checks that b is the JSON answer of the mcptest server
// to initialize.
func initializeResult(b []byte) error {
	var msg struct {
		Result struct {
			ServerInfo struct{ Name string } `json:"serverInfo"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		return fmt.Errorf("answer %q: %v", b, err)
	}
	if msg.Result.ServerInfo.Name != "mcptest" {
		return fmt.Errorf("answer %q is not the upstream's initialize result", b)
	}
	return nil
}

// headerTransport adds a header to every request, as a client configured
// with its own credentials would.
type headerTransport struct {
	key, value string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.key, h.value)
	return http.DefaultTransport.RoundTrip(r)
}

// poll waits until cond holds, failing the test after serveWait.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(serveWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countRequests counts the resource server's requests that match.
func countRequests(rs *oauthtest.ResourceServer, match func(oauthtest.Request) bool) int {
	n := 0
	for _, r := range rs.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}
