package config

import (
	"net"
	"strconv"
	"strings"
)

type rawProxy struct {
	Listen any `mapstructure:"listen"`
}

// proxy builds proxy.listen. It runs after the servers are built, to check
// the names against them.
func (b *builder) proxy(v any, c *Config) map[string]string {
	path := keyPath{"proxy"}
	m, ok := b.mapping(v, path)
	if !ok || m == nil {
		return nil
	}
	var raw rawProxy
	b.decode(m, &raw, path, proxyKeys)
	path = path.child("listen")
	entries, ok := b.mapping(raw.Listen, path)
	if !ok || entries == nil {
		return nil
	}
	names := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		names[i] = s.Name
	}

	listen := make(map[string]string, len(entries))
	owner := make(map[string]string) // address → the first server listening there
	for _, name := range sortedKeys(entries) {
		p := path.child(name)
		addr, host, port, ok := b.listenAddr(entries[name], p)
		if !ok {
			continue
		}
		listen[name] = addr
		if s, found := c.Server(name); !found {
			b.warnf(p, "there is no server %q in mcp.servers%s", name, suggest(name, names))
		} else if s.Transport == Stdio {
			b.warnf(p, "%q is a stdio server; only http and sse servers are proxied", name)
		}
		if other, taken := owner[addr]; taken {
			b.errorf(p, "%s is also the address of %q", addr, other)
		} else {
			owner[addr] = name
		}

		local, everywhere := classifyHost(host)
		if !local {
			b.warnf(p, "%s accepts connections from other machines, and whoever connects uses your OAuth tokens", addr)
		}
		if local || everywhere {
			// The OAuth callback listens on localhost:redirect_port.
			for _, s := range c.Servers {
				if s.Transport != Stdio && s.Auth.OAuth && s.Auth.RedirectPort == port {
					b.errorf(p, "port %d is the OAuth callback port (auth.redirect_port) of server %q", port, s.Name)
					break
				}
			}
		}
	}
	return listen
}

// listenAddr checks one proxy.listen value.
func (b *builder) listenAddr(v any, path keyPath) (addr, host string, port int, ok bool) {
	const example = "127.0.0.1:8101"
	switch v := v.(type) {
	case int:
		b.errorf(path, "%d is not host:port (did you mean \"127.0.0.1:%d\"?)", v, v)
		return "", "", 0, false
	case string:
		addr = strings.TrimSpace(v)
	default:
		b.errorf(path, "must be host:port like %s, not %s", example, kind(v))
		return "", "", 0, false
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		if n, err := strconv.Atoi(addr); err == nil {
			b.errorf(path, "%q is not host:port (did you mean \"127.0.0.1:%d\"?)", addr, n)
		} else {
			b.errorf(path, "%q is not host:port like %s", addr, example)
		}
		return "", "", 0, false
	}
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		b.errorf(path, "%q has an invalid port (want 1-65535)", addr)
		return "", "", 0, false
	}
	return addr, host, port, true
}

// classifyHost reports whether a listener on host is reachable only from
// this machine, and whether it listens on every interface.
func classifyHost(host string) (local, everywhere bool) {
	if strings.EqualFold(host, "localhost") {
		return true, false
	}
	if host == "" {
		return false, true
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil: // a host name: it may resolve anywhere
		return false, false
	case ip.IsLoopback():
		return true, false
	case ip.IsUnspecified():
		return false, true
	}
	return false, false
}
