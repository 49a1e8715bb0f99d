package oidctest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
)

// Endpoint names used in Request.Endpoint and the Count methods.
const (
	EndpointDiscovery  = "discovery"  // OP: /.well-known/openid-configuration
	EndpointAuthorize  = "authorize"  // OP: the authorization endpoint
	EndpointLogin      = "login"      // OP: the automatic login of the test user
	EndpointCallback   = "callback"   // OP: zitadel's return from the login to the client
	EndpointToken      = "token"      // OP: the token endpoint
	EndpointIntrospect = "introspect" // OP: the RFC 7662 introspection endpoint
	EndpointRevoke     = "revoke"     // OP: the RFC 7009 revocation endpoint
	EndpointUserinfo   = "userinfo"   // OP: the userinfo endpoint
	EndpointKeys       = "keys"       // OP: the JWKS
	EndpointPRM        = "prm"        // Resource: the RFC 9728 metadata
	EndpointMCP        = "mcp"        // Resource: everything protected
	EndpointOther      = "other"      // anything else
)

// secretParams are request parameters recorded as fingerprints only.
var secretParams = []string{
	"code", "code_verifier", "refresh_token", "access_token", "client_secret",
	"token", "client_assertion", "id_token_hint", "assertion", "subject_token", "actor_token",
}

// Request is one HTTP request a Provider or Resource received, and how it
// was answered. Secrets are never kept: they are replaced by
// redact.Fingerprint, so tests compare fingerprints.
type Request struct {
	Endpoint string // one of the Endpoint constants
	Method   string
	Path     string
	// Params holds the query and urlencoded form parameters. Codes,
	// verifiers, tokens and secrets are fingerprints.
	Params url.Values
	// Authorization is the scheme of the Authorization header and a
	// fingerprint of its credentials ("Bearer sha256:…", "Basic sha256:…");
	// "" when there was none.
	Authorization string
	// BasicClientID is the client ID of Basic credentials, decoded as
	// RFC 6749 §2.3.1 says; "" without Basic credentials.
	BasicClientID string

	Status int    // the status answered
	Error  string // the OAuth error code answered, if any
}

// Bearer returns the fingerprint of the request's bearer token, or ""
// when it carried none.
func (r Request) Bearer() string {
	fp, ok := strings.CutPrefix(r.Authorization, "Bearer ")
	if !ok {
		return ""
	}
	return fp
}

func (r Request) clone() Request {
	r.Params = cloneValues(r.Params)
	return r
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = slices.Clone(vs)
	}
	return c
}

type recorder struct {
	mu   sync.Mutex
	reqs []Request
}

// start records r, whose body it reads and replaces, and returns the
// writer that completes the record.
func (rc *recorder) start(w http.ResponseWriter, r *http.Request, endpoint string) *trackingWriter {
	params := cloneValues(r.URL.Query())
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" && r.Body != nil {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, vs := range form {
				params[k] = append(params[k], vs...)
			}
		}
	}
	for _, k := range secretParams {
		for i, v := range params[k] {
			params[k][i] = redact.Fingerprint(v)
		}
	}
	req := Request{Endpoint: endpoint, Method: r.Method, Path: r.URL.Path, Params: params}
	if scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok {
		req.Authorization = scheme + " " + redact.Fingerprint(strings.TrimSpace(cred))
		if strings.EqualFold(scheme, "Basic") {
			if id, _, ok := r.BasicAuth(); ok {
				req.BasicClientID, _ = url.QueryUnescape(id)
			}
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reqs = append(rc.reqs, req)
	return &trackingWriter{ResponseWriter: w, rec: rc, idx: len(rc.reqs) - 1}
}

func (rc *recorder) all() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]Request, len(rc.reqs))
	for i, r := range rc.reqs {
		out[i] = r.clone()
	}
	return out
}

func (rc *recorder) count(endpoint string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, r := range rc.reqs {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// trackingWriter notes the status and keeps the start of an error body, to
// record the OAuth error answered.
type trackingWriter struct {
	http.ResponseWriter
	rec    *recorder
	idx    int
	status int
	body   []byte
}

func (w *trackingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status >= 400 && len(w.body) < 4<<10 {
		w.body = append(w.body, b[:min(len(b), 4<<10-len(w.body))]...)
	}
	return w.ResponseWriter.Write(b)
}

func (w *trackingWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish completes the record: the status, and the OAuth error of a JSON
// error body, an error redirect or a Bearer challenge.
func (w *trackingWriter) finish() (status int, oauthErr string) {
	status = w.status
	if status == 0 {
		status = http.StatusOK
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(w.body, &e) == nil && e.Error != "" {
		oauthErr = e.Error
	}
	if loc := w.Header().Get("Location"); oauthErr == "" && loc != "" {
		if u, err := url.Parse(loc); err == nil {
			oauthErr = u.Query().Get("error")
		}
	}
	if ch := w.Header().Get("WWW-Authenticate"); oauthErr == "" && ch != "" {
		if _, rest, ok := strings.Cut(ch, `error="`); ok {
			oauthErr, _, _ = strings.Cut(rest, `"`)
		}
	}
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	w.rec.reqs[w.idx].Status, w.rec.reqs[w.idx].Error = status, oauthErr
	return status, oauthErr
}

// randomString returns n random bytes, base64url-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
