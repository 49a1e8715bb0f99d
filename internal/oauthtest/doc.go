// Package oauthtest provides fakes for testing MCP OAuth clients end to
// end: an authorization server ([AuthServer]), a protected MCP endpoint in
// front of any handler ([ResourceServer]), and a headless user who follows
// login links ([FollowLink], [Buffer]).
//
// Both servers listen on 127.0.0.1 (httptest), record every request they
// receive ([Request]) and are closed when the test ends. Nothing is
// hard-coded: codes, tokens and client IDs are random, so a client that
// caches or invents one is caught.
//
// The authorization server approves every valid request at once, as a
// browser would see it: a 302 to the redirect URI with code, state and,
// with IssParameter, iss. It checks what a real server checks: client_id
// and the exact registered redirect URI (any loopback URI for CIMD and
// pre-registered clients), PKCE S256, single-use codes, redirect_uri and
// resource consistency, client authentication (none, client_secret_post,
// client_secret_basic with form-urlencoded credentials), and refresh token
// rotation with reuse detection. Errors are RFC 6749 §5.2 JSON. Methods
// change it while it runs: FailNext, DenyNext, RevokeRefreshTokens,
// ExpireAccessTokens, ForgetClients.
//
// The resource server accepts only access tokens its AuthServer issued
// and that are neither expired nor revoked, so a client-supplied
// "Bearer junk" never reaches the handler. Everything else gets 401 with
//
//	WWW-Authenticate: Bearer error="invalid_token", error_description="…", resource_metadata="…", scope="…"
//
// (resource_metadata and scope per ResourceOptions), and a valid token
// lacking RequiredScopes gets 403 error="insufficient_scope".
//
// # Example
//
// A proxy under test logs in when its upstream answers 401; the test plays
// the user by following the link the proxy prints:
//
//	as := oauthtest.NewAuthServer(t, oauthtest.AuthServerOptions{
//		IssueRefreshTokens:  true,
//		RotateRefreshTokens: true,
//	})
//	rs := oauthtest.NewResourceServer(t, as, oauthtest.ResourceOptions{ChallengeScope: "mcp:read"})
//
//	var stderr oauthtest.Buffer
//	proxyURL := startProxy(t, rs.Endpoint, &stderr) // the code under test
//	done := make(chan *http.Response, 1)
//	go func() { done <- postInitialize(proxyURL) }() // blocks until the login is done
//
//	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
//	defer cancel()
//	link, err := stderr.NextLink(ctx) // "Open this link to authorize …: <URL>"
//	if err != nil {
//		t.Fatal(err)
//	}
//	page, err := as.FollowLink(ctx, link) // AS → 302 → the proxy's callback
//	if err != nil || page.StatusCode != http.StatusOK {
//		t.Fatalf("callback: %v %v", page, err)
//	}
//	if res := <-done; res.StatusCode != http.StatusOK {
//		t.Errorf("replayed request: %s", res.Status)
//	}
//	if n := as.Count(oauthtest.EndpointRegister); n != 1 {
//		t.Errorf("%d registrations, want 1", n)
//	}
//	for _, r := range rs.Requests() {
//		if _, ok := as.Valid(r.BearerToken()); r.BearerToken() != "" && !ok {
//			t.Errorf("upstream got a token the AS never issued: %+v", r)
//		}
//	}
//
// # Conformance scenarios
//
// The scenarios of the MCP conformance suite map to options like this
// (AS = AuthServerOptions, RS = ResourceOptions):
//
//	auth/metadata-default            zero options (the root PRM probe shows up in rs.Requests as EndpointOther)
//	auth/metadata-var1               RS{OmitResourceMetadata: true}, AS{Metadata: MetadataOIDCInserted}
//	auth/metadata-var2               RS{PRM: PRMRoot, OmitResourceMetadata: true}, AS{IssuerPath: "/tenant1"}
//	auth/metadata-var3               RS{PRM: PRMCustom}, AS{IssuerPath: "/tenant1", Metadata: MetadataOIDCAppended}
//	auth/basic-cimd                  AS{CIMD: true}
//	auth/scope-from-www-authenticate RS{ChallengeScope: "mcp:basic"}
//	auth/scope-from-scopes-supported RS{ScopesSupported: []string{"mcp:basic", "mcp:read", "mcp:write"}}
//	auth/scope-step-up               RS{ChallengeScope, Unprotected (initialize, notifications), RequiredScopes (tools/call)}
//	auth/scope-retry-limit           RS{RequiredScopes: always "mcp:admin"}; count as.Count(EndpointAuthorize)
//	auth/token-endpoint-auth-*       AS{TokenEndpointAuthMethods: []string{"client_secret_basic"}} (or _post, none)
//	auth/pre-registration            AS{NoDCR: true, PreRegistered: {id: secret}, TokenEndpointAuthMethods: basic}
//	auth/2025-03-26-…-backcompat     AS{EndpointPrefix: "/oauth"}, RS{PRM: PRMNone, SameOrigin: true}
//	auth/2025-03-26-…-fallback       AS{Metadata: MetadataNone}, RS{PRM: PRMNone, SameOrigin: true}
//	auth/resource-mismatch           RS{PRMResource: "https://evil.example.com/mcp"}
//	auth/offline-access-*            AS{ScopesSupported: […, "offline_access"], StrictScopes: true}
//	auth/iss-*                       AS{IssParameter, EditRedirect (drop or change iss)}
//	auth/metadata-issuer-mismatch    AS{EditMetadata: set "issuer"}
//	auth/authorization-server-migration  rs.SetAuthServer(as2)
package oauthtest
