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

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// serveMini serves h on ln until ln is closed.
func serveMini(ctx context.Context, ln net.Listener, h http.Handler) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go miniConn(ctx, c, h)
	}
}

func miniConn(ctx context.Context, c net.Conn, h http.Handler) {
	defer c.Close()
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	br := bufio.NewReaderSize(c, 4<<10)
	bw := bufio.NewWriterSize(c, 4<<10)
	remote := c.RemoteAddr().String()
	for {
		req, err := http.ReadRequest(br)
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
		w := &miniWriter{bw: bw, header: make(http.Header), head: req.Method == http.MethodHead}
		h.ServeHTTP(w, req)
		cancel()
		w.finish()
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
