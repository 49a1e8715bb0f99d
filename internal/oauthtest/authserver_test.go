package oauthtest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMetadataLocations(t *testing.T) {
	// Every URL a client may probe for an issuer with or without a path.
	probes := func(path string) []string {
		p := []string{
			"/.well-known/oauth-authorization-server" + path,
			"/.well-known/openid-configuration" + path,
			path + "/.well-known/openid-configuration",
			"/.well-known/oauth-authorization-server",
			"/.well-known/openid-configuration",
		}
		slices.Sort(p)
		return slices.Compact(p)
	}
	tests := []struct {
		name     string
		opts     AuthServerOptions
		served   []string // paths answering 200; every other probe must 404
		oidc     []string // of which the OpenID flavour
		endpoint string   // path of the authorization endpoint
	}{
		{
			name:     "default",
			served:   []string{"/.well-known/oauth-authorization-server"},
			endpoint: "/authorize",
		},
		{
			name:     "oauth path issuer",
			opts:     AuthServerOptions{IssuerPath: "/tenant1"},
			served:   []string{"/.well-known/oauth-authorization-server/tenant1"},
			endpoint: "/tenant1/authorize",
		},
		{
			name:     "oidc inserted",
			opts:     AuthServerOptions{IssuerPath: "/tenant1", Metadata: MetadataOIDCInserted},
			served:   []string{"/.well-known/openid-configuration/tenant1"},
			oidc:     []string{"/.well-known/openid-configuration/tenant1"},
			endpoint: "/tenant1/authorize",
		},
		{
			name:     "oidc appended",
			opts:     AuthServerOptions{IssuerPath: "/tenant1", Metadata: MetadataOIDCAppended},
			served:   []string{"/tenant1/.well-known/openid-configuration"},
			oidc:     []string{"/tenant1/.well-known/openid-configuration"},
			endpoint: "/tenant1/authorize",
		},
		{
			name:     "oidc at the root",
			opts:     AuthServerOptions{Metadata: MetadataOIDCInserted},
			served:   []string{"/.well-known/openid-configuration"},
			oidc:     []string{"/.well-known/openid-configuration"},
			endpoint: "/authorize",
		},
		{
			name:     "both",
			opts:     AuthServerOptions{IssuerPath: "/t", Metadata: MetadataOAuth | MetadataOIDCInserted},
			served:   []string{"/.well-known/oauth-authorization-server/t", "/.well-known/openid-configuration/t"},
			oidc:     []string{"/.well-known/openid-configuration/t"},
			endpoint: "/t/authorize",
		},
		{
			name:     "endpoint prefix",
			opts:     AuthServerOptions{EndpointPrefix: "/oauth"},
			served:   []string{"/.well-known/oauth-authorization-server"},
			endpoint: "/oauth/authorize",
		},
		{
			name:     "none",
			opts:     AuthServerOptions{Metadata: MetadataNone},
			endpoint: "/authorize",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := NewAuthServer(t, tt.opts)
			if want := as.URL + tt.opts.IssuerPath; as.Issuer != want {
				t.Errorf("Issuer = %q, want %q", as.Issuer, want)
			}
			if want := as.URL + tt.endpoint; as.AuthorizationEndpoint != want {
				t.Errorf("AuthorizationEndpoint = %q, want %q", as.AuthorizationEndpoint, want)
			}
			for _, p := range probes(tt.opts.IssuerPath) {
				resp, doc := get(t, as.URL+p)
				if !slices.Contains(tt.served, p) {
					if resp.StatusCode != http.StatusNotFound {
						t.Errorf("GET %s: %s, want 404", p, resp.Status)
					}
					continue
				}
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s: %s, want 200", p, resp.Status)
					continue
				}
				want := map[string]any{
					"issuer":                                as.Issuer,
					"authorization_endpoint":                as.AuthorizationEndpoint,
					"token_endpoint":                        as.TokenEndpoint,
					"registration_endpoint":                 as.RegistrationEndpoint,
					"response_types_supported":              []any{"code"},
					"grant_types_supported":                 []any{"authorization_code", "refresh_token"},
					"code_challenge_methods_supported":      []any{"S256"},
					"token_endpoint_auth_methods_supported": []any{"none"},
				}
				if slices.Contains(tt.oidc, p) {
					want["jwks_uri"] = as.URL + tt.opts.IssuerPath + tt.opts.EndpointPrefix + "/jwks"
					want["subject_types_supported"] = []any{"public"}
					want["id_token_signing_alg_values_supported"] = []any{"RS256"}
				}
				if diff := cmp.Diff(want, doc); diff != "" {
					t.Errorf("GET %s (-want +got):\n%s", p, diff)
				}
			}
			// The endpoints exist where announced (a GET on token is 405, not 404).
			for _, u := range []string{as.TokenEndpoint, as.RegistrationEndpoint} {
				if resp, _ := get(t, u); resp.StatusCode != http.StatusMethodNotAllowed {
					t.Errorf("GET %s: %s, want 405", u, resp.Status)
				}
			}
			if got, want := as.Count(EndpointMetadata), len(tt.served); got != want {
				t.Errorf("Count(metadata) = %d, want %d", got, want)
			}
		})
	}
}

func TestMetadataOptions(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{
		CodeChallengeMethods:     []string{},
		TokenEndpointAuthMethods: []string{"client_secret_basic", "client_secret_post"},
		NoDCR:                    true,
		CIMD:                     true,
		ScopesSupported:          []string{"mcp:basic", "offline_access"},
		IssParameter:             true,
		EditMetadata:             func(doc map[string]any) { doc["issuer"] = "https://elsewhere.example" },
	})
	_, doc := get(t, as.URL+"/.well-known/oauth-authorization-server")
	want := map[string]any{
		"issuer":                                         "https://elsewhere.example",
		"authorization_endpoint":                         as.AuthorizationEndpoint,
		"token_endpoint":                                 as.TokenEndpoint,
		"response_types_supported":                       []any{"code"},
		"grant_types_supported":                          []any{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported":          []any{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                               []any{"mcp:basic", "offline_access"},
		"client_id_metadata_document_supported":          true,
		"authorization_response_iss_parameter_supported": true,
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if as.RegistrationEndpoint != "" {
		t.Errorf("RegistrationEndpoint = %q with NoDCR", as.RegistrationEndpoint)
	}
	if resp, _ := postJSON(t, as.URL+"/register", map[string]any{}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /register with NoDCR: %s, want 404", resp.Status)
	}
}

func TestBadOptions(t *testing.T) {
	for _, opts := range []AuthServerOptions{
		{IssuerPath: "tenant"},
		{IssuerPath: "/tenant/"},
		{EndpointPrefix: "oauth"},
		{Metadata: MetadataNone | MetadataOAuth},
		{Metadata: MetadataNone, IssuerPath: "/t"},
		{CodeChallengeMethods: []string{"S512"}},
		{TokenEndpointAuthMethods: []string{"private_key_jwt"}},
		{TokenEndpointAuthMethods: []string{}},
	} {
		if err := opts.validate(); err == nil || !strings.HasPrefix(err.Error(), "oauthtest: ") {
			t.Errorf("validate(%+v) = %v, want an oauthtest error", opts, err)
		}
	}
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name      string
		methods   []string
		body      any
		status    int
		wantError string
	}{
		{name: "public", body: map[string]any{"redirect_uris": []string{testRedirect}}, status: 201},
		{name: "confidential", methods: []string{"client_secret_post"}, body: map[string]any{"redirect_uris": []string{testRedirect}}, status: 201},
		{name: "https redirect", body: map[string]any{"redirect_uris": []string{"https://app.example/cb"}}, status: 201},
		{name: "no redirect", body: map[string]any{"client_name": "x"}, status: 400, wantError: "invalid_redirect_uri"},
		{name: "http non-loopback", body: map[string]any{"redirect_uris": []string{"http://example.com/cb"}}, status: 400, wantError: "invalid_redirect_uri"},
		{name: "fragment", body: map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb#x"}}, status: 400, wantError: "invalid_redirect_uri"},
		{name: "grant type", body: map[string]any{"redirect_uris": []string{testRedirect}, "grant_types": []string{"password"}}, status: 400, wantError: "invalid_client_metadata"},
		{name: "not an object", body: []string{"x"}, status: 400, wantError: "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := NewAuthServer(t, AuthServerOptions{TokenEndpointAuthMethods: tt.methods})
			resp, v := postJSON(t, as.RegistrationEndpoint, tt.body)
			if resp.StatusCode != tt.status || v["error"] != nonEmpty(tt.wantError) {
				t.Fatalf("register: %s %v, want %d %q", resp.Status, v, tt.status, tt.wantError)
			}
			reqs := as.Requests()
			if got := reqs[len(reqs)-1]; got.Error != tt.wantError || got.Status != tt.status || len(got.Body) == 0 {
				t.Errorf("recorded %+v, want Error %q, Status %d and the body", got, tt.wantError, tt.status)
			}
			if tt.status != 201 {
				return
			}
			method := "none"
			if tt.methods != nil {
				method = tt.methods[0]
			}
			if v["token_endpoint_auth_method"] != method || v["client_id"] == "" {
				t.Errorf("registration = %v, want method %s", v, method)
			}
			if _, hasSecret := v["client_secret"]; hasSecret != (method != "none") {
				t.Errorf("client_secret present = %v for method %s", hasSecret, method)
			}
		})
	}
}

// nonEmpty makes "" compare equal to a missing map entry.
func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestAuthorizeErrors(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{CIMD: true, PreRegistered: map[string]string{"pre": ""}, ScopesSupported: []string{"a"}, StrictScopes: true, RequireResource: true})
	dcr := register(t, as)["client_id"].(string)
	const resource = "https://mcp.example.com/mcp"

	// Errors about the client or redirect URI are a page, never a redirect.
	pages := []struct {
		name   string
		params url.Values
	}{
		{"unknown client", url.Values{"client_id": {"nobody"}, "redirect_uri": {testRedirect}}},
		{"no client", url.Values{"redirect_uri": {testRedirect}}},
		{"unregistered redirect", url.Values{"client_id": {dcr}, "redirect_uri": {"http://127.0.0.1:3031/callback"}}},
		{"no redirect", url.Values{"client_id": {dcr}}},
		{"CIMD without path", url.Values{"client_id": {"https://client.example"}, "redirect_uri": {testRedirect}}},
		{"pre-registered, non-loopback", url.Values{"client_id": {"pre"}, "redirect_uri": {"https://app.example/cb"}}},
	}
	for _, tt := range pages {
		t.Run(tt.name, func(t *testing.T) {
			tt.params.Set("response_type", "code")
			resp, _ := get(t, as.AuthorizationEndpoint+"?"+tt.params.Encode())
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s, want 400", resp.Status)
			}
		})
	}

	redirects := []struct {
		name      string
		client    string
		params    url.Values
		wantError string
	}{
		{"dcr", dcr, url.Values{"resource": {resource}}, ""},
		{"pre-registered", "pre", url.Values{"resource": {resource}}, ""},
		{"cimd", "https://client.example/meta.json", url.Values{"resource": {resource}, "redirect_uri": {"http://localhost:9999/cb"}}, ""},
		{"response type", dcr, url.Values{"resource": {resource}, "response_type": {"token"}}, "unsupported_response_type"},
		{"no challenge", dcr, url.Values{"resource": {resource}, "code_challenge": nil}, "invalid_request"},
		{"plain", dcr, url.Values{"resource": {resource}, "code_challenge_method": {"plain"}}, "invalid_request"},
		{"no method", dcr, url.Values{"resource": {resource}, "code_challenge_method": nil}, "invalid_request"},
		{"unknown scope", dcr, url.Values{"resource": {resource}, "scope": {"a b"}}, "invalid_scope"},
		{"no resource", dcr, nil, "invalid_target"},
		{"fragment resource", dcr, url.Values{"resource": {resource + "#x"}}, "invalid_target"},
		{"relative resource", dcr, url.Values{"resource": {"/mcp"}}, "invalid_target"},
	}
	for _, tt := range redirects {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{
				"response_type": {"code"}, "client_id": {tt.client}, "redirect_uri": {testRedirect},
				"code_challenge": {testS256}, "code_challenge_method": {"S256"}, "state": {"xyz"},
			}
			for k, vs := range tt.params {
				if vs == nil {
					q.Del(k)
				} else {
					q[k] = vs
				}
			}
			loc, err := Redirect(testContext(t), as.AuthorizationEndpoint+"?"+q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			cb := loc.Query()
			if cb.Get("error") != tt.wantError || cb.Get("state") != "xyz" || (tt.wantError == "") == (cb.Get("code") == "") {
				t.Errorf("redirect %s, want error %q, state xyz and a code only on success", loc, tt.wantError)
			}
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != q.Get("redirect_uri") {
				t.Errorf("redirected to %s, want %s", got, q.Get("redirect_uri"))
			}
		})
	}
}

func TestDenyAndEditRedirect(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{
		IssParameter: true,
		EditRedirect: func(q url.Values) {
			if q.Get("state") == "wrong-iss" {
				q.Set("iss", "https://evil.example")
			}
		},
	})
	id := register(t, as)["client_id"].(string)

	as.DenyNext("the user said no")
	cb := authorize(t, as, id, nil)
	want := url.Values{"error": {"access_denied"}, "error_description": {"the user said no"}, "state": {"st"}, "iss": {as.Issuer}}
	if diff := cmp.Diff(want, cb); diff != "" {
		t.Errorf("denied redirect (-want +got):\n%s", diff)
	}
	if reqs := as.Requests(); reqs[len(reqs)-1].Error != "access_denied" || reqs[len(reqs)-1].Status != http.StatusFound {
		t.Errorf("recorded %+v, want a 302 with error access_denied", reqs[len(reqs)-1])
	}

	// Only the next one was denied.
	cb = authorize(t, as, id, nil)
	if cb.Get("code") == "" || cb.Get("iss") != as.Issuer {
		t.Errorf("after a denial: %v, want a code and iss %s", cb, as.Issuer)
	}
	cb = authorize(t, as, id, url.Values{"state": {"wrong-iss"}})
	if cb.Get("iss") != "https://evil.example" {
		t.Errorf("EditRedirect: iss = %q", cb.Get("iss"))
	}
}
