//go:build linux

// Command harness measures the proxy against no proxy and against nginx on
// the same machine in one run, and prints one Markdown report. bench/run.sh
// builds the programs it runs and calls it; see BENCHMARKS.md.
//
// Throughput and latency rounds alternate between the targets (direct,
// nginx, the proxy package, the real binary, a bare httputil.ReverseProxy),
// so that load from other processes on a shared machine spreads over all of
// them; medians and ratios are reported. Memory is measured on fresh
// processes: the added RSS while N idle SSE streams are held, and the added
// peak RSS while a 10 MiB response passes through. It reads /proc, so it
// runs on Linux only.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const token = "bench-token-0123456789abcdef"

type options struct {
	bin      string // directory of the built programs
	script   string // wrk POST script
	rounds   int
	dur      time.Duration
	latDur   time.Duration
	streams  int
	workers  int
	bigSize  int
	events   int
	only     string
	targets  string
	compare  map[string]string // target name → a bench/proxy binary built from other code
	serves   map[string]string // target name → an mcp-oauth-proxy binary built from other code
	tmp      string
	startups int
	upProcs  int // GOMAXPROCS of the upstream; 0 leaves it to the runtime
}

// target is one way to reach the upstream.
type target struct {
	name   string
	desc   string
	url    string // the POST URL
	origin string
	auth   string       // Authorization wrk sends itself (direct only)
	pids   func() []int // the serving processes; nil for direct
	rps    []float64
	cpu    []float64 // CPU µs per request of the serving processes
	p50    []time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "`dir`ectory holding upstream, proxy, ssefan, stackprobe and mcp-oauth-proxy")
	flag.StringVar(&o.script, "script", "bench/post.lua", "wrk POST `script`")
	flag.IntVar(&o.rounds, "rounds", 5, "throughput rounds per target")
	flag.DurationVar(&o.dur, "duration", 8*time.Second, "length of one throughput round")
	flag.DurationVar(&o.latDur, "latency-duration", 4*time.Second, "length of one latency round")
	flag.IntVar(&o.streams, "streams", 2000, "idle SSE streams held in the fan-out")
	flag.IntVar(&o.workers, "workers", runtime.NumCPU(), "nginx worker processes (the Go servers use GOMAXPROCS = all cores)")
	flag.IntVar(&o.bigSize, "big", 10<<20, "size of the large response in bytes")
	flag.IntVar(&o.events, "events", 50, "events of the per-event delay check")
	flag.IntVar(&o.startups, "startups", 5, "startups of serve with 20 servers")
	flag.IntVar(&o.upProcs, "upstream-procs", 0, "GOMAXPROCS of the upstream (0: all cores). The upstream stands in for a remote server, whose scheduler never competes with the proxies for this machine's cores; 1 leaves them more of it")
	flag.StringVar(&o.targets, "targets", strings.Join(targetNames, ","), "comma-separated targets to measure")
	flag.Func("compare", "also measure the bench/proxy binary at `NAME=PATH` (built from other code) as target NAME; repeatable", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || path == "" || slices.Contains(targetNames, name) {
			return fmt.Errorf("want NAME=PATH with a NAME that is not one of %v", targetNames)
		}
		if o.compare == nil {
			o.compare = map[string]string{}
		}
		o.compare[name] = path
		return nil
	})
	flag.Func("compare-serve", "also measure the mcp-oauth-proxy binary at `NAME=PATH` (built from other code) as target NAME, run as serve is; repeatable", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || path == "" || slices.Contains(targetNames, name) || o.compare[name] != "" {
			return fmt.Errorf("want NAME=PATH with a NAME that is not one of %v or of -compare", targetNames)
		}
		if o.serves == nil {
			o.serves = map[string]string{}
		}
		o.serves[name] = path
		return nil
	})
	flag.StringVar(&o.only, "only", "", "comma-separated phases to run: throughput,streaming,fanout,startup,stack (default all)")
	flag.Parse()
	if o.bin == "" {
		log.Fatal("harness: -bin is required")
	}
	var err error
	if o.tmp, err = os.MkdirTemp("", "mcp-oauth-proxy-bench"); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sig
		stopAll()
		os.RemoveAll(o.tmp)
		os.Exit(130)
	}()
	err = run(&o)
	stopAll()
	os.RemoveAll(o.tmp)
	if err != nil {
		log.Fatalf("harness: %v", err)
	}
}

func (o *options) phase(name string) bool { return o.only == "" || listed(o.only, name) }

// names returns the targets to measure, in the harness's order.
func (o *options) names() []string {
	var names []string
	for _, n := range targetNames {
		if listed(o.targets, n) {
			names = append(names, n)
		}
	}
	names = append(names, slices.Sorted(maps.Keys(o.compare))...)
	names = append(names, slices.Sorted(maps.Keys(o.serves))...)
	return names
}

func listed(list, name string) bool {
	for p := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(p) == name {
			return true
		}
	}
	return false
}

// keychain reports whether a Secret Service session is there to hold the
// real binary's token (bench/run.sh provides one).
func keychain() bool {
	_, err := exec.LookPath("secret-tool")
	return err == nil && os.Getenv("MCP_OAUTH_PROXY_SECRET_SERVICE") == "1"
}

func run(o *options) error {
	r := &report{}
	r.header(o)
	if o.phase("throughput") {
		if err := throughput(o, r); err != nil {
			return err
		}
	}
	if o.phase("streaming") {
		if err := streaming(o, r); err != nil {
			return err
		}
	}
	if o.phase("fanout") {
		if err := fanOuts(o, r); err != nil {
			return err
		}
	}
	if o.phase("startup") {
		if err := startup(o, r); err != nil {
			return err
		}
	}
	if o.phase("stack") {
		if err := stack(o, r); err != nil {
			return err
		}
	}
	fmt.Print(r.String())
	if r.failed {
		return fmt.Errorf("some requests or streams failed; see above")
	}
	return nil
}

func (o *options) prog(name string) string { return filepath.Join(o.bin, name) }

func launchUpstream(o *options) (*proc, string, error) {
	var env []string
	if o.upProcs > 0 {
		env = []string{"GOMAXPROCS=" + strconv.Itoa(o.upProcs)}
	}
	return start("upstream", o.tmp, env, o.prog("upstream"), "-token", token)
}

// launchTarget starts the named target in front of the upstream at origin.
func launchTarget(o *options, name, upOrigin string) (*target, error) {
	t := &target{name: name}
	switch name {
	case "direct":
		t.desc = "no proxy: wrk → upstream"
		t.url = upOrigin + "/mcp"
		t.auth = "Bearer " + token
	case "nginx":
		p, addr, err := startNginx(o.tmp, o.workers, strings.TrimPrefix(upOrigin, "http://"), token)
		if err != nil {
			return nil, err
		}
		t.desc = fmt.Sprintf("%s, %d workers, keep-alive upstream, token set", nginxVersion(), o.workers)
		t.url = addr + "/mcp"
		t.pids = func() []int { return withChildren(p.pid()) }
	case "proxy", "plain":
		args := []string{"-upstream", upOrigin + "/mcp", "-token", token}
		prog := o.prog("proxy")
		t.desc = "proxy package (proxy.Start), static Authorizer"
		if name == "plain" {
			args = append(args, "-plain")
			t.desc = "bare httputil.ReverseProxy setting the token"
		}
		p, u, err := start(name, o.tmp, nil, prog, args...)
		if err != nil {
			return nil, err
		}
		t.url = u
		t.pids = func() []int { return []int{p.pid()} }
	case "serve":
		if err := launchServe(o, t, o.prog("mcp-oauth-proxy"), upOrigin); err != nil || t.url == "" {
			return nil, err
		}
		t.desc = "mcp-oauth-proxy serve, token from the keychain, status page on"
	default:
		if prog, ok := o.serves[name]; ok {
			if err := launchServe(o, t, prog, upOrigin); err != nil || t.url == "" {
				return nil, err
			}
			t.desc = "serve " + filepath.Base(prog)
			break
		}
		prog, ok := o.compare[name]
		if !ok {
			return nil, fmt.Errorf("unknown target %q", name)
		}
		p, u, err := start(name, o.tmp, nil, prog, "-upstream", upOrigin+"/mcp", "-token", token)
		if err != nil {
			return nil, err
		}
		t.desc = "bench/proxy " + filepath.Base(prog)
		t.url = u
		t.pids = func() []int { return []int{p.pid()} }
	}
	u, _ := url.Parse(t.url)
	t.origin = u.Scheme + "://" + u.Host
	return t, nil
}

// launchServe starts the binary prog as `serve --url` in front of the
// upstream at upOrigin, with the upstream's token stored in the keychain
// the way fast-agent stores it, so that serve reads it at startup. Its
// status page is on, as by default, on a port of its own, so that several
// serve targets each have one. It leaves t.url empty when there is no
// keychain session to hold the token.
func launchServe(o *options, t *target, prog, upOrigin string) error {
	if !keychain() {
		return nil
	}
	id := strings.TrimSuffix(upOrigin, "/")
	rec := `{"access_token":"` + token + `","token_type":"Bearer","expires_in":null,"refresh_token":null,"scope":null}`
	cmd := exec.Command("secret-tool", "store", "--label=mcp-oauth-proxy bench", "service", "fast-agent-mcp", "username", "oauth:tokens:"+id)
	cmd.Stdin = strings.NewReader(rec)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("secret-tool store: %v %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, _, err := start(t.name, o.tmp, nil, prog, "serve", "--url", upOrigin+"/mcp", "--listen", addr, "--admin", "127.0.0.1:0")
	if err != nil {
		return err
	}
	t.url = "http://" + addr + "/mcp"
	t.pids = func() []int { return []int{p.pid()} }
	return nil
}

var targetNames = []string{"direct", "nginx", "proxy", "serve", "plain"}

func throughput(o *options, r *report) error {
	up, upOrigin, err := launchUpstream(o)
	if err != nil {
		return err
	}
	defer up.stop()
	var ts []*target
	for _, name := range o.names() {
		t, err := launchTarget(o, name, upOrigin)
		if err != nil {
			return err
		}
		if t == nil {
			r.note("serve (the real binary) skipped: no Secret Service session to hold its token; run bench/run.sh")
			continue
		}
		ts = append(ts, t)
	}
	// Warm up: connections, pools, the first keychain read.
	for _, t := range ts {
		if _, err := runWrk(o.script, t.url, t.auth, 2, 32, time.Second, false); err != nil {
			return err
		}
	}
	for i := range o.rounds {
		for j := range ts {
			t := ts[(i+j)%len(ts)]
			var c0 int64
			if t.pids != nil {
				c0 = cpuTicks(t.pids())
			}
			res, err := runWrk(o.script, t.url, t.auth, 2, 32, o.dur, false)
			if err != nil {
				return err
			}
			if res.bad > 0 {
				r.failed = true
				r.note(fmt.Sprintf("%s: %d failed requests in round %d:\n%s", t.name, res.bad, i+1, res.out))
			}
			t.rps = append(t.rps, res.rps)
			if t.pids != nil && res.requests > 0 {
				ticks := cpuTicks(t.pids()) - c0
				t.cpu = append(t.cpu, float64(ticks)*1e6/ticksPerSecond/float64(res.requests))
			}
			fmt.Fprintf(os.Stderr, "round %d %-6s %8.0f req/s\n", i+1, t.name, res.rps)
		}
	}
	for i := range max(3, o.rounds) {
		for j := range ts {
			t := ts[(i+j)%len(ts)]
			res, err := runWrk(o.script, t.url, t.auth, 1, 1, o.latDur, true)
			if err != nil {
				return err
			}
			if res.bad > 0 {
				r.failed = true
				r.note(fmt.Sprintf("%s: %d failed requests in latency round %d", t.name, res.bad, i+1))
			}
			t.p50 = append(t.p50, res.p50)
			fmt.Fprintf(os.Stderr, "latency %d %-6s p50 %v\n", i+1, t.name, res.p50)
		}
	}
	r.throughput(o, ts)
	for _, t := range ts {
		if t.pids != nil {
			stopPids(t)
		}
	}
	return nil
}

// stopPids stops the processes of t that the harness started.
func stopPids(t *target) {
	for _, p := range procs {
		for _, pid := range t.pids() {
			if p.pid() == pid {
				p.stop()
			}
		}
	}
}

// warm sends a few requests and opens and closes one stream, so that what
// is set up once per process is in the baseline.
func warm(t *target) error {
	for range 20 {
		req, _ := http.NewRequest(http.MethodPost, t.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		if t.auth != "" {
			req.Header.Set("Authorization", t.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: warm-up POST: %s", t.name, res.Status)
		}
	}
	res, err := http.Get(t.origin + "/mcp")
	if err != nil {
		return err
	}
	res.Body.Read(make([]byte, 64))
	res.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(time.Second)
	return nil
}

// fresh starts an upstream and the named target, runs f and stops both.
func fresh(o *options, name string, f func(t *target, up *proc) error) (bool, error) {
	up, upOrigin, err := launchUpstream(o)
	if err != nil {
		return false, err
	}
	defer up.stop()
	t, err := launchTarget(o, name, upOrigin)
	if err != nil || t == nil {
		return false, err
	}
	if t.pids == nil {
		t.pids = func() []int { return []int{up.pid()} }
	} else {
		defer stopPids(t)
	}
	if err := warm(t); err != nil {
		return false, err
	}
	return true, f(t, up)
}

func streaming(o *options, r *report) error {
	var rows []streamRow
	for _, name := range o.names() {
		var row streamRow
		ok, err := fresh(o, name, func(t *target, _ *proc) error {
			row.name = t.name
			d, err := eventDelays(t.origin, o.events, 20*time.Millisecond)
			if err != nil {
				return fmt.Errorf("%s: events: %w", t.name, err)
			}
			row.p50, row.max = median(d), max(d[0], d[len(d)-1])
			for _, x := range d {
				row.max = max(row.max, x)
			}
			if row.added, err = bigPeak(t.origin, o.bigSize, t.pids()); err != nil {
				return fmt.Errorf("%s: large response: %w", t.name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if ok {
			rows = append(rows, row)
		}
	}
	r.streaming(o, rows)
	return nil
}

func fanOuts(o *options, r *report) error {
	var rows []fanRow
	for _, name := range o.names() {
		var row fanRow
		ok, err := fresh(o, name, func(t *target, _ *proc) error {
			row.name = t.name
			before, err := rssKiB(t.pids())
			if err != nil {
				return err
			}
			// The first round gets memory fresh from the kernel, which
			// counts only where it is written; the later ones reuse what
			// the one before freed, as a long-running proxy does, and
			// show the garbage collector's timing.
			for i := range row.rounds {
				// GET on the endpoint: the stream an MCP client opens.
				res, err := fanOut(o.prog("ssefan"), t.origin+"/mcp", o.streams, t.pids(), before)
				row.rounds[i] = res
				if err != nil {
					return fmt.Errorf("%s: fan-out: %w", t.name, err)
				}
				fmt.Fprintf(os.Stderr, "fan-out %d %-6s served %d failed %d, %.1f KiB/stream\n", i+1, t.name, res.served, res.failed, res.perStream())
				// Requests in between, so that the runtime collects and
				// pools churn, as in use.
				if _, err := runWrk(o.script, t.url, t.auth, 1, 4, 2*time.Second, false); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if ok {
			for _, res := range row.rounds {
				if res.failed > 0 || res.served != o.streams {
					r.failed = true
				}
			}
			rows = append(rows, row)
		}
	}
	r.fanOut(o, rows)
	return nil
}

// stack runs bench/stackprobe: the goroutine stack an idle stream keeps
// through the proxy's handler (with the recorder serve's status page
// installs) and through a bare net/http handler, and how much more stack
// the request path could use before that stack doubles.
func stack(o *options, r *report) error {
	up, upOrigin, err := launchUpstream(o)
	if err != nil {
		return err
	}
	defer up.stop()
	var out []string
	for _, mode := range []string{"serve", "bare"} {
		cmd := exec.Command(o.prog("stackprobe"), "-upstream", upOrigin, "-mode", mode,
			"-pads", "0,512,1024,1536,1792,2048,2304,2560,3072")
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("stackprobe -mode %s: %w", mode, err)
		}
		out = append(out, string(b))
	}
	r.stack(out)
	return nil
}

// serverRow matches a row of serve's listener table for one of startup's
// servers.
var serverRow = regexp.MustCompile(`/s\d\d/mcp`)

// startup times `serve` with 20 configured servers from exec to the printed
// listener table.
func startup(o *options, r *report) error {
	up, upOrigin, err := launchUpstream(o)
	if err != nil {
		return err
	}
	defer up.stop()
	var cfg strings.Builder
	cfg.WriteString("mcp:\n  servers:\n")
	for i := range 20 {
		fmt.Fprintf(&cfg, "    s%02d:\n      url: %s/s%02d/mcp\n", i, upOrigin, i)
	}
	path := filepath.Join(o.tmp, "fastagent.config.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return err
	}
	var ds []time.Duration
	for range o.startups {
		cmd := exec.Command(o.prog("mcp-oauth-proxy"), "serve", "--config", path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		// Ready when the listener table has a row for every server.
		rows := 0
		sc := bufio.NewScanner(out)
		for rows < 20 && sc.Scan() {
			if serverRow.MatchString(sc.Text()) {
				rows++
			}
		}
		d := time.Since(t0)
		cmd.Process.Signal(syscall.SIGTERM)
		go io.Copy(io.Discard, out)
		cmd.Wait()
		if rows < 20 {
			return fmt.Errorf("serve with 20 servers printed %d of their rows: %s", rows, stderr.String())
		}
		ds = append(ds, d)
	}
	r.startup(median(ds), keychain())
	return nil
}
