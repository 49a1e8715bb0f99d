package main

// An experiment, not a server to use: with -server mini, the proxy's
// handler (chi, ReverseProxy and all) is served by a minimal HTTP/1.1
// loop instead of net/http's server, to measure what net/http's server
// costs per request (BENCHMARKS.md, "What a server of our own would
// gain"). It parses requests with http.ReadRequest and writes responses
// with a Content-Length or chunked, but it has none of net/http's
// timeouts, its Expect and Upgrade handling, its request-smuggling
// checks beyond ReadRequest's, or its background read, so a request's
// context does not end when the client goes away.
//
// Two of net/http's costs can be added back, to see what each weighs:
// with -server mini+bgread a request whose body has been read starts a
// goroutine that waits for the client's next byte (ending the context when
// the client goes away), aborted with a past read deadline once the handler
// returns, as net/http's server does; with -server mini+deadlines each
// request sets and clears read deadlines as ReadHeaderTimeout and
// IdleTimeout do (-server mini+both adds both). -server mini+lazy has the
// deadlines and starts the background read only for a request still
// running 10 ms after its body was read: a cheaper way to notice a client
// going away, which a server of our own could use.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// miniOptions are net/http's costs the loop adds back.
type miniOptions struct {
	bgRead    bool // a background read per request
	deadlines bool // read deadlines per request
	lazy      bool // the background read only for requests running past lazyAfter
}

const lazyAfter = 10 * time.Millisecond

// serveMini serves h on ln until ln is closed.
func serveMini(ctx context.Context, ln net.Listener, h http.Handler, o miniOptions) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go miniConn(ctx, c, h, o)
	}
}

var aLongTimeAgo = time.Unix(1, 0)

func miniConn(ctx context.Context, c net.Conn, h http.Handler, o miniOptions) {
	defer c.Close()
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	cr := &miniReader{c: c}
	cr.cond.L = &cr.mu
	br := bufio.NewReaderSize(cr, 4<<10)
	bw := bufio.NewWriterSize(c, 4<<10)
	remote := c.RemoteAddr().String()
	for {
		if o.deadlines {
			// As net/http: the idle timeout until the next request starts,
			// then the header timeout, then none.
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			if _, err := br.Peek(4); err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
		}
		req, err := http.ReadRequest(br)
		if o.deadlines {
			c.SetReadDeadline(time.Time{})
		}
		if err != nil {
			if err != io.EOF {
				fmt.Fprintf(bw, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				bw.Flush()
			}
			return
		}
		req.RemoteAddr = remote
		rctx, cancel := context.WithCancel(ctx)
		req = req.WithContext(rctx)
		// start begins watching for the client's next byte once the body has
		// been read, while the handler runs; never after.
		var start func()
		var lazyTimer *time.Timer
		handlerDone := false
		gen := cr.open()
		switch {
		case o.bgRead:
			start = func() {
				if !handlerDone {
					cr.startBackgroundRead(cancel, gen)
				}
			}
		case o.lazy:
			start = func() {
				if !handlerDone {
					lazyTimer = time.AfterFunc(lazyAfter, func() { cr.startBackgroundRead(cancel, gen) })
				}
			}
		}
		if start != nil {
			if req.ContentLength == 0 {
				start()
			} else {
				req.Body = &eofHook{ReadCloser: req.Body, fn: start}
			}
		}
		w := &miniWriter{bw: bw, header: make(http.Header), head: req.Method == http.MethodHead}
		h.ServeHTTP(w, req)
		handlerDone = true
		if lazyTimer != nil {
			lazyTimer.Stop()
		}
		cancel()
		w.finish()
		cr.abortPendingRead() // also keeps a timer that fired meanwhile from starting one
		if o.deadlines {
			c.SetWriteDeadline(time.Time{})
		}
		// Drain what the handler left of the body, so the next request starts at its start.
		_, derr := io.Copy(io.Discard, req.Body)
		req.Body.Close()
		if derr != nil || req.Close || w.close || w.err != nil {
			return
		}
	}
}

// miniWriter is the http.ResponseWriter of one request.
type miniWriter struct {
	bw      *bufio.Writer
	header  http.Header
	head    bool  // a HEAD request: no body
	wrote   bool  // the status line and headers are written
	chunked bool  // the body is sent chunked
	close   bool  // the connection closes after the response
	err     error // the first write error
}

func (w *miniWriter) Header() http.Header { return w.header }

func (w *miniWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if code < 200 {
		// Informational: its own head, the final one follows.
		w.writeHead(code)
		return
	}
	w.wrote = true
	if w.header.Get("Content-Length") == "" && !w.head && code != http.StatusNoContent && code != http.StatusNotModified {
		w.chunked = true
		w.header.Set("Transfer-Encoding", "chunked")
	}
	if strings.EqualFold(w.header.Get("Connection"), "close") {
		w.close = true
	}
	w.writeHead(code)
}

func (w *miniWriter) writeHead(code int) {
	w.bw.WriteString("HTTP/1.1 ")
	w.bw.WriteString(strconv.Itoa(code))
	w.bw.WriteByte(' ')
	w.bw.WriteString(http.StatusText(code))
	w.bw.WriteString("\r\n")
	if err := w.header.Write(w.bw); err != nil && w.err == nil {
		w.err = err
	}
	w.bw.WriteString("\r\n")
}

func (w *miniWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.head || len(p) == 0 {
		return len(p), nil
	}
	if w.chunked {
		fmt.Fprintf(w.bw, "%x\r\n", len(p))
	}
	n, err := w.bw.Write(p)
	if w.chunked {
		w.bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = err
	}
	return n, err
}

// FlushError lets http.ResponseController flush, as ReverseProxy and the
// proxy's flushWriter do.
func (w *miniWriter) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

func (w *miniWriter) Flush() { w.FlushError() }

// finish ends the response after the handler returned.
func (w *miniWriter) finish() {
	if !w.wrote {
		w.header.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.bw.WriteString("0\r\n\r\n")
	}
	w.FlushError()
}

// miniReader reads the connection for the request reader and, between a
// request's body and its response's end, waits in a goroutine of its own
// for the client's next byte, as net/http's connReader does.
type miniReader struct {
	c       net.Conn
	mu      sync.Mutex
	cond    sync.Cond
	inRead  bool // the background read is running
	aborted bool
	closed  bool   // the handler returned: no background read may start
	gen     uint64 // the request being served, counted
	has     bool   // b holds a byte the background read got
	b       [1]byte
}

func (r *miniReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.has && len(p) > 0 {
		p[0], r.has = r.b[0], false
		r.mu.Unlock()
		return 1, nil
	}
	r.mu.Unlock()
	return r.c.Read(p)
}

func (r *miniReader) startBackgroundRead(cancel context.CancelFunc, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inRead || r.has || r.closed || r.gen != gen {
		return
	}
	r.inRead = true
	go func() {
		n, err := r.c.Read(r.b[:])
		r.mu.Lock()
		if n == 1 {
			r.has = true
		}
		if ne, ok := err.(net.Error); err != nil && !(ok && ne.Timeout() && r.aborted) {
			cancel() // the client went away
		}
		r.inRead, r.aborted = false, false
		r.mu.Unlock()
		r.cond.Broadcast()
	}()
}

// open lets a background read start for the next request, and only for
// it: a late timer of an earlier one is told apart by the generation.
func (r *miniReader) open() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = false
	r.gen++
	return r.gen
}

func (r *miniReader) abortPendingRead() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if !r.inRead {
		return
	}
	r.aborted = true
	r.c.SetReadDeadline(aLongTimeAgo)
	for r.inRead {
		r.cond.Wait()
	}
	r.c.SetReadDeadline(time.Time{})
}

// eofHook calls fn when the body it wraps reaches its end.
type eofHook struct {
	io.ReadCloser
	fn    func()
	fired bool
}

func (e *eofHook) Read(p []byte) (int, error) {
	n, err := e.ReadCloser.Read(p)
	if err == io.EOF && !e.fired {
		e.fired = true
		e.fn()
	}
	return n, err
}
