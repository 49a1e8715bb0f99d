package oauth

import (
	"net"
	"net/url"
	"strings"
)

// Identity returns the key under which tokens for the MCP server at rawURL
// are stored. It is the function fast-agent 0.10 uses, so both programs
// share logins: the query, fragment and ;params are dropped, the scheme and
// host are lower-cased, a default port is dropped, trailing slashes are
// removed, and then one trailing /mcp or /sse segment (case-sensitive).
//
//	https://huggingface.co/mcp?login  →  https://huggingface.co
//	https://example.com/api/mcp//     →  https://example.com/api
//	https://example.com/mcp/sse       →  https://example.com/mcp
//
// A URL without a host is returned with only the suffix rule applied, as
// fast-agent does.
func Identity(rawURL string) string {
	return identity(rawURL, true)
}

// LegacyIdentity returns the key fast-agent 0.6.18–0.9.x used for rawURL:
// the same as [Identity] except that the host keeps its letter case and a
// default port is kept. Tokens are read under it as a fallback and never
// written under it.
func LegacyIdentity(rawURL string) string {
	return identity(rawURL, false)
}

// IdentityCandidates returns the keys to read for rawURL, canonical first;
// the legacy key is included only when it differs.
func IdentityCandidates(rawURL string) []string {
	id, legacy := Identity(rawURL), LegacyIdentity(rawURL)
	if legacy == id {
		return []string{id}
	}
	return []string{id, legacy}
}

func identity(rawURL string, canonical bool) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return trimServiceSuffix(rawURL)
	}
	host := u.Host
	if canonical {
		host = canonicalHost(u)
	}
	var userinfo string
	if u.User != nil {
		userinfo = u.User.String() + "@"
	}
	path := rawPath(rawURL)
	// Python's urlparse splits ;params off the last path segment only.
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if j := strings.IndexByte(path[i:], ';'); j >= 0 {
			path = path[:i+j]
		}
	}
	return strings.ToLower(u.Scheme) + "://" + userinfo + host + trimServiceSuffix(path)
}

// canonicalHost returns u's host in lower case, an IPv6 address in
// brackets, with its port unless it is the scheme's default.
func canonicalHost(u *url.URL) string {
	hostname := strings.ToLower(u.Hostname())
	port := u.Port()
	if scheme := strings.ToLower(u.Scheme); (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	switch {
	case port != "":
		return net.JoinHostPort(hostname, port) // brackets an IPv6 address itself
	case strings.Contains(hostname, ":"):
		return "[" + hostname + "]"
	}
	return hostname
}

// rawPath returns the path of rawURL, which has an authority, as written:
// Python's urlparse neither escapes nor unescapes it, so neither may the
// key (url.URL.EscapedPath would turn "ü" or a space into %XX).
func rawPath(rawURL string) string {
	rest := rawURL[strings.Index(rawURL, "//")+2:]
	i := strings.IndexAny(rest, "/?#")
	if i < 0 || rest[i] != '/' {
		return ""
	}
	rest = rest[i:]
	if j := strings.IndexAny(rest, "?#"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// trimServiceSuffix removes trailing slashes, then one trailing /mcp or
// /sse segment, then one trailing slash, as fast-agent does: the root has
// no slash, and "/api//mcp" becomes "/api/".
func trimServiceSuffix(path string) string {
	path = strings.TrimRight(path, "/")
	for _, suffix := range []string{"/mcp", "/sse"} {
		if strings.HasSuffix(path, suffix) {
			path = strings.TrimSuffix(path, suffix)
			break
		}
	}
	return strings.TrimSuffix(path, "/")
}
