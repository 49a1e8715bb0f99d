//go:build (dragonfly && cgo) || (freebsd && cgo) || linux || netbsd || openbsd

package store

import (
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
	ss "github.com/zalando/go-keyring/secret_service"
)

var _ Backend = secretService{}

// pythonKeyring runs Python keyring's Secret Service backend, the one
// fast-agent uses, on service and user: op is "set" (value from stdin),
// "get" (prints the value, or nothing) or "delete". Debian's
// python3-keyring installs it for /usr/bin/python3, which
// MCP_OAUTH_PROXY_PYTHON overrides.
func pythonKeyring(t *testing.T, op, service, user, value string) string {
	t.Helper()
	python := os.Getenv("MCP_OAUTH_PROXY_PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
	}
	const script = `
import sys
from keyring.backends import SecretService
kr = SecretService.Keyring()
op, service, user = sys.argv[1:4]
if op == "set":
    kr.set_password(service, user, sys.stdin.read())
elif op == "get":
    v = kr.get_password(service, user)
    sys.stdout.write("" if v is None else v)
else:
    kr.delete_password(service, user)
`
	cmd := exec.Command(python, "-c", script, op, service, user)
	cmd.Stdin = strings.NewReader(value)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Python keyring %s %s: %v\n%s(needs python3-keyring: make test installs it)", op, user, err, stderr.String())
	}
	return string(out)
}

// itemCount returns how many Secret Service items hold service and user.
func itemCount(t *testing.T, service, user string) int {
	t.Helper()
	svc, err := ss.NewSecretService()
	if err != nil {
		t.Fatal(err)
	}
	items, err := svc.SearchItems(svc.GetLoginCollection(), itemQuery(service, user))
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

// TestKeychainIntegrationPythonKeyring runs the Keychain and Python keyring
// (fast-agent's) on the same key in a real Secret Service: each reads what
// the other wrote last, a write leaves one item, including over the two
// items that go-keyring's layout used to leave, and a deletion leaves none.
func TestKeychainIntegrationPythonKeyring(t *testing.T) {
	needSecretService(t)
	service := "mcp-oauth-proxy-test-" + rand.Text()
	t.Cleanup(func() { _ = keyring.DeleteAll(service) })
	const key = "oauth:tokens:https://interop.example"
	k := newRealKeychain(t, service, 0)

	pythonKeyring(t, "set", service, key, "py-1")
	wantValue(t, k, key, []byte("py-1"))
	mustSet(t, k, key, []byte("go-1"))
	if got := pythonKeyring(t, "get", service, key, ""); got != "go-1" {
		t.Errorf("Python keyring read %q, want go-1", got)
	}
	pythonKeyring(t, "set", service, key, "py-2")
	if n := itemCount(t, service, key); n != 1 {
		t.Errorf("%d items after both programs wrote, want 1", n)
	}
	wantValue(t, k, key, []byte("py-2"))

	// Two items, as go-keyring's layout left them: its own item (which
	// replaced Python keyring's) and a newer one Python keyring added.
	twoItems := func(newer string) {
		t.Helper()
		if err := keyring.Set(service, key, "legacy"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // the items' times are in seconds
		pythonKeyring(t, "set", service, key, newer)
		if n := itemCount(t, service, key); n != 2 {
			t.Fatalf("%d items, want the 2 of go-keyring's layout", n)
		}
	}
	twoItems("py-3")
	wantValue(t, k, key, []byte("py-3")) // the newer one
	mustSet(t, k, key, []byte("go-2"))
	if n := itemCount(t, service, key); n != 1 {
		t.Errorf("%d items after a write over two, want 1", n)
	}
	if got := pythonKeyring(t, "get", service, key, ""); got != "go-2" {
		t.Errorf("Python keyring read %q, want go-2", got)
	}

	twoItems("py-4")
	if err := k.Delete(key); err != nil {
		t.Fatal(err)
	}
	if n := itemCount(t, service, key); n != 0 {
		t.Errorf("%d items after Delete, want 0", n)
	}
	if got := pythonKeyring(t, "get", service, key, ""); got != "" {
		t.Errorf("Python keyring read %q after Delete, want nothing", got)
	}
	if _, err := k.Get(key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}

// TestSecretServiceVanishingItems: items another process deletes between
// this one's search and its read or delete are "not found", never a
// failure that would make the Keychain give up the keychain.
func TestSecretServiceVanishingItems(t *testing.T) {
	needSecretService(t)
	service := "mcp-oauth-proxy-test-" + rand.Text()
	t.Cleanup(func() { _ = keyring.DeleteAll(service) })
	var ss secretService
	for round := range 30 {
		if err := ss.Set(service, "k", "v"); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 3)
		for _, op := range []func() error{
			func() error { return ss.Delete(service, "k") },
			func() error { return ss.Delete(service, "k") },
			func() error { _, err := ss.Get(service, "k"); return err },
		} {
			go func() { errs <- op() }()
		}
		for range 3 {
			if err := <-errs; err != nil && !errors.Is(err, keyring.ErrNotFound) {
				t.Fatalf("round %d: %v, want nil or not found", round, err)
			}
		}
	}
}
