package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// reqSpec describes a request so that two identical ones can be built: one
// for writeRequest and one for net/http's Request.Write.
type reqSpec struct {
	method, uri, host string
	header            http.Header
	body              string
	length            int64 // ContentLength; -1: len(body)
	close             bool
	trailer           http.Header
	trace             *httptrace.ClientTrace
	url               *url.URL // instead of uri, for URLs url.Parse refuses
}

func (s reqSpec) build(t testing.TB) *http.Request {
	t.Helper()
	u, err := url.Parse(s.uri)
	if s.url != nil {
		u, err = new(*s.url), nil
	}
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{Method: s.method, URL: u, Host: s.host, Header: s.header.Clone(), Close: s.close, Trailer: s.trailer}
	if s.body != "" || s.length > 0 {
		req.Body = io.NopCloser(strings.NewReader(s.body))
		req.ContentLength = s.length
		if s.length < 0 {
			req.ContentLength = int64(len(s.body))
		}
	}
	ctx := context.Background()
	if s.trace != nil {
		ctx = httptrace.WithClientTrace(ctx, s.trace)
	}
	return req.WithContext(ctx)
}

// writeBoth writes s with writeRequest and, when that wrote it, with
// Request.Write, and returns both outputs and errors.
func writeBoth(t testing.TB, s reqSpec) (written bool, fast, std string, fastErr, stdErr error) {
	t.Helper()
	var a, b bytes.Buffer
	wa, wb := bufio.NewWriter(&a), bufio.NewWriter(&b)
	written, fastErr = writeRequest(wa, s.build(t))
	wa.Flush()
	if !written {
		if a.Len() > 0 {
			t.Fatalf("writeRequest declined after writing %q", a.String())
		}
		return false, "", "", nil, nil
	}
	stdErr = s.build(t).Write(wb)
	wb.Flush()
	return true, a.String(), b.String(), fastErr, stdErr
}

func TestWriteRequestMatchesNetHTTP(t *testing.T) {
	mcp := http.Header{
		"Accept":               {"application/json, text/event-stream"},
		"Authorization":        {"Bearer tok"},
		"Content-Type":         {"application/json"},
		"Mcp-Protocol-Version": {"2025-06-18"},
		"Mcp-Session-Id":       {"abc"},
		"User-Agent":           {""}, // as ReverseProxy leaves it when the client sent none
		"X-Multi":              {"one", "two"},
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`
	for _, tt := range []struct {
		name string
		spec reqSpec
		fast bool // writeRequest writes it itself
	}{
		{"mcp POST", reqSpec{method: "POST", uri: "http://up.example:8080/mcp?k=v", header: mcp, body: body, length: -1}, true},
		{"Host differs from URL", reqSpec{method: "POST", uri: "http://10.0.0.1/mcp", host: "up.example", header: mcp, body: body, length: -1}, true},
		{"IPv6 host", reqSpec{method: "POST", uri: "http://[::1]:9/mcp", header: mcp, body: body, length: -1}, true},
		{"GET without body", reqSpec{method: "GET", uri: "http://up.example/sse", header: http.Header{"Accept": {"text/event-stream"}}}, true},
		{"empty method", reqSpec{uri: "http://up.example/"}, true},
		{"DELETE without body", reqSpec{method: "DELETE", uri: "http://up.example/mcp", header: mcp}, true},
		{"POST without body", reqSpec{method: "POST", uri: "http://up.example/mcp"}, true},
		{"PUT without body", reqSpec{method: "PUT", uri: "http://up.example/mcp"}, true},
		{"default User-Agent", reqSpec{method: "POST", uri: "http://up.example/mcp", body: body, length: -1}, true},
		{"client User-Agent", reqSpec{method: "POST", uri: "http://up.example/mcp", header: http.Header{"User-Agent": {"claude/1.0"}}, body: body, length: -1}, true},
		{"escaped path", reqSpec{method: "GET", uri: "http://up.example/a%20b/%E2%82%AC?q=%0A"}, true},
		{"excluded headers", reqSpec{method: "POST", uri: "http://up.example/mcp", header: http.Header{"Host": {"evil"}, "Content-Length": {"1"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}}, body: body, length: -1}, true},
		{"empty header value", reqSpec{method: "POST", uri: "http://up.example/mcp", header: http.Header{"X-Empty": {""}, "X-None": {}}, body: body, length: -1}, true},
		{"more headers than the array", reqSpec{method: "GET", uri: "http://up.example/", header: manyHeaders(40)}, true},
		{"body shorter than its length", reqSpec{method: "POST", uri: "http://up.example/mcp", body: "abc", length: 5}, true},
		{"body longer than its length", reqSpec{method: "POST", uri: "http://up.example/mcp", body: "abcdef", length: 2}, true},
		{"trace without write hooks", reqSpec{method: "POST", uri: "http://up.example/mcp", body: body, length: -1, trace: &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error { return nil }}}, true},

		{"value with a line break", reqSpec{method: "GET", uri: "http://up.example/", header: http.Header{"X-A": {"a\r\nInjected: 1"}}}, false},
		{"value with outer space", reqSpec{method: "GET", uri: "http://up.example/", header: http.Header{"X-A": {" a"}}}, false},
		{"User-Agent with a tab", reqSpec{method: "GET", uri: "http://up.example/", header: http.Header{"User-Agent": {"ua\t"}}}, false},
		{"invalid header name", reqSpec{method: "GET", uri: "http://up.example/", header: http.Header{"X A": {"a"}}}, false},
		{"non-ASCII host", reqSpec{method: "GET", uri: "http://up.example/", host: "bücher.example"}, false},
		{"IPv6 zone", reqSpec{method: "GET", uri: "http://[fe80::1%25eth0]:80/"}, false},
		{"control byte in the path", reqSpec{method: "GET", url: &url.URL{Scheme: "http", Host: "up.example", Path: "/a", RawQuery: "b\x7f"}}, false},
		{"Close", reqSpec{method: "GET", uri: "http://up.example/", close: true}, false},
		{"trailer", reqSpec{method: "POST", uri: "http://up.example/mcp", body: body, length: -1, trailer: http.Header{"X-T": nil}}, false},
		{"body of unknown length", reqSpec{method: "POST", uri: "http://up.example/mcp", body: body, length: 0}, false},
		{"length without a body", reqSpec{method: "POST", uri: "http://up.example/mcp", length: 0}, true},
		{"invalid method", reqSpec{method: "GE T", uri: "http://up.example/"}, false},
		{"trace with write hooks", reqSpec{method: "GET", uri: "http://up.example/", trace: &httptrace.ClientTrace{WroteHeaders: func() {}}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			written, fast, std, fastErr, stdErr := writeBoth(t, tt.spec)
			if written != tt.fast {
				t.Fatalf("writeRequest wrote it: %v, want %v", written, tt.fast)
			}
			if !written {
				return
			}
			if diff := cmp.Diff(std, fast); diff != "" {
				t.Errorf("writeRequest wrote other bytes than Request.Write (-net/http +writeRequest):\n%s", diff)
			}
			if errString(fastErr) != errString(stdErr) {
				t.Errorf("writeRequest error %v, Request.Write error %v", fastErr, stdErr)
			}
		})
	}
}

func manyHeaders(n int) http.Header {
	h := http.Header{}
	for i := range n {
		h.Set("X-H"+strings.Repeat("a", i), "v")
	}
	return h
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzWriteRequest holds writeRequest to Request.Write's bytes and errors
// for every request it writes itself. Headers are given as "name:value"
// entries separated by NUL bytes.
func FuzzWriteRequest(f *testing.F) {
	f.Add("POST", "http://127.0.0.1:8080/mcp?x=1", "", "Content-Type:application/json\x00User-Agent:\x00Authorization:Bearer t", `{"id":1}`, int64(0), false)
	f.Add("GET", "http://[::1]/sse", "h.example:81", "Accept:text/event-stream\x00Accept:x", "", int64(0), false)
	f.Add("", "http://a/b%20c", "", "X-A: a\x00X B:c", "body", int64(2), true)
	f.Fuzz(func(t *testing.T, method, uri, host, headers, body string, delta int64, close bool) {
		if _, err := url.Parse(uri); err != nil {
			return
		}
		h := http.Header{}
		for e := range strings.SplitSeq(headers, "\x00") {
			if k, v, ok := strings.Cut(e, ":"); ok {
				h[k] = append(h[k], v)
			}
		}
		spec := reqSpec{method: method, uri: uri, host: host, header: h, body: body, length: -1, close: close}
		if body != "" {
			spec.length = max(int64(len(body))+delta%4, 0)
		}
		written, fast, std, fastErr, stdErr := writeBoth(t, spec)
		if !written {
			return
		}
		if fast != std || errString(fastErr) != errString(stdErr) {
			t.Errorf("writeRequest wrote %q (err %v), Request.Write %q (err %v)", fast, fastErr, std, stdErr)
		}
	})
}

// FuzzWriteHeader holds writeHeader to Header.WriteSubset's bytes for any
// header, given as "name:value" entries separated by NUL bytes, and any
// names to leave out, separated by commas; and to its error from a writer
// that fails after limit-1 bytes (0: one that never fails).
func FuzzWriteHeader(f *testing.F) {
	f.Add("Content-Type:application/json\x00Date:x\x00X-A: a\r\n b \x00X-A:\x00Bad Name:v", "Date", uint16(0))
	f.Add("Mcp-Session-Id:s\x00Content-Length:2\x00X-\xff:v\x00X-B:\xfe\r\n", "Content-Length,Transfer-Encoding", uint16(0))
	f.Add("A:1\x00B:2\x00C:3", "", uint16(12))
	f.Fuzz(func(t *testing.T, headers, exclude string, limit uint16) {
		h := http.Header{}
		for e := range strings.SplitSeq(headers, "\x00") {
			if k, v, ok := strings.Cut(e, ":"); ok {
				h[k] = append(h[k], v)
			}
		}
		ex := map[string]bool{}
		for k := range strings.SplitSeq(exclude, ",") {
			ex[k] = true
		}
		var got, want bytes.Buffer
		gotW := bufio.NewWriterSize(&failingWriter{w: &got, n: int(limit) - 1}, 16)
		wantW := bufio.NewWriterSize(&failingWriter{w: &want, n: int(limit) - 1}, 16)
		gotErr, wantErr := writeHeader(gotW, h, ex), h.WriteSubset(wantW, ex)
		gotW.Flush()
		wantW.Flush()
		if got.String() != want.String() || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("writeHeader wrote %q (err %v), WriteSubset %q (err %v)", got.String(), gotErr, want.String(), wantErr)
		}
	})
}

// failingWriter writes to w until it has taken n bytes, and fails from
// then on; with n < 0 it never fails.
type failingWriter struct {
	w io.Writer
	n int
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n < 0 {
		return f.w.Write(p)
	}
	if len(p) > f.n {
		n, _ := f.w.Write(p[:f.n])
		f.n = 0
		return n, errors.New("failingWriter: full")
	}
	f.n -= len(p)
	return f.w.Write(p)
}

// BenchmarkWriteRequest writes the proxy's usual request with writeRequest
// and with net/http's Request.Write.
func BenchmarkWriteRequest(b *testing.B) {
	spec := reqSpec{method: "POST", uri: "http://127.0.0.1:8080/mcp", header: http.Header{
		"Accept":               {"application/json, text/event-stream"},
		"Authorization":        {"Bearer " + strings.Repeat("t", 40)},
		"Content-Type":         {"application/json"},
		"Mcp-Protocol-Version": {"2025-06-18"},
		"Mcp-Session-Id":       {"3f0e2c1a"},
		"User-Agent":           {""},
	}, body: benchBody, length: -1}
	for _, tt := range []struct {
		name  string
		write func(*bufio.Writer, *http.Request) error
	}{
		{"writeRequest", func(bw *bufio.Writer, r *http.Request) error { _, err := writeRequest(bw, r); return err }},
		{"net-http", func(bw *bufio.Writer, r *http.Request) error { return r.Write(bw) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			bw := bufio.NewWriterSize(io.Discard, h1WriteBufferSize)
			req := spec.build(b)
			body := strings.NewReader(spec.body)
			req.Body = io.NopCloser(body) // closing it does nothing: reused
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(spec.body)
				if err := tt.write(bw, req); err != nil {
					b.Fatal(err)
				}
				bw.Flush()
			}
		})
	}
}

type closeFails struct{ io.Reader }

func (closeFails) Close() error { return errors.New("close failed") }

// failsAfter is a body that fails when read past its bytes.
type failsAfter struct{ r *strings.Reader }

func (b failsAfter) Read(p []byte) (int, error) {
	if b.r.Len() == 0 {
		return 0, errors.New("read failed after the last byte")
	}
	return b.r.Read(p)
}

func (failsAfter) Close() error { return nil }

// TestWriteRequestBodyErrors checks the errors of bodies that fail to
// close or fail after their last byte, which net/http reports, and that
// CONNECT (whose request line names the host) is left to Request.Write.
func TestWriteRequestBodyErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		req    func() *http.Request
		direct bool
	}{
		{"Close fails", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://up.example/mcp", nil)
			r.Body, r.ContentLength = closeFails{strings.NewReader("{}")}, 2
			return r
		}, true},
		{"read fails after the length", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://up.example/mcp", nil)
			r.Body, r.ContentLength = failsAfter{strings.NewReader("{}")}, 2
			return r
		}, true},
		{"CONNECT", func() *http.Request {
			return &http.Request{Method: "CONNECT", URL: &url.URL{Host: "up.example:443"}, Host: "up.example:443", Header: http.Header{}}
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var a, b bytes.Buffer
			wa, wb := bufio.NewWriter(&a), bufio.NewWriter(&b)
			written, fastErr := writeRequest(wa, tt.req())
			wa.Flush()
			if written != tt.direct {
				t.Fatalf("writeRequest wrote it: %v, want %v", written, tt.direct)
			}
			if !written {
				return
			}
			stdErr := tt.req().Write(wb)
			wb.Flush()
			if fastErr == nil || a.String() != b.String() || errString(fastErr) != errString(stdErr) {
				t.Errorf("writeRequest: %q, err %v\nRequest.Write: %q, err %v", a.String(), fastErr, b.String(), stdErr)
			}
		})
	}
}
