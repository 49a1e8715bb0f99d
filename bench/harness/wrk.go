//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	rps      float64
	p50      time.Duration // with --latency
	requests int64
	bad      int64 // non-2xx responses and socket errors
	out      string
}

var (
	rpsRE      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	requestsRE = regexp.MustCompile(`(\d+) requests in`)
	non2xxRE   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	sockErrRE  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	p50RE      = regexp.MustCompile(`(?m)^\s+50%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk runs wrk with the POST script against url.
func runWrk(script, url, auth string, threads, conns int, d time.Duration, latency bool) (wrkResult, error) {
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + fmt.Sprintf("%.0fs", d.Seconds()), "-s", script}
	if latency {
		args = append(args, "--latency")
	}
	args = append(args, url)
	cmd := exec.Command("wrk", args...)
	cmd.Env = append(os.Environ(), "BENCH_AUTH="+auth)
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		return wrkResult{out: out}, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	var r wrkResult
	r.out = out
	m := rpsRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk %s: no Requests/sec in\n%s", url, out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := requestsRE.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := non2xxRE.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.bad += n
	}
	if m := sockErrRE.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.bad += n
		}
	}
	if m := p50RE.FindStringSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
		r.p50 = time.Duration(v * float64(unit))
	}
	return r, nil
}

// wrkVersion returns e.g. "wrk 4.1.0".
func wrkVersion() string {
	out, _ := exec.Command("wrk", "-v").CombinedOutput()
	first, _, _ := strings.Cut(string(out), "\n")
	if f := strings.Fields(first); len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return "wrk"
}
