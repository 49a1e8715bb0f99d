package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestResponseBuffers(t *testing.T) {
	small, large := &bufferPool{size: streamBufferSize}, &bufferPool{size: copyBufferSize}
	b := responseBuffers{small: small, large: large}
	if got := len(b.Get()); got != copyBufferSize {
		t.Errorf("buffer for a response = %d bytes, want %d", got, copyBufferSize)
	}
	b.stream = true
	buf := b.Get()
	if len(buf) != streamBufferSize {
		t.Errorf("buffer for an event stream = %d bytes, want %d", len(buf), streamBufferSize)
	}
	// A buffer goes back to the pool of its size, whatever the response:
	// the large pool never hands out a small one.
	b.stream = false
	b.Put(buf)
	if got := len(*large.get()); got != copyBufferSize {
		t.Errorf("large pool handed out %d bytes", got)
	}
}

func TestBufferSizeFollowsTheResponse(t *testing.T) {
	h, err := newHandler(Server{Upstream: "http://127.0.0.1:9/mcp"}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, contentType string
		stream              bool
	}{
		{http.MethodGet, "text/event-stream", true},
		{http.MethodGet, "Text/Event-Stream; charset=utf-8", true},
		{http.MethodPost, "text/event-stream", false}, // ends with its answer, which may be large
		{http.MethodGet, "application/json", false},
	}
	for _, tt := range tests {
		info := &reqInfo{}
		req := httptest.NewRequest(tt.method, "http://127.0.0.1:9/mcp", nil)
		res := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {tt.contentType}},
			Request: req.WithContext(context.WithValue(req.Context(), reqInfoKey{}, info))}
		if err := h.modifyResponse(res); err != nil {
			t.Fatal(err)
		}
		if info.buffers.stream != tt.stream {
			t.Errorf("%s answered with %s: small buffer = %v, want %v", tt.method, tt.contentType, info.buffers.stream, tt.stream)
		}
	}
}

// The router passes every standard method and path upstream and answers
// the rest as chi does.
func TestRouter(t *testing.T) {
	tests := []struct {
		method, target string
		want           int // 0: passed on
	}{
		{http.MethodPost, "/mcp", 0},
		{http.MethodGet, "/sse?x=1", 0},
		{http.MethodDelete, "/", 0},
		{http.MethodPatch, "/a/b%2Fc", 0},
		{"PROPFIND", "/mcp", http.StatusMethodNotAllowed},
		{http.MethodOptions, "*", http.StatusNotFound},
	}
	for _, tt := range tests {
		var rt countingTransport
		h, err := newHandler(Server{Upstream: "http://127.0.0.1:9/mcp"}, Options{Transport: &rt}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		r := httptest.NewRequest(tt.method, "http://127.0.0.1:9/", nil)
		r.URL.Path, r.URL.RawQuery = tt.target, ""
		h.ServeHTTP(w, r)
		passed := rt.n.Load() == 1
		if passed != (tt.want == 0) || (!passed && w.Code != tt.want) {
			t.Errorf("%s %s: passed on %v, status %d; want status %d (0: passed on)", tt.method, tt.target, passed, w.Code, tt.want)
		}
	}
}

// countingTransport answers like cannedTransport and counts the requests.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return cannedTransport{}.RoundTrip(req)
}
