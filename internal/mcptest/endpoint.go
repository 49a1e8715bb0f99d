package mcptest

import (
	"bytes"
	"net/http"
)

// AbsoluteEndpoint makes h, a go-sdk SSE handler, announce its session
// endpoint as an absolute URL on origin(r) instead of a path, as some
// legacy servers do; a proxy must point that back at its listener.
func AbsoluteEndpoint(h http.Handler, origin func(r *http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&endpointWriter{ResponseWriter: w, origin: origin(r)}, r)
	})
}

type endpointWriter struct {
	http.ResponseWriter
	origin string
	done   bool
}

func (w *endpointWriter) Write(b []byte) (int, error) {
	if !w.done && bytes.HasPrefix(b, []byte("event: endpoint\n")) {
		w.done = true
		_, err := w.ResponseWriter.Write(bytes.Replace(b, []byte("data: /"), []byte("data: "+w.origin+"/"), 1))
		return len(b), err
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer's Flush.
func (w *endpointWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
