package oauthtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// PRMMode says where a ResourceServer serves its RFC 9728 protected
// resource metadata (PRM).
type PRMMode uint8

const (
	// PRMPathInserted serves it at /.well-known/oauth-protected-resource
	// followed by the endpoint path; its resource is the endpoint URL.
	PRMPathInserted PRMMode = iota
	// PRMRoot serves it at /.well-known/oauth-protected-resource; its
	// resource is the origin.
	PRMRoot
	// PRMCustom serves it at ResourceOptions.PRMPath, which clients can
	// only learn from the challenge; its resource is the endpoint URL.
	PRMCustom
	// PRMNone serves none, as 2025-03-26 servers do.
	PRMNone
)

// ResourceOptions configures a ResourceServer. The zero value protects an
// echo JSON-RPC endpoint at /mcp, with path-inserted PRM that is also
// named in the challenge, and no scopes.
type ResourceOptions struct {
	// Path is the MCP endpoint path; "" means "/mcp".
	Path string
	// Handler receives every authorized request, whatever its path (a
	// legacy SSE server has two). Nil means a tiny JSON-RPC handler at
	// Path: initialize gets a minimal InitializeResult, ping an empty
	// result, any other request {"method":…,"params":…} back, and
	// notifications 202.
	Handler http.Handler

	// PRM says where the metadata is served.
	PRM PRMMode
	// PRMPath is where PRMCustom serves the metadata; "" means
	// "/custom/metadata/location.json".
	PRMPath string
	// OmitResourceMetadata leaves resource_metadata out of the
	// WWW-Authenticate challenges, so that clients must probe the
	// well-known URIs.
	OmitResourceMetadata bool
	// PRMResource, if set, replaces the resource of the metadata (e.g.
	// "https://evil.example.com/mcp" for mismatch tests).
	PRMResource string
	// EditPRM, if set, may change every metadata document before it is
	// sent (e.g. empty authorization_servers).
	EditPRM func(doc map[string]any)
	// ScopesSupported is the scopes_supported of the metadata; nil leaves
	// it out.
	ScopesSupported []string

	// ChallengeScope is the scope= of the 401 challenge; "" leaves it out.
	ChallengeScope string
	// RequiredScopes, if set, returns the scopes a request needs. A valid
	// token lacking one of them gets 403 error="insufficient_scope" with
	// scope= the granted scopes plus the needed ones.
	RequiredScopes func(r *http.Request, body []byte) []string
	// Unprotected, if set, picks requests that need no token (e.g.
	// initialize in the step-up scenario; see JSONRPCMethod).
	Unprotected func(r *http.Request, body []byte) bool
	// IgnoreAudience accepts tokens issued for any resource. Otherwise a
	// token issued for a resource other than this server's (its endpoint
	// URL, its origin for PRMRoot, or a same-origin PRMResource) gets 401.
	// Tokens issued without a resource are always accepted.
	IgnoreAudience bool

	// SameOrigin serves the resource from the AuthServer's origin, for the
	// 2025-03-26 scenarios where the AS and the MCP server share it. AS
	// endpoints win over Handler.
	SameOrigin bool
}

// ResourceServer is a protected MCP endpoint in front of any http.Handler
// (e.g. a go-sdk MCP server): it answers requests without a valid bearer
// token from its AuthServer with 401 and a WWW-Authenticate challenge,
// and serves protected resource metadata. All methods are safe for
// concurrent use.
type ResourceServer struct {
	URL      string // origin, e.g. http://127.0.0.1:PORT
	Endpoint string // URL + Path

	t     testing.TB
	srv   *httptest.Server // nil with SameOrigin
	close sync.Once
	rec   recorder

	mu   sync.Mutex
	opts ResourceOptions
	as   *AuthServer
}

// NewResourceServer starts a ResourceServer that accepts the tokens of as;
// it is closed when the test ends.
func NewResourceServer(t testing.TB, as *AuthServer, opts ResourceOptions) *ResourceServer {
	t.Helper()
	if as == nil {
		t.Fatal("oauthtest: NewResourceServer: nil AuthServer")
	}
	if opts.Path == "" {
		opts.Path = "/mcp"
	}
	if !strings.HasPrefix(opts.Path, "/") || strings.ContainsAny(opts.Path, "?#") {
		t.Fatalf("oauthtest: ResourceOptions.Path %q must be a path starting with /", opts.Path)
	}
	if opts.PRMPath == "" {
		opts.PRMPath = "/custom/metadata/location.json"
	}
	rs := &ResourceServer{t: t, opts: opts, as: as}
	if opts.SameOrigin {
		var h http.Handler = rs
		as.extra.Store(&h)
		// Detach when this test ends, in case the AS outlives it.
		t.Cleanup(func() { as.extra.CompareAndSwap(&h, nil) })
		rs.URL = as.URL
	} else {
		// URL is set before serving starts (see NewAuthServer).
		rs.srv = httptest.NewUnstartedServer(rs)
		rs.URL = "http://" + rs.srv.Listener.Addr().String()
	}
	rs.Endpoint = rs.URL + opts.Path
	if rs.srv != nil {
		rs.srv.Start()
		t.Cleanup(rs.Close)
	}
	return rs
}

// Close shuts the server down, cutting open streams. It is called when
// the test ends. With SameOrigin it does nothing: close the AuthServer.
func (rs *ResourceServer) Close() {
	if rs.srv == nil {
		return
	}
	rs.close.Do(func() {
		rs.srv.CloseClientConnections()
		rs.srv.Close()
	})
}

// Requests returns a copy of every request received, in arrival order;
// Header holds the Authorization each carried.
func (rs *ResourceServer) Requests() []Request { return rs.rec.all() }

// Count returns how many requests reached endpoint: EndpointPRM,
// EndpointMCP (everything protected) or EndpointOther.
func (rs *ResourceServer) Count(endpoint string) int { return rs.rec.count(endpoint) }

// Update changes the options while the server runs, e.g. to start
// requiring a scope. Path and SameOrigin cannot change.
func (rs *ResourceServer) Update(f func(*ResourceOptions)) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	o := rs.opts
	f(&o)
	if o.Path != rs.opts.Path || o.SameOrigin != rs.opts.SameOrigin {
		rs.t.Errorf("oauthtest: ResourceServer.Update cannot change Path or SameOrigin")
		return
	}
	if o.PRMPath == "" {
		o.PRMPath = "/custom/metadata/location.json"
	}
	rs.opts = o
}

// SetAuthServer makes the server trust as instead, and name it in its
// metadata (an authorization server migration).
func (rs *ResourceServer) SetAuthServer(as *AuthServer) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.as = as
}

// MetadataURL returns the URL of the protected resource metadata, or ""
// with PRMNone.
func (rs *ResourceServer) MetadataURL() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if p := rs.prmPath(rs.opts); p != "" {
		return rs.URL + p
	}
	return ""
}

// Resource returns the resource the metadata announces (PRMResource when
// set), which a client sends as its RFC 8707 resource.
func (rs *ResourceServer) Resource() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.resource(rs.opts)
}

func (rs *ResourceServer) prmPath(o ResourceOptions) string {
	switch o.PRM {
	case PRMPathInserted:
		return "/.well-known/oauth-protected-resource" + strings.TrimSuffix(o.Path, "/")
	case PRMRoot:
		return "/.well-known/oauth-protected-resource"
	case PRMCustom:
		return o.PRMPath
	}
	return ""
}

// canonical is the server's own resource identifier.
func (rs *ResourceServer) canonical(o ResourceOptions) string {
	if o.PRM == PRMRoot {
		return rs.URL
	}
	return rs.URL + o.Path
}

func (rs *ResourceServer) resource(o ResourceOptions) string {
	if o.PRMResource != "" {
		return o.PRMResource
	}
	return rs.canonical(o)
}

// audienceOK reports whether a token issued for resource may be used here.
func (rs *ResourceServer) audienceOK(o ResourceOptions, resource string) bool {
	if o.IgnoreAudience || resource == "" {
		return true
	}
	ok := []string{rs.canonical(o)}
	if o.PRM == PRMNone {
		ok = append(ok, rs.URL, rs.URL+"/", rs.URL+o.Path)
	}
	if u, err := url.Parse(o.PRMResource); err == nil && o.PRMResource != "" && u.Scheme+"://"+u.Host == rs.URL {
		ok = append(ok, o.PRMResource)
	}
	return slices.Contains(ok, resource)
}

// ServeHTTP serves the metadata and guards everything else.
func (rs *ResourceServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rs.mu.Lock()
	o, as := rs.opts, rs.as
	rs.mu.Unlock()

	endpoint := EndpointMCP
	prm := rs.prmPath(o)
	switch {
	case prm != "" && r.URL.Path == prm:
		endpoint = EndpointPRM
	case strings.HasPrefix(r.URL.Path, "/.well-known/"):
		endpoint = EndpointOther
	}
	body, err := readBody(r)
	tw := rs.rec.start(w, r, endpoint, body, time.Now())
	defer func() { rs.t.Logf("oauthtest: RS %s %s → %d %s", r.Method, r.URL.Path, tw.status, tw.errCode) }()
	switch {
	case err != nil:
		http.Error(tw, err.Error(), http.StatusRequestEntityTooLarge)
	case endpoint == EndpointPRM:
		rs.servePRM(tw, r, o, as)
	case endpoint == EndpointOther:
		http.NotFound(tw, r)
	default:
		rs.guard(tw, r, body, o, as)
	}
}

func (rs *ResourceServer) servePRM(w http.ResponseWriter, r *http.Request, o ResourceOptions, as *AuthServer) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "metadata is read with GET", http.StatusMethodNotAllowed)
		return
	}
	doc := map[string]any{
		"resource":                 rs.resource(o),
		"authorization_servers":    []string{as.Issuer},
		"bearer_methods_supported": []string{"header"},
	}
	if o.ScopesSupported != nil {
		doc["scopes_supported"] = slices.Clone(o.ScopesSupported)
	}
	if o.EditPRM != nil {
		o.EditPRM(doc)
	}
	writeJSON(w, http.StatusOK, doc)
}

// guard lets through requests with a valid token and enough scope.
func (rs *ResourceServer) guard(w http.ResponseWriter, r *http.Request, body []byte, o ResourceOptions, as *AuthServer) {
	if r.URL.Query().Has("access_token") {
		// RFC 6750 §2.3 is forbidden by the MCP spec.
		rs.deny(w, o, http.StatusBadRequest, "invalid_request", "access tokens must not be sent in the query", "")
		return
	}
	if o.Unprotected == nil || !o.Unprotected(r, body) {
		tok, present := bearerToken(r.Header)
		info, valid := as.Introspect(tok)
		switch {
		case !present:
			rs.deny(w, o, http.StatusUnauthorized, "invalid_token", "Missing Authorization header", o.ChallengeScope)
			return
		case !valid:
			rs.deny(w, o, http.StatusUnauthorized, "invalid_token", "Invalid or expired token", o.ChallengeScope)
			return
		case !rs.audienceOK(o, info.Resource):
			rs.deny(w, o, http.StatusUnauthorized, "invalid_token", fmt.Sprintf("Token was issued for %s", info.Resource), o.ChallengeScope)
			return
		}
		if o.RequiredScopes != nil {
			needed := o.RequiredScopes(r, body)
			if slices.ContainsFunc(needed, func(sc string) bool { return !slices.Contains(info.Scopes, sc) }) {
				scope := slices.Clone(info.Scopes)
				for _, sc := range needed {
					if !slices.Contains(scope, sc) {
						scope = append(scope, sc)
					}
				}
				rs.deny(w, o, http.StatusForbidden, "insufficient_scope", "Insufficient scope", strings.Join(scope, " "))
				return
			}
		}
	}
	h := o.Handler
	if h == nil {
		h = echoHandler(o.Path)
	}
	h.ServeHTTP(w, r)
}

// deny answers with a Bearer challenge in the shape of the TypeScript
// SDK's requireBearerAuth, which the conformance suite uses.
func (rs *ResourceServer) deny(w http.ResponseWriter, o ResourceOptions, status int, code, description, scope string) {
	params := []string{"error", code, "error_description", description}
	if p := rs.prmPath(o); p != "" && !o.OmitResourceMetadata {
		params = append(params, "resource_metadata", rs.URL+p)
	}
	if scope != "" {
		params = append(params, "scope", scope)
	}
	var b strings.Builder
	b.WriteString("Bearer ")
	for i := 0; i < len(params); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%s", params[i], quote(params[i+1]))
	}
	w.Header().Set("WWW-Authenticate", b.String())
	writeError(w, status, code, description)
}

// quote makes an RFC 9110 quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
