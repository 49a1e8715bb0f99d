//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// eventDelays reads n events from origin/events, sent interval apart, and
// returns how long each took from the upstream's write to this reader: a
// proxy that holds events back shows here.
func eventDelays(origin string, n int, interval time.Duration) ([]time.Duration, error) {
	res, err := http.Get(fmt.Sprintf("%s/events?n=%d&interval=%s", origin, n, interval))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/events: %s", origin, res.Status)
	}
	var delays []time.Duration
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			sent, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("event %q: %v", v, err)
			}
			delays = append(delays, time.Since(time.Unix(0, sent)))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(delays) != n {
		return nil, fmt.Errorf("got %d events, want %d", len(delays), n)
	}
	return delays, nil
}

// bigPeak downloads size bytes from origin/big and returns how far the
// peak RSS of pids rose above what it was before. It resets and reads the
// kernel's high-water mark (VmHWM) where allowed, and samples VmRSS as
// well.
func bigPeak(origin string, size int, pids []int) (added int64, err error) {
	before, err := rssKiB(pids)
	if err != nil {
		return 0, err
	}
	hwm := true
	for _, pid := range pids {
		if os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) != nil {
			hwm = false
		}
	}
	var peak atomic.Int64
	peak.Store(before)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v, err := rssKiB(pids); err == nil && v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	res, err := http.Get(fmt.Sprintf("%s/big?size=%d", origin, size))
	if err == nil {
		var n int64
		n, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err == nil && n != int64(size) {
			err = fmt.Errorf("got %d bytes, want %d", n, size)
		}
	}
	close(stop)
	<-sampled
	if err != nil {
		return 0, err
	}
	p := peak.Load()
	if hwm {
		var sum int64
		for _, pid := range pids {
			v, err := statusKiB(pid, "VmHWM")
			if err != nil {
				return 0, err
			}
			sum += v
		}
		p = max(p, sum)
	}
	return p - before, nil
}

// fanResult is one SSE fan-out measurement.
type fanResult struct {
	served, failed int
	before, after  int64 // RSS, KiB
}

func (f fanResult) perStream() float64 {
	if f.served == 0 {
		return 0
	}
	return float64(f.after-f.before) / float64(f.served)
}

// fanOut opens n idle streams to url with the ssefan program and measures
// the RSS of pids while they are held, against before (KiB).
func fanOut(ssefan, url string, n int, pids []int, before int64) (fanResult, error) {
	r := fanResult{before: before}
	cmd := exec.Command(ssefan, "-url", url, "-n", strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return r, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return r, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return r, fmt.Errorf("ssefan: %v", err)
	}
	if _, err := fmt.Sscanf(line, "served %d failed %d", &r.served, &r.failed); err != nil {
		return r, fmt.Errorf("ssefan said %q", line)
	}
	// Let the last streams' setup garbage be collected, then take the
	// largest of a few readings.
	time.Sleep(2 * time.Second)
	for range 5 {
		v, err := rssKiB(pids)
		if err != nil {
			return r, err
		}
		r.after = max(r.after, v)
		time.Sleep(200 * time.Millisecond)
	}
	return r, nil
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
