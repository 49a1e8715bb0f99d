//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

// canPeek is false here: h1Transport cannot tell whether an idle
// connection is still open, so net/http's Transport (whose reading
// goroutine notices) sends every request.
const canPeek = false

func (c *h1Conn) alive() bool { return false }

type peeker struct{}
