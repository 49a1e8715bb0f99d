// Command proxy runs the proxy package in front of one upstream for the
// benchmarks, with a static Authorizer that always has a token: every
// request takes the token-injection path of `mcp-oauth-proxy serve` without
// an OAuth server or a keychain. The harness also measures the real binary
// with a token seeded into a keychain; this one is the profiling target.
//
// With -plain it runs a bare httputil.ReverseProxy that sets the same
// Authorization header instead, the reference the proxy is compared with.
// With -server net/http it serves the proxy's handler with net/http's
// server instead of the proxy's own listener loop, to measure that loop.
//
// It prints the listener's URL on the first line of stdout and serves until
// it gets SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	_ "net/http/pprof" // served only with -pprof
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
)

// staticAuth is an Authorizer with a fixed token that never asks for a new
// one.
type staticAuth string

func (a staticAuth) Token(context.Context) (string, error) { return string(a), nil }

func (staticAuth) Challenge(context.Context, *http.Response, string) (bool, error) {
	return false, nil
}

func main() {
	upstream := flag.String("upstream", "", "upstream MCP endpoint `URL`")
	listen := flag.String("listen", "127.0.0.1:0", "listen `address`")
	token := flag.String("token", "bench-token", "the bearer `token` to inject")
	plain := flag.Bool("plain", false, "run a bare httputil.ReverseProxy instead of the proxy package")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this `address`")
	server := flag.String("server", "proxy", "the HTTP/1.1 `server` under the proxy's handler: proxy (the listeners of proxy.Start) or net/http (net/http's server, as the listeners had before they served requests themselves)")
	memRate := flag.Int("memprofilerate", runtime.MemProfileRate, "runtime.MemProfileRate: 1 records every allocation")
	flag.Parse()
	runtime.MemProfileRate = *memRate
	if *upstream == "" {
		log.Fatal("proxy: -upstream is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *pprofAddr != "" {
		go func() { log.Print(http.ListenAndServe(*pprofAddr, nil)) }()
	}
	if *plain {
		runPlain(ctx, *upstream, *listen, *token)
		return
	}
	switch *server {
	case "net/http":
		runNetHTTP(ctx, *upstream, *listen, *token)
		return
	case "proxy":
	default:
		log.Fatalf("proxy: unknown -server %q", *server)
	}
	p, err := proxy.Start(ctx, []proxy.Server{{
		Name:     "bench",
		Upstream: *upstream,
		Auth:     staticAuth(*token),
		Listen:   *listen,
	}}, proxy.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Listeners()[0].URL)
	os.Stdout.Sync()
	<-ctx.Done()
	p.Shutdown(context.Background())
}

// runPlain serves the reference: what a few lines of net/http give.
func runPlain(ctx context.Context, upstream, listen, token string) {
	up, err := url.Parse(upstream)
	if err != nil {
		log.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
			pr.Out.Host = up.Host
			pr.Out.Header.Set("Authorization", "Bearer "+token)
		},
		FlushInterval: -1,
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http://%s%s\n", ln.Addr(), up.Path)
	os.Stdout.Sync()
	srv := &http.Server{Handler: rp}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// runNetHTTP serves the proxy's handler with net/http's server, set up as
// proxy.Start set it up before its listeners served requests themselves.
func runNetHTTP(ctx context.Context, upstream, listen, token string) {
	h, err := proxy.NewHandler(proxy.Server{Name: "bench", Upstream: upstream, Auth: staticAuth(token)},
		proxy.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		log.Fatal(err)
	}
	up, err := url.Parse(upstream)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http://%s%s\n", ln.Addr(), up.Path)
	os.Stdout.Sync()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
