//go:build !linux || race

package proxy

import "net"

// rawIO returns c: raw system calls are used on Linux only, and not in
// race-detector builds (see rawio_linux.go).
func rawIO(c net.Conn) net.Conn { return c }
