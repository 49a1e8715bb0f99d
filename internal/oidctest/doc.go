// Package oidctest runs a real OAuth 2.0 / OpenID Connect server in
// process for tests: zitadel's OpenID provider
// (github.com/zitadel/oidc/v3/pkg/op) on 127.0.0.1 ([Provider]), and a
// protected MCP endpoint that checks its tokens with zitadel's resource
// server client ([Resource]). Where internal/oauthtest is our own fake,
// written from the specifications, this package checks a client against
// another implementation's reading of them.
//
// The provider logs its test user in at once, so a test plays the user by
// following the printed login link with [Provider.FollowLink]:
//
//	p := oidctest.NewProvider(t, oidctest.Options{Scopes: []string{"mcp:tools"}})
//	res := oidctest.NewResource(t, p, oidctest.ResourceOptions{ChallengeScope: "openid offline_access mcp:tools"})
//	// the client under test gets 401 from res.Endpoint, discovers p, prints a link
//	page, err := p.FollowLink(ctx, link) // zitadel → login → zitadel → the client's callback
//
// Clients are pre-registered (zitadel has no dynamic registration):
// [Provider.PublicClientID] (PKCE, no secret) and
// [Provider.ConfidentialClientID] with [Provider.ConfidentialClientSecret]
// (client_secret_basic). Both servers record every request with secrets
// replaced by fingerprints ([Request]), and are closed when the test ends.
package oidctest
