package freeport

import (
	"net"
	"testing"
)

// Ports picked one after the other differ even when each is closed before
// the next is picked, as tests do for a server and its status page.
func TestListenNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 3 * span / 4 {
		ln, err := Listen()
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
}

func TestListenBelowEphemeralPorts(t *testing.T) {
	seen := map[int]bool{}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range 20 {
		ln, err := Listen()
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		if port < 20000 || port >= 32000 || seen[port] {
			t.Errorf("port %d: want a new one in [20000, 32000), below the kernel's ephemeral ports", port)
		}
		seen[port] = true
	}
}
