package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

const (
	hardClientSecret = "hard-client-SECRET-5f1e0c"
	hardClientOwn    = "hard-own-bearer-SECRET-9a7d" // what a client sends itself
)

// hardFollow plays a user who follows every link printed on out until the
// test ends.
func hardFollow(t *testing.T, out *oauthtest.Buffer, as *oauthtest.AuthServer) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for {
			link, err := out.NextLink(ctx)
			if err != nil {
				return
			}
			if res, err := as.FollowLink(ctx, link); ctx.Err() == nil && (err != nil || res.StatusCode != http.StatusOK) {
				t.Errorf("following %s: %v %v", link, res, err)
				return
			}
		}
	})
}

// hardRedirectingEcho answers JSON-RPC requests as oauthtest's echo does,
// except "hard/redirect", which it redirects with 307 to to.
func hardRedirectingEcho(to string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		json.Unmarshal(body, &msg)
		if msg.Method == "hard/redirect" {
			http.Redirect(w, r, to, http.StatusTemporaryRedirect)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"method":%q,"params":%s}}`, msg.ID, msg.Method, msg.Params)
	})
}

// hardSecrets returns every secret of the session: the client secret, the
// client's own bearer, and every code, verifier, access and refresh token
// that went over the wire or into the keychain.
func hardSecrets(t *testing.T, as *oauthtest.AuthServer, rs *oauthtest.ResourceServer, kc *fakeKeychain) []string {
	t.Helper()
	secrets := []string{hardClientSecret, hardClientOwn}
	for _, r := range as.Requests() {
		for _, k := range []string{"code", "code_verifier", "refresh_token", "client_secret"} {
			if v := r.Form.Get(k); v != "" {
				secrets = append(secrets, v)
			}
		}
	}
	for _, r := range rs.Requests() {
		if tok := r.BearerToken(); tok != "" {
			secrets = append(secrets, tok)
		}
	}
	raw, ok := kc.entry(oauth.TokensKey(oauth.Identity(rs.Endpoint)))
	var tok oauth.Token
	if !ok || json.Unmarshal([]byte(raw), &tok) != nil {
		t.Fatalf("no token stored: %q", raw)
	}
	return append(secrets, tok.AccessToken, tok.RefreshToken)
}

// A whole session — check, auth status (text and JSON), serve with a
// login, a refresh, a client that sends its own Authorization and a
// redirect to another origin, then auth login — at default and debug
// verbosity, in text and JSON logs: no access token, refresh token, code,
// verifier or client secret appears in any output, and the token never
// leaves for the other origin.
func TestHardeningNoSecretInAnyOutput(t *testing.T) {
	for _, flags := range [][]string{
		nil,
		{"-v"},
		{"--log-format", "json"},
		{"-v", "--log-format", "json"},
	} {
		t.Run(strings.Join(append([]string{"flags"}, flags...), " "), func(t *testing.T) {
			var elsewhere []string // Authorization headers the other origin got
			var mu sync.Mutex
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				elsewhere = append(elsewhere, r.Header.Get("Authorization"))
				mu.Unlock()
				io.WriteString(w, `{"jsonrpc":"2.0","id":9,"result":{}}`)
			}))
			t.Cleanup(other.Close)
			as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{
				NoDCR:                    true,
				PreRegistered:            map[string]string{"hard-conf": hardClientSecret},
				TokenEndpointAuthMethods: []string{"client_secret_basic"},
				IssueRefreshTokens:       true,
				RotateRefreshTokens:      true,
			})
			rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{Handler: hardRedirectingEcho(other.URL + "/steal")})
			listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
			cfg := writeConfig(t, `
mcp:
  servers:
    crm:
      url: `+rs.Endpoint+`?tenant=a
      auth:
        client_id: hard-conf
        redirect_port: `+strconv.Itoa(freePort(t))+`
proxy:
  listen:
    crm: `+listen+`
`)
			secretsFile := filepath.Join(filepath.Dir(cfg), "fastagent.secrets.yaml")
			if err := os.WriteFile(secretsFile, []byte("mcp: {servers: {crm: {auth: {client_secret: "+hardClientSecret+"}}}}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			kc := newFakeKeychain()
			var outputs []string
			cli := func(args ...string) cliResult {
				t.Helper()
				r := runCLI(t, kc, append(append(args, "--config", cfg), flags...)...)
				if r.code != 0 {
					t.Fatalf("%q exited %d:\n%s", args, r.code, r.stderr)
				}
				outputs = append(outputs, fmt.Sprintf("%q stdout:\n%s\nstderr:\n%s", args, r.stdout, r.stderr))
				return r
			}
			cli("check")
			cli("auth", "status", "--json")

			s := hardStartServe(t, kc, listen, "/mcp?tenant=a", append([]string{"--config", cfg}, flags...)...)
			hardFollow(t, s.stderr, as)
			ctx := hardContext(t)
			client := hardClient(t)
			own := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+hardClientOwn) }
			if err := hardCheckEcho(1, hardPost(ctx, client, s.url, hardCall(1), own)); err != nil {
				t.Fatal(err)
			}
			as.ExpireAccessTokens() // the next request refreshes
			if err := hardCheckEcho(2, hardPost(ctx, client, s.url, hardCall(2), own)); err != nil {
				t.Fatal(err)
			}
			if n := len(hardGrants(as, "refresh_token")); n != 1 {
				t.Errorf("%d refreshes, want 1", n)
			}
			redirect := `{"jsonrpc":"2.0","id":9,"method":"hard/redirect","params":{}}`
			a := hardPost(ctx, &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, s.url, redirect, nil)
			if a.status != http.StatusTemporaryRedirect || a.header.Get("Location") != other.URL+"/steal" {
				t.Errorf("redirect to another origin: %d %q; want the 307 passed on", a.status, a.header.Get("Location"))
			}
			// A client that follows it goes there itself, without the token.
			if a := hardPost(ctx, http.DefaultClient, s.url, redirect, nil); a.status != http.StatusOK {
				t.Errorf("following the redirect: %d %v", a.status, a.err)
			}
			r := s.stop()
			outputs = append(outputs, fmt.Sprintf("serve stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr))
			mu.Lock()
			if len(elsewhere) != 1 || elsewhere[0] != "" {
				t.Errorf("the other origin got Authorization %q; want one request without", elsewhere)
			}
			mu.Unlock()

			cli("check")
			cli("auth", "status")
			cli("auth", "status", "crm")
			status := cli("auth", "status", "--json")
			var served oauth.Token
			if raw, _ := kc.entry(oauth.TokensKey(oauth.Identity(rs.Endpoint))); json.Unmarshal([]byte(raw), &served) != nil {
				t.Fatalf("no token stored after serve: %q", raw)
			}
			stderr, wait := startCLI(t, kc, append([]string{"auth", "login", "crm", "--config", cfg}, flags...)...)
			hardFollow(t, stderr, as)
			login := wait()
			if login.code != 0 {
				t.Fatalf("auth login exited %d:\n%s", login.code, login.stderr)
			}
			outputs = append(outputs, "auth login stdout:\n"+login.stdout+"\nstderr:\n"+login.stderr)

			secrets := hardSecrets(t, as, rs, kc)
			if len(secrets) < 10 {
				t.Fatalf("only %d secrets collected; the session did not run", len(secrets))
			}
			t.Logf("checked %d outputs (%d bytes) for %d secrets", len(outputs), len(strings.Join(outputs, "")), len(secrets))
			for _, out := range outputs {
				for _, secret := range secrets {
					if strings.Contains(out, secret) {
						t.Errorf("output shows secret %.6s…:\n%s", secret, out)
					}
				}
			}
			// auth status shows the token by its fingerprint instead.
			var report statusReport
			if err := json.Unmarshal([]byte(status.stdout), &report); err != nil || len(report.Identities) != 1 ||
				report.Identities[0].Token.Fingerprint != redact.Fingerprint(served.AccessToken) {
				t.Errorf("auth status --json: %v\n%s", err, status.stdout)
			}
			for _, r := range rs.Requests() {
				if tok := r.BearerToken(); tok == hardClientOwn {
					t.Error("the client's own Authorization reached the upstream")
				}
			}
		})
	}
}

// An authorization server's error text reaches the terminal in auth
// login's error; its control characters (an OSC 52 sequence writes the
// clipboard in many terminals) are shown as "?", not sent.
func TestHardeningNoTerminalEscapesFromServers(t *testing.T) {
	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{})
	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{})
	as.FailNext(oauthtest.EndpointToken, http.StatusBadRequest,
		`{"error":"invalid_grant","error_description":"\u001b]52;c;ZWNobyBwd25lZA==\u0007"}`)
	stderr, wait := startCLI(t, newFakeKeychain(), "auth", "login", rs.Endpoint, "--redirect-port", strconv.Itoa(freePort(t)))
	link, err := stderr.NextLink(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.FollowLink(t.Context(), link); err != nil {
		t.Fatal(err)
	}
	r := wait()
	if r.code == 0 || !strings.Contains(r.stderr, "invalid_grant") {
		t.Fatalf("auth login: exit %d\n%s", r.code, r.stderr)
	}
	if strings.ContainsAny(r.stderr, "\x1b\x07") {
		t.Errorf("the server's control characters reached the terminal: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, "?]52;c;ZWNobyBwd25lZA==?") {
		t.Errorf("the server's text is not shown with the controls replaced: %q", r.stderr)
	}
}
