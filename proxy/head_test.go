package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// plainHeads are request heads plainHead accepts, and a few it refuses.
var plainHeads = []string{
	"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8101\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 42\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: localhost\r\n\r\n",
	"POST /a/b?x=1&y=%20z HTTP/1.1\r\nhost: h\r\ncontent-length: 007\r\nmcp-session-id: abc\r\nMCP-PROTOCOL-VERSION: 2025-06-18\r\n\r\n",
	// As clients built on fetch send it: names in lower case.
	"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:8101\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-06-18\r\nmcp-session-id: 3f2a\r\nlast-event-id: 7\r\ncontent-length: 42\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nX-A:3\r\nX-Empty:\r\nX-Spaces: \t v \t \r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n",
	"POST /a%zz HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST /%41%2F?q=%zz#frag HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST //x/../y;p HTTP/1.1\r\nHost: [::1]:80\r\nUser-Agent: \r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\nx_under: 1\r\nX-Odd!#$%&'*+.^`|~: v\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999999999\r\n\r\n",
	"GET /mcp HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
}

// FuzzReadPlainHead holds readPlainHead to http.ReadRequest on every head
// plainHead accepts: both fail, or both make the same request.
func FuzzReadPlainHead(f *testing.F) {
	for _, h := range plainHeads {
		f.Add([]byte(h))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		if !plainHead(head) {
			return
		}
		got, err := readPlainHead(head)
		want, wantErr := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: readPlainHead error %v, http.ReadRequest error %v", head, err, wantErr)
		}
		if err != nil {
			return
		}
		type view struct {
			Method, Proto, Host, RequestURI, URL string
			URLParts                             any
			ProtoMajor, ProtoMinor               int
			Header                               http.Header
			ContentLength                        int64
			Close                                bool
			TransferEncoding                     []string
			Trailer                              http.Header
			NoBody                               bool
		}
		see := func(r *http.Request) view {
			return view{r.Method, r.Proto, r.Host, r.RequestURI, r.URL.String(), *r.URL, r.ProtoMajor, r.ProtoMinor,
				r.Header, r.ContentLength, r.Close, r.TransferEncoding, r.Trailer, r.Body == http.NoBody}
		}
		g, w := see(got), see(want)
		if w.ContentLength > 0 {
			w.NoBody = true // ReadRequest's body for it is replaced by serveRequest's
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("%q: readPlainHead differs from http.ReadRequest (-ReadRequest +readPlainHead):\n%s", head, diff)
		}
	})
}

// TestReadPlainHeadSeeds checks that the seeds exercise both paths.
func TestReadPlainHeadSeeds(t *testing.T) {
	accepted, failed := 0, 0
	for _, h := range plainHeads {
		if !plainHead([]byte(h)) {
			continue
		}
		accepted++
		if _, err := readPlainHead([]byte(h)); err != nil {
			failed++
		}
	}
	if accepted < 10 || failed == 0 {
		t.Errorf("plainHead accepts %d seeds, readPlainHead fails on %d: want ≥ 10 and ≥ 1", accepted, failed)
	}
}

// BenchmarkReadHead compares the two ways to a request from the usual
// MCP POST heads: with canonical names, and with names in lower case.
func BenchmarkReadHead(b *testing.B) {
	for _, name := range []string{"canonical", "lower-case"} {
		head := []byte(plainHeads[0])
		if name == "lower-case" {
			head = []byte(plainHeads[3])
		}
		b.Run(name, func(b *testing.B) { benchmarkReadHead(b, head) })
	}
}

func benchmarkReadHead(b *testing.B, head []byte) {
	b.Run("http.ReadRequest", func(b *testing.B) {
		b.ReportAllocs()
		rd := bytes.NewReader(head)
		br := bufio.NewReader(rd)
		for b.Loop() {
			rd.Reset(head)
			br.Reset(rd)
			if _, err := http.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("readPlainHead", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := readPlainHead(head); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzParseTarget requires parseTarget to give what url.ParseRequestURI
// gives, its shortcut for plain paths included.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/mcp", "/", "//x", "/a/../b", "/v1/mcp-server_x.y~z", "/mcp?x=1", "/m%63p", "/a b", "*", "", "mcp", "/a!b", "/a;b=c", "http://h/mcp", "/\x7f", "A://@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		want, wantErr := url.ParseRequestURI(target)
		got, err := parseTarget(target)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("parseTarget(%q): error %v, want %v", target, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) { // the URLs' Userinfo are pointers
			t.Errorf("parseTarget(%q) = %#v, want %#v", target, *got, *want)
		}
	})
}
