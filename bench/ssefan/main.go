// Command ssefan holds many idle SSE streams open: it opens -n streams to
// -url, each on its own connection, waits until every stream has delivered
// its first event, prints "served N failed M" and then holds them all until
// its standard input is closed. The harness reads the server's RSS while
// the streams are held.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/bench/internal/ssestream"
)

func main() {
	rawURL := flag.String("url", "", "SSE endpoint `URL` (http only)")
	n := flag.Int("n", 2000, "number of streams")
	parallel := flag.Int("parallel", 32, "streams being opened at once")
	timeout := flag.Duration("timeout", 60*time.Second, "time allowed for every stream to deliver its first event")
	flag.Parse()
	u, err := url.Parse(*rawURL)
	if err != nil || u.Scheme != "http" {
		log.Fatalf("ssefan: -url %q: want an http URL", *rawURL)
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conns := make([]net.Conn, *n)
	var failed atomic.Int64
	var firstErr sync.Once
	sem := make(chan struct{}, *parallel)
	var wg sync.WaitGroup
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := ssestream.Open(ctx, u.Host, req)
			if err != nil {
				failed.Add(1)
				firstErr.Do(func() { log.Printf("ssefan: stream %d: %v", i, err) })
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	fmt.Printf("served %d failed %d\n", int64(*n)-failed.Load(), failed.Load())
	os.Stdout.Sync()
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
