package oauth

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckURL reports whether raw may be used as an OAuth or MCP endpoint: it
// must be an absolute https URL with a host, or an http URL whose host is
// loopback (localhost, 127.0.0.0/8, ::1). allowInsecure also admits http to
// any host. Other schemes (javascript:, data:, file:, …) are always
// refused. The error names the URL.
//
// Every URL learnt from a server (metadata locations, issuers, endpoints)
// passes through it before it is fetched or shown to the user.
func CheckURL(raw string, allowInsecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("oauth: invalid URL %q: %w", raw, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		if u.Scheme == "" {
			return fmt.Errorf("oauth: URL %q is not absolute", raw)
		}
		return fmt.Errorf("oauth: URL %q: scheme %q is not allowed, want https", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("oauth: URL %q has no host", raw)
	}
	if scheme == "http" && !allowInsecure && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("oauth: refusing plain-http URL %q: use https, or pass --allow-insecure-http to allow http to hosts other than localhost", raw)
	}
	return nil
}

// isLoopbackHost reports whether host (without port or brackets) names
// the local machine.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
