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
)

// Listen returns a listener on 127.0.0.1 at such a port; the caller
// closes it before the server that is to use the port starts.
func Listen() (net.Listener, error) {
	for range 1000 {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))); err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0") // a crowded range: what the kernel gives
}
