package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

// fakeKeychain is an in-memory keychain backend, keyed by service and user.
type fakeKeychain struct {
	mu   sync.Mutex
	m    map[[2]string]string
	fail bool // every call fails
}

var errKeychainBroken = errors.New("keychain is locked")

func newFakeKeychain() *fakeKeychain { return &fakeKeychain{m: map[[2]string]string{}} }

func (f *fakeKeychain) Get(service, user string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return "", errKeychainBroken
	}
	v, ok := f.m[[2]string{service, user}]
	if !ok {
		return "", store.ErrNotFound
	}
	return v, nil
}

func (f *fakeKeychain) Set(service, user, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errKeychainBroken
	}
	f.m[[2]string{service, user}] = password
	return nil
}

func (f *fakeKeychain) Delete(service, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errKeychainBroken
	}
	k := [2]string{service, user}
	if _, ok := f.m[k]; !ok {
		return store.ErrNotFound
	}
	delete(f.m, k)
	return nil
}

// entry returns the value stored under fast-agent's service.
func (f *fakeKeychain) entry(user string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[[2]string{store.DefaultService, user}]
	return v, ok
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the command in process against the fake keychain.
func runCLI(t *testing.T, kc *fakeKeychain, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	if kc != nil {
		a.keychainBackend = kc
	}
	code := a.run(context.Background(), args)
	return cliResult{stdout.String(), stderr.String(), code}
}

// writeConfig writes a config file into a fresh directory and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fastagent.config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const threeServers = `
mcp:
  servers:
    hf:
      url: https://huggingface.co/mcp?login
    local:
      transport: sse
      url: http://127.0.0.1:9/sse
    fs:
      command: npx
      args: [-y, "@modelcontextprotocol/server-filesystem", /tmp]
proxy:
  listen:
    hf: 127.0.0.1:8101
`

func TestCheckShowsEveryServer(t *testing.T) {
	cfg := writeConfig(t, threeServers)
	r := runCLI(t, newFakeKeychain(), "check", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("check exited %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"hf", "local", "fs", "stdio", "sse",
		"https://huggingface.co/mcp?login", "https://huggingface.co ", "http://127.0.0.1:9 ",
		"127.0.0.1:8101", "none",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestCheckInvalidConfig(t *testing.T) {
	cfg := writeConfig(t, `
mcp:
  servers:
    bad:
      url: ftp://example.com/mcp
      auth:
        redirect_port: 70000
        redirect_path: callback
`)
	r := runCLI(t, newFakeKeychain(), "check", "--config", cfg)
	if r.code == 0 {
		t.Fatalf("check exited 0 on an invalid config:\n%s", r.stdout)
	}
	for _, want := range []string{"fastagent.config.yaml", "mcp.servers.bad.url", "redirect_port", "redirect_path"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error output lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestCheckMissingConfig(t *testing.T) {
	r := runCLI(t, newFakeKeychain(), "check", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
	if r.code == 0 || !strings.Contains(r.stderr, "nope.yaml") {
		t.Errorf("check on a missing file: exit %d, stderr %q; want an error naming the file", r.code, r.stderr)
	}
}

func TestCheckHonoursSecretsAndVariables(t *testing.T) {
	cfg := writeConfig(t, `
mcp:
  servers:
    api:
      url: ${API_URL:https://api.example.com/v1/mcp}
`)
	secrets := filepath.Join(filepath.Dir(cfg), "fastagent.secrets.yaml")
	if err := os.WriteFile(secrets, []byte("mcp:\n  servers:\n    api:\n      auth:\n        persist: memory\n        client_id: cid\n        client_secret: s3cr3t-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, newFakeKeychain(), "check", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "https://api.example.com/v1 ") || !strings.Contains(r.stdout, "memory") {
		t.Errorf("check ignored the variable default or the secrets file:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, "s3cr3t-value") {
		t.Errorf("check printed the client secret:\n%s%s", r.stdout, r.stderr)
	}
}

// secretQuery is a server whose URL carries a secret in its query.
const (
	secretQueryValue  = "SECRET-QUERY-VALUE-123"
	secretQueryConfig = `
mcp:
  servers:
    api:
      url: http://127.0.0.1:9/mcp?api_key=` + secretQueryValue + `&tenant=a
`
)

// secretQueryShown is the URL of secretQueryConfig as it may be shown.
var secretQueryShown = "http://127.0.0.1:9/mcp?api_key=" + redact.Fingerprint(secretQueryValue) + "&tenant=a"

func TestCheckRedactsSecretQueryValues(t *testing.T) {
	r := runCLI(t, newFakeKeychain(), "check", "--config", writeConfig(t, secretQueryConfig))
	if r.code != 0 {
		t.Fatalf("check exited %d; stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, secretQueryValue) {
		t.Errorf("check printed the secret query value:\n%s%s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, secretQueryShown) {
		t.Errorf("check output lacks the URL with its secret fingerprinted, %s:\n%s", secretQueryShown, r.stdout)
	}
}

// Every usage error exits with 2 and says what was wrong; help exits 0.
func TestUsageErrorsExitTwo(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"serve", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"check", "extra"}, `unknown command "extra"`},
		{[]string{"auth", "login"}, "accepts 1 arg(s), received 0"},
		{[]string{"auth", "status", "a", "b"}, "accepts at most 1 arg(s), received 2"},
		{[]string{"auth", "clear"}, "exactly one"},
		{[]string{"serve", "--url", "http://127.0.0.1:9/mcp", "--config", "fastagent.config.yaml"}, "--url and --config"},
		{[]string{"serve", "--url", "http://127.0.0.1:9/mcp", "--admin", "off", "--har-max-mib", "-1"}, "--har-max-mib -1: want 0 (no limit) to 1048576"},
		{[]string{"serve", "--url", "http://127.0.0.1:9/mcp", "--admin", "off", "--har-max-mib", "8796093022208"}, "--har-max-mib 8796093022208: want 0 (no limit) to 1048576"},
	} {
		r := runCLI(t, newFakeKeychain(), tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
	for _, args := range [][]string{{}, {"--help"}, {"serve", "--help"}} {
		if r := runCLI(t, newFakeKeychain(), args...); r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%q: exit %d, stdout %q; want the help and 0", args, r.code, r.stdout)
		}
	}
}
