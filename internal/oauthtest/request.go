package oauthtest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Endpoint names used in [Request.Endpoint], [AuthServer.Count],
// [AuthServer.FailNext] and [ResourceServer.Count].
const (
	EndpointMetadata  = "metadata"  // AS: an RFC 8414 or OpenID metadata document
	EndpointAuthorize = "authorize" // AS: the authorization endpoint
	EndpointToken     = "token"     // AS: the token endpoint
	EndpointRegister  = "register"  // AS: the RFC 7591 registration endpoint
	EndpointJWKS      = "jwks"      // AS: the jwks_uri of the OpenID documents
	EndpointPRM       = "prm"       // RS: the RFC 9728 protected resource metadata
	EndpointMCP       = "mcp"       // RS: anything that is not metadata, protected
	EndpointOther     = "other"     // a path the fake does not serve (answered 404)
)

// maxBody bounds what a fake reads of a request body.
const maxBody = 10 << 20

// Request is one HTTP request a fake received, and how it was answered.
type Request struct {
	Endpoint string // one of the Endpoint constants
	Method   string
	Path     string
	Query    url.Values
	// Form is the parsed body of an application/x-www-form-urlencoded
	// request (token requests); nil otherwise.
	Form url.Values
	// Body is the raw request body, such as the JSON of a registration
	// request or a JSON-RPC message.
	Body   []byte
	Header http.Header // including Authorization
	Time   time.Time   // when the request arrived

	// Status is the status code answered; 0 while no header was written.
	Status int
	// Error is the OAuth error code answered (the "error" of a JSON error,
	// of an error redirect or of a WWW-Authenticate challenge); "" when
	// there was none.
	Error string
}

// BearerToken returns the token of an "Authorization: Bearer" header, or
// "" when the request carried none.
func (r Request) BearerToken() string {
	tok, _ := bearerToken(r.Header)
	return tok
}

func bearerToken(h http.Header) (string, bool) {
	scheme, tok, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func (r Request) clone() Request {
	r.Query = cloneValues(r.Query)
	r.Form = cloneValues(r.Form)
	r.Body = bytes.Clone(r.Body)
	r.Header = r.Header.Clone()
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

// recorder keeps the requests of one fake in arrival order.
type recorder struct {
	mu   sync.Mutex
	reqs []Request
}

// start records r, whose body has already been read into body, and
// returns a writer that completes the record as w is written to.
func (rc *recorder) start(w http.ResponseWriter, r *http.Request, endpoint string, body []byte, now time.Time) *trackingWriter {
	req := Request{
		Endpoint: endpoint,
		Method:   r.Method,
		Path:     r.URL.Path,
		Query:    r.URL.Query(),
		Body:     body,
		Header:   r.Header.Clone(),
		Time:     now,
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		req.Form, _ = url.ParseQuery(string(body))
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reqs = append(rc.reqs, req)
	return &trackingWriter{ResponseWriter: w, rec: rc, idx: len(rc.reqs) - 1}
}

func (rc *recorder) update(i int, f func(*Request)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f(&rc.reqs[i])
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

// trackingWriter records the status and OAuth error of a response in its
// Request while passing everything through, flushing included, so that a
// streaming handler behind a ResourceServer keeps working.
type trackingWriter struct {
	http.ResponseWriter
	rec     *recorder
	idx     int
	status  int
	errCode string
}

func (w *trackingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.rec.update(w.idx, func(r *Request) { r.Status = code })
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *trackingWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack lets handlers behind a ResourceServer take over the connection
// (e.g. for WebSocket-style tests); the status is then unknown.
func (w *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *trackingWriter) setError(code string) {
	w.errCode = code
	w.rec.update(w.idx, func(r *Request) { r.Error = code })
}

// readBody reads and replaces r.Body so that handlers can read it again.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	r.Body.Close()
	if err == nil && len(body) > maxBody {
		err = errors.New("oauthtest: request body larger than 10 MiB")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, err
}
