//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report collects the Markdown output.
type report struct {
	b      strings.Builder
	notes  []string
	failed bool
}

type streamRow struct {
	name     string
	p50, max time.Duration
	added    int64 // KiB
}

type fanRow struct {
	name   string
	rounds [3]fanResult
}

func (r *report) note(s string) { r.notes = append(r.notes, s) }

func (r *report) String() string {
	s := r.b.String()
	for _, n := range r.notes {
		s += "\nNote: " + n + "\n"
	}
	return s
}

func (r *report) header(o *options) {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	fmt.Fprintf(&r.b, "## mcp-oauth-proxy benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&r.b, "Machine: %d cores (%s), Linux %s, %s, %s, %s.\n",
		runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version(), nginxVersion(), wrkVersion())
	fmt.Fprintf(&r.b, "Everything (wrk, upstream, proxies) shares these cores; other work on the machine adds noise, which the alternating rounds spread over all targets.\n")
	if o.upProcs > 0 {
		fmt.Fprintf(&r.b, "The upstream runs with GOMAXPROCS=%d (-upstream-procs).\n", o.upProcs)
	}
}

func (r *report) throughput(o *options, ts []*target) {
	fmt.Fprintf(&r.b, "\n### Throughput and latency\n\n")
	fmt.Fprintf(&r.b, "Small JSON-RPC POSTs, `wrk -t2 -c32` keep-alive, %d alternating rounds of %v per target (median, min–max);\n", o.rounds, o.dur)
	fmt.Fprintf(&r.b, "p50 latency from `wrk -t1 -c1 --latency`, %d alternating rounds of %v (median of the rounds' medians);\n", max(3, o.rounds), o.latDur)
	fmt.Fprintf(&r.b, "added p50 is that minus direct's; paired, the median of each round's difference to direct in the same round, which drift of the host between rounds moves less.\n")
	fmt.Fprintf(&r.b, "CPU is the serving processes' user+system time per request (nginx: master and workers).\n\n")
	var nginx, direct *target
	for _, t := range ts {
		switch t.name {
		case "nginx":
			nginx = t
		case "direct":
			direct = t
		}
	}
	fmt.Fprintln(&r.b, "| target | what | req/s | min–max | × nginx | × direct | CPU µs/req | p50 latency | added p50 | paired |")
	fmt.Fprintln(&r.b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range ts {
		rps := median(t.rps)
		ratio := func(o *target) string {
			if o == nil || median(o.rps) == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", rps/median(o.rps))
		}
		cpu := "–"
		if len(t.cpu) > 0 {
			cpu = fmt.Sprintf("%.0f", median(t.cpu))
		}
		p50 := median(t.p50)
		added, paired := "–", "–"
		if direct != nil && t != direct {
			added = fmt.Sprintf("%+d µs", (p50 - median(direct.p50)).Microseconds())
			paired = fmt.Sprintf("%+d µs", pairedAdded(t, direct).Microseconds())
		}
		fmt.Fprintf(&r.b, "| %s | %s | %.0f | %.0f–%.0f | %s | %s | %s | %d µs | %s | %s |\n",
			t.name, t.desc, rps, slices.Min(t.rps), slices.Max(t.rps), ratio(nginx), ratio(direct), cpu, p50.Microseconds(), added, paired)
	}
	if nginx != nil {
		for _, t := range ts {
			if t.name == "proxy" || t.name == "serve" {
				fmt.Fprintf(&r.b, "\n%s / nginx = **%.2f** (target ≥ 0.5, goal ≥ 1.0)", t.name, median(t.rps)/median(nginx.rps))
				if direct != nil {
					fmt.Fprintf(&r.b, "; added p50 latency %d µs, paired %d µs (target ≤ 100 µs)",
						(median(t.p50) - median(direct.p50)).Microseconds(), pairedAdded(t, direct).Microseconds())
				}
				fmt.Fprintln(&r.b)
			}
		}
	}
}

func (r *report) streaming(o *options, rows []streamRow) {
	fmt.Fprintf(&r.b, "\n### Streaming\n\n")
	fmt.Fprintf(&r.b, "Event delay: %d SSE events 20 ms apart, upstream write → client read (p50, max). Peak: added peak RSS\n", o.events)
	fmt.Fprintf(&r.b, "of the serving processes while one %d MiB response passes through (fresh processes; direct = the upstream itself).\n\n", o.bigSize>>20)
	fmt.Fprintln(&r.b, "| target | event delay p50 | max | 10 MiB added peak RSS |")
	fmt.Fprintln(&r.b, "|---|---:|---:|---:|")
	for _, row := range rows {
		fmt.Fprintf(&r.b, "| %s | %d µs | %d µs | %d KiB |\n", row.name, row.p50.Microseconds(), row.max.Microseconds(), row.added)
	}
}

func (r *report) fanOut(o *options, rows []fanRow) {
	fmt.Fprintf(&r.b, "\n### %d idle SSE streams\n\n", o.streams)
	fmt.Fprintf(&r.b, "Each stream a GET on the MCP endpoint, as an MCP client opens it, on its own connection.\n")
	fmt.Fprintf(&r.b, "Fresh processes; added RSS of the serving processes while the streams are held, against the RSS before the\n")
	fmt.Fprintf(&r.b, "first round (direct = the bare Go upstream holding them itself, the floor for a Go server). Three rounds with\n")
	fmt.Fprintf(&r.b, "requests in between: the first gets memory fresh from the kernel, which counts only where written; the others\n")
	fmt.Fprintf(&r.b, "reuse what the one before freed, as a long-running proxy does, and show the garbage collector's timing.\n")
	fmt.Fprintf(&r.b, "Per stream is the median of the rounds.\n\n")
	fmt.Fprintln(&r.b, "| target | served | failed | RSS before | round 1 | round 2 | round 3 | per stream |")
	fmt.Fprintln(&r.b, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range rows {
		served, failed := row.rounds[0].served, 0
		var per []float64
		var cells []string
		for _, res := range row.rounds {
			served, failed = min(served, res.served), failed+res.failed
			per = append(per, res.perStream())
			cells = append(cells, fmt.Sprintf("%.1f KiB", res.perStream()))
		}
		fmt.Fprintf(&r.b, "| %s | %d | %d | %.1f MiB | %s | **%.1f KiB** |\n",
			row.name, served, failed, float64(row.rounds[0].before)/1024, strings.Join(cells, " | "), median(per))
	}
}

func (r *report) startup(d time.Duration, kc bool) {
	where := "keychain unavailable (tokens in memory)"
	if kc {
		where = "Secret Service keychain, one read per server"
	}
	fmt.Fprintf(&r.b, "\n### Startup\n\n`serve` with 20 configured servers, exec → listener table printed: **%d ms** (median; %s).\n",
		d.Milliseconds(), where)
}

func (r *report) stack(tables []string) {
	fmt.Fprintf(&r.b, "\n### Stack per idle stream\n\n")
	fmt.Fprintf(&r.b, "bench/stackprobe: the goroutine stack memory per idle SSE stream (StackInuse after a collection) with the handler\n")
	fmt.Fprintf(&r.b, "called from that much more stack. Go doubles a stack that runs out, 8 → 16 KiB per stream; the largest padding\n")
	fmt.Fprintf(&r.b, "before that is the request path's headroom. serve: the proxy's handler with the status page's recorder;\n")
	fmt.Fprintf(&r.b, "bare: a net/http handler that holds the stream itself.\n")
	for _, t := range tables {
		fmt.Fprintf(&r.b, "\n%s", t)
	}
}

// pairedAdded is the median over the latency rounds of t's p50 minus
// direct's in the same round. A round measures every target one after the
// other, seconds apart; the rounds are minutes apart, and the host's load
// drifts in between.
func pairedAdded(t, direct *target) time.Duration {
	n := min(len(t.p50), len(direct.p50))
	d := make([]time.Duration, n)
	for i := range n {
		d[i] = t.p50[i] - direct.p50[i]
	}
	return median(d)
}
