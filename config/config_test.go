package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultAuth(t *testing.T) {
	t.Parallel()
	want := Auth{OAuth: true, Persist: "keyring", RedirectPort: 3030, RedirectPath: "/callback"}
	if diff := cmp.Diff(want, DefaultAuth()); diff != "" {
		t.Errorf("DefaultAuth (-want +got):\n%s", diff)
	}
	if err := (Server{Name: "a", Transport: HTTP, URL: "https://a.example/mcp", Auth: DefaultAuth()}).Validate(); err != nil {
		t.Errorf("a server with DefaultAuth does not validate: %v", err)
	}
}

func TestNewServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		url       string
		transport Transport
		want      Server
		wantErr   string
	}{{
		name: "hf",
		url:  "https://huggingface.co/mcp?login",
		want: Server{Name: "hf", Transport: HTTP, URL: "https://huggingface.co/mcp?login", Auth: DefaultAuth()},
	}, {
		name:      "legacy",
		url:       " http://127.0.0.1:9000/sse ",
		transport: SSE,
		want:      Server{Name: "legacy", Transport: SSE, URL: "http://127.0.0.1:9000/sse", Auth: DefaultAuth()},
	}, {
		name:      "x",
		url:       "https://a.example/mcp",
		transport: HTTP,
		want:      Server{Name: "x", Transport: HTTP, URL: "https://a.example/mcp", Auth: DefaultAuth()},
	}, {
		name:      "local",
		url:       "https://a.example/mcp",
		transport: Stdio,
		wantErr:   `config: server "local": transport: stdio servers cannot be proxied (want http or sse)`,
	}, {
		name:      "ws",
		url:       "https://a.example/mcp",
		transport: "websocket",
		wantErr:   `config: server "ws": transport: "websocket" is not a transport (want http, sse or stdio)`,
	}, {
		url:     "huggingface.co/mcp",
		wantErr: "config: url: must be an absolute URL (http:// or https://)",
	}, {
		name:    "ftp",
		url:     "ftp://a.example/mcp",
		wantErr: `config: server "ftp": url: has scheme "ftp" (want http or https)`,
	}, {
		name:    "nohost",
		url:     "http:/mcp",
		wantErr: `config: server "nohost": url: has no host`,
	}, {
		name:    "creds",
		url:     "https://user:pw-SECRET@a.example/mcp",
		wantErr: `config: server "creds": url: must not contain credentials (user info before "@"); use headers or auth instead`,
	}, {
		name:      "ws-creds",
		url:       "https://user:pw-SECRET@a.example/mcp",
		transport: "ws",
		wantErr: `config: server "ws-creds": transport: "ws" is not a transport (want http, sse or stdio)` + "\n" +
			`config: server "ws-creds": url: must not contain credentials (user info before "@"); use headers or auth instead`,
	}, {
		name:    "empty",
		url:     "",
		wantErr: `config: server "empty": url: is missing (an http server needs one)`,
	}} {
		got, err := NewServer(tc.name, tc.url, tc.transport)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("NewServer(%q, %q, %q) error = %v, want %s", tc.name, tc.url, tc.transport, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewServer(%q, %q, %q): %v", tc.name, tc.url, tc.transport, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("NewServer(%q, %q, %q) (-want +got):\n%s", tc.name, tc.url, tc.transport, diff)
		}
	}
}

func TestNewServerHidesURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://u:pw-SECRET@h/?k=q-SECRET", "https://h x/?k=q-SECRET", "https://h/%zzq-SECRET", "q-SECRET",
		"https://u:pw-SECRET@h/mcp", "http://pw-SECRET@127.0.0.1/mcp", "https://:pw-SECRET@h/mcp"} {
		_, err := NewServer("a", u, "")
		if err == nil {
			t.Errorf("NewServer(%q) succeeded", u)
		} else if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("NewServer error quotes the URL: %v", err)
		}
	}
}

// Validate checks a server changed after loading, e.g. by flags.
func TestValidate(t *testing.T) {
	t.Parallel()
	c, _ := mustLoad(t, "mcp: {servers: {hf: {url: https://h.example/mcp}}}", "", nil)
	s := mustServer(t, c, "hf")
	if err := s.Validate(); err != nil {
		t.Fatalf("loaded server does not validate: %v", err)
	}

	for _, tc := range []struct {
		name   string
		change func(*Server)
		want   []string
	}{
		{"stdio", func(s *Server) { s.Transport, s.URL = Stdio, "" }, nil},
		{"memory", func(s *Server) { s.Auth.Persist = PersistMemory }, nil},
		{"client", func(s *Server) { s.Auth.ClientID, s.Auth.ClientSecret = "id", "secret" }, nil},
		{"port", func(s *Server) { s.Auth.RedirectPort = 0 }, []string{
			`config: server "hf": auth.redirect_port: 0 is out of range (1-65535)`,
		}},
		{"several", func(s *Server) {
			s.URL = "mailto:a@b"
			s.Auth.Persist = ""
			s.Auth.RedirectPath = "cb"
			s.Auth.ClientMetadataURL = "https://c.example"
			s.Headers = map[string]string{"X A": "v", "X-B": "a\r\nb"}
		}, []string{
			`config: server "hf": url: has scheme "mailto" (want http or https)`,
			`config: server "hf": headers."X A": is not a valid HTTP header name`,
			`config: server "hf": headers.X-B: the value contains a line break or NUL`,
			`config: server "hf": auth.persist: "" is not a persistence mode (want keyring or memory)`,
			`config: server "hf": auth.redirect_path: "cb" must start with /`,
			`config: server "hf": auth.client_metadata_url: must have a path, e.g. https://example.com/client.json`,
		}},
		{"redirect path with query", func(s *Server) { s.Auth.RedirectPath = "/cb?x=1" }, []string{
			`config: server "hf": auth.redirect_path: "/cb?x=1" must be a path without query or fragment`,
		}},
		{"empty transport", func(s *Server) { s.Transport = "" }, []string{
			`config: server "hf": transport: is empty (want http, sse or stdio)`,
		}},
		{"unknown transport, and more", func(s *Server) {
			s.Transport = "http2"
			s.URL = "https://u:p@h.example/mcp"
			s.Headers = map[string]string{"X-A": "a\x1fb"}
			s.Auth.RedirectPort = 0
		}, []string{
			`config: server "hf": transport: "http2" is not a transport (want http, sse or stdio) (did you mean "http"?)`,
			`config: server "hf": url: must not contain credentials (user info before "@"); use headers or auth instead`,
			`config: server "hf": headers.X-A: the value contains a control character (only tab is allowed)`,
			`config: server "hf": auth.redirect_port: 0 is out of range (1-65535)`,
		}},
		{"unknown transport without url", func(s *Server) { s.Transport, s.URL = "stdoi", "" }, []string{
			`config: server "hf": transport: "stdoi" is not a transport (want http, sse or stdio) (did you mean "stdio"?)`,
		}},
		{"header values", func(s *Server) {
			s.Headers = map[string]string{"X-Tab": "a\tb", "X-Utf8": "caf\u00e9", "X-Del": "\x7f", "X-Bel": "\a"}
		}, []string{
			`config: server "hf": headers.X-Bel: the value contains a control character (only tab is allowed)`,
			`config: server "hf": headers.X-Del: the value contains a control character (only tab is allowed)`,
		}},
		{"user info", func(s *Server) { s.URL = "https://@h.example/mcp" }, []string{
			`config: server "hf": url: must not contain credentials (user info before "@"); use headers or auth instead`,
		}},
	} {
		s := s
		s.Headers = nil
		tc.change(&s)
		var got []string
		if err := s.Validate(); err != nil {
			got = strings.Split(err.Error(), "\n")
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: Validate (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestConfigServer(t *testing.T) {
	t.Parallel()
	c := &Config{Servers: []Server{{Name: "a", URL: "https://a.example"}, {Name: "b", URL: "https://b.example"}}}
	if s, ok := c.Server("b"); !ok || s.URL != "https://b.example" {
		t.Errorf(`Server("b") = %+v, %t`, s, ok)
	}
	if s, ok := c.Server("c"); ok {
		t.Errorf(`Server("c") = %+v, true; want not found`, s)
	}
}
