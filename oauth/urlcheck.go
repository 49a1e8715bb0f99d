package oauth

import (
	"errors"
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
		// url.Error repeats the whole URL; name it without its query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("oauth: invalid URL %q: %w", cutQuery(raw), err)
	}
	// The query or user info may hold a secret.
	if raw = cutQuery(raw); u.User != nil {
		raw = displayURL(u)
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

// cutQuery returns raw up to its query or fragment.
func cutQuery(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
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
