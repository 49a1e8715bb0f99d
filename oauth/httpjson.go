package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// maxJSONBody bounds every metadata, registration and token response read.
// A larger body is an error rather than a truncated parse.
const maxJSONBody = 1 << 20

// defaultHTTPTimeout applies when the caller supplies no http.Client.
const defaultHTTPTimeout = 30 * time.Second

// errTooLarge marks a response body over maxJSONBody.
var errTooLarge = errors.New("response body larger than 1 MiB")

// noFollowClient returns c, or a client with a 30 s timeout when c is nil,
// changed so that it follows no redirects: discovery, registration and
// token requests are answered by the URL asked, and a 3xx is an answer
// like any other (for metadata it means "not here"). c itself is not
// modified.
func noFollowClient(c *http.Client) *http.Client {
	var nc http.Client
	if c != nil {
		nc = *c
	} else {
		nc.Timeout = defaultHTTPTimeout
	}
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &nc
}

// jsonResponse is a response whose body has been read in full.
type jsonResponse struct {
	URL        string
	StatusCode int
	Header     http.Header
	Body       []byte
}

// fetch sends one request and reads at most maxJSONBody bytes of the
// answer. body, when not nil, is sent with contentType. A transport error or
// an oversized body is an error naming the URL; every status is returned
// for the caller to judge.
func fetch(ctx context.Context, client *http.Client, method, rawURL string, header http.Header, contentType string, body []byte) (*jsonResponse, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, r)
	if err != nil {
		return nil, fmt.Errorf("oauth: %s %s: %w", method, rawURL, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oauth: %s %s: %w", method, rawURL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxJSONBody+1))
	if err != nil {
		return nil, fmt.Errorf("oauth: %s %s: reading response: %w", method, rawURL, err)
	}
	if len(b) > maxJSONBody {
		return nil, fmt.Errorf("oauth: %s %s: %w", method, rawURL, errTooLarge)
	}
	return &jsonResponse{URL: rawURL, StatusCode: res.StatusCode, Header: res.Header, Body: b}, nil
}

// getJSON fetches rawURL with GET.
func getJSON(ctx context.Context, client *http.Client, rawURL string, header http.Header) (*jsonResponse, error) {
	return fetch(ctx, client, http.MethodGet, rawURL, header, "", nil)
}

// postJSON sends v as a JSON body to rawURL.
func postJSON(ctx context.Context, client *http.Client, rawURL string, header http.Header, v any) (*jsonResponse, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("oauth: POST %s: %w", rawURL, err)
	}
	return fetch(ctx, client, http.MethodPost, rawURL, header, "application/json", b)
}

// isJSONType reports whether the media type ct may hold JSON: a missing
// type, any "…/json" and any "…+json".
func isJSONType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	_, sub, _ := strings.Cut(mt, "/")
	return sub == "json" || strings.HasSuffix(sub, "+json")
}

// decode unmarshals the body into v. A non-JSON content type or a body
// that is not a JSON object is an error naming the URL.
func (r *jsonResponse) decode(v any) error {
	if err := r.decodeBody(v); err != nil {
		return fmt.Errorf("oauth: %s: %w", r.URL, err)
	}
	return nil
}

// decodeBody is decode with an error that does not name the URL, for
// callers that name it their own way.
func (r *jsonResponse) decodeBody(v any) error {
	ct := r.Header.Get("Content-Type")
	if !isJSONType(ct) {
		return fmt.Errorf("got content type %q, want application/json", ct)
	}
	body := bytes.TrimSpace(r.Body)
	if len(body) == 0 || body[0] != '{' {
		return errors.New("response is not a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}
