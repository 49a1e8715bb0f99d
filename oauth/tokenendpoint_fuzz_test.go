package oauth

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Secrets the fuzzed token endpoint must never see repeated in an error.
const (
	fzRefreshToken = "fz-refresh-SECRET-0123456789"
	fzClientSecret = "fz-client-SECRET-0123456789"
	fzCode         = "fz-code-SECRET-0123456789"
	fzVerifier     = "fz-verifier-SECRET-0123456789abcdefghijklmnopqrstuv"
)

// fzAnswer is an http.RoundTripper that answers every request with the
// same status, content type and body, and counts the body bytes read.
type fzAnswer struct {
	status int
	ct     string
	body   []byte
	read   int
}

func (a *fzAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	h := http.Header{}
	if a.ct != "" {
		h.Set("Content-Type", a.ct)
	}
	return &http.Response{
		StatusCode: a.status,
		Status:     http.StatusText(a.status),
		Header:     h,
		Body:       io.NopCloser(&fzCounter{r: bytes.NewReader(a.body), n: &a.read}),
		Request:    req,
	}, nil
}

type fzCounter struct {
	r io.Reader
	n *int
}

func (c *fzCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += n
	return n, err
}

// fzStatus maps any int onto a final HTTP status.
func fzStatus(n int) int {
	if n < 0 {
		n = -n
	}
	return 200 + n%400
}

// FuzzTokenResponse answers code exchanges and refreshes with arbitrary
// responses. A success always carries an access token and a sane expiry; a
// refresh answer without refresh_token keeps the old one; no error ever
// repeats the refresh token, code, verifier or client secret sent.
func FuzzTokenResponse(f *testing.F) {
	for _, s := range []struct {
		status int
		ct     string
		body   string
	}{
		{200, "application/json", `{"access_token":"at","token_type":"bearer","expires_in":3600,"refresh_token":"rt2","scope":"a b"}`},
		{200, "application/json; charset=utf-8", `{"access_token":"at","expires_in":"3600"}`},
		{200, "application/x-www-form-urlencoded", `access_token=at&token_type=bearer&expires_in=60`},
		{200, "text/plain", `access_token=at&expires_in=-1`},
		{200, "application/json", `{"error":"invalid_grant","error_description":"dead"}`},
		{400, "application/json", `{"error":"invalid_client"}`},
		{200, "application/json", `{"access_token":"at","expires_in":1e309}`},
		{200, "application/json", `{"access_token":"at","expires_in":null}`},
		{200, "text/html", `<html>login</html>`},
		{500, "", ``},
		{200, "application/json", `{"access_token":`},
	} {
		f.Add(s.status, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, ct string, body []byte) {
		ans := &fzAnswer{status: fzStatus(status), ct: ct, body: body}
		now := time.Unix(1_800_000_000, 0)
		e := &TokenEndpoint{
			HTTPClient: &http.Client{Transport: ans},
			URL:        "https://as.example/token",
			Client:     &ClientInfo{ClientID: "cid", ClientSecret: fzClientSecret},
			AuthMethod: AuthMethodClientSecretPost,
			Now:        func() time.Time { return now },
		}
		ctx := context.Background()
		check := func(op string, tok *Token, err error) {
			t.Helper()
			if err != nil {
				for _, secret := range []string{fzRefreshToken, fzClientSecret, fzCode, fzVerifier} {
					if strings.Contains(err.Error(), secret) && !bytes.Contains(body, []byte(secret)) {
						t.Fatalf("%s: the error repeats a secret sent: %v", op, err)
					}
				}
				return
			}
			if tok.AccessToken == "" {
				t.Fatalf("%s: success without an access token from %d %q %q", op, ans.status, ct, body)
			}
			if ans.status/100 != 2 {
				t.Fatalf("%s: success from HTTP %d", op, ans.status)
			}
			if !tok.ExpiresAt.IsZero() && (tok.ExpiresAt.Before(now) || tok.ExpiresIn <= 0) {
				t.Fatalf("%s: expiry %v (expires_in %d) from %q", op, tok.ExpiresAt, tok.ExpiresIn, body)
			}
		}
		tok, err := e.Refresh(ctx, fzRefreshToken, "https://rs.example/mcp", "a")
		check("Refresh", tok, err)
		// JSON keys match without case, and may be escaped.
		mentions := bytes.Contains(bytes.ToLower(body), []byte("refresh")) || bytes.Contains(body, []byte(`\u`))
		if err == nil && !mentions && tok.RefreshToken != fzRefreshToken {
			t.Fatalf("Refresh: an answer without refresh_token dropped the old one: %+v", tok)
		}
		if ans.read > maxJSONBody+1 {
			t.Fatalf("Refresh read %d bytes, more than the limit", ans.read)
		}
		ans.read = 0
		tok, err = e.Exchange(ctx, fzCode, fzVerifier, "http://localhost:3030/callback", "https://rs.example/mcp")
		check("Exchange", tok, err)
		if ans.read > 2*maxJSONBody {
			t.Fatalf("Exchange read %d bytes", ans.read)
		}
	})
}

// FuzzRegistrationResponse answers a dynamic client registration with
// arbitrary responses: a success always has a client_id, redirect URIs and
// a usable authentication method.
func FuzzRegistrationResponse(f *testing.F) {
	for _, s := range []struct {
		status int
		ct     string
		body   string
	}{
		{201, "application/json", `{"client_id":"abc","redirect_uris":["http://localhost:3030/callback"],"token_endpoint_auth_method":"none"}`},
		{200, "application/json", `{"client_id":"abc","client_secret":"s","token_endpoint_auth_method":"client_secret_basic"}`},
		{201, "application/json", `{"client_id":"abc","token_endpoint_auth_method":"client_secret_post"}`},
		{201, "application/json", `{"client_id":"abc","token_endpoint_auth_method":"private_key_jwt"}`},
		{400, "application/json", `{"error":"invalid_redirect_uri","error_description":"no"}`},
		{201, "application/json", `{"client_id":""}`},
		{201, "text/html", `<html></html>`},
		{201, "application/json", `[]`},
	} {
		f.Add(s.status, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, ct string, body []byte) {
		ans := &fzAnswer{status: fzStatus(status), ct: ct, body: body}
		d := &Discoverer{HTTPClient: &http.Client{Transport: ans}}
		const endpoint = "https://as.example/register"
		ci, err := d.Register(context.Background(), endpoint, RegistrationRequest{
			ClientName:   "fz",
			RedirectURIs: []string{"http://localhost:3030/callback"},
		})
		if ans.read > maxJSONBody+1 {
			t.Fatalf("read %d bytes, more than the limit", ans.read)
		}
		if err != nil {
			if !strings.Contains(err.Error(), endpoint) {
				t.Errorf("error %q does not name the endpoint", err)
			}
			return
		}
		if ans.status != 200 && ans.status != 201 {
			t.Fatalf("success from HTTP %d", ans.status)
		}
		if ci.ClientID == "" || len(ci.RedirectURIs) == 0 {
			t.Fatalf("registration %+v lacks client_id or redirect URIs", ci)
		}
		switch m := ci.TokenEndpointAuthMethod; m {
		case "", AuthMethodNone:
		case AuthMethodClientSecretBasic, AuthMethodClientSecretPost:
			if ci.ClientSecret == "" {
				t.Fatalf("registration %+v: %s without a secret", ci, m)
			}
		default:
			t.Fatalf("registration %+v: unsupported method accepted", ci)
		}
	})
}
