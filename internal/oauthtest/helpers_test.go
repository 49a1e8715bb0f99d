package oauthtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testRedirect = "http://127.0.0.1:3030/callback"

// testContext bounds a test generously: it should fail, never hang.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// doJSON sends req and decodes a JSON object answer (nil if not JSON).
func doJSON(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	json.Unmarshal(b, &v)
	return resp, v
}

func get(t *testing.T, rawURL string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return doJSON(t, req)
}

// postForm posts form to the token endpoint; edit may add credentials.
func postForm(t *testing.T, endpoint string, form url.Values, edit func(*http.Request)) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if edit != nil {
		edit(req)
	}
	return doJSON(t, req)
}

func postJSON(t *testing.T, endpoint string, body any) (*http.Response, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(t, req)
}

// register registers a client with testRedirect and returns its answer.
func register(t *testing.T, as *AuthServer) map[string]any {
	t.Helper()
	resp, v := postJSON(t, as.RegistrationEndpoint, map[string]any{
		"client_name":   "oauthtest",
		"redirect_uris": []string{testRedirect},
		"grant_types":   []string{"authorization_code", "refresh_token"},
	})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %s %v", resp.Status, v)
	}
	return v
}

// testVerifier is a valid PKCE verifier (RFC 7636 appendix B) and
// testS256 its S256 challenge.
const (
	testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	testS256     = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

// authorize runs an authorization request for clientID with PKCE S256,
// state "st" and the given extra parameters, and returns the callback
// query the AS redirected to.
func authorize(t *testing.T, as *AuthServer, clientID string, extra url.Values) url.Values {
	t.Helper()
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {testRedirect},
		"code_challenge":        {testS256},
		"code_challenge_method": {"S256"},
		"state":                 {"st"},
	}
	for k, vs := range extra {
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
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirect {
		t.Fatalf("redirected to %s, want %s", loc, testRedirect)
	}
	return loc.Query()
}

// exchange redeems code for a public client.
func exchange(t *testing.T, as *AuthServer, clientID, code string, extra url.Values) (*http.Response, map[string]any) {
	t.Helper()
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {testRedirect},
		"code_verifier": {testVerifier},
		"client_id":     {clientID},
	}
	for k, vs := range extra {
		if vs == nil {
			form.Del(k)
		} else {
			form[k] = vs
		}
	}
	return postForm(t, as.TokenEndpoint, form, nil)
}

// login registers a public client and returns it with a fresh token
// response.
func login(t *testing.T, as *AuthServer, scope string) (clientID string, tok map[string]any) {
	t.Helper()
	clientID = register(t, as)["client_id"].(string)
	cb := authorize(t, as, clientID, url.Values{"scope": {scope}})
	resp, tok := exchange(t, as, clientID, cb.Get("code"), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %s %v", resp.Status, tok)
	}
	return clientID, tok
}
