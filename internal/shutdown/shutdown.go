// Package shutdown makes an http.Server's Shutdown close the connections on
// which no request has started.
//
// net/http's Shutdown closes idle keep-alive connections at once, but it
// counts a connection that has not sent its first request as idle only
// once it is 5 s old. Clients open such connections ahead of need (Go's
// http.Client when requests race, browsers when they preconnect), so a
// Shutdown bounded by a few seconds waited out its whole bound and
// reported its context's error. The servers here end every request at
// shutdown anyway, so there is nothing on such a connection to wait for.
package shutdown

import (
	"net"
	"net/http"
	"sync"
)

// CloseUnused arranges for srv's Shutdown to close, once srv's listeners
// are closed, every connection on which no request has started. It sets
// srv.ConnState, calling the hook srv already had, and must be called
// before srv serves.
func CloseUnused(srv *http.Server) {
	t := &tracker{next: srv.ConnState}
	srv.ConnState = t.connState
	srv.RegisterOnShutdown(t.closeUnused)
}

// tracker holds the connections on which no request has started.
type tracker struct {
	next  func(net.Conn, http.ConnState)
	fresh sync.Map // net.Conn → struct{}
}

func (t *tracker) connState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		t.fresh.Store(c, struct{}{})
	case http.StateActive, http.StateClosed, http.StateHijacked:
		t.fresh.Delete(c)
	}
	if t.next != nil {
		t.next(c, s)
	}
}

func (t *tracker) closeUnused() {
	t.fresh.Range(func(c, _ any) bool {
		c.(net.Conn).Close()
		return true
	})
}
