//go:build unix

// Command minimal is a measurement, not a proxy: the least an HTTP/1.1
// forwarder written in Go does for the benchmark's request, to show what
// the proxy's own request path costs above it (BENCHMARKS.md, "What a
// forwarder that knows only the usual case would gain").
//
// For each client connection it dials one upstream connection and then,
// request by request: reads a head and its Content-Length body, copies the
// head with Host and Authorization replaced (the bearer token given by
// -token), writes head and body upstream in one write, reads the answer's
// head and Content-Length body and writes them to the client in one write,
// unchanged. Sockets are read and written with raw system calls, as the
// proxy's listeners do. It checks nothing (no Host or Origin guard, no
// framing beyond Content-Length, no hop-by-hop headers, no timeouts) and
// allocates nothing per request.
//
// It takes the flags of bench/proxy that the harness passes (-upstream,
// -listen, -token), so `make bench BENCHFLAGS="-compare minimal=PATH"`
// measures it. It prints the listener's URL on the first line of stdout and
// serves until it is killed.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"
)

func main() {
	upstream := flag.String("upstream", "", "upstream MCP endpoint `URL` (plain http)")
	listen := flag.String("listen", "127.0.0.1:0", "listen `address`")
	token := flag.String("token", "bench-token", "the bearer `token` to inject")
	flag.Parse()
	up, err := url.Parse(*upstream)
	if err != nil || up.Scheme != "http" {
		log.Fatalf("minimal: -upstream must be an http URL: %q", *upstream)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http://%s%s\n", ln.Addr(), up.Path)
	os.Stdout.Sync()
	f := &forwarder{
		upstream: up.Host,
		host:     []byte("Host: " + up.Host + "\r\n"),
		auth:     []byte("Authorization: Bearer " + *token + "\r\n"),
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go f.serve(c)
	}
}

type forwarder struct {
	upstream   string // host:port
	host, auth []byte // the header lines put in
}

func (f *forwarder) serve(c net.Conn) {
	defer c.Close()
	client := raw(c)
	var upstream *rawConn
	in := make([]byte, 16<<10)     // the client's bytes
	out := make([]byte, 0, 16<<10) // the request sent upstream
	res := make([]byte, 16<<10)    // the upstream's answer
	have := 0
	for {
		headEnd, end, n, err := readMessage(client, in, have)
		if err != nil {
			return
		}
		out = f.rewrite(out[:0], in[:headEnd], in[headEnd:end])
		have = copy(in, in[end:n])
		if upstream == nil {
			uc, err := net.Dial("tcp", f.upstream)
			if err != nil {
				return
			}
			defer uc.Close()
			upstream = raw(uc)
		}
		if _, err := upstream.Write(out); err != nil {
			return
		}
		_, resEnd, resN, err := readMessage(upstream, res, 0)
		if err != nil || resN != resEnd { // nothing is pipelined upstream
			return
		}
		if _, err := client.Write(res[:resEnd]); err != nil {
			return
		}
	}
}

// rewrite appends to out the request line of head, the upstream's Host, the
// other header lines but Host and Authorization, the token and body.
func (f *forwarder) rewrite(out, head, body []byte) []byte {
	head = bytes.TrimSuffix(head, []byte("\r\n\r\n"))
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	out = append(out, line...)
	out = append(out, "\r\n"...)
	out = append(out, f.host...)
	for line := range bytes.SplitSeq(rest, []byte("\r\n")) {
		if hasName(line, "Host:") || hasName(line, "Authorization:") {
			continue
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	out = append(out, f.auth...)
	out = append(out, "\r\n"...)
	return append(out, body...)
}

func hasName(line []byte, name string) bool {
	return len(line) >= len(name) && bytes.EqualFold(line[:len(name)], []byte(name))
}

var errTooLarge = errors.New("minimal: message does not fit the buffer")

// readMessage reads from r into buf, which holds have bytes already, until
// it holds a head and the body its Content-Length gives. It returns the
// head's end, the message's end and the bytes held.
func readMessage(r io.Reader, buf []byte, have int) (headEnd, end, n int, err error) {
	n = have
	for {
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
			headEnd = i + 4
			break
		}
		if n == len(buf) {
			return 0, 0, n, errTooLarge
		}
		m, err := r.Read(buf[n:])
		if err != nil {
			return 0, 0, n, err
		}
		n += m
	}
	length := 0
	for line := range bytes.SplitSeq(buf[:headEnd], []byte("\r\n")) {
		if hasName(line, "Content-Length:") {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(line[len("Content-Length:"):])))
		}
	}
	end = headEnd + length
	if end > len(buf) {
		return 0, 0, n, errTooLarge
	}
	for n < end {
		m, err := r.Read(buf[n:])
		if err != nil {
			return 0, 0, n, err
		}
		n += m
	}
	return headEnd, end, n, nil
}

// rawConn reads and writes a non-blocking socket with raw system calls,
// waiting in the runtime's poller when it would block.
type rawConn struct {
	rc syscall.RawConn
}

func raw(c net.Conn) *rawConn {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		log.Fatal(err)
	}
	return &rawConn{rc}
}

func (c *rawConn) Read(p []byte) (int, error) {
	var n int
	var err error
	if rerr := c.rc.Read(func(fd uintptr) bool {
		n, err = syscall.Read(int(fd), p)
		return err != syscall.EAGAIN
	}); rerr != nil {
		return 0, rerr
	}
	switch {
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawConn) Write(p []byte) (int, error) {
	written := 0
	var err error
	if werr := c.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			var n int
			n, err = syscall.Write(int(fd), p[written:])
			if err == syscall.EAGAIN {
				err = nil
				return false
			}
			if err != nil {
				return true
			}
			written += n
		}
		return true
	}); werr != nil {
		return written, werr
	}
	return written, err
}
