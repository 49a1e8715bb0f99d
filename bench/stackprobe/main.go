// Command stackprobe measures the goroutine stack that an idle SSE stream
// through the proxy keeps, and the headroom left before that stack doubles.
//
// Go grows a goroutine's stack by doubling it (2, 4, 8, 16 KiB, …) when a
// call would come within 928 bytes of its end, and an open stream keeps
// its connection's goroutine at the size the deepest call of its request
// needed. So a few hundred bytes more on the request path can cost 8 KiB
// per open stream, which is a fifth of the 40 KiB budget.
//
// For each padding in -pads it starts a fresh child process that serves
// the handler behind a wrapper that first uses that many more bytes of
// stack, opens -n streams to bench/upstream's /sse, each on its own
// connection, and reports the stack memory per stream
// (runtime.MemStats.StackInuse, after a collection) while they are held.
// The largest padding that still gives the smallest stack is the request
// path's headroom. The handler is, by -mode:
//
//	proxy   proxy.NewHandler, as bench/proxy and serve run it
//	serve   the same with the traffic recorder installed, as serve's
//	        status page has it
//	bare    a bare net/http handler that holds the stream itself: the floor
//
// Start bench/upstream first and pass its address:
//
//	go build -o /tmp/up ./bench/upstream && /tmp/up &   # prints its URL
//	go run ./bench/stackprobe -upstream http://127.0.0.1:PORT -mode serve
//
// perf can name the path that passes the limit: probe runtime.morestack
// with the goroutine's stack bounds (perf probe -x BINARY
// 'runtime.morestack lo=+0(%r14):u64 hi=+8(%r14):u64 sp=%sp:u64') and
// record with -g a child run at a padding just past the headroom.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/bench/internal/ssestream"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

func main() {
	upstream := flag.String("upstream", "", "bench/upstream's `URL`, http://127.0.0.1:PORT")
	n := flag.Int("n", 300, "streams held")
	mode := flag.String("mode", "proxy", "handler: proxy, serve or bare")
	pads := flag.String("pads", "0,512,1024,1536,2048,2560,3072", "comma-separated stack `bytes` used before the handler, ascending")
	child := flag.Int("child", -1, "internal: measure one padding in this process")
	flag.Parse()
	if *upstream == "" {
		log.Fatal("stackprobe: -upstream is required")
	}
	if *mode != "proxy" && *mode != "serve" && *mode != "bare" {
		log.Fatalf("stackprobe: -mode %q: want proxy, serve or bare", *mode)
	}
	if *child >= 0 {
		measure(*upstream, *n, *mode, *child)
		return
	}
	fmt.Printf("Mode %s, %d streams; the padding steps by %d bytes (a call measures %d).\n\n", *mode, *n, padStep, frameSize())
	fmt.Println("| padding | stack per stream | goroutines per stream |")
	fmt.Println("|---:|---:|---:|")
	var base float64
	headroom, over := -1, false
	for p := range strings.SplitSeq(*pads, ",") {
		pad, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			log.Fatalf("stackprobe: -pads: %v", err)
		}
		cmd := exec.Command(os.Args[0], "-upstream", *upstream, "-n", strconv.Itoa(*n), "-mode", *mode, "-child", strconv.Itoa(pad))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			log.Fatalf("stackprobe: padding %d: %v", pad, err)
		}
		var stack, goroutines float64
		if _, err := fmt.Sscan(string(out), &stack, &goroutines); err != nil {
			log.Fatalf("stackprobe: padding %d: %q: %v", pad, out, err)
		}
		fmt.Printf("| %d B | %.1f KiB | %.2f |\n", pad, stack, goroutines)
		if headroom < 0 {
			base = stack
		}
		// A doubled stack adds 8 KiB per stream (8 → 16 KiB).
		if !over && stack < base+2 {
			headroom = pad
		} else {
			over = true
		}
	}
	switch {
	case base > 12:
		fmt.Printf("\nThe stack per stream is past 8 KiB without padding.\n")
	case over:
		fmt.Printf("\nHeadroom: at least %d bytes, less than the next padding tried.\n", headroom)
	default:
		fmt.Printf("\nHeadroom: at least %d bytes.\n", headroom)
	}
}

// measure serves the handler with pad bytes of stack in front of it, holds
// n streams and prints the stack memory and the goroutines per stream.
func measure(upstream string, n int, mode string, pad int) {
	var h http.Handler
	if mode == "bare" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
	} else {
		o := proxy.Options{Logger: slog.New(redact.NewHandler(slog.NewTextHandler(io.Discard, nil)))}
		if mode == "serve" {
			rec := new(wire.Recorder)
			o.WrapTransport = func(server string, rt http.RoundTripper) http.RoundTripper {
				return &wire.Transport{Base: rt, Server: server, Kind: wire.KindMCP, Recorder: rec}
			}
		}
		var err error
		h, err = proxy.NewHandler(proxy.Server{Name: "probe", Upstream: upstream + "/mcp", Auth: staticAuth("probe-token")}, o)
		if err != nil {
			log.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: &padHandler{h: h, pad: pad}, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	// One stream first, so that what is set up once is in the baseline.
	c, err := open(ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	c.Close()
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	before, g0 := stackInuse(), runtime.NumGoroutine()
	conns := make([]net.Conn, n)
	for i := range conns {
		if conns[i], err = open(ln.Addr().String()); err != nil {
			log.Fatalf("stream %d: %v", i, err)
		}
	}
	g1 := runtime.NumGoroutine()
	// A collection shrinks stacks that use less than a quarter of their
	// size: what is left is what the streams keep.
	runtime.GC()
	runtime.GC()
	held := stackInuse()
	fmt.Printf("%.2f %.2f\n", float64(held-before)/1024/float64(n), float64(g1-g0)/float64(n))
	for _, c := range conns {
		c.Close()
	}
}

func stackInuse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.StackInuse
}

// padHandler calls h with pad bytes more stack in use, in steps of
// padStep; with pad 0 it adds only its own small frame.
type padHandler struct {
	h   http.Handler
	pad int
}

func (p *padHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.pad < padStep {
		p.h.ServeHTTP(w, r)
		return
	}
	padded(p.pad/padStep, func() { p.h.ServeHTTP(w, r) })
}

// padStep is about the stack one call of padded uses: its array and the
// call's overhead (frameSize measures it).
const padStep = 128

var padIndex int // keeps the compiler from dropping the array

// padded calls f from depth nested calls, each using padStep bytes.
//
//go:noinline
func padded(depth int, f func()) byte {
	var b [padStep - 32]byte
	b[padIndex] = byte(depth)
	if depth <= 1 {
		f()
	} else {
		padded(depth-1, f)
	}
	return b[padIndex]
}

var frameAddrs [2]uintptr

//go:noinline
func frameProbe(depth int) {
	var b [padStep - 32]byte
	b[padIndex] = 1
	frameAddrs[depth] = uintptr(unsafe.Pointer(&b[0]))
	if depth == 0 {
		frameProbe(1)
	}
}

// frameSize reports the stack one call of a function shaped like padded
// uses.
func frameSize() int {
	frameProbe(0)
	return int(frameAddrs[0] - frameAddrs[1])
}

// staticAuth always has the same token.
type staticAuth string

func (a staticAuth) Token(context.Context) (string, error) { return string(a), nil }

func (staticAuth) Challenge(context.Context, *http.Response, string) (bool, error) {
	return false, nil
}

// open starts a stream to the handler at addr.
func open(addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ssestream.Open(ctx, addr, "GET /sse HTTP/1.1\r\nHost: "+addr+"\r\nAccept: text/event-stream\r\n\r\n")
}
