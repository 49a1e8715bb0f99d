//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import (
	"errors"
	"syscall"
)

// canPeek reports whether h1Conn.alive can look at an idle connection;
// h1Transport passes every request to net/http's Transport where it cannot.
const canPeek = true

// alive reports whether an idle connection is still open and has nothing to
// read: the upstream has neither closed it nor sent anything unasked (such
// as a 408 before closing). It peeks without blocking.
func (c *h1Conn) alive() bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for readiness
	})
	return err == nil && (errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK))
}
