//go:build linux && !race

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// rawIOConn reads and writes a TCP connection with raw system calls, where
// net.TCPConn makes the runtime's blocking-syscall bookkeeping around each.
// The socket is non-blocking, so a read or write never blocks: when it
// would, the runtime's poller waits, as for net.TCPConn, and deadlines and
// Close work as they do there. What this saves is the wake-up of the
// runtime's monitor thread (sysmon): it sleeps whenever the proxy is idle,
// which between two requests one at a time it always is, and the first
// blocking-syscall entry after that wakes it. At one request at a time the
// proxy made two such entries per request, and the monitor's wake-ups and
// short sleeps on a two-core machine cost about 25 µs of its latency
// (BENCHMARKS.md).
//
// Race-detector builds use net.TCPConn as it is (rawio_other.go): it
// records a happens-before edge for every read and write made through the
// syscall package, which raw calls would lose.
type rawIOConn struct {
	*net.TCPConn // deadlines, Close, CloseWrite, addresses, ReadFrom
	rc           syscall.RawConn

	// The operands of a read and a write, and their callbacks bound once,
	// so that a read or write allocates nothing.
	rmu   sync.Mutex
	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	readf func(fd uintptr) bool

	wmu    sync.Mutex
	wbuf   []byte
	wn     int
	werr   syscall.Errno
	writef func(fd uintptr) bool
}

// rawIO returns c reading and writing with raw system calls when it is a
// TCP connection, and c itself otherwise.
func rawIO(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawIOConn{TCPConn: tc, rc: rc}
	r.readf, r.writef = r.read, r.write
	return r
}

// Read is net.TCPConn's Read.
func (c *rawIOConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readf)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawIOConn) read(fd uintptr) bool {
	p := c.rbuf
	if len(p) == 0 {
		return true
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until readable
		case 0:
			c.rn = int(n)
		default:
			c.rerr = e
		}
		return true
	}
}

// Write is net.TCPConn's Write: it writes all of p or fails.
func (c *rawIOConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writef)
	n, errno := c.wn, c.werr
	c.wbuf = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

func (c *rawIOConn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		p := c.wbuf[c.wn:]
		if len(p) > maxRW {
			p = p[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until writable, then write the rest
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// opError reports err as net.TCPConn's Read and Write do. The errors of
// syscall.RawConn (closed, deadline passed) come as "raw-read" and
// "raw-write" operations: those are renamed.
func (c *rawIOConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// maxRW is the most a single read or write asks for, as in internal/poll:
// larger requests fail on some systems.
const maxRW = 1 << 30

// peekFD reads what fd holds without taking it and without waiting.
func peekFD(fd uintptr, b []byte) error {
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		}
		return e
	}
}
