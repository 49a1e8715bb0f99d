package oidctest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rs"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// ResourceOptions configures a Resource. The zero value protects a tiny
// JSON-RPC endpoint at /mcp, challenges without a scope and requires
// tokens issued for the endpoint.
type ResourceOptions struct {
	// Path is the MCP endpoint path; "" means "/mcp".
	Path string
	// Handler serves the authorized requests. Nil means a JSON-RPC
	// endpoint that answers every request with an empty result and every
	// notification with 202.
	Handler http.Handler
	// ChallengeScope is the scope= of the 401 challenge; "" leaves it out.
	// Clients that take it (MCP 2025-11-25) need offline_access in it to
	// get refresh tokens from zitadel.
	ChallengeScope string
	// ScopesSupported is the scopes_supported of the metadata; nil leaves
	// it out.
	ScopesSupported []string
	// IgnoreAudience accepts any active token. Otherwise the token's
	// audience must include the endpoint URL, which it does when the
	// client sent it as the RFC 8707 resource of the authorization request.
	IgnoreAudience bool
}

// Resource is a protected MCP endpoint in front of a handler. It serves
// RFC 9728 protected resource metadata at
// /.well-known/oauth-protected-resource<Path> (resource = Endpoint,
// authorization_servers = [the provider's issuer]), answers requests
// without a usable bearer token with 401 and
//
//	WWW-Authenticate: Bearer resource_metadata="…"[, scope="…"]
//
// (plus error="invalid_token" when a token was sent), and checks tokens
// with zitadel's resource server client (pkg/client/rs) at the provider's
// introspection endpoint. It records every request, tokens as
// fingerprints. It is closed when the test ends; its methods are safe for
// concurrent use.
type Resource struct {
	URL         string // origin, http://127.0.0.1:<port>
	Endpoint    string // URL + Path; the resource the metadata announces
	MetadataURL string // where the metadata is served

	t            testing.TB
	p            *Provider
	opts         ResourceOptions
	introspector rs.ResourceServer
	srv          *httptest.Server
	rec          recorder
}

// NewResource starts a Resource that trusts p; it is closed when the test
// ends.
func NewResource(t testing.TB, p *Provider, opts ResourceOptions) *Resource {
	t.Helper()
	if opts.Path == "" {
		opts.Path = "/mcp"
	}
	if !strings.HasPrefix(opts.Path, "/") || strings.ContainsAny(opts.Path, "?#") {
		t.Fatalf("oidctest: ResourceOptions.Path %q must be a path starting with /", opts.Path)
	}
	if opts.Handler == nil {
		opts.Handler = http.HandlerFunc(jsonrpcEmpty)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Discovery of the introspection endpoint, as a real resource server
	// would do it.
	rsrv, err := rs.NewResourceServerClientCredentials(ctx, p.Issuer, p.ResourceClientID, p.ResourceClientSecret,
		rs.WithClient(&http.Client{Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatalf("oidctest: resource server client: %v", err)
	}
	r := &Resource{t: t, p: p, opts: opts, introspector: rsrv}
	// The fields are set before serving starts: handlers read them.
	r.srv = httptest.NewUnstartedServer(r)
	r.URL = "http://" + r.srv.Listener.Addr().String()
	r.Endpoint = r.URL + opts.Path
	r.MetadataURL = r.URL + "/.well-known/oauth-protected-resource" + strings.TrimSuffix(opts.Path, "/")
	r.srv.Start()
	t.Cleanup(func() {
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
	return r
}

// Requests returns a copy of every request received, in arrival order.
func (r *Resource) Requests() []Request { return r.rec.all() }

// Count returns how many requests reached endpoint: EndpointPRM,
// EndpointMCP or EndpointOther.
func (r *Resource) Count(endpoint string) int { return r.rec.count(endpoint) }

// ServeHTTP serves the metadata and guards everything else.
func (r *Resource) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	endpoint := EndpointMCP
	switch {
	case req.URL.Path == strings.TrimPrefix(r.MetadataURL, r.URL):
		endpoint = EndpointPRM
	case strings.HasPrefix(req.URL.Path, "/.well-known/"):
		endpoint = EndpointOther
	}
	tw := r.rec.start(w, req, endpoint)
	defer func() {
		status, oauthErr := tw.finish()
		r.t.Logf("oidctest: resource %s %s → %d %s", req.Method, req.URL.Path, status, oauthErr)
	}()
	switch endpoint {
	case EndpointPRM:
		doc := map[string]any{
			"resource":                 r.Endpoint,
			"authorization_servers":    []string{r.p.Issuer},
			"bearer_methods_supported": []string{"header"},
		}
		if r.opts.ScopesSupported != nil {
			doc["scopes_supported"] = r.opts.ScopesSupported
		}
		writeJSON(tw, http.StatusOK, doc)
	case EndpointOther:
		http.NotFound(tw, req)
	default:
		r.guard(tw, req)
	}
}

func (r *Resource) guard(w http.ResponseWriter, req *http.Request) {
	scheme, tok, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		r.challenge(w, "", "")
		return
	}
	info, err := rs.Introspect[*oidc.IntrospectionResponse](req.Context(), r.introspector, tok)
	switch {
	case err != nil:
		http.Error(w, "oidctest: introspection failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	case !info.Active:
		r.challenge(w, "invalid_token", "The access token is not active")
		return
	case !r.opts.IgnoreAudience && !slices.Contains(info.Audience, r.Endpoint):
		r.challenge(w, "invalid_token", fmt.Sprintf("The access token is not for %s", r.Endpoint))
		return
	}
	r.opts.Handler.ServeHTTP(w, req)
}

func (r *Resource) challenge(w http.ResponseWriter, code, description string) {
	params := []string{}
	if code != "" {
		params = append(params, "error", code, "error_description", description)
	}
	params = append(params, "resource_metadata", r.MetadataURL)
	if r.opts.ChallengeScope != "" {
		params = append(params, "scope", r.opts.ChallengeScope)
	}
	var b strings.Builder
	b.WriteString("Bearer ")
	for i := 0; i < len(params); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		// An RFC 9110 quoted-string.
		fmt.Fprintf(&b, `%s="%s"`, params[i], strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(params[i+1]))
	}
	w.Header().Set("WWW-Authenticate", b.String())
	if code == "" {
		// RFC 6750 §3.1: no error code when no token was sent.
		http.Error(w, "oidctest: a bearer token is required", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": code, "error_description": description})
}

// jsonrpcEmpty answers a JSON-RPC request with an empty result and a
// notification with 202.
func jsonrpcEmpty(w http.ResponseWriter, req *http.Request) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if req.Method != http.MethodPost || json.Unmarshal(body, &m) != nil || m.Method == "" {
		http.Error(w, "oidctest: POST a JSON-RPC request", http.StatusBadRequest)
		return
	}
	if len(m.ID) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
