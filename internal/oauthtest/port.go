package oauthtest

import (
	"net"
	"testing"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/freeport"
)

// FreePort returns a TCP port free on 127.0.0.1, for a server a test
// starts later, such as a login's callback listener (see freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := freeport.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
