package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readBoth parses raw with parseResponse and, when that took it, with
// http.ReadResponse, and reports any difference: in the response, in the
// body of ContentLength bytes and in what the reader has left after it.
func readBoth(t *testing.T, method, raw string) (direct bool, diff string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://up.example/mcp", nil)
	if err != nil {
		return false, ""
	}
	br := bufio.NewReaderSize(strings.NewReader(raw), h1ReadBufferSize)
	res, direct := parseResponse(br, req)
	if !direct {
		if br.Buffered() > 0 {
			if b, _ := br.Peek(br.Buffered()); string(b) != raw[:len(b)] {
				t.Fatalf("parseResponse declined after consuming input")
			}
		}
		return false, ""
	}
	body, bodyErr := io.ReadAll(io.LimitReader(br, res.ContentLength))
	rest, _ := io.ReadAll(br)

	sbr := bufio.NewReaderSize(strings.NewReader(raw), h1ReadBufferSize)
	std, err := http.ReadResponse(sbr, req)
	if err != nil {
		return true, "http.ReadResponse refused it: " + err.Error()
	}
	stdBody, stdBodyErr := io.ReadAll(std.Body)
	stdRest, _ := io.ReadAll(sbr)
	std.Body, res.Body = nil, nil
	type result struct {
		Res     *http.Response
		Body    string
		BodyErr bool
		Rest    string
	}
	short := int64(len(body)) < res.ContentLength // net/http: io.ErrUnexpectedEOF
	return true, cmp.Diff(
		result{std, string(stdBody), stdBodyErr != nil, string(stdRest)},
		result{res, string(body), bodyErr != nil || short, string(rest)},
		cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Request" }, cmp.Ignore()))
}

func TestParseResponseMatchesNetHTTP(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	for _, tt := range []struct {
		name, method, raw string
		direct            bool
	}{
		{"Go server", "POST", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Thu, 26 Nov 2026 10:00:00 GMT\r\nContent-Length: 11\r\n\r\n{\"id\":1}\n\nnext", true},
		{"lower-case names (uvicorn)", "POST", "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: abc\r\ncontent-length: 2\r\n\r\n{}", true},
		{"401 with a challenge", "POST", "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer resource_metadata=\"http://x/.well-known/oauth-protected-resource\"\r\nContent-Length: 0\r\n\r\n", true},
		{"no reason phrase", "GET", "HTTP/1.1 404\r\nContent-Length: 3\r\n\r\nabc", true},
		{"repeated header", "POST", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", true},
		{"value white space", "POST", "HTTP/1.1 200 OK\r\nX-A:\t a b \t\r\nX-B:\r\nX-C:   \r\nContent-Length: 0\r\n\r\n", true},
		{"obs-text in a value", "POST", "HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", true},
		{"leading zeros in the length", "POST", "HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\n{}", true},
		{"body cut short", "POST", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", true},
		{"status 999", "POST", "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n", true},

		{"chunked", "POST", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", false},
		{"no length", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n", false},
		{"two lengths", "POST", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", false},
		{"bad length", "POST", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n{}", false},
		{"signed length", "POST", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}", false},
		{"Connection", "POST", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", false},
		{"Pragma", "POST", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\n{}", false},
		{"HTTP/1.0", "POST", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", false},
		{"HEAD", "HEAD", ok, false},
		{"204", "POST", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false},
		{"304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false},
		{"103 first", "POST", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok, false},
		{"folded line", "POST", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", false},
		{"space before colon", "POST", "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 2\r\n\r\n{}", false},
		{"control byte in a value", "POST", "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\n{}", false},
		{"bare LF", "POST", "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\n{}", false},
		{"bare CR in a value", "POST", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\n{}", false},
		{"two-digit status", "POST", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\n{}", false},
		{"head not yet complete", "POST", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false},
		{"head beyond the buffer", "POST", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 2*h1ReadBufferSize) + "\r\nContent-Length: 2\r\n\r\n{}", false},
		{"empty", "POST", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			direct, diff := readBoth(t, tt.method, tt.raw)
			if direct != tt.direct {
				t.Fatalf("parseResponse took it: %v, want %v", direct, tt.direct)
			}
			if diff != "" {
				t.Errorf("parseResponse differs from http.ReadResponse (-net/http +parseResponse):\n%s", diff)
			}
		})
	}
}

// FuzzParseResponse holds parseResponse to http.ReadResponse for every
// response head it parses itself.
func FuzzParseResponse(f *testing.F) {
	f.Add("POST", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	f.Add("POST", "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer\r\ncontent-length: 0\r\n\r\n")
	f.Add("GET", "HTTP/1.1 200 OK\r\nX-A:  a \r\nX-A: b\r\nContent-Length: 1\r\n\r\nxyz")
	f.Add("POST", "HTTP/1.1 500 \r\nContent-Length: 01\r\n\r\nx")
	f.Fuzz(func(t *testing.T, method, raw string) {
		if _, diff := readBoth(t, method, raw); diff != "" {
			t.Errorf("parseResponse differs from http.ReadResponse for %q (-net/http +parseResponse):\n%s", raw, diff)
		}
	})
}

// BenchmarkParseResponse reads a small JSON-RPC answer's head with
// parseResponse and with http.ReadResponse.
func BenchmarkParseResponse(b *testing.B) {
	const raw = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Thu, 26 Nov 2026 10:00:00 GMT\r\nContent-Length: 36\r\n\r\n" +
		`{"jsonrpc":"2.0","id":7,"result":{}}`
	req, _ := http.NewRequest(http.MethodPost, "http://up.example/mcp", nil)
	for _, tt := range []struct {
		name string
		read func(*bufio.Reader) (*http.Response, bool)
	}{
		{"parseResponse", func(br *bufio.Reader) (*http.Response, bool) { return parseResponse(br, req) }},
		{"net-http", func(br *bufio.Reader) (*http.Response, bool) {
			res, err := http.ReadResponse(br, req)
			return res, err == nil
		}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			sr := strings.NewReader(raw)
			br := bufio.NewReaderSize(sr, h1ReadBufferSize)
			b.ReportAllocs()
			for b.Loop() {
				sr.Reset(raw)
				br.Reset(sr)
				if _, ok := tt.read(br); !ok {
					b.Fatal("not read")
				}
			}
		})
	}
}

// TestH1DirectBody reads bodies that parseResponse found through the
// transport: whole, cut short by the upstream, and followed by bytes the
// upstream was not asked for. Only a connection whose body ended exactly
// where its length said is used again.
func TestH1DirectBody(t *testing.T) {
	var accepted atomic.Int32
	url := rawUpstream(t, func(i int, c net.Conn, br *bufio.Reader) {
		accepted.Add(1)
		for {
			req, err := readRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/whole":
				io.WriteString(c, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nwhole")
			case "/short":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
				return
			case "/extra":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
			}
		}
	})
	tr := newTestH1(t)
	get := func(path string) (string, error) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url+path, nil)
		res, err := tr.RoundTrip(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	for _, step := range []struct {
		path, body string
		err        error
		conns      int32 // connections accepted after the step
	}{
		{"/whole", "whole", nil, 1},
		{"/whole", "whole", nil, 1},
		{"/short", "short", io.ErrUnexpectedEOF, 1},
		{"/whole", "whole", nil, 2},
		{"/extra", "ok", nil, 2},
		{"/whole", "whole", nil, 3},
	} {
		body, err := get(step.path)
		if body != step.body || !errors.Is(err, step.err) {
			t.Errorf("GET %s: %q, %v; want %q, %v", step.path, body, err, step.body, step.err)
		}
		if n := accepted.Load(); n != step.conns {
			t.Errorf("after GET %s: %d connections, want %d", step.path, n, step.conns)
		}
	}
}

// TestH1ReportsResetBeforeAnswer checks that an upstream resetting the
// connection instead of answering is reported as a reset, as net/http's
// Transport reports it, not as an early end of the answer.
func TestH1ReportsResetBeforeAnswer(t *testing.T) {
	url := rawUpstream(t, func(i int, c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		c.(*net.TCPConn).SetLinger(0) // close with RST
	})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/mcp", nil)
	if _, err := newTestH1(t).RoundTrip(req); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("RoundTrip: %v, want connection reset by peer", err)
	}
}

// TestH1WroteRequestTrace checks that a ClientTrace's WroteRequest hook
// fires once per request, as with net/http's Transport.
func TestH1WroteRequestTrace(t *testing.T) {
	url := rawUpstream(t, func(i int, c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, okResponse)
		}
	})
	tr := newTestH1(t)
	for _, method := range []string{"GET", "POST"} {
		wrote := 0
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { wrote++ },
		})
		req, _ := http.NewRequestWithContext(ctx, method, url+"/mcp", nil)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if wrote != 1 {
			t.Errorf("%s: WroteRequest called %d times, want 1", method, wrote)
		}
	}
}
