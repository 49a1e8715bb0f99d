package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fastAgentToken is what fast-agent stores: python-sdk's OAuthToken JSON.
const fastAgentToken = `{"access_token":"at-secret-123","token_type":"Bearer","expires_in":3600,"scope":"read","refresh_token":"rt-secret-456"}`

func seedFastAgentLogin(kc *fakeKeychain, identity, token string) {
	kc.Set("fast-agent-mcp", "oauth:tokens:"+identity, token)
	kc.Set("fast-agent-mcp", "oauth:client_info:"+identity, `{"client_id":"cid","redirect_uris":["http://127.0.0.1:3030/callback"]}`)
	kc.Set("fast-agent-mcp", "oauth:index", `["`+identity+`"]`)
}

func TestAuthStatusJSONShowsForeignLogin(t *testing.T) {
	kc := newFakeKeychain()
	seedFastAgentLogin(kc, "https://example.com", fastAgentToken)
	r := runCLI(t, kc, "auth", "status", "--json", "--config", writeConfig(t, threeServers))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got statusReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if len(got.Identities) != 1 {
		t.Fatalf("identities = %+v, want one", got.Identities)
	}
	id := got.Identities[0]
	if id.Identity != "https://example.com" || !id.Token.Present || !id.ClientRegistered || id.Token.Scope != "read" || !id.Token.RefreshToken {
		t.Errorf("identity status = %+v", id)
	}
	if !strings.HasPrefix(id.Token.Fingerprint, "sha256:") {
		t.Errorf("fingerprint = %q", id.Token.Fingerprint)
	}
	// The stdio server is not listed; both HTTP/SSE servers are.
	var names []string
	for _, s := range got.Servers {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"hf", "local"}, names); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
	if !got.Keychain.Available || !got.Keychain.Writable {
		t.Errorf("keychain = %+v, want available and writable", got.Keychain)
	}
	for _, secret := range []string{"at-secret-123", "rt-secret-456"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("auth status printed a token")
		}
	}
}

func TestAuthStatusTarget(t *testing.T) {
	kc := newFakeKeychain()
	expiry := time.Now().Add(2 * time.Hour).Unix()
	seedFastAgentLogin(kc, "https://huggingface.co",
		`{"access_token":"a","token_type":"Bearer","expires_in":7200,"scope":null,"refresh_token":null,"expires_at":`+itoa(expiry)+`}`)
	kc.Set("fast-agent-mcp", "oauth:index", `["https://huggingface.co","https://other.example"]`)
	cfg := writeConfig(t, threeServers)
	for _, target := range []string{"hf", "https://huggingface.co/mcp?login", "HTTPS://HuggingFace.co:443/mcp/"} {
		r := runCLI(t, kc, "auth", "status", target, "--config", cfg)
		if r.code != 0 {
			t.Fatalf("auth status %s: exit %d: %s", target, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "https://huggingface.co") || strings.Contains(r.stdout, "other.example") || strings.Contains(r.stdout, "127.0.0.1:9") {
			t.Errorf("auth status %s did not narrow to the identity:\n%s", target, r.stdout)
		}
		if !strings.Contains(r.stdout, "expires in 1h59m") && !strings.Contains(r.stdout, "expires in 2h") {
			t.Errorf("auth status %s lacks the expiry:\n%s", target, r.stdout)
		}
	}
	r := runCLI(t, kc, "auth", "status", "fs", "--config", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, "stdio") {
		t.Errorf("auth status of a stdio server: exit %d, %q", r.code, r.stderr)
	}
	r = runCLI(t, kc, "auth", "status", "nosuch", "--config", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, `no server "nosuch"`) {
		t.Errorf("auth status of an unknown server: exit %d, %q", r.code, r.stderr)
	}
}

func TestAuthDefaultsToStatus(t *testing.T) {
	kc := newFakeKeychain()
	seedFastAgentLogin(kc, "https://example.com", fastAgentToken)
	r := runCLI(t, kc, "auth", "--json", "--config", writeConfig(t, threeServers))
	if r.code != 0 || !strings.Contains(r.stdout, `"identity": "https://example.com"`) {
		t.Errorf("auth without a subcommand: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestAuthClearIdentityNormalizes(t *testing.T) {
	kc := newFakeKeychain()
	seedFastAgentLogin(kc, "https://example.com", fastAgentToken)
	r := runCLI(t, kc, "auth", "clear", "--identity", "https://example.com/mcp")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, ok := kc.entry("oauth:tokens:https://example.com"); ok {
		t.Error("token still stored")
	}
	if _, ok := kc.entry("oauth:client_info:https://example.com"); ok {
		t.Error("client registration still stored")
	}
	if idx, _ := kc.entry("oauth:index"); idx != "[]" {
		t.Errorf("index = %q, want []", idx)
	}
	if !strings.Contains(r.stdout, "oauth:tokens:https://example.com") {
		t.Errorf("clear did not say what it removed:\n%s", r.stdout)
	}
	r = runCLI(t, kc, "auth", "clear", "--identity", "https://example.com/mcp")
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing was stored for https://example.com") {
		t.Errorf("second clear: exit %d, %q", r.code, r.stdout)
	}
}

func TestAuthClearServerAndAll(t *testing.T) {
	kc := newFakeKeychain()
	seedFastAgentLogin(kc, "https://huggingface.co", fastAgentToken)
	kc.Set("fast-agent-mcp", "oauth:tokens:http://127.0.0.1:9", fastAgentToken)
	kc.Set("fast-agent-mcp", "oauth:index", `["http://127.0.0.1:9","https://huggingface.co"]`)
	cfg := writeConfig(t, threeServers)

	r := runCLI(t, kc, "auth", "clear", "hf", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, ok := kc.entry("oauth:tokens:https://huggingface.co"); ok {
		t.Error("hf token still stored")
	}
	if _, ok := kc.entry("oauth:tokens:http://127.0.0.1:9"); !ok {
		t.Error("clearing hf removed another server's token")
	}
	r = runCLI(t, kc, "auth", "clear", "--all")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, ok := kc.entry("oauth:tokens:http://127.0.0.1:9"); ok {
		t.Error("--all left a token")
	}
}

// The two tables of auth status are aligned each on its own.
func TestAuthStatusTables(t *testing.T) {
	kc := newFakeKeychain()
	seedFastAgentLogin(kc, "https://a-rather-long-identity.example.com/with/a/path", fastAgentToken)
	cfg := writeConfig(t, threeServers)
	r := runCLI(t, kc, "auth", "status", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "\nSERVER  TRANSPORT  IDENTITY ") {
		t.Errorf("the server table is padded to the identity table's widths:\n%s", r.stdout)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.TrimRight(line, " ") != line {
			t.Errorf("line %q ends in spaces", line)
		}
	}
}

// With an unreadable index, --all still clears what it can name: the
// configured servers' identities, and the index itself.
func TestAuthClearAllUnreadableIndex(t *testing.T) {
	kc := newFakeKeychain()
	seedFastAgentLogin(kc, "https://huggingface.co", fastAgentToken)
	kc.Set("fast-agent-mcp", "oauth:index", "garbage")
	cfg := writeConfig(t, threeServers)
	r := runCLI(t, kc, "auth", "clear", "--all", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, key := range []string{"oauth:tokens:https://huggingface.co", "oauth:client_info:https://huggingface.co", "oauth:index"} {
		if _, ok := kc.entry(key); ok {
			t.Errorf("%s still stored", key)
		}
		if !strings.Contains(r.stdout, key) {
			t.Errorf("clear did not say it removed %s:\n%s", key, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "index is unreadable") {
		t.Errorf("no warning about the index:\n%s", r.stderr)
	}
}

func TestAuthClearNeedsOneSelector(t *testing.T) {
	for _, args := range [][]string{
		{"auth", "clear"},
		{"auth", "clear", "hf", "--all"},
		{"auth", "clear", "--identity", "https://x.example", "--all"},
	} {
		r := runCLI(t, newFakeKeychain(), args...)
		if r.code != 2 || !strings.Contains(r.stderr, "exactly one") {
			t.Errorf("%q: exit %d, stderr %q; want usage error", args, r.code, r.stderr)
		}
	}
}

func TestAuthClearMemoryServer(t *testing.T) {
	cfg := writeConfig(t, "mcp:\n  servers:\n    m:\n      url: https://m.example/mcp\n      auth: {persist: memory}\n")
	r := runCLI(t, newFakeKeychain(), "auth", "clear", "m", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "memory") {
		t.Errorf("exit %d, %q", r.code, r.stdout)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestAuthStatusRedactsSecretQueryValues(t *testing.T) {
	cfg := writeConfig(t, secretQueryConfig)
	r := runCLI(t, newFakeKeychain(), "auth", "status", "--json", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got statusReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if len(got.Servers) != 1 || got.Servers[0].URL != secretQueryShown {
		t.Errorf("servers = %+v, want one with url %s", got.Servers, secretQueryShown)
	}
	text := runCLI(t, newFakeKeychain(), "auth", "status", "--config", cfg)
	for _, r := range []cliResult{r, text} {
		if strings.Contains(r.stdout+r.stderr, secretQueryValue) {
			t.Errorf("auth status printed the secret query value:\n%s%s", r.stdout, r.stderr)
		}
	}
}

// A token record that cannot be read is reported as such, not as absent,
// and its content is not printed.
func TestAuthStatusUnreadableToken(t *testing.T) {
	kc := newFakeKeychain()
	const corrupt = `{"access_token":"at-corrupt-secret-789","expires_at":`
	seedFastAgentLogin(kc, "https://huggingface.co", corrupt)
	cfg := writeConfig(t, threeServers)

	r := runCLI(t, kc, "auth", "status", "--json", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	type entry struct {
		Name       string
		Token      tokenState
		TokenError string `json:"token_error"`
	}
	var got struct{ Identities, Servers []entry }
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if len(got.Identities) != 1 || got.Identities[0].TokenError == "" || got.Identities[0].Token.Present {
		t.Errorf("identities = %+v, want one with a token_error", got.Identities)
	}
	hf := slices.IndexFunc(got.Servers, func(e entry) bool { return e.Name == "hf" })
	if hf < 0 || got.Servers[hf].TokenError == "" {
		t.Errorf("servers = %+v, want hf with a token_error", got.Servers)
	}

	text := runCLI(t, kc, "auth", "status", "--config", cfg)
	if text.code != 0 {
		t.Fatalf("exit %d: %s", text.code, text.stderr)
	}
	var rows []string
	for line := range strings.Lines(text.stdout) {
		if strings.HasPrefix(line, "https://huggingface.co ") || strings.HasPrefix(line, "hf ") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 2 {
		t.Fatalf("want the stored identity's row and hf's row, got %q:\n%s", rows, text.stdout)
	}
	for _, row := range rows {
		if !strings.Contains(row, "unreadable") || strings.Contains(row, "none") {
			t.Errorf("row %q does not show the token as unreadable", row)
		}
	}
	for _, r := range []cliResult{r, text} {
		if strings.Contains(r.stdout+r.stderr, "at-corrupt-secret-789") {
			t.Errorf("auth status printed the record's content:\n%s%s", r.stdout, r.stderr)
		}
	}
}

// Without a usable keychain, auth clear cannot reach what is stored there:
// it must not say that nothing was stored.
func TestAuthClearKeychainUnavailable(t *testing.T) {
	cfg := writeConfig(t, threeServers)
	for _, args := range [][]string{
		{"auth", "clear", "--identity", "https://example.com/mcp"},
		{"auth", "clear", "hf", "--config", cfg},
		{"auth", "clear", "--all"},
	} {
		r := runCLI(t, brokenKeychain(), args...)
		if r.code == 0 {
			t.Errorf("%q exited 0 with the keychain unavailable:\n%s%s", args, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "keychain unavailable (keychain is locked); nothing was cleared") {
			t.Errorf("%q: stderr lacks the reason and that nothing was cleared:\n%s", args, r.stderr)
		}
		if strings.Contains(r.stdout, "Nothing") {
			t.Errorf("%q says nothing was stored:\n%s", args, r.stdout)
		}
	}
}
