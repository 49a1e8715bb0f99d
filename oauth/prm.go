package oauth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ProtectedResourceMetadata is an OAuth 2.0 Protected Resource Metadata
// document (RFC 9728 §2), which an MCP server publishes to name its
// authorization servers. Unknown fields are ignored.
type ProtectedResourceMetadata struct {
	Resource                          string   `json:"resource"`
	AuthorizationServers              []string `json:"authorization_servers,omitempty"`
	JWKSURI                           string   `json:"jwks_uri,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported            []string `json:"bearer_methods_supported,omitempty"`
	ResourceSigningAlgValuesSupported []string `json:"resource_signing_alg_values_supported,omitempty"`
	ResourceName                      string   `json:"resource_name,omitempty"`
	ResourceDocumentation             string   `json:"resource_documentation,omitempty"`
	ResourcePolicyURI                 string   `json:"resource_policy_uri,omitempty"`
	ResourceTOSURI                    string   `json:"resource_tos_uri,omitempty"`
	DPoPBoundAccessTokensRequired     bool     `json:"dpop_bound_access_tokens_required,omitempty"`
}

// validate checks the fields discovery relies on.
func (m *ProtectedResourceMetadata) validate() error {
	if m.Resource == "" {
		return errors.New("no resource")
	}
	if u, err := url.Parse(m.Resource); err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("resource %q is not an absolute URL", m.Resource)
	}
	return nil
}

// resourceMatches reports whether the protected resource identifier
// resource covers the MCP endpoint upstream: the same origin (scheme, host
// and port, case-insensitive, default ports implied) and a path that is a
// segment-wise prefix of upstream's ("/api" covers "/api/mcp", not
// "/api123"). This is the TS SDK's checkResourceAllowed; RFC 9728 §3.3
// asks for equality, which servers that publish one document for a parent
// path do not meet.
func resourceMatches(upstream *url.URL, resource string) bool {
	r, err := url.Parse(resource)
	if err != nil || !r.IsAbs() {
		return false
	}
	if !strings.EqualFold(upstream.Scheme, r.Scheme) ||
		!strings.EqualFold(upstream.Hostname(), r.Hostname()) ||
		effectivePort(upstream) != effectivePort(r) {
		return false
	}
	withSlash := func(p string) string {
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		return p
	}
	return strings.HasPrefix(withSlash(upstream.EscapedPath()), withSlash(r.EscapedPath()))
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}
