//go:build linux && !race && !386

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
// as it is at every hop of a request when requests come one at a time, and
// the first blocking-syscall entry after that wakes it. Those wake-ups, up
// to two per request, and the monitor's short sleeps after each cost about
// 25 µs of the proxy's latency on a two-core machine (BENCHMARKS.md).
//
// A raw call keeps its P and cannot be preempted, but on a non-blocking
// socket it copies at most what the socket's buffer takes, well under a
// millisecond.
//
// Race-detector builds use net.TCPConn as it is (rawio_other.go): the race
// detector records a happens-before edge for every read and write made
// through the syscall package, which raw calls would lose. So does 386,
// which has no recvfrom system call of its own.
type rawIOConn struct {
	*net.TCPConn // deadlines, Close, CloseWrite, addresses, ReadFrom
	rc           syscall.RawConn
}

// rawOp is one read or write: its operands and results, and its callbacks
// bound once. They live in a pool rather than in the connection, which an
// idle event stream keeps for hours (two per stream, BENCHMARKS.md).
type rawOp struct {
	buf           []byte
	n             int
	err           error // what the system call failed with, as net.TCPConn has it
	readf, writef func(fd uintptr) bool
}

var rawOps = sync.Pool{New: func() any {
	op := new(rawOp)
	op.readf, op.writef = op.read, op.write
	return op
}}

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
	return &rawIOConn{TCPConn: tc, rc: rc}
}

// Read is net.TCPConn's Read.
func (c *rawIOConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		// net.TCPConn answers before it looks at the deadline;
		// syscall.RawConn would look first.
		return c.TCPConn.Read(p)
	}
	n, err, opErr := c.do(p, false)
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case opErr != nil:
		return 0, c.opError("read", opErr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (op *rawOp) read(fd uintptr) bool {
	p := op.buf
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
			op.n = int(n)
		default:
			op.err = os.NewSyscallError("read", e)
		}
		return true
	}
}

// Write is net.TCPConn's Write: it writes all of p or fails.
func (c *rawIOConn) Write(p []byte) (int, error) {
	n, err, opErr := c.do(p, true)
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case opErr != nil:
		return n, c.opError("write", opErr)
	}
	return n, nil
}

func (op *rawOp) write(fd uintptr) bool {
	for op.n < len(op.buf) {
		p := op.buf[op.n:]
		if len(p) > maxRW {
			p = p[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == 0 && n == 0:
			op.err = io.ErrUnexpectedEOF // as internal/poll: never loop on it
			return true
		case e == 0:
			op.n += int(n)
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			return false // wait until writable, then write the rest
		default:
			op.err = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

// do reads into p, or writes p, with a pooled rawOp. err is
// syscall.RawConn's (closed, deadline passed), opErr the system call's.
func (c *rawIOConn) do(p []byte, write bool) (n int, err, opErr error) {
	op := rawOps.Get().(*rawOp)
	op.buf, op.n, op.err = p, 0, nil
	if write {
		err = c.rc.Write(op.writef)
	} else {
		err = c.rc.Read(op.readf)
	}
	n, opErr = op.n, op.err
	op.buf, op.err = nil, nil
	rawOps.Put(op)
	return n, err, opErr
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
