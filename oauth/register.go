package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultClientName is the client_name sent in dynamic registrations.
const DefaultClientName = "mcp-oauth-proxy"

// ClientOptions describe how this program may identify itself to an
// authorization server, from configuration, for one login.
type ClientOptions struct {
	// ClientID and ClientSecret are a pre-registered client; "" when none
	// is configured. ClientSecret may be "" for a public client.
	ClientID, ClientSecret string
	// ClientMetadataURL is a Client ID Metadata Document URL (an https URL
	// with a path), used where the server supports it; "" for none.
	ClientMetadataURL string
	// RedirectURI is the exact redirect URI of this login.
	RedirectURI string
	// OtherRedirectURIs are further redirect URIs this login can receive
	// (RedirectURI with 127.0.0.1 for localhost). A dynamic registration
	// lists them after RedirectURI, and a stored registration that lists
	// any of them is used: fast-agent registers 127.0.0.1, so each
	// program can use the other's registration.
	OtherRedirectURIs []string
	// Scope is the configured scope, sent in a dynamic registration only
	// when not empty.
	Scope string
	// ClientName is the client_name to register; "" means
	// DefaultClientName.
	ClientName string
}

// ResolveClient picks the client for the authorization server of disc, in
// the spec's order: the configured client_id; the configured
// client_metadata_url when the server advertises
// client_id_metadata_document_supported; the stored registration when it
// is still valid (same issuer, RedirectURI or one of OtherRedirectURIs
// among its redirect URIs, secret not expired); a dynamic registration
// (RFC 7591) when the server offers one. Otherwise it fails with an error
// listing the options.
//
// registered reports that ci is new and should be stored (dynamic
// registrations and metadata-document clients); a configured client is
// never stored, so its secret stays in the configuration.
func (d *Discoverer) ResolveClient(ctx context.Context, disc *Discovery, opts ClientOptions, stored *ClientInfo) (ci *ClientInfo, registered bool, err error) {
	meta := disc.Metadata
	if meta == nil {
		meta = &AuthServerMetadata{}
	}
	redirects := []string{opts.RedirectURI}
	accepted := append([]string{opts.RedirectURI}, opts.OtherRedirectURIs...)

	if opts.ClientID != "" {
		return &ClientInfo{
			ClientID:     opts.ClientID,
			ClientSecret: opts.ClientSecret,
			RedirectURIs: redirects,
			Issuer:       disc.Issuer,
		}, false, nil
	}

	if opts.ClientMetadataURL != "" && meta.ClientIDMetadataDocumentSupported {
		if err := checkClientMetadataURL(opts.ClientMetadataURL); err != nil {
			return nil, false, err
		}
		return &ClientInfo{
			ClientID:                opts.ClientMetadataURL,
			TokenEndpointAuthMethod: "none",
			RedirectURIs:            redirects,
			Issuer:                  disc.Issuer,
		}, true, nil
	}

	if stored != nil {
		if why := staleClient(stored, disc, accepted, time.Now()); why != "" {
			d.logger().Debug("not reusing the stored client registration", "client_id", stored.ClientID, "reason", why)
		} else {
			return stored, false, nil
		}
	}

	if meta.RegistrationEndpoint != "" {
		name := opts.ClientName
		if name == "" {
			name = DefaultClientName
		}
		ci, err := d.Register(ctx, meta.RegistrationEndpoint, RegistrationRequest{
			ClientName:              name,
			RedirectURIs:            accepted,
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			TokenEndpointAuthMethod: "none",
			Scope:                   opts.Scope,
		})
		if err != nil {
			return nil, false, err
		}
		ci.Issuer = disc.Issuer
		return ci, true, nil
	}

	return nil, false, fmt.Errorf("oauth: no client for authorization server %s: it offers no dynamic client registration%s; "+
		"configure a pre-registered client_id (and client_secret), or a client_metadata_url",
		disc.Issuer, cimdHint(meta, opts))
}

func cimdHint(meta *AuthServerMetadata, opts ClientOptions) string {
	if opts.ClientMetadataURL != "" && !meta.ClientIDMetadataDocumentSupported {
		return " and does not accept client metadata documents (client_metadata_url)"
	}
	return ""
}

// staleClient returns why the stored registration ci cannot be used for
// disc and any of redirectURIs, or "" when it can.
func staleClient(ci *ClientInfo, disc *Discovery, redirectURIs []string, now time.Time) string {
	// Records written by fast-agent before SDK 2.0 have no issuer; they
	// are tried, and an invalid_client answer replaces them.
	if ci.Issuer != "" && !sameIssuer(ci.Issuer, disc.Issuer) {
		return fmt.Sprintf("registered with %s, not %s", ci.Issuer, disc.Issuer)
	}
	if redirectURIFor(ci, redirectURIs) == "" {
		return fmt.Sprintf("redirect URI %s is not registered", strings.Join(redirectURIs, " or "))
	}
	if ci.ClientSecret != "" && ci.ClientSecretExpiresAt != 0 && !now.Before(time.Unix(ci.ClientSecretExpiresAt, 0)) {
		return "client secret expired"
	}
	if looksLikeCIMD(ci.ClientID) && (disc.Metadata == nil || !disc.Metadata.ClientIDMetadataDocumentSupported) {
		return "client metadata document no longer accepted"
	}
	return ""
}

// redirectURIFor returns the first of redirectURIs that ci lists, or ""
// when it lists none of them.
func redirectURIFor(ci *ClientInfo, redirectURIs []string) string {
	for _, u := range redirectURIs {
		if slices.Contains(ci.RedirectURIs, u) {
			return u
		}
	}
	return ""
}

// sameIssuer compares two issuer URLs without a trailing slash, which
// Python's URL type adds to one without a path.
func sameIssuer(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

func looksLikeCIMD(clientID string) bool {
	return strings.HasPrefix(clientID, "https://")
}

// checkClientMetadataURL applies the CIMD rule: an https URL with a path
// other than "/".
func checkClientMetadataURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path == "" || u.Path == "/" {
		return fmt.Errorf("oauth: client_metadata_url %q must be an https URL with a path", raw)
	}
	return nil
}

// RegistrationRequest is the client metadata sent in a dynamic client
// registration (RFC 7591 §2). Empty fields are omitted.
type RegistrationRequest struct {
	ClientName              string   `json:"client_name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
}

// RegistrationError is a failed dynamic client registration.
type RegistrationError struct {
	Endpoint    string
	StatusCode  int    // HTTP status of the answer
	Code        string // RFC 7591 §3.2.2 error, e.g. invalid_redirect_uri; "" when the body had none
	Description string // error_description
}

func (e *RegistrationError) Error() string {
	return errorText("oauth: client registration at "+e.Endpoint+" failed: ", e.StatusCode, e.Code, e.Description)
}

// errorText formats an OAuth error answer (RFC 6749 §5.2, RFC 7591
// §3.2.2): its code and description, or the HTTP status when it had none.
func errorText(prefix string, status int, code, description string) string {
	if code == "" {
		return prefix + fmt.Sprintf("HTTP %d", status)
	}
	if description != "" {
		return prefix + code + ": " + description
	}
	return prefix + code
}

// Register registers a client at the registration endpoint (RFC 7591) and
// returns the registration as the server answered it, with req's redirect
// URIs when the answer lists none. Issuer is left empty for the caller to
// set. A refusal is a *RegistrationError.
func (d *Discoverer) Register(ctx context.Context, endpoint string, req RegistrationRequest) (*ClientInfo, error) {
	if err := CheckURL(endpoint, d.AllowInsecureHTTP); err != nil {
		return nil, err
	}
	res, err := postJSON(ctx, noFollowClient(d.HTTPClient), endpoint, nil, req)
	if err != nil {
		return nil, err
	}
	d.logger().Debug("client registration", "url", endpoint, "status", res.StatusCode)
	if res.StatusCode != 200 && res.StatusCode != 201 {
		e := &RegistrationError{Endpoint: endpoint, StatusCode: res.StatusCode}
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(res.Body, &body) == nil {
			e.Code, e.Description = body.Error, body.Description
		}
		return nil, e
	}
	var raw json.RawMessage
	if err := res.decodeBody(&raw); err != nil {
		return nil, fmt.Errorf("oauth: client registration at %s: %w", endpoint, err)
	}
	var probe struct {
		ClientID string `json:"client_id"`
	}
	if json.Unmarshal(raw, &probe) != nil || probe.ClientID == "" {
		return nil, fmt.Errorf("oauth: client registration at %s: the answer has no client_id", endpoint)
	}
	var ci ClientInfo
	if err := json.Unmarshal(raw, &ci); err != nil {
		return nil, fmt.Errorf("oauth: client registration at %s: %w", endpoint, err)
	}
	if len(ci.RedirectURIs) == 0 {
		ci.RedirectURIs = req.RedirectURIs
	}
	switch m := ci.TokenEndpointAuthMethod; {
	case m != "" && m != "none" && m != "client_secret_post" && m != "client_secret_basic":
		return nil, fmt.Errorf("oauth: client registration at %s: unsupported token_endpoint_auth_method %q", endpoint, m)
	case (m == "client_secret_post" || m == "client_secret_basic") && ci.ClientSecret == "":
		return nil, fmt.Errorf("oauth: client registration at %s: token_endpoint_auth_method %q without a client_secret", endpoint, m)
	}
	return &ci, nil
}
