package mcptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Bearer is an upstream MCP server's bearer-token check. It records every
// request that reaches it, answers 401 with a WWW-Authenticate challenge when
// the token is missing or not accepted by Verify, answers 403
// insufficient_scope to a tools/call whose tool needs a scope the token
// lacks, and passes everything else to Next.
type Bearer struct {
	// Next serves the accepted requests.
	Next http.Handler

	// Verify accepts a token and returns its scopes; see
	// [Authorizer.Verify]. Nil accepts every request, token or not.
	Verify func(token string) (scopes []string, ok bool)

	// ToolScopes maps a tool name to the scope a tools/call of it needs.
	ToolScopes map[string]string

	// ResourceMetadata, when set, is sent as resource_metadata in the 401
	// challenge.
	ResourceMetadata string

	mu   sync.Mutex
	reqs []Request
}

// Request is a request as it reached the upstream.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Host     string
	Header   http.Header
	Body     []byte
	// Status is the status Bearer answered itself (401 or 403), or 0 when
	// the request was passed to Next.
	Status int
}

func (b *Bearer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Host:     r.Host,
		Header:   r.Header.Clone(),
		Body:     body,
	}
	rec.Status = b.check(w, r, body)
	b.mu.Lock()
	b.reqs = append(b.reqs, rec)
	b.mu.Unlock()
	if rec.Status == 0 {
		b.Next.ServeHTTP(w, r)
	}
}

// check answers a refused request and returns its status, or 0.
func (b *Bearer) check(w http.ResponseWriter, r *http.Request, body []byte) int {
	if b.Verify == nil {
		return 0
	}
	tok, isBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	scopes, ok := b.Verify(tok)
	if !isBearer || !ok {
		c := `Bearer realm="mcp"`
		if b.ResourceMetadata != "" {
			c += fmt.Sprintf(`, resource_metadata=%q`, b.ResourceMetadata)
		}
		if isBearer {
			c += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", c)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return http.StatusUnauthorized
	}
	if need := b.ToolScopes[toolName(body)]; need != "" && !slices.Contains(scopes, need) {
		w.Header().Set("WWW-Authenticate",
			fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, error_description="tool needs scope %s"`, need, need))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"error":"insufficient_scope","scope":%q}`, need)
		return http.StatusForbidden
	}
	return 0
}

// toolName returns the tool a tools/call request names, or "".
func toolName(body []byte) string {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method != "tools/call" {
		return ""
	}
	return msg.Params.Name
}

// Requests returns the requests recorded so far.
func (b *Bearer) Requests() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.reqs)
}

// Count returns the number of requests recorded so far.
func (b *Bearer) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}
