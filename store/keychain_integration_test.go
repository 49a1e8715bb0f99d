package store

import (
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"
)

// The tests in this file use the real Secret Service through go-keyring.
// They run only inside a private session (scripts/with-secret-service.sh,
// which `make test` uses) and never skip once enabled: a broken keychain
// fails them.

func needSecretService(t *testing.T) {
	t.Helper()
	if os.Getenv("MCP_OAUTH_PROXY_SECRET_SERVICE") != "1" {
		t.Skip("needs a Secret Service session: run `make test`")
	}
}

// newRealKeychain returns a Keychain on the OS keychain under service and
// fails the test at cleanup if it fell back to memory or warned.
func newRealKeychain(t *testing.T, service string, maxValueSize int) *Keychain {
	logger, log := newTestLogger()
	k := &Keychain{Service: service, MaxValueSize: maxValueSize, Logger: logger}
	if st := k.Status(); st.Backend != "keychain (Secret Service)" || !st.Available || !st.Writable {
		t.Fatalf("Status = %+v, want a working Secret Service\n%s", st, log)
	}
	checkKeychainInUse(t, k, log)
	return k
}

func TestKeychainIntegrationContract(t *testing.T) {
	needSecretService(t)
	testStoreContract(t, func(t *testing.T) oauthStore {
		service := "mcp-oauth-proxy-test-" + rand.Text()
		t.Cleanup(func() {
			if err := keyring.DeleteAll(service); err != nil {
				t.Errorf("cleaning up service %s: %v", service, err)
			}
		})
		return newRealKeychain(t, service, 0)
	})
}

// TestKeychainIntegrationChunkedParts stores a chunked value in the real
// keychain and checks that every entry goes away on Delete.
func TestKeychainIntegrationChunkedParts(t *testing.T) {
	needSecretService(t)
	service := "mcp-oauth-proxy-test-" + rand.Text()
	t.Cleanup(func() { _ = keyring.DeleteAll(service) })
	k := newRealKeychain(t, service, 0) // Secret Service: no limit
	k2 := newRealKeychain(t, service, 2000)
	big := bigValue(5000)
	mustSet(t, k2, "chunked", big)
	header, err := keyring.Get(service, "chunked")
	if err != nil || !headerRE.MatchString(header) {
		t.Fatalf("entry = %q, %v; want a chunk header", header, err)
	}
	for i := range 3 {
		if _, err := keyring.Get(service, partKey("chunked", i)); err != nil {
			t.Errorf("part %d: %v", i, err)
		}
	}
	wantValue(t, k2, "chunked", big)
	wantValue(t, k, "chunked", big) // the default limit reads chunked values too
	if err := k2.Delete("chunked"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, user := range []string{"chunked", "chunked#0", "chunked#1", "chunked#2"} {
		if _, err := keyring.Get(service, user); !errors.Is(err, keyring.ErrNotFound) {
			t.Errorf("entry %q after Delete: %v, want not found", user, err)
		}
	}
}

// TestKeychainIntegrationFastAgentInterop checks that entries are shared
// with other Secret Service clients (fast-agent uses Python keyring, which
// stores the same attributes as secret-tool).
func TestKeychainIntegrationFastAgentInterop(t *testing.T) {
	needSecretService(t)
	if _, err := exec.LookPath("secret-tool"); err != nil {
		t.Fatalf("secret-tool is needed (apt-get install libsecret-tools): %v", err)
	}
	const (
		theirKey = "oauth:tokens:https://interop.example"
		ourKey   = "oauth:client_info:https://interop.example"
	)
	k := newRealKeychain(t, DefaultService, 0)
	for _, key := range []string{theirKey, ourKey} {
		if _, err := k.Get(key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s/%s exists before the test (%v); refusing to overwrite it", DefaultService, key, err)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("secret-tool", "clear", "service", DefaultService, "username", key).CombinedOutput(); err != nil {
				t.Errorf("secret-tool clear %s: %v\n%s", key, err, out)
			}
		})
	}

	// secret-tool → Keychain.
	cmd := exec.Command("secret-tool", "store", "--label=x", "service", DefaultService, "username", theirKey)
	cmd.Stdin = strings.NewReader(tokenJSON)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secret-tool store: %v\n%s", err, out)
	}
	wantValue(t, k, theirKey, []byte(tokenJSON))

	// Keychain → secret-tool, for a small and a large (unchunked) value.
	for _, value := range [][]byte{[]byte(tokenJSON), bigValue(10 << 10)} {
		mustSet(t, k, ourKey, value)
		out, err := exec.Command("secret-tool", "lookup", "service", DefaultService, "username", ourKey).Output()
		if err != nil {
			t.Fatalf("secret-tool lookup: %v", err)
		}
		if string(out) != string(value) {
			t.Errorf("secret-tool lookup = %d bytes %.60q…, want the %d-byte value verbatim", len(out), out, len(value))
		}
	}
}
