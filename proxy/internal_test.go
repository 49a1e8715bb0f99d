package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestEndpointRewriter(t *testing.T) {
	rewrite := func(data string) string {
		return strings.Replace(data, "https://up.example", "http://127.0.0.1:7000", 1)
	}
	tests := []struct {
		name, in, want string
	}{
		{"lf", "event: endpoint\ndata: https://up.example/m?s=1\n\nrest",
			"event: endpoint\ndata: http://127.0.0.1:7000/m?s=1\n\nrest"},
		{"crlf", "event: endpoint\r\ndata: https://up.example/m\r\n\r\nrest\r\n",
			"event: endpoint\r\ndata: http://127.0.0.1:7000/m\r\n\r\nrest\r\n"},
		{"cr", "event: endpoint\rdata: https://up.example/m\r\rrest",
			"event: endpoint\rdata: http://127.0.0.1:7000/m\r\rrest"},
		{"no space after colon", "event:endpoint\ndata:https://up.example/m\n\n",
			"event:endpoint\ndata: http://127.0.0.1:7000/m\n\n"},
		{"comments, id and retry kept", ": hi\nretry: 5\nevent: endpoint\nid: 9\ndata: https://up.example/m\n: inside\n\n",
			": hi\nretry: 5\nevent: endpoint\nid: 9\ndata: http://127.0.0.1:7000/m\n: inside\n\n"},
		{"multi-line data joined", "event: endpoint\ndata: https://up.example\ndata: /m\n\n",
			"event: endpoint\ndata: http://127.0.0.1:7000\ndata: /m\n\n"},
		{"message events before", "data: x\n\nevent: endpoint\ndata: https://up.example/m\n\n",
			"data: x\n\nevent: endpoint\ndata: http://127.0.0.1:7000/m\n\n"},
		{"byte order mark", "\ufeffevent: endpoint\ndata: https://up.example/m\n\n",
			"\ufeffevent: endpoint\ndata: http://127.0.0.1:7000/m\n\n"},
		{"relative, unchanged", "event: endpoint\ndata: /m?s=1\n\nevent: endpoint\ndata: https://up.example/\n\n",
			"event: endpoint\ndata: /m?s=1\n\nevent: endpoint\ndata: https://up.example/\n\n"},
		{"endpoint without data ignored", "event: endpoint\n\nevent: endpoint\ndata: https://up.example/m\n\n",
			"event: endpoint\n\nevent: endpoint\ndata: http://127.0.0.1:7000/m\n\n"},
		{"unterminated", "event: endpoint\ndata: https://up.example/m", "event: endpoint\ndata: https://up.example/m"},
		{"empty", "", ""},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte at a time", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				e := newEndpointRewriter(io.NopCloser(rd.wrap(strings.NewReader(tt.in))), rewrite)
				got, err := io.ReadAll(e)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tt.want {
					t.Errorf("got  %q\nwant %q", got, tt.want)
				}
			})
		}
	}
}

// TestEndpointRewriterEventByEvent checks that each complete event is handed
// on without waiting for more input.
func TestEndpointRewriterEventByEvent(t *testing.T) {
	pr, pw := io.Pipe()
	e := newEndpointRewriter(pr, func(string) string { return "/local" })
	go func() {
		io.WriteString(pw, ": ping\r\n\r")          // a comment event ended by \r\n\r…
		io.WriteString(pw, "\nevent: endpoint\r\n") // …whose last \n comes later
		io.WriteString(pw, "data: https://up.example/m\r\n\r\n")
		io.WriteString(pw, "data: after\n\n")
	}()
	buf := make([]byte, 1024)
	var got []string
	for _, want := range []string{": ping\r\n\r", "\nevent: endpoint\r\ndata: /local\r\n\r\n", "data: after\n\n"} {
		n, err := e.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
		if string(buf[:n]) != want {
			t.Fatalf("reads %q, then want %q", got, want)
		}
	}
	pw.Close()
	if n, err := e.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("final read = %d, %v, want EOF", n, err)
	}
}

func TestEndpointRewriterGivesUp(t *testing.T) {
	in := strings.Repeat("data: "+strings.Repeat("x", 1000)+"\n\n", maxEndpointScan/1000+10) +
		"event: endpoint\ndata: https://up.example/m\n\n"
	e := newEndpointRewriter(io.NopCloser(strings.NewReader(in)), func(string) string { return "/changed" })
	got, err := io.ReadAll(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != in {
		t.Errorf("a late endpoint event was rewritten or the stream changed")
	}
}

func TestEndpointRewriterError(t *testing.T) {
	boom := errors.New("boom")
	e := newEndpointRewriter(io.NopCloser(io.MultiReader(strings.NewReader("data: partial"), iotest.ErrReader(boom))),
		func(s string) string { return s })
	got, err := io.ReadAll(e)
	if string(got) != "data: partial" || !errors.Is(err, boom) {
		t.Errorf("got %q, %v; want the partial event, then the error", got, err)
	}
}

func TestGuardCheck(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7001}
	remote := &net.TCPAddr{IP: net.IPv4(192, 168, 1, 5), Port: 7001}
	tests := []struct {
		name   string
		server Server
		opts   Options
		local  net.Addr // nil: unknown
		host   string
		origin string
		ok     bool
	}{
		{"loopback", Server{}, Options{}, local, "127.0.0.1:7001", "", true},
		{"loopback other IP", Server{}, Options{}, local, "127.0.0.2:7001", "", true},
		{"localhost upper case", Server{}, Options{}, local, "LOCALHOST:7001", "", true},
		{"ipv6", Server{}, Options{}, local, "[::1]:7001", "", true},
		{"wrong port", Server{}, Options{}, local, "localhost:7002", "", false},
		{"no port means 80", Server{}, Options{}, local, "localhost", "", false},
		{"no port on port 80", Server{}, Options{}, &net.TCPAddr{IP: local.IP, Port: 80}, "localhost", "", true},
		{"unknown port", Server{}, Options{}, nil, "localhost:1234", "", true},
		{"foreign", Server{}, Options{}, local, "evil.example:7001", "", false},
		{"empty", Server{}, Options{}, local, "", "", false},
		{"malformed", Server{}, Options{}, local, "a:b:c", "", false},
		{"allowed host", Server{}, Options{AllowedHosts: []string{"Box.Local"}}, local, "box.local:7001", "", true},
		{"allowed host other port", Server{}, Options{AllowedHosts: []string{"box.local"}}, local, "box.local:9", "", false},
		{"allowed host:port", Server{}, Options{AllowedHosts: []string{"box.local:9"}}, local, "box.local:9", "", true},
		{"remote IP without AllowRemote", Server{Listen: "0.0.0.0:7001"}, Options{}, remote, "192.168.1.5:7001", "", false},
		{"remote IP with AllowRemote", Server{Listen: "0.0.0.0:7001"}, Options{AllowRemote: true}, remote, "192.168.1.5:7001", "", true},
		{"listen name with AllowRemote", Server{Listen: "mybox:7001"}, Options{AllowRemote: true}, remote, "mybox:7001", "", true},
		{"other name with AllowRemote", Server{Listen: "mybox:7001"}, Options{AllowRemote: true}, remote, "evil.example:7001", "", false},
		{"loopback origin", Server{}, Options{}, local, "127.0.0.1:7001", "http://localhost:6274", true},
		{"https loopback origin", Server{}, Options{}, local, "127.0.0.1:7001", "https://127.0.0.1", true},
		{"ipv6 origin", Server{}, Options{}, local, "127.0.0.1:7001", "http://[::1]:3000", true},
		{"foreign origin", Server{}, Options{}, local, "127.0.0.1:7001", "https://evil.example", false},
		{"null origin", Server{}, Options{}, local, "127.0.0.1:7001", "null", false},
		{"file origin", Server{}, Options{}, local, "127.0.0.1:7001", "file://", false},
		{"lookalike origin", Server{}, Options{}, local, "127.0.0.1:7001", "http://localhost.evil.example", false},
		{"own origin under an allowed host", Server{}, Options{AllowedHosts: []string{"box.local"}}, local, "box.local:7001", "http://box.local:7001", true},
		{"own origin, other port", Server{}, Options{AllowedHosts: []string{"box.local"}}, local, "box.local:7001", "http://box.local:7002", false},
		{"other allowed host's origin", Server{}, Options{AllowedHosts: []string{"box.local", "b.local"}}, local, "box.local:7001", "http://b.local:7001", false},
		{"own origin with AllowRemote", Server{Listen: "0.0.0.0:7001"}, Options{AllowRemote: true}, remote, "192.168.1.5:7001", "http://192.168.1.5:7001", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := newGuard(tt.server, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			if tt.local != nil {
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tt.local))
			}
			r.Host = tt.host
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if err := g.check(r); (err == nil) != tt.ok {
				t.Errorf("check = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// A page's <img> or link GET carries no Origin; Sec-Fetch-Site tells.
func TestGuardCrossSiteWithoutOrigin(t *testing.T) {
	g, err := newGuard(Server{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		site, origin string
		ok           bool
	}{
		{"", "", true},                                // not a browser
		{"none", "", true},                            // typed into the address bar
		{"same-site", "", true},                       // a page on localhost
		{"same-origin", "", true},                     // the listener's own page
		{"cross-site", "", false},                     // any other page
		{"Cross-Site", "", false},                     // in any case
		{"cross-site", "http://localhost:6274", true}, // a local web client's fetch
	} {
		r := httptest.NewRequest(http.MethodGet, "/mcp", nil)
		r.Host = "127.0.0.1:7001"
		if tt.site != "" {
			r.Header.Set("Sec-Fetch-Site", tt.site)
		}
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if err := g.check(r); (err == nil) != tt.ok {
			t.Errorf("Sec-Fetch-Site %q, Origin %q: check = %v, want ok %v", tt.site, tt.origin, err, tt.ok)
		}
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"jsonrpc":"2.0","id":1,"method":"x"}`, "1"},
		{` {"id":"a-b"} `, `"a-b"`},
		{`{"id":-3.5}`, "-3.5"},
		{`{"id":null}`, "null"},
		{`{"id":{"x":1}}`, ""},
		{`{"method":"notify"}`, ""},
		{`[{"id":1}]`, ""},
		{`not json`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		if got := string(requestID([]byte(tt.body))); got != tt.want {
			t.Errorf("requestID(%s) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

func TestInsufficientScope(t *testing.T) {
	tests := []struct {
		values []string
		want   bool
	}{
		{[]string{`Bearer error="insufficient_scope", scope="a b"`}, true},
		{[]string{`Bearer realm="x",error=insufficient_scope`}, true},
		{[]string{`Bearer scope="x", ERROR="INSUFFICIENT_SCOPE"`}, true},
		{[]string{`Basic realm="x"`, `Bearer error="insufficient_scope"`}, true},
		{[]string{`Bearer error="invalid_token"`}, false},
		{[]string{`Bearer error_description="insufficient_scope"`}, false},
		{nil, false},
	}
	for _, tt := range tests {
		h := http.Header{"Www-Authenticate": tt.values}
		if got := insufficientScope(h); got != tt.want {
			t.Errorf("insufficientScope(%q) = %v, want %v", tt.values, got, tt.want)
		}
	}
}

func TestLoopbackAddr(t *testing.T) {
	tests := []struct {
		addr    string
		want    bool
		wantErr bool
	}{
		{"127.0.0.1:0", true, false},
		{"127.1.2.3:80", true, false},
		{"localhost:7000", true, false},
		{"[::1]:7000", true, false},
		{":7000", false, false},
		{"0.0.0.0:7000", false, false},
		{"[::]:7000", false, false},
		{"10.0.0.1:7000", false, false},
		{"myhost:7000", false, false},
		{"127.0.0.1", false, true},
		{"127.0.0.1:99999", false, true},
	}
	for _, tt := range tests {
		got, err := loopbackAddr(tt.addr)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("loopbackAddr(%q) = %v, %v; want %v, error %v", tt.addr, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestListenerInfo(t *testing.T) {
	tests := []struct {
		addr     net.Addr
		upstream string
		want     ListenerInfo
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7001}, "https://huggingface.co/mcp?login",
			ListenerInfo{Name: "n", Addr: "127.0.0.1:7001", URL: "http://127.0.0.1:7001/mcp?login", Upstream: "https://huggingface.co/mcp"}},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 7001}, "https://example.com",
			ListenerInfo{Name: "n", Addr: "[::1]:7001", URL: "http://[::1]:7001/", Upstream: "https://example.com"}},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 7001}, "https://example.com/a%2Fb/sse",
			ListenerInfo{Name: "n", Addr: "0.0.0.0:7001", URL: "http://127.0.0.1:7001/a%2Fb/sse", Upstream: "https://example.com/a%2Fb/sse"}},
	}
	for _, tt := range tests {
		s := Server{Name: "n", Upstream: tt.upstream}
		up, err := s.validate()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, listenerInfo("n", tt.addr, up)); diff != "" {
			t.Errorf("listenerInfo(%s, %s) (-want +got):\n%s", tt.addr, tt.upstream, diff)
		}
	}
}

// pathValueTransport records the "*" path value of the requests it gets,
// which ReverseProxy copies from the inbound request.
type pathValueTransport struct{ got *[]string }

func (t pathValueTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	*t.got = append(*t.got, req.PathValue("*"))
	return cannedTransport{}.RoundTrip(req)
}

// TestEndpointStaticRoute checks that requests to the endpoint's path take
// chi's static route, which sets no path value for ReverseProxy to copy,
// and that other paths, and an endpoint path with escapes, take "/*".
func TestEndpointStaticRoute(t *testing.T) {
	for _, tt := range []struct {
		upstream, path string
		want           string // the "*" path value the transport sees
	}{
		{"http://127.0.0.1:9/mcp", "/mcp", ""},
		{"http://127.0.0.1:9/mcp", "/messages", "messages"},
		{"http://127.0.0.1:9/", "/", ""},
		{"http://127.0.0.1:9/a%20b", "/a%20b", "a b"},
	} {
		var got []string
		h, err := newHandler(Server{Name: "t", Upstream: tt.upstream}, Options{Transport: pathValueTransport{&got}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := clientRequest(benchBody)
		r.URL.Path, r.URL.RawPath = "", ""
		if r.URL, err = r.URL.Parse(tt.path); err != nil {
			t.Fatal(err)
		}
		w := &discardWriter{hdr: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK || len(got) != 1 {
			t.Fatalf("%s via %s: status %d, %d round trips", tt.path, tt.upstream, w.status, len(got))
		}
		if got[0] != tt.want {
			t.Errorf("%s via %s: path value %q, want %q", tt.path, tt.upstream, got[0], tt.want)
		}
	}
}

// bodyTypeTransport records the type of the bodies it gets and reads them.
type bodyTypeTransport struct{ types, bodies *[]string }

func (t bodyTypeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	*t.types = append(*t.types, fmt.Sprintf("%T", req.Body))
	b, _ := io.ReadAll(req.Body)
	*t.bodies = append(*t.bodies, string(b))
	return cannedTransport{}.RoundTrip(req)
}

// TestBufferedBodyUnwrapped checks that a buffered body goes to the
// transport as io.NopCloser of a bytes.Reader, which net/http's Transport
// knows to be in memory (it then writes headers and body at once), rather
// than in ReverseProxy's wrapper; and that it still sends the whole body.
func TestBufferedBodyUnwrapped(t *testing.T) {
	var types, bodies []string
	h, err := newHandler(Server{Name: "t", Upstream: "http://127.0.0.1:9/mcp"}, Options{Transport: bodyTypeTransport{&types, &bodies}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &discardWriter{hdr: http.Header{}}
	h.ServeHTTP(w, clientRequest(benchBody))
	want := fmt.Sprintf("%T", io.NopCloser(bytes.NewReader(nil)))
	if diff := cmp.Diff([]string{want}, types); diff != "" {
		t.Errorf("body types (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{benchBody}, bodies); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}
}

// A server behind a TLS-terminating proxy names itself with http://; that
// is still the https upstream. Anything else on another scheme, host or
// port is not.
func TestOnUpstream(t *testing.T) {
	up, _ := url.Parse("https://mcp.example.com/sse")
	for _, tt := range []struct {
		u    string
		want bool
	}{
		{"https://mcp.example.com/messages?s=1", true},
		{"https://MCP.example.com:443/messages", true},
		{"http://mcp.example.com/messages?s=1", true},
		{"http://mcp.example.com:80/messages", true},
		{"http://mcp.example.com:8080/messages", false},
		{"https://mcp.example.com:8443/messages", false},
		{"http://other.example.com/messages", false},
		{"ftp://mcp.example.com/messages", false},
	} {
		u, _ := url.Parse(tt.u)
		if got := onUpstream(u, up); got != tt.want {
			t.Errorf("onUpstream(%s, %s) = %v, want %v", tt.u, up, got, tt.want)
		}
	}
	plain, _ := url.Parse("http://mcp.example.com/sse")
	if u, _ := url.Parse("https://mcp.example.com/messages"); onUpstream(u, plain) {
		t.Error("an https URL counts as a plain-http upstream's origin")
	}
}
