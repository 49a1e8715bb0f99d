package oauth

import (
	"errors"
	"fmt"
	"slices"
)

// AuthServerMetadata is OAuth 2.0 Authorization Server Metadata (RFC 8414
// §2), or the same fields of an OpenID Connect Discovery document. Unknown
// fields are ignored.
type AuthServerMetadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	JWKSURI                                    string   `json:"jwks_uri,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint,omitempty"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported,omitempty"`
	GrantTypesSupported                        []string `json:"grant_types_supported,omitempty"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported,omitempty"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	ClientIDMetadataDocumentSupported          bool     `json:"client_id_metadata_document_supported,omitempty"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
}

// complete reports whether m has the endpoints a login needs; a document
// without them is not usable metadata, and discovery tries the next
// location.
func (m *AuthServerMetadata) complete() error {
	switch {
	case m.AuthorizationEndpoint == "":
		return errors.New("no authorization_endpoint")
	case m.TokenEndpoint == "":
		return errors.New("no token_endpoint")
	}
	return nil
}

// checkUsable refuses an authorization server this client cannot use: one
// that lists response types without "code", or PKCE methods without
// "S256". An absent code_challenge_methods_supported is accepted, like the
// TS SDK does: the 2025-11-25 spec says to refuse, but many deployed
// servers that do support PKCE omit the field. Every endpoint must pass
// CheckURL.
func (m *AuthServerMetadata) checkUsable(issuer, metadataURL string, allowInsecure bool) error {
	if m.ResponseTypesSupported != nil && !slices.Contains(m.ResponseTypesSupported, "code") {
		return fmt.Errorf("oauth: authorization server %s does not support the authorization code flow (response_types_supported %q in %s)",
			issuer, m.ResponseTypesSupported, metadataURL)
	}
	if m.CodeChallengeMethodsSupported != nil && !slices.Contains(m.CodeChallengeMethodsSupported, "S256") {
		return fmt.Errorf("oauth: authorization server %s does not support PKCE with S256 (code_challenge_methods_supported %q in %s)",
			issuer, m.CodeChallengeMethodsSupported, metadataURL)
	}
	for _, e := range []struct{ name, url string }{
		{"authorization_endpoint", m.AuthorizationEndpoint},
		{"token_endpoint", m.TokenEndpoint},
		{"registration_endpoint", m.RegistrationEndpoint},
	} {
		if e.url == "" {
			continue
		}
		if err := CheckURL(e.url, allowInsecure); err != nil {
			return fmt.Errorf("%w (%s in %s)", err, e.name, metadataURL)
		}
	}
	return nil
}
