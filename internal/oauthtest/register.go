package oauthtest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// serveRegister answers an RFC 7591 dynamic client registration.
func (s *AuthServer) serveRegister(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "the registration endpoint takes POST")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, http.StatusBadRequest, "invalid_client_metadata", fmt.Sprintf("Content-Type must be application/json, not %q", r.Header.Get("Content-Type")))
		return
	}
	var md map[string]any
	if err := json.Unmarshal(body, &md); err != nil || md == nil {
		writeError(w, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON object")
		return
	}
	redirectURIs, ok := stringList(md["redirect_uris"])
	if !ok || len(redirectURIs) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_redirect_uri", "redirect_uris must be a non-empty array of strings")
		return
	}
	for _, u := range redirectURIs {
		if problem := checkRedirectURI(u); problem != "" {
			writeError(w, http.StatusBadRequest, "invalid_redirect_uri", problem)
			return
		}
	}
	grantTypes, problem := listWithin(md, "grant_types", []string{"authorization_code"}, "authorization_code", "refresh_token")
	if problem == "" {
		md["grant_types"] = grantTypes
		var responseTypes []string
		responseTypes, problem = listWithin(md, "response_types", []string{"code"}, "code")
		md["response_types"] = responseTypes
	}
	if problem != "" {
		writeError(w, http.StatusBadRequest, "invalid_client_metadata", problem)
		return
	}
	if m, ok := md["token_endpoint_auth_method"]; ok {
		if _, isString := m.(string); !isString {
			writeError(w, http.StatusBadRequest, "invalid_client_metadata", "token_endpoint_auth_method must be a string")
			return
		}
	}

	c := &client{id: "client-" + rand.Text(), method: s.authMethods()[0], redirectURIs: redirectURIs}
	resp := maps.Clone(md) // RFC 7591 §3.2.1: echo the registered metadata
	resp["client_id"] = c.id
	resp["client_id_issued_at"] = s.now().Unix()
	resp["token_endpoint_auth_method"] = c.method
	if c.method != "none" {
		c.secret = "secret-" + rand.Text()
		resp["client_secret"] = c.secret
		resp["client_secret_expires_at"] = 0
	}
	s.mu.Lock()
	s.clients[c.id] = c
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, resp)
}

// checkRedirectURI accepts https URLs and http loopback URLs without a
// fragment.
func checkRedirectURI(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return fmt.Sprintf("redirect URI %q is not an absolute URL", raw)
	case strings.Contains(raw, "#"):
		return fmt.Sprintf("redirect URI %q has a fragment", raw)
	case u.Scheme != "https" && !isLoopbackHTTP(raw):
		return fmt.Sprintf("redirect URI %q is neither https nor http on a loopback host", raw)
	}
	return ""
}

// listWithin reads md[key] as a list whose values are among allowed; def
// is used when the key is absent.
func listWithin(md map[string]any, key string, def []string, allowed ...string) ([]string, string) {
	v, present := md[key]
	if !present {
		return def, ""
	}
	list, ok := stringList(v)
	if !ok {
		return nil, key + " must be an array of strings"
	}
	for _, x := range list {
		if !slices.Contains(allowed, x) {
			return nil, fmt.Sprintf("%s: %q is not supported", key, x)
		}
	}
	return list, ""
}

func stringList(v any) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}
