package proxy

import (
	"context"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// Running out of file descriptors for a moment does not stop the
// listener: it backs off and accepts again, as net/http does.
func TestServerAcceptEMFILE(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, ln.Addr().String()) // waits in the backlog
	c.send(postReq("/", "x"))
	fds, _ := os.ReadDir("/proc/self/fd")
	low := lim
	low.Cur = uint64(len(fds)) - 1 // no fd left for accept (ReadDir counted its own)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	s := newH1Server(echo, context.Background(), slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	time.Sleep(100 * time.Millisecond)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) // descriptors are back
	defer s.Close()
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v on a temporary accept error (the listener is dead; net/http retries)", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, body := c.response(); body != "POST / x" {
		t.Errorf("got %q", body)
	}
}
