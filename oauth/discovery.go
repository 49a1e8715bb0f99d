package oauth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// DefaultProtocolVersion is the MCP-Protocol-Version sent on discovery
// requests when Discoverer.ProtocolVersion is empty.
const DefaultProtocolVersion = "2025-11-25"

// Discoverer finds the authorization server of an MCP server and registers
// clients with it (MCP authorization 2025-11-25, with the 2025-06-18 and
// 2025-03-26 fallbacks). The zero value is ready to use.
type Discoverer struct {
	// HTTPClient sends the requests. Nil means a client with a 30 s
	// timeout. Redirects are never followed, whatever the client says.
	HTTPClient *http.Client
	// ProtocolVersion is sent as MCP-Protocol-Version on discovery
	// requests; "" means DefaultProtocolVersion.
	ProtocolVersion string
	// AllowInsecureHTTP admits plain-http URLs to hosts other than
	// loopback (see CheckURL).
	AllowInsecureHTTP bool
	// Logger receives each discovery request (URL and status) and the
	// choices made, at Debug. Nil discards them.
	Logger *slog.Logger
}

// Discovery is what Discover learnt about an MCP server.
type Discovery struct {
	// ResourceMetadataURL is where the protected resource metadata was
	// found; "" when there was none.
	ResourceMetadataURL string
	// ResourceMetadata is nil when the server publishes none (a 2025-03-26
	// server).
	ResourceMetadata *ProtectedResourceMetadata
	// Resource is the RFC 8707 resource indicator to send in authorization
	// and token requests: the metadata's resource verbatim, else
	// CanonicalResource of the server URL.
	Resource string
	// Issuer is the authorization server used: an entry of the metadata's
	// authorization_servers as written there, or the MCP server's origin
	// when there is no metadata.
	Issuer string
	// Metadata is never nil: when the authorization server publishes no
	// metadata it holds the default endpoints /authorize, /token and
	// /register at the issuer's origin.
	Metadata *AuthServerMetadata
	// MetadataURL is where Metadata was found; "" when defaults were used.
	MetadataURL string
}

// Discover runs discovery for the MCP endpoint serverURL after it answered
// with the challenge ch (nil when there was none):
//
//  1. Protected resource metadata (RFC 9728): ch.ResourceMetadata when
//     set, and only it; otherwise the path-inserted well-known URL, then the
//     root one. A 3xx or 4xx means "not here", a 5xx or a transport error
//     fails discovery. The metadata's resource must cover serverURL (same
//     origin, path prefix by segment), else Discover fails before
//     contacting any authorization server.
//  2. Authorization server metadata (RFC 8414 or OpenID Connect Discovery)
//     for each listed authorization server in order, the first that answers
//     winning; without protected resource metadata, for the MCP server's
//     origin (2025-03-26). When none answers, default endpoints are used.
//
// Every URL involved must pass CheckURL.
func (d *Discoverer) Discover(ctx context.Context, serverURL string, ch *BearerChallenge) (*Discovery, error) {
	if err := CheckURL(serverURL, d.AllowInsecureHTTP); err != nil {
		return nil, err
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("oauth: invalid MCP server URL %q: %w", serverURL, err)
	}
	client := noFollowClient(d.HTTPClient)

	disc := &Discovery{Resource: CanonicalResource(serverURL)}
	prm, prmURL, err := d.protectedResourceMetadata(ctx, client, u, ch)
	if err != nil {
		return nil, err
	}
	issuers := []string{urlOrigin(u)}
	if prm != nil {
		if !resourceMatches(u, prm.Resource) {
			return nil, fmt.Errorf("oauth: protected resource metadata at %s is for resource %s, which does not cover the MCP server %s",
				prmURL, prm.Resource, displayURL(u))
		}
		disc.ResourceMetadataURL, disc.ResourceMetadata, disc.Resource = prmURL, prm, prm.Resource
		if len(prm.AuthorizationServers) > 0 {
			issuers = prm.AuthorizationServers
		} else {
			d.logger().Debug("protected resource metadata lists no authorization server; using the MCP server's origin",
				"url", prmURL, "issuer", issuers[0])
		}
	}

	for _, issuer := range issuers {
		if err := CheckURL(issuer, d.AllowInsecureHTTP); err != nil {
			return nil, fmt.Errorf("%w (authorization server of %s)", err, displayURL(u))
		}
		meta, metaURL, err := d.authServerMetadata(ctx, client, issuer)
		if err != nil {
			return nil, err
		}
		if meta == nil {
			continue
		}
		if err := meta.checkUsable(issuer, metaURL, d.AllowInsecureHTTP); err != nil {
			return nil, err
		}
		disc.Issuer, disc.Metadata, disc.MetadataURL = issuer, meta, metaURL
		return disc, nil
	}

	// No authorization server publishes metadata. The 2025-03-26 spec says
	// to use the default endpoints at the authorization base URL (the MCP
	// server's origin). With protected resource metadata, the digest of the
	// spec (§1.12 step 4) and the TS SDK (new URL("/authorize", as)) do the
	// same at the first listed server's origin; so do we, rather than fail.
	issuer := issuers[0]
	iu, _ := url.Parse(issuer) // passed CheckURL above
	base := urlOrigin(iu)
	disc.Issuer = issuer
	disc.Metadata = &AuthServerMetadata{
		Issuer:                issuer,
		AuthorizationEndpoint: base + "/authorize",
		TokenEndpoint:         base + "/token",
		RegistrationEndpoint:  base + "/register",
	}
	d.logger().Debug("no authorization server metadata; using default endpoints", "issuer", issuer, "base", base)
	return disc, nil
}

// protectedResourceMetadata returns the first usable protected resource
// metadata for u and where it was found, or nil when there is none.
func (d *Discoverer) protectedResourceMetadata(ctx context.Context, client *http.Client, u *url.URL, ch *BearerChallenge) (*ProtectedResourceMetadata, string, error) {
	if ch != nil && ch.ResourceMetadata != "" {
		// The server named the document: use it alone, and treat a bad
		// document as an error rather than a reason to look elsewhere.
		if err := CheckURL(ch.ResourceMetadata, d.AllowInsecureHTTP); err != nil {
			return nil, "", fmt.Errorf("%w (resource_metadata in the WWW-Authenticate challenge of %s)", err, displayURL(u))
		}
		res, err := d.get(ctx, client, ch.ResourceMetadata)
		if err != nil {
			return nil, "", err
		}
		if res.StatusCode >= 500 {
			return nil, "", discoveryStatusError("protected resource metadata", res)
		}
		if res.StatusCode < 200 || res.StatusCode > 299 {
			d.logger().Debug("no protected resource metadata at the challenge's URL", "url", res.URL, "status", res.StatusCode)
			return nil, "", nil
		}
		var prm ProtectedResourceMetadata
		if err := res.decode(&prm); err != nil {
			return nil, "", err
		}
		if err := prm.validate(); err != nil {
			return nil, "", fmt.Errorf("oauth: protected resource metadata at %s: %w", res.URL, err)
		}
		return &prm, res.URL, nil
	}

	base := urlOrigin(u) + "/.well-known/oauth-protected-resource"
	var candidates []string
	if p := strings.TrimRight(u.EscapedPath(), "/"); p != "" {
		candidates = append(candidates, base+p)
	}
	candidates = append(candidates, base)
	for _, c := range candidates {
		res, err := d.get(ctx, client, c)
		if err != nil {
			return nil, "", err
		}
		if res.StatusCode >= 500 {
			return nil, "", discoveryStatusError("protected resource metadata", res)
		}
		if res.StatusCode < 200 || res.StatusCode > 299 {
			continue
		}
		var prm ProtectedResourceMetadata
		err = res.decode(&prm)
		if err == nil {
			err = prm.validate()
		}
		if err != nil {
			// Sites that answer every path with an HTML page are common;
			// a well-known URL that holds no metadata is "not here".
			d.logger().Debug("ignoring unusable protected resource metadata", "url", c, "err", err)
			continue
		}
		return &prm, c, nil
	}
	return nil, "", nil
}

// authServerMetadata returns the metadata of issuer and where it was
// found, trying the locations of MetadataURLs in order, or nil when none
// holds usable metadata.
func (d *Discoverer) authServerMetadata(ctx context.Context, client *http.Client, issuer string) (*AuthServerMetadata, string, error) {
	candidates, err := MetadataURLs(issuer)
	if err != nil {
		return nil, "", err
	}
	for _, c := range candidates {
		res, err := d.get(ctx, client, c)
		if err != nil {
			return nil, "", err
		}
		if res.StatusCode >= 500 {
			return nil, "", discoveryStatusError("authorization server metadata", res)
		}
		if res.StatusCode < 200 || res.StatusCode > 299 {
			continue
		}
		var meta AuthServerMetadata
		err = res.decode(&meta)
		if err == nil {
			err = meta.complete()
		}
		if err != nil {
			d.logger().Debug("ignoring unusable authorization server metadata", "url", c, "err", err)
			continue
		}
		if meta.Issuer != issuer {
			// RFC 8414 §3.3 says to reject this, but deployed servers (and
			// the 2025-03-26 conformance scenario, whose issuer is
			// <origin>/oauth) get it wrong while their endpoints work.
			d.logger().Debug("authorization server metadata names another issuer", "url", c, "issuer", meta.Issuer, "want", issuer)
		}
		return &meta, c, nil
	}
	return nil, "", nil
}

// MetadataURLs returns the locations of the metadata of the authorization
// server issuer, in the order MCP 2025-11-25 prescribes. For an issuer
// with a path /p: <origin>/.well-known/oauth-authorization-server/p,
// <origin>/.well-known/openid-configuration/p and
// <origin>/p/.well-known/openid-configuration (never the root locations).
// Without a path: <origin>/.well-known/oauth-authorization-server, then
// <origin>/.well-known/openid-configuration. The query is dropped.
func MetadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, fmt.Errorf("oauth: authorization server %q is not an absolute URL", issuer)
	}
	o := urlOrigin(u)
	p := strings.TrimRight(u.EscapedPath(), "/")
	if p == "" {
		return []string{
			o + "/.well-known/oauth-authorization-server",
			o + "/.well-known/openid-configuration",
		}, nil
	}
	return []string{
		o + "/.well-known/oauth-authorization-server" + p,
		o + "/.well-known/openid-configuration" + p,
		o + p + "/.well-known/openid-configuration",
	}, nil
}

func (d *Discoverer) get(ctx context.Context, client *http.Client, rawURL string) (*jsonResponse, error) {
	if err := CheckURL(rawURL, d.AllowInsecureHTTP); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("MCP-Protocol-Version", d.protocolVersion())
	h.Set("Accept", "application/json")
	res, err := getJSON(ctx, client, rawURL, h)
	if err != nil {
		d.logger().Debug("discovery request", "url", rawURL, "err", err)
		return nil, err
	}
	d.logger().Debug("discovery request", "url", rawURL, "status", res.StatusCode)
	return res, nil
}

func discoveryStatusError(what string, res *jsonResponse) error {
	return fmt.Errorf("oauth: %s at %s: server error: HTTP %d", what, res.URL, res.StatusCode)
}

func (d *Discoverer) protocolVersion() string {
	if d.ProtocolVersion == "" {
		return DefaultProtocolVersion
	}
	return d.ProtocolVersion
}

func (d *Discoverer) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// CanonicalResource returns the canonical URI of the MCP server at
// serverURL for use as an RFC 8707 resource indicator: scheme and host in
// lower case, no default port, no user info, query or fragment. The path is
// kept as it is; no trailing slash is added. An unparsable URL is returned
// unchanged.
//
//	HTTPS://MCP.Example.com:443/Server/mcp?x=1#f  →  https://mcp.example.com/Server/mcp
func CanonicalResource(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil || u.Host == "" {
		return serverURL
	}
	return urlOrigin(u) + u.EscapedPath()
}

// displayURL returns u for messages: without user info, query or fragment,
// which may hold credentials (an API key in the query of an MCP URL).
func displayURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// urlOrigin returns scheme://host[:port] of u in lower case, without a
// default port.
func urlOrigin(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + canonicalHost(u)
}
