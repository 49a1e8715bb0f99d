package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tcpPair returns both ends of a loopback TCP connection, the first
// passed through wrap.
func tcpPair(t *testing.T, wrap func(net.Conn) net.Conn) (c, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		a, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- a
	}()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a == nil {
		t.Fatal("accept failed")
	}
	c = wrap(a)
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

// describe reduces what a read or write returned to what callers look at.
func describe(n int, err error) string {
	if err == nil {
		return fmt.Sprintf("n=%d ok", n)
	}
	var op string
	if oe, ok := err.(*net.OpError); ok {
		op = oe.Op + " " + oe.Net
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	var errno syscall.Errno
	errors.As(err, &errno)
	if errno == syscall.EPIPE {
		errno = syscall.ECONNRESET // which of the two a write after a reset gets is the kernel's choice
	}
	msg := addrPattern.ReplaceAllString(err.Error(), "ADDR")
	msg = strings.ReplaceAll(msg, "broken pipe", "connection reset by peer")
	return fmt.Sprintf("n=%d %T %q op=%q timeout=%v deadline=%v closed=%v eof=%v errno=%d", n, err, msg, op, timeout,
		errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed), err == io.EOF, errno)
}

var addrPattern = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// rawIOScenarios are run on a net.TCPConn and on rawIO of one; each
// returns what it saw, which must be the same for both.
var rawIOScenarios = []struct {
	name string
	run  func(t *testing.T, c, peer net.Conn) []string
}{
	{"read what the peer wrote", func(t *testing.T, c, peer net.Conn) []string {
		peer.Write([]byte("hello"))
		b := make([]byte, 16)
		n, err := io.ReadAtLeast(c, b, 5)
		return []string{describe(n, err), string(b[:n])}
	}},
	{"empty read and write", func(t *testing.T, c, peer net.Conn) []string {
		n1, err1 := c.Read(nil)
		n2, err2 := c.Write(nil)
		return []string{describe(n1, err1), describe(n2, err2)}
	}},
	{"empty read and write after the deadlines passed", func(t *testing.T, c, peer net.Conn) []string {
		c.SetDeadline(time.Now().Add(-time.Second))
		n1, err1 := c.Read(nil)
		n2, err2 := c.Write(nil)
		return []string{describe(n1, err1), describe(n2, err2)}
	}},
	{"end of stream", func(t *testing.T, c, peer net.Conn) []string {
		peer.Write([]byte("ab"))
		peer.Close()
		b, err := io.ReadAll(c)
		n, err2 := c.Read(make([]byte, 1))
		return []string{string(b), fmt.Sprint(err), describe(n, err2)}
	}},
	{"deadline passed", func(t *testing.T, c, peer net.Conn) []string {
		c.SetReadDeadline(time.Now().Add(-time.Second))
		n, err := c.Read(make([]byte, 1))
		c.SetWriteDeadline(time.Now().Add(-time.Second))
		n2, err2 := c.Write([]byte("x"))
		return []string{describe(n, err), describe(n2, err2)}
	}},
	{"deadline reached while waiting", func(t *testing.T, c, peer net.Conn) []string {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := c.Read(make([]byte, 1))
		c.SetReadDeadline(time.Time{})
		peer.Write([]byte("z"))
		b := make([]byte, 1)
		n2, err2 := c.Read(b)
		return []string{describe(n, err), describe(n2, err2), string(b)}
	}},
	{"closed while reading", func(t *testing.T, c, peer net.Conn) []string {
		go func() {
			time.Sleep(20 * time.Millisecond)
			c.Close()
		}()
		n, err := c.Read(make([]byte, 1))
		n2, err2 := c.Write([]byte("x"))
		return []string{describe(n, err), describe(n2, err2)}
	}},
	{"write after the peer reset", func(t *testing.T, c, peer net.Conn) []string {
		peer.(*net.TCPConn).SetLinger(0)
		peer.Close()
		var n int
		var err error
		for range 100 {
			if n, err = c.Write([]byte("x")); err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		return []string{describe(n, err)}
	}},
	{"half close", func(t *testing.T, c, peer net.Conn) []string {
		cw, ok := c.(interface{ CloseWrite() error })
		if !ok {
			return []string{"no CloseWrite"}
		}
		c.Write([]byte("bye"))
		err := cw.CloseWrite()
		b, err2 := io.ReadAll(peer)
		return []string{fmt.Sprint(err), string(b), fmt.Sprint(err2)}
	}},
	{"16 MiB each way at once", func(t *testing.T, c, peer net.Conn) []string {
		// More than the socket buffers hold: writes wait for the peer.
		out, in := make([]byte, 16<<20), make([]byte, 16<<20)
		rand.Read(out)
		rand.Read(in)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(peer, int64(len(out))))
			got <- b
		}()
		go func() { peer.Write(in) }()
		wrote := make(chan string, 1)
		go func() {
			n, err := c.Write(out)
			wrote <- describe(n, err)
		}()
		// Small reads, so that many come back short.
		var back bytes.Buffer
		b := make([]byte, 1000)
		for back.Len() < len(in) {
			n, err := c.Read(b)
			back.Write(b[:n])
			if err != nil {
				break
			}
		}
		return []string{<-wrote, fmt.Sprint(bytes.Equal(<-got, out)), fmt.Sprint(bytes.Equal(back.Bytes(), in))}
	}},
}

// TestRawIOMatchesTCPConn holds rawIO to net.TCPConn: every scenario must
// see the same from both. Race-detector builds have no raw I/O (the
// Makefile also runs this package's tests without -race).
func TestRawIOMatchesTCPConn(t *testing.T) {
	identity := func(c net.Conn) net.Conn { return c }
	for _, sc := range rawIOScenarios {
		t.Run(sc.name, func(t *testing.T) {
			c, peer := tcpPair(t, identity)
			want := sc.run(t, c, peer)
			c, peer = tcpPair(t, rawIO)
			got := sc.run(t, c, peer)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rawIO differs from net.TCPConn (-TCPConn +rawIO):\n%s", diff)
			}
		})
	}
}
