package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The tests in this file run the real binary, as a user would.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mcp-oauth-proxy-bin")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "mcp-oauth-proxy")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// noDBusEnv is the environment of a machine without any D-Bus session.
func noDBusEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") || strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "XDG_RUNTIME_DIR="+t.TempDir())
}

func runBinary(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	// Not t.Context(): it is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if ctx.Err() != nil {
		t.Fatalf("%q did not finish within 60s (err %v)\nstderr:\n%s", args, err, stderr.String())
	}
	return cliResult{stdout.String(), stderr.String(), code}
}

func TestBinaryWithoutDBus(t *testing.T) {
	env := noDBusEnv(t)
	cfg := writeConfig(t, threeServers)
	for _, args := range [][]string{
		{"check", "--config", cfg},
		{"auth", "status", "--config", cfg},
		{"auth", "status", "--json", "--config", cfg},
	} {
		start := time.Now()
		r := runBinary(t, env, args...)
		if r.code != 0 {
			t.Errorf("%q exited %d:\n%s", args, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout+r.stderr, "tokens stay in memory") {
			t.Errorf("%q does not say tokens stay in memory:\n%s%s", args, r.stdout, r.stderr)
		}
		if n := strings.Count(r.stderr, "keychain unavailable"); n > 1 {
			t.Errorf("%q warned %d times about the keychain, want once:\n%s", args, n, r.stderr)
		}
		// Generous bound: "promptly" means no keychain wait, not a benchmark.
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%q took %v without a D-Bus session", args, d)
		}
	}
	// auth clear cannot reach what the keychain holds: it fails, and says
	// so, rather than report that nothing was stored.
	for _, args := range [][]string{
		{"auth", "clear", "--identity", "https://example.com/mcp"},
		{"auth", "clear", "--all"},
	} {
		r := runBinary(t, env, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "keychain unavailable (no D-Bus session bus); nothing was cleared") {
			t.Errorf("%q: exit %d; want a failure saying nothing was cleared:\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("%q printed %q", args, r.stdout)
		}
	}
	r := runBinary(t, env, "check", "--config", cfg)
	for _, want := range []string{"hf", "local", "fs", "https://huggingface.co ", "http://127.0.0.1:9 "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runBinary(t, env, "auth", "status", "--config", cfg)
	if strings.Contains(r.stdout, " fs ") || strings.Contains(r.stdout, "stdio") {
		t.Errorf("auth status lists the stdio server:\n%s", r.stdout)
	}
}

// TestBinarySharesFastAgentKeychain needs a real Secret Service: run
// `make test`, which provides a private one.
func TestBinarySharesFastAgentKeychain(t *testing.T) {
	if os.Getenv("MCP_OAUTH_PROXY_SECRET_SERVICE") != "1" {
		t.Skip("needs a Secret Service session: run `make test`")
	}
	const identity = "https://example.com"
	secretTool := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command("secret-tool", args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		return string(out), err
	}
	// Another program (fast-agent uses python keyring; secret-tool writes
	// the same attributes) stores a login.
	if _, err := secretTool(fastAgentToken, "store", "--label=fast-agent", "service", "fast-agent-mcp", "username", "oauth:tokens:"+identity); err != nil {
		t.Fatalf("secret-tool store: %v", err)
	}
	if _, err := secretTool(`["`+identity+`"]`, "store", "--label=fast-agent", "service", "fast-agent-mcp", "username", "oauth:index"); err != nil {
		t.Fatalf("secret-tool store: %v", err)
	}
	t.Cleanup(func() {
		secretTool("", "clear", "service", "fast-agent-mcp", "username", "oauth:tokens:"+identity)
		secretTool("", "clear", "service", "fast-agent-mcp", "username", "oauth:index")
	})

	env := os.Environ()
	r := runBinary(t, env, "auth", "status", "--json")
	if r.code != 0 {
		t.Fatalf("auth status exited %d:\n%s", r.code, r.stderr)
	}
	var report statusReport
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if !report.Keychain.Available || !report.Keychain.Writable {
		t.Fatalf("keychain = %+v, want the Secret Service", report.Keychain)
	}
	found := false
	for _, id := range report.Identities {
		if id.Identity == identity && id.Token.Present && id.Token.Scope == "read" {
			found = true
		}
	}
	if !found {
		t.Fatalf("auth status --json does not show the stored token of %s:\n%s", identity, r.stdout)
	}

	r = runBinary(t, env, "auth", "clear", "--identity", "https://example.com/mcp")
	if r.code != 0 || !strings.Contains(r.stdout, "oauth:tokens:"+identity) {
		t.Fatalf("auth clear: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out, err := secretTool("", "lookup", "service", "fast-agent-mcp", "username", "oauth:tokens:"+identity); err == nil {
		t.Errorf("the token is still in the keychain: %q", out)
	}
	if out, _ := secretTool("", "lookup", "service", "fast-agent-mcp", "username", "oauth:index"); strings.Contains(out, identity) {
		t.Errorf("the index still lists %s: %s", identity, out)
	}
}

// TestBinaryLoginWithSecretService is the acceptance of `auth login`:
// a real binary, a real Secret Service (`make test`), and a user who
// follows the printed link with a plain HTTP GET.
func TestBinaryLoginWithSecretService(t *testing.T) {
	if os.Getenv("MCP_OAUTH_PROXY_SECRET_SERVICE") != "1" {
		t.Skip("needs a Secret Service session: run `make test`")
	}
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{IssueRefreshTokens: true})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	identity := oauth.Identity(rs.Endpoint)
	t.Cleanup(func() { runBinary(t, os.Environ(), "auth", "clear", "--identity", identity) })

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "auth", "login", rs.Endpoint, "--redirect-port", strconv.Itoa(freePort(t)))
	var stdout bytes.Buffer
	stderr := new(oauthtest.Buffer)
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	link, err := stderr.NextLink(ctx)
	if err != nil {
		t.Fatalf("no link: %v\n%s", err, stderr.String())
	}
	// A plain GET, following redirects, as a browser would.
	res, err := http.Get(link)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET link: %v %v", res, err)
	}
	res.Body.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("auth login: %v\n%s", err, stderr.String())
	}
	out, err := exec.Command("secret-tool", "lookup", "service", "fast-agent-mcp", "username", "oauth:tokens:"+identity).Output()
	if err != nil || !strings.Contains(string(out), `"access_token"`) {
		t.Fatalf("the keychain does not hold oauth:tokens:%s: %v %q", identity, err, out)
	}
	r := runBinary(t, os.Environ(), "auth", "status")
	if r.code != 0 || !strings.Contains(r.stdout, identity) || !strings.Contains(r.stdout, "expires in") {
		t.Errorf("auth status after login: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestBinaryHTTP2Upstream: serve speaks HTTP/2 to an https upstream that
// offers it, trusting it through the system roots (SSL_CERT_FILE), for
// every request and the event stream.
func TestBinaryHTTP2Upstream(t *testing.T) {
	var mu sync.Mutex
	protos := map[string]int{}
	mcpHandler := streamableMCP(false)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos[r.Proto]++
		mu.Unlock()
		mcpHandler.ServeHTTP(w, r)
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})
	if err := os.WriteFile(certFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf("mcp:\n  servers:\n    tls:\n      url: %s/mcp\n      auth: {oauth: false}\n", up.URL))
	port := freePort(t)
	cmd := exec.Command(binary(t), "serve", "--config", cfg, "--listen", fmt.Sprintf("tls=127.0.0.1:%d", port),
		"--persist", "memory", "--admin", "off")
	cmd.Env = append(noDBusEnv(t), "SSL_CERT_FILE="+certFile)
	stdout := new(oauthtest.Buffer)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
			// A client's idle or unused connections must not make it fail.
			if waitErr != nil {
				t.Errorf("serve on SIGINT: %v, want exit 0", waitErr)
			}
		case <-time.After(serveWait):
			cmd.Process.Kill()
			<-exited
			t.Errorf("serve did not exit on SIGINT")
		}
		if t.Failed() {
			t.Logf("serve's stderr:\n%s", stderr.String())
		}
	})
	ctx := testContext(t)
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-exited: // fail fast when serve stops
			cancel()
		case <-waitCtx.Done():
		}
	}()
	if _, err := stdout.WaitFor(waitCtx, func(s string) bool { return strings.Contains(s, localURL(port, "/mcp")) }); err != nil {
		t.Fatalf("no listener table: %v\nstdout:\n%s", err, stdout)
	}

	cs := connectMCP(t, ctx, &mcp.StreamableClientTransport{Endpoint: localURL(port, "/mcp")}, nil)
	callEcho(t, ctx, cs, "over h2")
	cs.Close()
	mu.Lock()
	defer mu.Unlock()
	// initialize, initialized, the call, the event stream and the DELETE.
	if protos["HTTP/2.0"] < 4 || len(protos) != 1 {
		t.Errorf("upstream got %v, want only HTTP/2.0", protos)
	}
}
