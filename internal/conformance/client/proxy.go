package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/freeport"
)

// loginPrefix starts the line the proxy prints once per login flow; the
// authorization URL is the last word of that line.
const loginPrefix = "Open this link to authorize "

// stopGrace is how long the proxy gets to exit after SIGTERM before it is killed.
const stopGrace = 5 * time.Second

// proxyProcess is a running mcp-oauth-proxy whose output is copied to our
// stderr (the suite records it) and watched for login links.
type proxyProcess struct {
	cmd    *exec.Cmd
	out    io.Writer // receives the proxy's output
	log    *slog.Logger
	exited chan struct{} // closed once cmd.Wait has returned

	cancelLogins context.CancelFunc
	logins       sync.WaitGroup // the output scanner and the link followers
}

func startProxy(bin string, args []string, out io.Writer, log *slog.Logger) (*proxyProcess, error) {
	pr, pw := io.Pipe()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = pw // same writer: exec serializes writes, lines stay whole
	cmd.Stderr = pw
	// Output pipes held open by a leftover grandchild must not stall Wait.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting proxy (set MCP_OAUTH_PROXY_BIN to its path): %w", err)
	}
	log.Info("started proxy", "bin", bin, "pid", cmd.Process.Pid)

	ctx, cancel := context.WithCancel(context.Background())
	p := &proxyProcess{cmd: cmd, out: out, log: log, exited: make(chan struct{}), cancelLogins: cancel}
	p.logins.Add(1)
	go func() {
		defer p.logins.Done()
		p.scan(ctx, pr)
	}()
	go func() {
		_ = cmd.Wait() // judged by ProcessState in stop
		pw.Close()
		close(p.exited)
	}()
	return p, nil
}

// scan copies the proxy's output line by line and follows each login link.
func (p *proxyProcess) scan(ctx context.Context, r io.Reader) {
	client := &http.Client{Timeout: 20 * time.Second}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintf(p.out, "[proxy] %s\n", line)
		if link := loginLink(line); link != "" {
			p.logins.Add(1)
			go func() {
				defer p.logins.Done()
				follow(ctx, client, link, p.log)
			}()
		}
	}
	if err := sc.Err(); err != nil {
		p.log.Warn("reading proxy output", "err", err)
		_, _ = io.Copy(p.out, r) // keep draining so the proxy never blocks
	}
}

// loginLink returns the authorization URL of a login line, or "".
func loginLink(line string) string {
	i := strings.Index(line, loginPrefix)
	if i < 0 {
		return ""
	}
	fields := strings.Fields(line[i+len(loginPrefix):])
	if len(fields) < 2 { // "<name>: <URL>"
		return ""
	}
	link := strings.Trim(fields[len(fields)-1], `"'`)
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return link
}

// follow completes a login like a browser would: the suite's authorization
// server approves at once and redirects to the proxy's callback listener.
func follow(ctx context.Context, client *http.Client, link string, log *slog.Logger) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		log.Error("login link", "err", err)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		// The failing URL may be the callback, which carries the code.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		log.Error("following login link failed", "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Warn("login link ended with an unexpected status", "status", resp.Status, "host", resp.Request.URL.Host, "path", resp.Request.URL.Path)
		return
	}
	log.Info("followed login link", "status", resp.Status, "host", resp.Request.URL.Host, "path", resp.Request.URL.Path)
}

// waitListening returns once addr accepts connections.
func (p *proxyProcess) waitListening(ctx context.Context, addr string) error {
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("proxy exited (%v) before listening on %s", p.cmd.ProcessState, addr)
		case <-ctx.Done():
			return fmt.Errorf("proxy is not listening on %s: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM, kills the proxy if it is still running after
// stopGrace, and reports anything but a clean exit.
func (p *proxyProcess) stop() error {
	defer func() {
		p.cancelLogins()
		p.logins.Wait()
	}()
	select {
	case <-p.exited:
		return fmt.Errorf("proxy exited early: %v", p.cmd.ProcessState)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.log.Warn("signalling proxy", "err", err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("proxy did not exit within %v of SIGTERM; killed", stopGrace)
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("proxy did not exit cleanly on SIGTERM: %v", p.cmd.ProcessState)
	}
	return nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 (see freeport:
// the proxy binds the callback port only when a login starts).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := freeport.Listen()
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close() // held until all are picked, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
