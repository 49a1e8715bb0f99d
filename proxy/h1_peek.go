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
	if c.peek == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		p := &peeker{rc: rc}
		p.fn = p.recv
		c.peek = p
	}
	p := c.peek
	if err := p.rc.Read(p.fn); err != nil {
		return false
	}
	return errors.Is(p.err, syscall.EAGAIN) || errors.Is(p.err, syscall.EWOULDBLOCK)
}

// peeker is what alive needs, made once per connection: it runs for
// every request on a reused connection.
type peeker struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // p.recv, as a func value made once
	err error
	buf [1]byte
}

func (p *peeker) recv(fd uintptr) bool {
	p.err = peekFD(fd, p.buf[:])
	return true // never wait for readiness
}
