package shutdown

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestCloseUnused: a connection that never sent a request does not hold
// Shutdown up, one with a request in progress is still waited for, and a
// ConnState hook the server had keeps being called.
func TestCloseUnused(t *testing.T) {
	inHandler := make(chan struct{})
	finish := make(chan struct{})
	var mu sync.Mutex
	states := map[http.ConnState]int{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(inHandler)
			<-finish
			io.WriteString(w, "done")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			mu.Lock()
			states[s]++
			mu.Unlock()
		},
	}
	CloseUnused(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	unused, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer unused.Close()
	answer := make(chan string, 1)
	go func() {
		res, err := http.Post("http://"+ln.Addr().String()+"/", "text/plain", nil)
		if err != nil {
			answer <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		answer <- string(b)
	}()
	<-inHandler

	// Shutdown must still wait for the request in progress: it finishes
	// only once the unused connection has been closed. Bounded below the 5 s
	// after which net/http alone closes an unused connection, Shutdown
	// returns nil only if CloseUnused closed it.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	unused.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := unused.Read(make([]byte, 1)); err == nil {
		t.Errorf("the unused connection is still open (read %d bytes)", n)
	}
	close(finish)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v, want nil", err)
	}
	if got := <-answer; got != "done" {
		t.Errorf("the request in progress got %q, want its answer", got)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if states[http.StateNew] != 2 || states[http.StateActive] != 1 {
		t.Errorf("the server's own ConnState hook saw %v, want 2 new and 1 active", states)
	}
}
