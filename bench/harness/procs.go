//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process the harness started; every one is stopped by stopAll.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr string // file its stderr goes to
	done   chan struct{}
}

var procs []*proc

// start runs a program whose first stdout line matters (an address) and
// returns that line.
func start(name, logDir string, env []string, prog string, args ...string) (*proc, string, error) {
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	errPath := filepath.Join(logDir, name+".stderr")
	ef, err := os.Create(errPath)
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = ef
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	// Its own process group, so a Ctrl-C of the terminal reaches the
	// harness only, which then stops everything in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, stderr: errPath, done: make(chan struct{})}
	procs = append(procs, p)
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, br)
	}()
	go func() {
		cmd.Wait()
		ef.Close()
		close(p.done)
	}()
	select {
	case line := <-lines:
		if line == "" {
			<-p.done
			return nil, "", fmt.Errorf("%s exited: %s", name, p.tail())
		}
		return p, line, nil
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s printed no address in 30s: %s", name, p.tail())
	}
}

// tail returns the end of the process's stderr.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.stderr)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func stopAll() {
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	procs = nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// statusKiB reads a "Vm…:   N kB" line of /proc/PID/status.
func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// rssKiB sums VmRSS over pids.
func rssKiB(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		v, err := statusKiB(pid, "VmRSS")
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// cpuTicks sums user and system time of pids, in clock ticks.
func cpuTicks(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name may hold spaces; fields are counted after ")".
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += ut + st
	}
	return sum
}

// ticksPerSecond is USER_HZ, 100 on every Linux the harness runs on.
const ticksPerSecond = 100

// withChildren returns pid and its direct children (nginx's workers).
func withChildren(pid int) []int {
	pids := []int{pid}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			pids = append(pids, child)
		}
	}
	return pids
}
