package oauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tokenServer is a fake token endpoint that records each request and
// answers with a canned response.
type tokenServer struct {
	site   *fakeSite
	status int
	ctype  string
	answer string

	mu   sync.Mutex
	reqs []tokenRequest
}

type tokenRequest struct {
	Method        string
	ContentType   string
	Accept        string
	Authorization string
	Form          url.Values
}

func newTokenServer(t *testing.T, status int, answer string) *tokenServer {
	ts := &tokenServer{site: newFakeSite(t), status: status, ctype: "application/json", answer: answer}
	ts.site.handle("/token", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(b))
		if err != nil {
			t.Errorf("token request body %q: %v", b, err)
		}
		ts.mu.Lock()
		ts.reqs = append(ts.reqs, tokenRequest{
			Method:        r.Method,
			ContentType:   r.Header.Get("Content-Type"),
			Accept:        r.Header.Get("Accept"),
			Authorization: r.Header.Get("Authorization"),
			Form:          form,
		})
		ts.mu.Unlock()
		w.Header().Set("Content-Type", ts.ctype)
		w.WriteHeader(ts.status)
		fmt.Fprint(w, ts.answer)
	})
	return ts
}

func (ts *tokenServer) url() string { return ts.site.URL() + "/token" }

func (ts *tokenServer) requests() []tokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]tokenRequest(nil), ts.reqs...)
}

var tokenTestNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func basicAuthHeader(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

const goodTokenAnswer = `{"access_token": "at-1", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rt-2", "scope": "mcp:read mcp:write"}`

var goodToken = &Token{AccessToken: "at-1", TokenType: "Bearer", ExpiresIn: 3600, ExpiresAt: tokenTestNow.Add(time.Hour),
	RefreshToken: "rt-2", Scope: "mcp:read mcp:write"}

// authMethodCases are the client authentication variants, with the form
// fields and Authorization header each must produce.
var authMethodCases = []struct {
	name       string
	client     ClientInfo
	method     string
	supported  []string
	wantForm   url.Values // client authentication fields only
	wantHeader string
}{
	{
		name:     "none",
		client:   ClientInfo{ClientID: "public-client", TokenEndpointAuthMethod: "none"},
		wantForm: url.Values{"client_id": {"public-client"}},
	},
	{
		name:      "none for a client with a secret",
		client:    ClientInfo{ClientID: "cid", ClientSecret: "do-not-send"},
		supported: []string{"none"},
		wantForm:  url.Values{"client_id": {"cid"}},
	},
	{
		name:     "client_secret_post",
		client:   ClientInfo{ClientID: "cid", ClientSecret: "sec", TokenEndpointAuthMethod: "client_secret_post"},
		wantForm: url.Values{"client_id": {"cid"}, "client_secret": {"sec"}},
	},
	{
		name:       "client_secret_basic",
		client:     ClientInfo{ClientID: "pre-registered-client", ClientSecret: "pre-registered-secret"},
		supported:  []string{"client_secret_basic"},
		wantForm:   url.Values{},
		wantHeader: basicAuthHeader("pre-registered-client", "pre-registered-secret"),
	},
	{
		name:       "client_secret_basic form-encodes id and secret",
		client:     ClientInfo{ClientID: "a b", ClientSecret: "p:w/ü"},
		method:     "client_secret_basic",
		wantForm:   url.Values{},
		wantHeader: basicAuthHeader("a+b", "p%3Aw%2F%C3%BC"),
	},
}

func mergeForm(a, b url.Values) url.Values {
	out := url.Values{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestExchangeAuthMethods(t *testing.T) {
	for _, tt := range authMethodCases {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, 200, goodTokenAnswer)
			client := tt.client
			e := &TokenEndpoint{URL: ts.url(), Client: &client, AuthMethod: tt.method, Supported: tt.supported,
				Now: func() time.Time { return tokenTestNow }}
			got, err := e.Exchange(t.Context(), "the-code", "the-verifier", testRedirectURI, "https://mcp.example.com/mcp")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(goodToken, got, ignoreExtra); diff != "" {
				t.Errorf("Exchange mismatch (-want +got):\n%s", diff)
			}
			want := []tokenRequest{{
				Method:      "POST",
				ContentType: "application/x-www-form-urlencoded",
				Accept:      "application/json",
				Form: mergeForm(url.Values{
					"grant_type":    {"authorization_code"},
					"code":          {"the-code"},
					"code_verifier": {"the-verifier"},
					"redirect_uri":  {testRedirectURI},
					"resource":      {"https://mcp.example.com/mcp"},
				}, tt.wantForm),
				Authorization: tt.wantHeader,
			}}
			if diff := cmp.Diff(want, ts.requests()); diff != "" {
				t.Errorf("token requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefreshAuthMethods(t *testing.T) {
	for _, tt := range authMethodCases {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, 200, goodTokenAnswer)
			client := tt.client
			e := &TokenEndpoint{URL: ts.url(), Client: &client, AuthMethod: tt.method, Supported: tt.supported,
				Now: func() time.Time { return tokenTestNow }}
			got, err := e.Refresh(t.Context(), "rt-1", "https://mcp.example.com/mcp", "mcp:read")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(goodToken, got, ignoreExtra); diff != "" {
				t.Errorf("Refresh mismatch (-want +got):\n%s", diff)
			}
			want := []tokenRequest{{
				Method:      "POST",
				ContentType: "application/x-www-form-urlencoded",
				Accept:      "application/json",
				Form: mergeForm(url.Values{
					"grant_type":    {"refresh_token"},
					"refresh_token": {"rt-1"},
					"resource":      {"https://mcp.example.com/mcp"},
					"scope":         {"mcp:read"},
				}, tt.wantForm),
				Authorization: tt.wantHeader,
			}}
			if diff := cmp.Diff(want, ts.requests()); diff != "" {
				t.Errorf("token requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// tokenCalls run Exchange or Refresh, for tests that hold for both.
var tokenCalls = []struct {
	name string
	run  func(t *testing.T, e *TokenEndpoint) (*Token, error)
}{
	{"Exchange", func(t *testing.T, e *TokenEndpoint) (*Token, error) {
		return e.Exchange(t.Context(), "code", "verifier", testRedirectURI, "https://mcp.example.com/mcp")
	}},
	{"Refresh", func(t *testing.T, e *TokenEndpoint) (*Token, error) {
		return e.Refresh(t.Context(), "rt-old", "https://mcp.example.com/mcp", "")
	}},
}

func TestTokenErrors(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		ctype   string
		answer  string
		want    *TokenError // without Endpoint
		wantErr string      // for errors that are not *TokenError
	}{
		{
			name:   "invalid_grant",
			status: 400, ctype: "application/json",
			answer: `{"error": "invalid_grant", "error_description": "code already used", "error_uri": "https://as/doc"}`,
			want:   &TokenError{StatusCode: 400, Code: "invalid_grant", Description: "code already used", URI: "https://as/doc"},
		},
		{
			name:   "invalid_client 401",
			status: 401, ctype: "application/json",
			answer: `{"error": "invalid_client"}`,
			want:   &TokenError{StatusCode: 401, Code: "invalid_client"},
		},
		{
			name:   "200 with error",
			status: 200, ctype: "application/json",
			answer: `{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}`,
			want:   &TokenError{StatusCode: 200, Code: "bad_verification_code", Description: "The code passed is incorrect or expired."},
		},
		{
			name:   "500 HTML",
			status: 500, ctype: "text/html",
			answer: `<html>oops</html>`,
			want:   &TokenError{StatusCode: 500},
		},
		{
			name:   "garbage JSON",
			status: 200, ctype: "application/json",
			answer:  `{"access_token": "at`,
			wantErr: "JSON",
		},
		{
			name:   "no access_token",
			status: 200, ctype: "application/json",
			answer:  `{"token_type": "Bearer"}`,
			wantErr: "access_token",
		},
		{
			name:   "access_token with control characters",
			status: 200, ctype: "application/json",
			answer:  `{"access_token": "abc\r\nX-Injected: 1", "token_type": "Bearer"}`,
			wantErr: "control characters",
		},
		{
			name:   "access_token with NUL",
			status: 200, ctype: "application/json",
			answer:  `{"access_token": "abc\u0000def", "token_type": "Bearer"}`,
			wantErr: "control characters",
		},
	}
	for _, call := range tokenCalls {
		for _, tt := range tests {
			t.Run(call.name+"/"+tt.name, func(t *testing.T) {
				ts := newTokenServer(t, tt.status, tt.answer)
				ts.ctype = tt.ctype
				e := &TokenEndpoint{URL: ts.url(), Client: &ClientInfo{ClientID: "cid"}}
				got, err := call.run(t, e)
				if err == nil {
					t.Fatalf("%s = %+v, want an error", call.name, got)
				}
				if n := len(ts.requests()); n != 1 {
					t.Errorf("%d token requests, want exactly 1", n)
				}
				if !strings.HasPrefix(err.Error(), "oauth: token endpoint "+ts.url()+": ") {
					t.Errorf("error %q does not start with oauth: token endpoint <url>", err)
				}
				var te *TokenError
				if tt.want == nil {
					if errors.As(err, &te) {
						t.Errorf("error %v is a *TokenError, want another error", err)
					}
					if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.wantErr)) {
						t.Errorf("error %q does not contain %q", err, tt.wantErr)
					}
					return
				}
				if !errors.As(err, &te) {
					t.Fatalf("error %v is not a *TokenError", err)
				}
				want := *tt.want
				want.Endpoint = ts.url()
				if diff := cmp.Diff(&want, te); diff != "" {
					t.Errorf("TokenError mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestTokenErrorText(t *testing.T) {
	for _, tt := range []struct {
		err  *TokenError
		want string
	}{
		{&TokenError{Endpoint: "https://as/token", StatusCode: 400, Code: "invalid_grant", Description: "expired"},
			"oauth: token endpoint https://as/token: invalid_grant: expired"},
		{&TokenError{Endpoint: "https://as/token", StatusCode: 400, Code: "invalid_grant"},
			"oauth: token endpoint https://as/token: invalid_grant"},
		{&TokenError{Endpoint: "https://as/token", StatusCode: 502},
			"oauth: token endpoint https://as/token: HTTP 502"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestTokenResponses(t *testing.T) {
	tests := []struct {
		name   string
		ctype  string
		answer string
		// want is the token expected from Exchange; Refresh of "rt-old"
		// expects the same, with rt-old when the answer has no refresh token.
		want *Token
	}{
		{
			name:   "rotated refresh token, no scope, no expiry",
			ctype:  "application/json",
			answer: `{"access_token": "a", "token_type": "Bearer", "refresh_token": "rt-new"}`,
			want:   &Token{AccessToken: "a", TokenType: "Bearer", RefreshToken: "rt-new"},
		},
		{
			name:   "no refresh token",
			ctype:  "application/json",
			answer: `{"access_token": "a", "token_type": "BEARER", "expires_in": 60}`,
			want:   &Token{AccessToken: "a", TokenType: "Bearer", ExpiresIn: 60, ExpiresAt: tokenTestNow.Add(time.Minute)},
		},
		{
			name:   "missing token type, null fields",
			ctype:  "application/json; charset=utf-8",
			answer: `{"access_token": "a", "token_type": null, "refresh_token": null, "scope": null, "expires_in": null}`,
			want:   &Token{AccessToken: "a", TokenType: "Bearer"},
		},
		{
			name:   "other token type kept",
			ctype:  "application/json",
			answer: `{"access_token": "a", "token_type": "DPoP", "scope": "x"}`,
			want:   &Token{AccessToken: "a", TokenType: "DPoP", Scope: "x"},
		},
		{
			name:   "expires_in as a string",
			ctype:  "application/json",
			answer: `{"access_token": "a", "token_type": "Bearer", "expires_in": "7200"}`,
			want:   &Token{AccessToken: "a", TokenType: "Bearer", ExpiresIn: 7200, ExpiresAt: tokenTestNow.Add(2 * time.Hour)},
		},
		{
			name:   "expires_in beyond int32 is capped",
			ctype:  "application/json",
			answer: `{"access_token": "a", "token_type": "Bearer", "expires_in": 1e20}`,
			want: &Token{AccessToken: "a", TokenType: "Bearer", ExpiresIn: math.MaxInt32,
				ExpiresAt: tokenTestNow.Add(math.MaxInt32 * time.Second)},
		},
		{
			name:   "form-encoded answer",
			ctype:  "application/x-www-form-urlencoded",
			answer: `access_token=a&token_type=bearer&scope=repo+user&expires_in=30&refresh_token=r2`,
			want: &Token{AccessToken: "a", TokenType: "Bearer", Scope: "repo user", ExpiresIn: 30,
				ExpiresAt: tokenTestNow.Add(30 * time.Second), RefreshToken: "r2"},
		},
		{
			name:   "form-encoded answer as text/plain",
			ctype:  "text/plain",
			answer: `access_token=a&token_type=bearer`,
			want:   &Token{AccessToken: "a", TokenType: "Bearer"},
		},
		{
			name:   "JSON answer as text/plain",
			ctype:  "text/plain; charset=utf-8",
			answer: ` {"access_token": "a", "token_type": "bearer", "expires_in": 60}`,
			want:   &Token{AccessToken: "a", TokenType: "Bearer", ExpiresIn: 60, ExpiresAt: tokenTestNow.Add(time.Minute)},
		},
	}
	for _, call := range tokenCalls {
		for _, tt := range tests {
			t.Run(call.name+"/"+tt.name, func(t *testing.T) {
				ts := newTokenServer(t, 200, tt.answer)
				ts.ctype = tt.ctype
				e := &TokenEndpoint{URL: ts.url(), Client: &ClientInfo{ClientID: "cid"}, Now: func() time.Time { return tokenTestNow }}
				got, err := call.run(t, e)
				if err != nil {
					t.Fatal(err)
				}
				want := *tt.want
				if call.name == "Refresh" && want.RefreshToken == "" {
					want.RefreshToken = "rt-old"
				}
				if diff := cmp.Diff(&want, got, ignoreExtra); diff != "" {
					t.Errorf("%s mismatch (-want +got):\n%s", call.name, diff)
				}
				if n := len(ts.requests()); n != 1 {
					t.Errorf("%d token requests, want 1", n)
				}
			})
		}
	}
}

func TestRefreshOmitsEmptyResourceAndScope(t *testing.T) {
	ts := newTokenServer(t, 200, goodTokenAnswer)
	e := &TokenEndpoint{URL: ts.url(), Client: &ClientInfo{ClientID: "cid"}}
	if _, err := e.Refresh(t.Context(), "rt", "", ""); err != nil {
		t.Fatal(err)
	}
	want := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}, "client_id": {"cid"}}
	if diff := cmp.Diff(want, ts.requests()[0].Form); diff != "" {
		t.Errorf("refresh form mismatch (-want +got):\n%s", diff)
	}
}

func TestTokenEndpointOversizedAnswer(t *testing.T) {
	for _, call := range tokenCalls {
		ts := newTokenServer(t, 200, `{"access_token": "`+strings.Repeat("a", maxJSONBody)+`"}`)
		e := &TokenEndpoint{URL: ts.url(), Client: &ClientInfo{ClientID: "cid"}}
		if _, err := call.run(t, e); err == nil || !strings.Contains(err.Error(), ts.url()) {
			t.Errorf("%s of an oversized answer = %v, want an error naming the URL", call.name, err)
		}
	}
}

func TestTokenEndpointWithoutClient(t *testing.T) {
	for _, call := range tokenCalls {
		e := &TokenEndpoint{URL: "https://as.example.com/token"}
		if _, err := call.run(t, e); err == nil || !strings.Contains(err.Error(), "no client_id") {
			t.Errorf("%s without a client = %v, want an error", call.name, err)
		}
	}
}

func TestSelectAuthMethod(t *testing.T) {
	tests := []struct {
		name      string
		ci        ClientInfo
		supported []string
		want      string
	}{
		{"registered method supported", ClientInfo{ClientSecret: "s", TokenEndpointAuthMethod: "client_secret_post"}, []string{"client_secret_basic", "client_secret_post"}, "client_secret_post"},
		{"registered method, support unknown", ClientInfo{ClientSecret: "s", TokenEndpointAuthMethod: "client_secret_post"}, nil, "client_secret_post"},
		{"registered none", ClientInfo{TokenEndpointAuthMethod: "none"}, []string{"none"}, "none"},
		{"registered method unsupported", ClientInfo{ClientSecret: "s", TokenEndpointAuthMethod: "client_secret_post"}, []string{"client_secret_basic"}, "client_secret_basic"},
		{"registered secret method without secret", ClientInfo{TokenEndpointAuthMethod: "client_secret_basic"}, nil, "none"},
		{"unknown registered method", ClientInfo{ClientSecret: "s", TokenEndpointAuthMethod: "private_key_jwt"}, nil, "client_secret_basic"},
		{"support unknown, secret", ClientInfo{ClientSecret: "s"}, nil, "client_secret_basic"},
		{"support unknown, no secret", ClientInfo{}, nil, "none"},
		{"secret prefers basic", ClientInfo{ClientSecret: "s"}, []string{"none", "client_secret_post", "client_secret_basic"}, "client_secret_basic"},
		{"secret, post only", ClientInfo{ClientSecret: "s"}, []string{"none", "client_secret_post"}, "client_secret_post"},
		{"secret, none only", ClientInfo{ClientSecret: "s"}, []string{"none"}, "none"},
		{"no secret", ClientInfo{}, []string{"client_secret_basic", "none"}, "none"},
		{"secret, nothing usable", ClientInfo{ClientSecret: "s"}, []string{"private_key_jwt"}, "client_secret_post"},
		{"no secret, nothing usable", ClientInfo{}, []string{"private_key_jwt"}, "none"},
	}
	for _, tt := range tests {
		if got := SelectAuthMethod(&tt.ci, tt.supported); got != tt.want {
			t.Errorf("%s: SelectAuthMethod = %q, want %q", tt.name, got, tt.want)
		}
	}
}
