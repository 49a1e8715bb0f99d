//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// nginxConf is a reverse proxy doing the proxy's job for one upstream:
// keep-alive both ways, the token injected. Its keep-alive limits are
// raised so that it does not close connections every 1,000 requests, which
// would cost it reconnects the Go servers do not pay.
const nginxConf = `daemon off;
master_process on;
worker_processes %[1]d;
worker_rlimit_nofile 20000;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
%[6]s
events {
	worker_connections 16384;
}

http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	keepalive_requests 1000000;
	keepalive_timeout 120s;

	upstream mcp {
		server %[3]s;
		keepalive 64;
		keepalive_requests 1000000;
	}

	server {
		listen %[4]s;
		location / {
			proxy_pass http://mcp;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Authorization "Bearer %[5]s";
			proxy_read_timeout 1h;
		}
	}
}
`

// startNginx runs nginx in front of upstream (host:port) with workers
// worker processes and returns its address.
func startNginx(dir string, workers int, upstream, token string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	dir, err = os.MkdirTemp(dir, "nginx")
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	user := ""
	if os.Geteuid() == 0 {
		// Workers would run as nobody, which cannot enter the temp dir.
		user = "user root;"
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, workers, dir, upstream, addr, token, user), 0o600); err != nil {
		return nil, "", err
	}
	cmd := exec.Command("nginx", "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
	errPath := filepath.Join(dir, "stderr")
	ef, err := os.Create(errPath)
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = ef, ef
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("nginx: %w", err)
	}
	p := &proc{name: "nginx", cmd: cmd, stderr: errPath, done: make(chan struct{})}
	procs = append(procs, p)
	go func() {
		cmd.Wait()
		ef.Close()
		close(p.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, "http://" + addr, nil
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, "", fmt.Errorf("nginx exited: %s %s", p.tail(), strings.TrimSpace(string(log)))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, "", fmt.Errorf("nginx is not listening on %s after 15s", addr)
		}
	}
}

// nginxVersion returns e.g. "nginx/1.22.1".
func nginxVersion() string {
	out, _ := exec.Command("nginx", "-v").CombinedOutput()
	s := strings.TrimSpace(string(out))
	return strings.TrimPrefix(s, "nginx version: ")
}
