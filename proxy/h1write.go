package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// writeRequest writes req to bw byte for byte as req.Write would, for the
// requests the proxy forwards all the time: a known-length body in memory,
// plain header values, an ASCII host. It does without req.Write's fmt
// calls, its transfer writer and its header sorter, which together were 5 %
// of the proxy's CPU time (BENCHMARKS.md). For any other request it writes
// nothing and reports false, and the caller uses req.Write; a fuzz test
// holds the two to the same bytes.
func writeRequest(bw *bufio.Writer, req *http.Request) (bool, error) {
	body := req.Body != nil && req.Body != http.NoBody
	if req.Close || req.Method == http.MethodConnect || len(req.Trailer) > 0 || len(req.TransferEncoding) > 0 ||
		body && req.ContentLength <= 0 || !body && req.ContentLength != 0 {
		return false, nil
	}
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil &&
		(trace.WroteHeaderField != nil || trace.WroteHeaders != nil || trace.WroteRequest != nil) {
		return false, nil
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" && req.URL != nil {
		host = req.URL.Host
	}
	if req.URL == nil || !isToken(method) || !plainHost(host) {
		return false, nil
	}
	uri := req.URL.RequestURI()
	for i := range len(uri) {
		if uri[i] <= ' ' || uri[i] == 0x7f {
			return false, nil
		}
	}
	ua := "Go-http-client/1.1"
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if !plainValue(ua) {
		return false, nil
	}
	// The other headers in req.Write's order: sorted by name, each value
	// on a line of its own, without the ones it writes itself.
	var buf [16]headerLines
	lines := buf[:0]
	for k, vs := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !isToken(k) {
			return false, nil
		}
		for _, v := range vs {
			if !plainValue(v) {
				return false, nil
			}
		}
		lines = append(lines, headerLines{k, vs})
	}
	slices.SortFunc(lines, func(a, b headerLines) int { return strings.Compare(a.name, b.name) })

	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	if ua != "" {
		writeField(bw, "User-Agent", ua)
	}
	// As net/http: many servers expect a length for these methods even
	// when it is 0.
	if body || method == "POST" || method == "PUT" || method == "PATCH" {
		writeLength(bw, req.ContentLength)
	}
	for _, l := range lines {
		for _, v := range l.values {
			writeField(bw, l.name, v)
		}
	}
	bw.WriteString("\r\n")
	if !body {
		return true, nil
	}
	// As net/http: the body up to its length, then whatever it has left
	// (counted, not sent), then Close, the first error winning.
	n, err := io.Copy(bw, io.LimitReader(req.Body, req.ContentLength))
	if err == nil {
		var extra int64
		extra, err = io.Copy(io.Discard, req.Body)
		n += extra
	}
	if cerr := req.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return true, err
	}
	if n != req.ContentLength {
		return true, fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
	}
	return true, nil
}

// writeHeader writes h without the names in exclude, as
// h.WriteSubset(bw, exclude) does: sorted by name, invalid names left
// out, each value on a line of its own with its line breaks made spaces
// and its surrounding white space trimmed. It does without WriteSubset's
// sorter pool and replacer, whose cold code was most of a response head's
// cost (BENCHMARKS.md). It returns the writer's first error.
func writeHeader(bw *bufio.Writer, h http.Header, exclude map[string]bool) error {
	var buf [16]headerLines
	lines := buf[:0]
	for k, vs := range h {
		if !exclude[k] {
			lines = append(lines, headerLines{k, vs})
		}
	}
	slices.SortFunc(lines, func(a, b headerLines) int { return strings.Compare(a.name, b.name) })
	for _, l := range lines {
		if !httpguts.ValidHeaderFieldName(l.name) {
			continue // as net/http: dropped, with no way to tell the handler
		}
		for _, v := range l.values {
			if !plainValue(v) {
				v = cleanValue(v)
			}
			writeField(bw, l.name, v)
		}
	}
	// A bufio.Writer keeps its first error and returns it from every
	// later write.
	_, err := bw.WriteString("")
	return err
}

// cleanValue is header value v as net/http writes it: CR and LF made
// spaces, then white space trimmed. Byte by byte: v need not be UTF-8.
func cleanValue(v string) string {
	b := []byte(v)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return textproto.TrimString(string(b))
}

// writeField writes the header line "name: value".
func writeField(bw *bufio.Writer, name, value string) {
	bw.WriteString(name)
	bw.WriteString(": ")
	bw.WriteString(value)
	bw.WriteString("\r\n")
}

// writeLength writes the Content-Length line for n.
func writeLength(bw *bufio.Writer, n int64) {
	bw.WriteString("Content-Length: ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), n, 10))
	bw.WriteString("\r\n")
}

// plainHost reports whether a Host header is one net/http writes as it is:
// ASCII letters, digits and the punctuation of names, IPv4 and IPv6
// literals and ports, without an IPv6 zone.
func plainHost[T string | []byte](h T) bool {
	if len(h) == 0 {
		return false
	}
	for i := range len(h) {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// plainValue reports whether net/http writes header value v unchanged: no
// line breaks to replace and no surrounding white space to trim.
func plainValue(v string) bool {
	if v == "" {
		return true
	}
	if v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t' {
		return false
	}
	for i := range len(v) {
		if v[i] == '\r' || v[i] == '\n' {
			return false
		}
	}
	return true
}

// headerLines is a header's name and values, in the order they are written.
type headerLines struct {
	name   string
	values []string
}
