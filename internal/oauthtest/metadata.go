package oauthtest

import (
	"net/http"
	"slices"
)

// serveMetadata answers an RFC 8414 or OpenID Provider metadata request.
func (s *AuthServer) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "metadata is read with GET")
		return
	}
	writeJSON(w, http.StatusOK, s.metadata(s.oidc[r.URL.Path]))
}

// metadata builds a fresh document, the way the conformance suite's AS
// does, then lets EditMetadata change it.
func (s *AuthServer) metadata(oidc bool) map[string]any {
	doc := map[string]any{
		"issuer":                                s.Issuer,
		"authorization_endpoint":                s.AuthorizationEndpoint,
		"token_endpoint":                        s.TokenEndpoint,
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported": slices.Clone(s.authMethods()),
	}
	if m := s.codeChallengeMethods(); len(m) > 0 {
		doc["code_challenge_methods_supported"] = slices.Clone(m)
	}
	if s.RegistrationEndpoint != "" {
		doc["registration_endpoint"] = s.RegistrationEndpoint
	}
	if s.opts.ScopesSupported != nil {
		doc["scopes_supported"] = slices.Clone(s.opts.ScopesSupported)
	}
	if s.opts.CIMD {
		doc["client_id_metadata_document_supported"] = true
	}
	if s.opts.IssParameter {
		doc["authorization_response_iss_parameter_supported"] = true
	}
	if oidc {
		base := s.Issuer + s.opts.EndpointPrefix
		doc["jwks_uri"] = base + "/jwks"
		doc["subject_types_supported"] = []string{"public"}
		doc["id_token_signing_alg_values_supported"] = []string{"RS256"}
	}
	if s.opts.EditMetadata != nil {
		s.opts.EditMetadata(doc)
	}
	return doc
}
