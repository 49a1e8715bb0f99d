package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// env returns a hermetic LookupEnv over vars.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// writeConfig writes config, and secrets unless it is "", to a new
// directory and returns the config file's path.
func writeConfig(t *testing.T, config, secrets string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "fastagent.config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if secrets != "" {
		if err := os.WriteFile(filepath.Join(dir, SecretsFile), []byte(secrets), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// load loads config (and secrets) with the environment vars.
func load(t *testing.T, config, secrets string, vars map[string]string) (*Config, string, error) {
	t.Helper()
	path := writeConfig(t, config, secrets)
	c, err := Loader{LookupEnv: env(vars)}.Load(path)
	return c, path, err
}

// mustLoad is load that fails the test on error.
func mustLoad(t *testing.T, config, secrets string, vars map[string]string) (*Config, string) {
	t.Helper()
	c, path, err := load(t, config, secrets, vars)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c, path
}

func mustServer(t *testing.T, c *Config, name string) Server {
	t.Helper()
	s, ok := c.Server(name)
	if !ok {
		t.Fatalf("no server %q; have %+v", name, c.Servers)
	}
	return s
}

// expand replaces {file} and {secrets} in each of lines.
func expand(lines []string, path string) []string {
	if lines == nil {
		return nil
	}
	r := strings.NewReplacer("{file}", path, "{secrets}", filepath.Join(filepath.Dir(path), SecretsFile))
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = r.Replace(l)
	}
	return out
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, path := mustLoad(t, `
mcp:
  servers:
    hf:
      url: https://huggingface.co/mcp?login
`, "", nil)
	want := &Config{
		Path: path,
		Servers: []Server{{
			Name:      "hf",
			Transport: HTTP,
			URL:       "https://huggingface.co/mcp?login",
			Auth: Auth{
				OAuth:        true,
				Persist:      "keyring",
				RedirectPort: 3030,
				RedirectPath: "/callback",
			},
		}},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestLoadAuthSettings(t *testing.T) {
	t.Parallel()
	c, _ := mustLoad(t, `
mcp:
  servers:
    crm:
      url: https://crm.example.com/mcp
      auth:
        oauth: "${CRM_OAUTH}"
        persist: memory
        redirect_port: ${CRM_PORT}
        redirect_path: /oauth/done
        scope: crm.read
        client_id: 12345
        client_secret: ${CRM_SECRET}
        client_metadata_url: https://client.example.com/c.json
        resource: https://crm.example.com/
        authorize_params: {access_type: offline, max_age: 3600}
    entra:
      url: https://entra.example.com/mcp
      auth: {resource: false}
`, "", map[string]string{"CRM_OAUTH": "yes", "CRM_PORT": "4040", "CRM_SECRET": "s3cret"})
	want := Auth{
		OAuth:             true,
		Persist:           "memory",
		RedirectPort:      4040,
		RedirectPath:      "/oauth/done",
		Scope:             "crm.read",
		ClientID:          "12345",
		ClientSecret:      "s3cret",
		ClientMetadataURL: "https://client.example.com/c.json",
		Resource:          "https://crm.example.com/",
		AuthorizeParams:   map[string]string{"access_type": "offline", "max_age": "3600"},
	}
	if diff := cmp.Diff(want, mustServer(t, c, "crm").Auth); diff != "" {
		t.Errorf("Auth (-want +got):\n%s", diff)
	}
	if got := mustServer(t, c, "entra").Auth.Resource; got != ResourceNone {
		t.Errorf("resource: false gave Resource %q, want ResourceNone", got)
	}
}

func TestLoadOAuthValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{"true", true},
		{"false", false},
		{`"false"`, false},
		{`"off"`, false},
		{`"On"`, true},
		{"0", false},
		{"1", true},
		{"~", true}, // null: the default
	} {
		c, _ := mustLoad(t, "mcp: {servers: {a: {url: https://a.example/mcp, auth: {oauth: "+tc.value+"}}}}", "", nil)
		if got := mustServer(t, c, "a").Auth.OAuth; got != tc.want {
			t.Errorf("oauth: %s gave %t, want %t", tc.value, got, tc.want)
		}
	}
}

func TestLoadTransport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		server   string
		want     Server
		warnings []string
	}{{
		name:   "url means http",
		server: "{url: https://h.example/mcp}",
		want:   Server{Transport: HTTP, URL: "https://h.example/mcp"},
	}, {
		name:   "a url ending in /sse is still http",
		server: "{url: https://h.example/sse}",
		want:   Server{Transport: HTTP, URL: "https://h.example/sse"},
	}, {
		name:   "explicit sse",
		server: "{transport: sse, url: https://h.example/sse}",
		want:   Server{Transport: SSE, URL: "https://h.example/sse"},
	}, {
		name:   "command means stdio",
		server: "{command: npx, args: [-y, pkg]}",
		want:   Server{Transport: Stdio, Command: "npx"},
	}, {
		name:     "url and command",
		server:   "{url: https://h.example/mcp, command: npx}",
		want:     Server{Transport: HTTP, URL: "https://h.example/mcp"},
		warnings: []string{"{file}: mcp.servers.s: has both url and command; using transport http (set transport to choose)"},
	}, {
		name:   "explicit transport wins",
		server: "{transport: stdio, url: not a url, command: npx}",
		want:   Server{Transport: Stdio, URL: "not a url", Command: "npx"},
	}, {
		name:   "blank url and a command",
		server: `{url: "  ", command: npx}`,
		want:   Server{Transport: Stdio, Command: "npx"},
	}, {
		name:   "target url",
		server: "{target: https://h.example/mcp}",
		want:   Server{Transport: HTTP, URL: "https://h.example/mcp"},
	}, {
		name:   "target sse url",
		server: "{target: https://h.example/sse}",
		want:   Server{Transport: SSE, URL: "https://h.example/sse"},
	}, {
		name:   "target command",
		server: "{target: npx -y @modelcontextprotocol/server-everything}",
		want:   Server{Transport: Stdio, Command: "npx"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, path := mustLoad(t, "mcp:\n  servers:\n    s: "+tc.server+"\n", "", nil)
			got := mustServer(t, c, "s")
			tc.want.Name, tc.want.Auth = "s", DefaultAuth()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("server (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(expand(tc.warnings, path), c.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadScope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scope string
		want  string
	}{
		{`"read write"`, "read write"},
		{`"  read    write "`, "read write"},
		{"[read, write]", "read write"},
		{`["read write", admin]`, "read write admin"},
		{"[]", ""},
		{`""`, ""},
		{"~", ""},
		{"[a, '${S2}', '${S3:c}']", "a b c"},
	} {
		c, _ := mustLoad(t, "mcp: {servers: {a: {url: https://a.example/mcp, auth: {scope: "+tc.scope+"}}}}", "",
			map[string]string{"S2": "b"})
		if got := mustServer(t, c, "a").Auth.Scope; got != tc.want {
			t.Errorf("scope: %s gave %q, want %q", tc.scope, got, tc.want)
		}
	}
}

func TestLoadValidationErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		config string
		want   []string // every line of the error; {file} is the config path
	}{{
		name:   "unknown transport",
		config: "mcp: {servers: {hf: {transport: websocket, url: https://h.example/mcp}}}",
		want:   []string{`config: {file}: mcp.servers.hf.transport: "websocket" is not a transport (want http, sse or stdio)`},
	}, {
		name:   "transport typo",
		config: "mcp: {servers: {hf: {transport: htpp, url: https://h.example/mcp}}}",
		want:   []string{`config: {file}: mcp.servers.hf.transport: "htpp" is not a transport (want http, sse or stdio) (did you mean "http"?)`},
	}, {
		name:   "transport not a string",
		config: "mcp: {servers: {hf: {transport: [http], url: https://h.example/mcp}}}",
		want:   []string{"config: {file}: mcp.servers.hf.transport: must be a string, not a list"},
	}, {
		name: "transport not a string, and more",
		config: `mcp: {servers: {hf: {transport: 1, url: /mcp, headers: {X-A: "a\x01"}, ` +
			`auth: {redirect_port: 0, client_secret: s}}}}`,
		want: []string{
			"config: {file}: mcp.servers.hf.transport: must be a string, not a number",
			"config: {file}: mcp.servers.hf.url: must be an absolute URL (http:// or https://)",
			"config: {file}: mcp.servers.hf.headers.X-A: the value contains a control character (only tab is allowed)",
			"config: {file}: mcp.servers.hf.auth.redirect_port: 0 is out of range (1-65535)",
			"config: {file}: mcp.servers.hf.auth.client_secret: is set but auth.client_id is not",
		},
	}, {
		name:   "unknown transport, and more",
		config: "mcp: {servers: {hf: {transport: websocket, headers: {'X A': b}, auth: {persist: disk}}}}",
		want: []string{
			`config: {file}: mcp.servers.hf.transport: "websocket" is not a transport (want http, sse or stdio)`,
			`config: {file}: mcp.servers.hf.headers."X A": is not a valid HTTP header name`,
			`config: {file}: mcp.servers.hf.auth.persist: "disk" is not a persistence mode (want keyring or memory)`,
		},
	}, {
		name:   "transport from an unset variable",
		config: "mcp: {servers: {hf: {transport: '${NOTRANSPORT}', url: https://h.example/mcp, auth: {redirect_path: cb}}}}",
		want: []string{
			"config: {file}: mcp.servers.hf.transport: is empty (want http, sse or stdio); ${NOTRANSPORT} is not set",
			`config: {file}: mcp.servers.hf.auth.redirect_path: "cb" must start with /`,
		},
	}, {
		name:   "url not a string, and more",
		config: "mcp: {servers: {hf: {url: [a], auth: {redirect_port: 0}}}}",
		want: []string{
			"config: {file}: mcp.servers.hf.url: must be a string, not a list",
			"config: {file}: mcp.servers.hf.auth.redirect_port: 0 is out of range (1-65535)",
		},
	}, {
		name:   "http without url",
		config: "mcp: {servers: {hf: {transport: http}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: is missing (an http server needs one)"},
	}, {
		name:   "sse without url",
		config: "mcp: {servers: {hf: {transport: sse, command: npx}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: is missing (an sse server needs one)"},
	}, {
		name:   "neither url nor command",
		config: "mcp: {servers: {hf: {headers: {X-A: b}}}}",
		want:   []string{"config: {file}: mcp.servers.hf: has neither url nor command (an http or sse server needs a url)"},
	}, {
		name:   "neither url nor command, and more",
		config: "mcp: {servers: {hf: {headers: {'X A': b}, auth: {persist: disk}}}}",
		want: []string{
			"config: {file}: mcp.servers.hf: has neither url nor command (an http or sse server needs a url)",
			`config: {file}: mcp.servers.hf.headers."X A": is not a valid HTTP header name`,
			`config: {file}: mcp.servers.hf.auth.persist: "disk" is not a persistence mode (want keyring or memory)`,
		},
	}, {
		name:   "url from an unset variable",
		config: "mcp: {servers: {hf: {url: '${NOURL}'}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: is empty; ${NOURL} is not set"},
	}, {
		name:   "url and target from unset variables",
		config: "mcp: {servers: {hf: {url: '${NOURL}', target: ' ${NOTARGET}'}}}",
		want: []string{
			"config: {file}: mcp.servers.hf.url: is empty; ${NOURL} is not set",
			"config: {file}: mcp.servers.hf.target: is empty; ${NOTARGET} is not set",
		},
	}, {
		name:   "http url from an unset variable",
		config: "mcp: {servers: {hf: {transport: http, url: '${NOURL}'}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: is empty (an http server needs one); ${NOURL} is not set"},
	}, {
		name:   "blank http url",
		config: "mcp: {servers: {hf: {transport: sse, url: ' '}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: is empty (an sse server needs one)"},
	}, {
		name:   "url host from unset variables",
		config: "mcp: {servers: {hf: {url: 'https://${NOHOST}${NODOMAIN}/mcp'}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: has no host; ${NOHOST} and ${NODOMAIN} are not set"},
	}, {
		name:   "redirect_port from an unset variable",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: '${NOPORT}'}}}}",
		want:   []string{`config: {file}: mcp.servers.hf.auth.redirect_port: "" is not a number; ${NOPORT} is not set`},
	}, {
		name:   "warnings follow the errors",
		config: "mcp: {servers: {hf: {URL: https://h.example/mcp, headers: {X-Key: '${NOKEY}'}}, ok: {url: '${NOURL}', command: npx}}}",
		want: []string{
			"config: {file}: mcp.servers.hf: has neither url nor command (an http or sse server needs a url)",
			`config: warning: {file}: mcp.servers.hf.headers.X-Key: ${NOKEY} is not set; using ""`,
			`config: warning: {file}: mcp.servers.ok.url: ${NOURL} is not set; using ""`,
			`config: warning: {file}: mcp.servers.hf.URL: unknown key, ignored (did you mean "url"?)`,
		},
	}, {
		name:   "empty server",
		config: "mcp: {servers: {hf: }}",
		want:   []string{"config: {file}: mcp.servers.hf: has neither url nor command (an http or sse server needs a url)"},
	}, {
		name:   "relative url",
		config: "mcp: {servers: {hf: {url: /mcp}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: must be an absolute URL (http:// or https://)"},
	}, {
		name:   "ftp url",
		config: "mcp: {servers: {hf: {url: 'ftp://h.example/mcp'}}}",
		want:   []string{`config: {file}: mcp.servers.hf.url: has scheme "ftp" (want http or https)`},
	}, {
		name:   "url without host",
		config: "mcp: {servers: {hf: {url: 'https:///mcp'}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: has no host"},
	}, {
		name:   "unparsable url",
		config: "mcp: {servers: {hf: {url: 'https://h example/mcp'}}}",
		want:   []string{`config: {file}: mcp.servers.hf.url: is not a valid URL: invalid character " " in host name`},
	}, {
		name:   "url with user info",
		config: "mcp: {servers: {hf: {url: 'https://user:pw-SECRET@h.example/mcp'}}}",
		want:   []string{`config: {file}: mcp.servers.hf.url: must not contain credentials (user info before "@"); use headers or auth instead`},
	}, {
		name:   "url with a user name",
		config: "mcp: {servers: {hf: {url: 'http://user@127.0.0.1:8080/mcp'}}}",
		want:   []string{`config: {file}: mcp.servers.hf.url: must not contain credentials (user info before "@"); use headers or auth instead`},
	}, {
		name:   "target url with user info",
		config: "mcp: {servers: {hf: {target: 'https://user:pw-SECRET@h.example/sse'}}}",
		want:   []string{`config: {file}: mcp.servers.hf.url: must not contain credentials (user info before "@"); use headers or auth instead`},
	}, {
		name:   "url not a string",
		config: "mcp: {servers: {hf: {url: {a: b}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.url: must be a string, not a mapping"},
	}, {
		name:   "redirect_port out of range",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: 70000}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.redirect_port: 70000 is out of range (1-65535)"},
	}, {
		name:   "redirect_port zero",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: 0}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.redirect_port: 0 is out of range (1-65535)"},
	}, {
		name:   "redirect_port huge",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: 99999999999999999999}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.redirect_port: 1e+20 is out of range (1-65535)"},
	}, {
		name:   "redirect_port huge string",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: '99999999999999999999'}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.redirect_port: 99999999999999999999 is out of range (1-65535)"},
	}, {
		name:   "redirect_port a list",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: [1]}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.redirect_port: must be a port number, not a list"},
	}, {
		name:   "redirect_port not a number",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: abc}}}}",
		want:   []string{`config: {file}: mcp.servers.hf.auth.redirect_port: "abc" is not a number`},
	}, {
		name:   "redirect_port boolean",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: true}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.redirect_port: true is not a port number"},
	}, {
		name:   "redirect_port fraction",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_port: 3030.5}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.redirect_port: 3030.5 is not a whole number"},
	}, {
		name:   "redirect_path without slash",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {redirect_path: callback}}}}",
		want:   []string{`config: {file}: mcp.servers.hf.auth.redirect_path: "callback" must start with /`},
	}, {
		name:   "persist unknown",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {persist: disk}}}}",
		want:   []string{`config: {file}: mcp.servers.hf.auth.persist: "disk" is not a persistence mode (want keyring or memory)`},
	}, {
		name:   "persist typo",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {persist: keyrng}}}}",
		want:   []string{`config: {file}: mcp.servers.hf.auth.persist: "keyrng" is not a persistence mode (want keyring or memory) (did you mean "keyring"?)`},
	}, {
		name:   "scope a number",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {scope: 5}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.scope: must be a string or a list of strings, not a number"},
	}, {
		name:   "scope list with a mapping",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {scope: [a, {b: c}]}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.scope[1]: must be a string, not a mapping"},
	}, {
		name: "resource and authorize_params",
		config: "mcp: {servers: {" +
			"a: {url: https://h.example/mcp, auth: {resource: true, authorize_params: [x]}}, " +
			"b: {url: https://h.example/mcp, auth: {resource: /relative, authorize_params: {state: x, Client_ID: y, prompt: consent}}}, " +
			"c: {url: https://h.example/mcp, auth: {resource: 'https://h.example/mcp#f', authorize_params: {p: [1]}}}}}",
		want: []string{
			"config: {file}: mcp.servers.a.auth.resource: true is not a resource (want a URI, or false to send none)",
			"config: {file}: mcp.servers.a.auth.authorize_params: must be a map of parameter names to values, not a list",
			`config: {file}: mcp.servers.b.auth.resource: "/relative" must be an absolute URI without a fragment (RFC 8707), or false to send none`,
			"config: {file}: mcp.servers.b.auth.authorize_params.Client_ID: is set by the authorization flow itself (use auth.scope or auth.resource for those)",
			"config: {file}: mcp.servers.b.auth.authorize_params.state: is set by the authorization flow itself (use auth.scope or auth.resource for those)",
			"config: {file}: mcp.servers.c.auth.authorize_params.p: must be a string, not a list",
			`config: {file}: mcp.servers.c.auth.resource: "https://h.example/mcp#f" must be an absolute URI without a fragment (RFC 8707), or false to send none`,
		},
	}, {
		name:   "client_metadata_url http",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {client_metadata_url: 'http://c.example/c.json'}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.client_metadata_url: must be an https URL"},
	}, {
		name:   "client_metadata_url root",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {client_metadata_url: 'https://c.example/'}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.client_metadata_url: must have a path, e.g. https://example.com/client.json"},
	}, {
		name:   "client_metadata_url no path",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {client_metadata_url: 'https://c.example'}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.client_metadata_url: must have a path, e.g. https://example.com/client.json"},
	}, {
		name:   "oauth not a boolean",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {oauth: maybe}}}}",
		want:   []string{`config: {file}: mcp.servers.hf.auth.oauth: "maybe" is not a boolean (want true or false)`},
	}, {
		name:   "oauth a number",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {oauth: 2}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.oauth: 2 is not a boolean (want true or false)"},
	}, {
		name:   "client secret without client id",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: {client_secret: x}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth.client_secret: is set but auth.client_id is not"},
	}, {
		name:   "auth not a mapping",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, auth: true}}}",
		want:   []string{"config: {file}: mcp.servers.hf.auth: must be a mapping, not a boolean"},
	}, {
		name:   "headers not a mapping",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, headers: [a, b]}}}",
		want:   []string{"config: {file}: mcp.servers.hf.headers: must be a mapping, not a list"},
	}, {
		name:   "header value a list",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, headers: {X-A: [a]}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.headers.X-A: must be a string, not a list"},
	}, {
		name:   "header name invalid",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, headers: {'X A': b}}}}",
		want:   []string{`config: {file}: mcp.servers.hf.headers."X A": is not a valid HTTP header name`},
	}, {
		name:   "header value with a line break",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp, headers: {X-A: \"a\\nb\"}}}}",
		want:   []string{"config: {file}: mcp.servers.hf.headers.X-A: the value contains a line break or NUL"},
	}, {
		name:   "header values with control characters",
		config: `mcp: {servers: {hf: {url: https://h.example/mcp, headers: {X-Ctl: "abc\x01def", X-Del: "a\x7f", X-Esc: "\e[0m", X-Tab: "a\tb"}}}}`,
		want: []string{
			"config: {file}: mcp.servers.hf.headers.X-Ctl: the value contains a control character (only tab is allowed)",
			"config: {file}: mcp.servers.hf.headers.X-Del: the value contains a control character (only tab is allowed)",
			"config: {file}: mcp.servers.hf.headers.X-Esc: the value contains a control character (only tab is allowed)",
		},
	}, {
		name:   "header names that are not tokens",
		config: `mcp: {servers: {hf: {url: https://h.example/mcp, headers: {"X-A:": a, "X-\u00c4": b, "": c, "X(A)": d}}}}`,
		want: []string{
			`config: {file}: mcp.servers.hf.headers."": is not a valid HTTP header name`,
			"config: {file}: mcp.servers.hf.headers.X(A): is not a valid HTTP header name",
			"config: {file}: mcp.servers.hf.headers.X-A:: is not a valid HTTP header name",
			"config: {file}: mcp.servers.hf.headers.X-\u00c4: is not a valid HTTP header name",
		},
	}, {
		name:   "server not a mapping",
		config: "mcp: {servers: {hf: https://h.example/mcp}}",
		want:   []string{"config: {file}: mcp.servers.hf: must be a mapping, not a string"},
	}, {
		name:   "servers a list",
		config: "mcp: {servers: [hf]}",
		want:   []string{"config: {file}: mcp.servers: must be a mapping, not a list"},
	}, {
		name:   "mcp a string",
		config: "mcp: servers",
		want:   []string{"config: {file}: mcp: must be a mapping, not a string"},
	}, {
		name:   "listen a bare port",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp}}}\nproxy: {listen: {hf: 8101}}",
		want:   []string{`config: {file}: proxy.listen.hf: 8101 is not host:port (did you mean "127.0.0.1:8101"?)`},
	}, {
		name:   "listen a bare port string",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp}}}\nproxy: {listen: {hf: '8101'}}",
		want:   []string{`config: {file}: proxy.listen.hf: "8101" is not host:port (did you mean "127.0.0.1:8101"?)`},
	}, {
		name:   "listen without port",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp}}}\nproxy: {listen: {hf: localhost}}",
		want:   []string{`config: {file}: proxy.listen.hf: "localhost" is not host:port like 127.0.0.1:8101`},
	}, {
		name:   "listen port out of range",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp}}}\nproxy: {listen: {hf: '127.0.0.1:99999'}}",
		want:   []string{`config: {file}: proxy.listen.hf: "127.0.0.1:99999" has an invalid port (want 1-65535)`},
	}, {
		name:   "listen port a name",
		config: "mcp: {servers: {hf: {url: https://h.example/mcp}}}\nproxy: {listen: {hf: '127.0.0.1:http'}}",
		want:   []string{`config: {file}: proxy.listen.hf: "127.0.0.1:http" has an invalid port (want 1-65535)`},
	}, {
		name:   "listen a list",
		config: "proxy: {listen: [a]}",
		want:   []string{"config: {file}: proxy.listen: must be a mapping, not a list"},
	}, {
		name: "listen address used twice",
		config: "mcp: {servers: {a: {url: https://a.example/mcp}, b: {url: https://b.example/mcp}}}\n" +
			"proxy: {listen: {a: '127.0.0.1:8101', b: '127.0.0.1:8101'}}",
		want: []string{`config: {file}: proxy.listen.b: 127.0.0.1:8101 is also the address of "a"`},
	}, {
		name:   "listen on the callback port",
		config: "mcp: {servers: {a: {url: https://a.example/mcp}}}\nproxy: {listen: {a: 'localhost:3030'}}",
		want:   []string{`config: {file}: proxy.listen.a: port 3030 is the OAuth callback port (auth.redirect_port) of server "a"`},
	}, {
		name: "every problem is reported",
		config: `
mcp:
  servers:
    a:
      url: /relative
      auth: {redirect_port: 70000, persist: disk}
    b:
      transport: carrier-pigeon
      headers: {X-B: "\x00"}
      auth: {client_metadata_url: "http://c.example/c.json"}
proxy:
  listen:
    a: nowhere
`,
		want: []string{
			"config: {file}: mcp.servers.a.url: must be an absolute URL (http:// or https://)",
			`config: {file}: mcp.servers.a.auth.persist: "disk" is not a persistence mode (want keyring or memory)`,
			"config: {file}: mcp.servers.a.auth.redirect_port: 70000 is out of range (1-65535)",
			`config: {file}: mcp.servers.b.transport: "carrier-pigeon" is not a transport (want http, sse or stdio)`,
			"config: {file}: mcp.servers.b.headers.X-B: the value contains a line break or NUL",
			"config: {file}: mcp.servers.b.auth.client_metadata_url: must be an https URL",
			`config: {file}: proxy.listen.a: "nowhere" is not host:port like 127.0.0.1:8101`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, path, err := load(t, tc.config, "", nil)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want errors %q", c, tc.want)
			}
			if diff := cmp.Diff(expand(tc.want, path), strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("error lines (-want +got):\n%s", diff)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a validation error matches fs.ErrNotExist: %v", err)
			}
		})
	}
}

// A relative path is used as given in messages.
func TestLoadRelativePathInMessages(t *testing.T) {
	t.Parallel()
	_, err := Loader{LookupEnv: env(nil)}.Load("testdata/syntax/fastagent.config.yaml")
	if err == nil {
		t.Fatal("Load succeeded, want a YAML error")
	}
	const want = "config: testdata/syntax/fastagent.config.yaml: yaml: line "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want it to start with %q", err, want)
	}
}

func TestLoadSecretsSyntaxError(t *testing.T) {
	t.Parallel()
	_, err := Loader{LookupEnv: env(nil)}.Load("testdata/secrets-syntax/fastagent.config.yaml")
	if err == nil {
		t.Fatal("Load succeeded, want a YAML error")
	}
	const want = "config: testdata/secrets-syntax/fastagent.secrets.yaml: yaml: line "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want it to start with %q", err, want)
	}
}

func TestLoadYAMLErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, config, want string }{
		{"top level list", "- a\n- b\n", "cannot unmarshal"},
		{"duplicate key", "mcp: {}\nmcp: {}\n", `mapping key "mcp" already defined`},
		{"tab", "mcp:\n\tservers: {}\n", "yaml: line"},
	} {
		_, path, err := load(t, tc.config, "", nil)
		if err == nil {
			t.Errorf("%s: Load succeeded, want an error", tc.name)
			continue
		}
		if prefix := "config: " + path + ": yaml: "; !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %q, want prefix %q and %q", tc.name, err, prefix, tc.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fastagent.config.yaml")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want an error matching fs.ErrNotExist", err)
	}
	if !strings.HasPrefix(err.Error(), "config: ") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not start with config: and name %s", err, path)
	}
}

func TestLoadSecretsNotAFile(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "mcp: {servers: {a: {url: https://a.example/mcp}}}", "")
	secrets := filepath.Join(filepath.Dir(path), SecretsFile)
	if err := os.Mkdir(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Loader{LookupEnv: env(nil)}.Load(path)
	if err == nil || !strings.Contains(err.Error(), secrets) {
		t.Errorf("Load with a directory as secrets file = %v, want an error naming %s", err, secrets)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	t.Parallel()
	c, path := mustLoad(t, "# nothing yet\n", "", nil)
	if diff := cmp.Diff(&Config{Path: path}, c); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestLoadSecretsMerge(t *testing.T) {
	t.Parallel()
	c, err := Loader{LookupEnv: env(nil)}.Load("testdata/merge/fastagent.config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	auth := func(f func(*Auth)) Auth {
		a := DefaultAuth()
		f(&a)
		return a
	}
	want := &Config{
		Path:        "testdata/merge/fastagent.config.yaml",
		SecretsPath: "testdata/merge/fastagent.secrets.yaml",
		Servers: []Server{{
			Name:      "fetch",
			Transport: Stdio,
			Command:   "uvx",
			Auth:      DefaultAuth(),
		}, {
			Name:      "gh",
			Transport: HTTP,
			URL:       "https://api.githubcopilot.com/mcp/",
			Auth: auth(func(a *Auth) {
				a.ClientID, a.ClientSecret = "Iv1.0123456789abcdef", "gh-secret-value"
			}),
		}, {
			Name:      "hf",
			Transport: HTTP,
			URL:       "https://huggingface.co/mcp?login",
			Headers:   map[string]string{"X-A": "from-config", "X-B": "from-secrets", "X-C": "from-secrets"},
			Auth:      auth(func(a *Auth) { a.Persist, a.Scope = "memory", "c" }),
		}, {
			Name:      "private",
			Transport: SSE,
			URL:       "https://private.example.com/mcp",
			Auth:      DefaultAuth(),
		}},
		Listen: map[string]string{"hf": "127.0.0.1:8101", "gh": "127.0.0.1:9102"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

// Errors and warnings name the file that defined the key.
func TestLoadNamesSecretsFile(t *testing.T) {
	t.Parallel()
	_, path, err := load(t, `
mcp:
  servers:
    a:
      url: https://a.example/mcp
      auth: {redirect_port: 3031}
    b:
      url: https://b.example/mcp
`, `
mcp:
  servers:
    a:
      auth: {redirect_port: 70000}
    b:
      auth: {persist: disk}
      tranport: sse
    c:
      transport: http
`, nil)
	want := expand([]string{
		"config: {secrets}: mcp.servers.a.auth.redirect_port: 70000 is out of range (1-65535)",
		`config: {secrets}: mcp.servers.b.auth.persist: "disk" is not a persistence mode (want keyring or memory)`,
		"config: {secrets}: mcp.servers.c.url: is missing (an http server needs one)",
		`config: warning: {secrets}: mcp.servers.b.tranport: unknown key, ignored (did you mean "transport"?)`,
	}, path)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("error lines (-want +got):\n%s", diff)
	}
}

func TestLoadWarningNamesSecretsFile(t *testing.T) {
	t.Parallel()
	c, path := mustLoad(t, "mcp: {servers: {a: {url: https://a.example/mcp}}}",
		"mcp: {servers: {a: {tranport: sse}}}", nil)
	want := expand([]string{`{secrets}: mcp.servers.a.tranport: unknown key, ignored (did you mean "transport"?)`}, path)
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestLoadExpansion(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"SET": "value", "EMPTY": "", "HOST": "h.example", "PORT": "8101"}
	for _, tc := range []struct {
		name     string
		value    string // the value of header X-V
		want     string
		warnings []string
	}{
		{"set", "${SET}", "value", nil},
		{"set with default", "${SET:other}", "value", nil},
		{"inside text", "Bearer ${SET}!", "Bearer value!", nil},
		{"twice", "${SET}-${SET}", "value-value", nil},
		{"unset with default", "${UNSET:fallback}", "fallback", nil},
		{"default with colons", "${UNSET:http://a:b}", "http://a:b", nil},
		{"empty default", "${UNSET:}", "", nil},
		{"set to empty ignores the default", "${EMPTY:fallback}", "", nil},
		{"unset", "Bearer ${HF_KEY}", "Bearer ",
			[]string{`{file}: mcp.servers.s.headers.X-V: ${HF_KEY} is not set; using ""`}},
		{"unset twice warns once", "${HF_KEY}${HF_KEY}", "",
			[]string{`{file}: mcp.servers.s.headers.X-V: ${HF_KEY} is not set; using ""`}},
		{"two unset", "${A1}${B1}", "", []string{
			`{file}: mcp.servers.s.headers.X-V: ${A1} is not set; using ""`,
			`{file}: mcp.servers.s.headers.X-V: ${B1} is not set; using ""`,
		}},
		{"shell syntax is not understood", "${UNSET:-x}", "-x", nil},
		{"no braces", "$SET", "$SET", nil},
		{"unterminated", "${SET", "${SET", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, path := mustLoad(t, "mcp:\n  servers:\n    s:\n      url: https://${HOST}/mcp\n      headers:\n        X-V: '"+tc.value+"'\n", "", vars)
			s := mustServer(t, c, "s")
			if got := s.Headers["X-V"]; got != tc.want {
				t.Errorf("%s expanded to %q, want %q", tc.value, got, tc.want)
			}
			if s.URL != "https://h.example/mcp" {
				t.Errorf("URL = %q, want https://h.example/mcp", s.URL)
			}
			if diff := cmp.Diff(expand(tc.warnings, path), c.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadExpansionScope(t *testing.T) {
	t.Parallel()
	c, path := mustLoad(t, `
mcp:
  servers:
    ${NAME}:
      url: https://a.example/mcp
      auth:
        scope: [a, "${S2}", "x${S3}"]
    stdio:
      command: npx
      args: ["${ARG}"]
      env: {TOKEN: "${TOKEN}"}
default_model: ${MODEL}
proxy:
  listen:
    ${NAME}: 127.0.0.1:${PORT:8101}
`, "", map[string]string{"NAME": "expanded", "S2": "b"})
	s := mustServer(t, c, "${NAME}") // keys are not expanded
	if s.Auth.Scope != "a b x" {
		t.Errorf("Scope = %q, want %q", s.Auth.Scope, "a b x")
	}
	if got := c.Listen["${NAME}"]; got != "127.0.0.1:8101" {
		t.Errorf("Listen = %v, want ${NAME} on 127.0.0.1:8101", c.Listen)
	}
	// Only the keys the proxy reads are worth a warning.
	want := expand([]string{`{file}: mcp.servers.${NAME}.auth.scope[2]: ${S3} is not set; using ""`}, path)
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestLoadExpansionInSecrets(t *testing.T) {
	t.Parallel()
	c, path := mustLoad(t, `
mcp:
  servers:
    a:
      url: https://a.example/mcp
      headers: {X-Config: "${IN_CONFIG}"}
      auth: {client_id: id, client_secret: "${OVERRIDDEN}"}
`, `
mcp:
  servers:
    a:
      headers: {X-Key: "${KEY}", X-Other: "${OTHER}"}
      auth: {client_secret: "${SECRET:default-secret}"}
`, map[string]string{"KEY": "k"})
	s := mustServer(t, c, "a")
	if diff := cmp.Diff(map[string]string{"X-Config": "", "X-Key": "k", "X-Other": ""}, s.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if s.Auth.ClientSecret != "default-secret" {
		t.Errorf("client_secret = %q, want default-secret", s.Auth.ClientSecret)
	}
	// ${OVERRIDDEN} is not reported: the secrets file replaced that value.
	want := expand([]string{
		`{file}: mcp.servers.a.headers.X-Config: ${IN_CONFIG} is not set; using ""`,
		`{secrets}: mcp.servers.a.headers.X-Other: ${OTHER} is not set; using ""`,
	}, path)
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// The zero Loader reads the process environment.
func TestLoadProcessEnvironment(t *testing.T) {
	t.Setenv("MCP_OAUTH_PROXY_CONFIG_TEST", "from-env")
	path := writeConfig(t, "mcp: {servers: {a: {url: https://a.example/mcp, headers: {X-A: '${MCP_OAUTH_PROXY_CONFIG_TEST}'}}}}", "")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustServer(t, c, "a").Headers["X-A"]; got != "from-env" {
		t.Errorf("X-A = %q, want from-env", got)
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	t.Parallel()
	c, path := mustLoad(t, `
default_model: haiku
logger: {level: debug}
agents: [{name: a}]
mcp:
  timeline: {steps: 10}
  servers:
    hf:
      tranport: http
      URL: https://h.example/mcp
      url: https://h.example/mcp
      colour: blue
      args: [a]
      env: {A: b}
      cwd: /tmp
      description: d
      name: hf
      read_timeout_seconds: 5
      read_transport_sse_timeout_seconds: 5
      http_timeout_seconds: 5
      http_read_timeout_seconds: 5
      reconnect_on_disconnect: true
      load_on_start: true
      roots: []
      sampling: {model: x}
      elicitation: {mode: none}
      include_instructions: true
      ping_interval_seconds: 5
      max_missed_pings: 3
      management: client
      defer_loading: false
      protocol_mode: auto
      connector_id: c
      tool_filter: [x]
      auth:
        redirect_prot: 3031
        forward: huggingface
        scopes: [a]
proxy:
  lisen: {hf: 127.0.0.1:8101}
`, "", nil)
	want := expand([]string{
		`{file}: mcp.servers.hf.URL: unknown key, ignored (did you mean "url"?)`,
		"{file}: mcp.servers.hf.colour: unknown key, ignored",
		`{file}: mcp.servers.hf.tranport: unknown key, ignored (did you mean "transport"?)`,
		`{file}: mcp.servers.hf.auth.redirect_prot: unknown key, ignored (did you mean "redirect_port"?)`,
		`{file}: mcp.servers.hf.auth.scopes: unknown key, ignored (did you mean "scope"?)`,
		`{file}: proxy.lisen: unknown key, ignored (did you mean "listen"?)`,
	}, path)
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// A real fast-agent config loads without warnings.
func TestLoadFastAgentConfig(t *testing.T) {
	t.Parallel()
	c, err := Loader{LookupEnv: env(nil)}.Load("testdata/fastagent/fastagent.config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	hf := mustServer(t, c, "hf")
	if hf.Transport != HTTP || hf.Auth.Scope != "read" || hf.Auth.ClientMetadataURL != "https://fast-agent.ai/oauth/client.json" {
		t.Errorf("hf = %+v", hf)
	}
	if s := mustServer(t, c, "fetch"); s.Transport != Stdio {
		t.Errorf("fetch transport = %q, want stdio", s.Transport)
	}
}

func TestLoadDottedServerNames(t *testing.T) {
	t.Parallel()
	c, path := mustLoad(t, `
mcp:
  servers:
    api.example.com:
      url: https://api.example.com/mcp
      auth: {persist: memory}
    api:
      url: https://other.example/mcp
    api.example:
      command: npx
proxy:
  listen:
    api.example.com: 127.0.0.1:8101
    api: 127.0.0.1:8102
`, `
mcp:
  servers:
    api.example.com:
      headers: {X-A: b}
`, nil)
	dotted := mustServer(t, c, "api.example.com")
	if dotted.URL != "https://api.example.com/mcp" || dotted.Auth.Persist != "memory" || dotted.Headers["X-A"] != "b" {
		t.Errorf("api.example.com = %+v", dotted)
	}
	if s := mustServer(t, c, "api"); s.URL != "https://other.example/mcp" || s.Auth.Persist != "keyring" {
		t.Errorf("api = %+v", s)
	}
	if s := mustServer(t, c, "api.example"); s.Transport != Stdio {
		t.Errorf("api.example = %+v", s)
	}
	if diff := cmp.Diff(map[string]string{"api.example.com": "127.0.0.1:8101", "api": "127.0.0.1:8102"}, c.Listen); diff != "" {
		t.Errorf("Listen (-want +got):\n%s", diff)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}

	_, _, err := load(t, "mcp: {servers: {api.example.com: {url: https://a.example/mcp, auth: {redirect_port: 0}}}}", "", nil)
	const want = `mcp.servers."api.example.com".auth.redirect_port: 0 is out of range (1-65535)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want it to contain %s (file %s)", err, want, path)
	}
}

// YAML keys need not be strings; they are used as written.
func TestLoadNonStringKeys(t *testing.T) {
	t.Parallel()
	c, path := mustLoad(t, `
mcp:
  servers:
    1: {url: https://one.example/mcp, headers: {true: false}}
proxy:
  listen:
    1: 127.0.0.1:8101
    8102: 127.0.0.1:8102
`, "", nil)
	s := mustServer(t, c, "1")
	if diff := cmp.Diff(map[string]string{"true": "false"}, s.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"1": "127.0.0.1:8101", "8102": "127.0.0.1:8102"}, c.Listen); diff != "" {
		t.Errorf("listen (-want +got):\n%s", diff)
	}
	want := expand([]string{`{file}: proxy.listen.8102: there is no server "8102" in mcp.servers`}, path)
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestLoadWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		config string
		want   []string
	}{{
		name:   "authorization header with oauth",
		config: "mcp: {servers: {a: {url: https://a.example/mcp, headers: {authorization: Bearer x, X-HF-Authorization: y, X-Other: z}}}}",
		want: []string{
			"{file}: mcp.servers.a.headers.X-HF-Authorization: OAuth is on, so the proxy replaces this header with the OAuth token; set auth: {oauth: false} to send it as configured",
			"{file}: mcp.servers.a.headers.authorization: OAuth is on, so the proxy replaces this header with the OAuth token; set auth: {oauth: false} to send it as configured",
		},
	}, {
		name:   "authorization header without oauth",
		config: "mcp: {servers: {a: {url: https://a.example/mcp, headers: {Authorization: Bearer x}, auth: {oauth: false}}}}",
	}, {
		name:   "access_token",
		config: "mcp: {servers: {a: {url: https://a.example/mcp, access_token: tok}}}",
		want: []string{"{file}: mcp.servers.a.access_token: is not used by the proxy, which authorizes with OAuth; " +
			"to send a static token set headers.Authorization and auth: {oauth: false}"},
	}, {
		name:   "listen for a missing server",
		config: "mcp: {servers: {github: {url: https://a.example/mcp}}}\nproxy: {listen: {githb: 127.0.0.1:8101}}",
		want:   []string{`{file}: proxy.listen.githb: there is no server "githb" in mcp.servers (did you mean "github"?)`},
	}, {
		name:   "listen for a stdio server",
		config: "mcp: {servers: {fs: {command: npx}}}\nproxy: {listen: {fs: 127.0.0.1:8101}}",
		want:   []string{`{file}: proxy.listen.fs: "fs" is a stdio server; only http and sse servers are proxied`},
	}, {
		name:   "listen on every interface",
		config: "mcp: {servers: {a: {url: https://a.example/mcp}, b: {url: https://b.example/mcp}, c: {url: https://c.example/mcp}}}\nproxy: {listen: {a: ':8101', b: '0.0.0.0:8102', c: 'myhost.lan:8103'}}",
		want: []string{
			"{file}: proxy.listen.a: :8101 accepts connections from other machines, and whoever connects uses your OAuth tokens",
			"{file}: proxy.listen.b: 0.0.0.0:8102 accepts connections from other machines, and whoever connects uses your OAuth tokens",
			"{file}: proxy.listen.c: myhost.lan:8103 accepts connections from other machines, and whoever connects uses your OAuth tokens",
		},
	}, {
		name:   "listen on loopback",
		config: "mcp: {servers: {a: {url: https://a.example/mcp}, b: {url: https://b.example/mcp}, c: {url: https://c.example/mcp}}}\nproxy: {listen: {a: 'localhost:8101', b: '127.0.0.2:8102', c: '[::1]:8103'}}",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, path := mustLoad(t, tc.config, "", nil)
			if diff := cmp.Diff(expand(tc.want, path), c.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// No secret value may reach an error or a warning.
func TestLoadMessagesHideSecrets(t *testing.T) {
	t.Parallel()
	secrets := []string{"hdr-SECRET-1", "hdr-SECRET-2", "cs-SECRET-3", "url-SECRET-4", "url-SECRET-5", "tok-SECRET-6", "env-SECRET-7", "hdr-SECRET-8",
		"url-SECRET-9", "hdr-SECRET-10"}
	vars := map[string]string{"SECRET7": "env-SECRET-7"}
	var messages []string
	for _, tc := range []struct{ config, secrets string }{{
		// Invalid everywhere: errors.
		config: `
mcp:
  servers:
    a:
      url: "ftp://user:url-SECRET-4@a.example/mcp?key=url-SECRET-4"
      headers: {X-A: "hdr-SECRET-1\n", "Bad Name": hdr-SECRET-2, X-L: [hdr-SECRET-8]}
      auth: {client_secret: cs-SECRET-3}
    b:
      url: "https://b example/?key=url-SECRET-5"
      auth: {client_secret: [cs-SECRET-3]}
    d:
      transport: websocket
      url: "https://user:url-SECRET-9@d.example/mcp"
      headers: {X-D: "hdr-SECRET-10\x01"}
`,
		secrets: `mcp: {servers: {c: {url: "https://c.example/${SECRET7}%zz"}}}`,
	}, {
		// Valid with warnings.
		config: `
mcp:
  servers:
    a:
      url: https://a.example/mcp?key=url-SECRET-4
      headers: {Authorization: Bearer hdr-SECRET-1, X-Key: "${SECRET7}${UNSET}"}
      access_token: tok-SECRET-6
      auth: {client_id: id, client_secret: cs-SECRET-3, tranport: hdr-SECRET-2}
`,
	}} {
		c, _, err := load(t, tc.config, tc.secrets, vars)
		if err != nil {
			messages = append(messages, err.Error())
		}
		if c != nil {
			messages = append(messages, c.Warnings...)
		}
	}
	for _, m := range messages {
		t.Log(m)
	}
	if len(messages) < 2 {
		t.Fatalf("want errors and warnings to check, got %q", messages)
	}
	for _, m := range messages {
		for _, s := range secrets {
			if strings.Contains(m, s) {
				t.Errorf("message contains secret %s: %s", s, m)
			}
		}
	}
}

// fast-agent 0.7 and later also read fast-agent.secrets.yaml, and refuse a
// directory that holds both names.
func TestLoadSecretsFileNames(t *testing.T) {
	t.Parallel()
	const config = "mcp: {servers: {a: {url: https://a.example/mcp}}}"
	const secrets = "mcp: {servers: {a: {headers: {X-Api-Key: k}}}}"
	write := func(t *testing.T, dir, name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("new name", func(t *testing.T) {
		t.Parallel()
		path := writeConfig(t, config, "")
		write(t, filepath.Dir(path), SecretsFileNew, secrets)
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(filepath.Dir(path), SecretsFileNew); c.SecretsPath != want {
			t.Errorf("SecretsPath = %q, want %q", c.SecretsPath, want)
		}
		if got := mustServer(t, c, "a").Headers["X-Api-Key"]; got != "k" {
			t.Errorf("header from the secrets file = %q, want k", got)
		}
	})
	t.Run("both names", func(t *testing.T) {
		t.Parallel()
		path := writeConfig(t, config, secrets)
		write(t, filepath.Dir(path), SecretsFileNew, secrets)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), SecretsFileNew) || !strings.Contains(err.Error(), SecretsFile) {
			t.Errorf("Load = %v, want an error naming both files", err)
		}
	})
}
