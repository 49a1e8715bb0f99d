// Package freeport finds TCP ports on 127.0.0.1 for servers that tests
// start later. It picks them below the ports the kernel hands out to
// outgoing connections (32768-60999 on Linux): a port taken from that
// range can be given to one of the test's own connections before the
// server binds it, as a login's callback listener binds its port only
// when the login starts.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
)

// The range, and the next offset in it to try. Ports are handed out in
// turn from a random start, so one process never gets a port twice
// (two picked one after the other and both closed again, for a server's
// listener and its status page, were once the same); the random start
// keeps the test processes that run side by side apart.
const (
	first = 20000
	span  = 12000
)

var next atomic.Uint32

func init() { next.Store(rand.Uint32N(span)) }

// Listen returns a listener on 127.0.0.1 at such a port; the caller
// closes it before the server that is to use the port starts.
func Listen() (net.Listener, error) {
	for range 1000 {
		port := first + (next.Add(1)-1)%span
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0") // a crowded range: what the kernel gives
}
