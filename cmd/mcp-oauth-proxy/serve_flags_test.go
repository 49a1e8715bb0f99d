package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// The UPSTREAM column fingerprints secret query values; the LOCAL URL
// keeps them, since clients send them through the proxy.
func TestServeTableRedactsUpstreamQuery(t *testing.T) {
	port := freePort(t)
	srv := startServe(t, newFakeKeychain(), "--config", writeConfig(t, secretQueryConfig),
		"--listen", fmt.Sprintf("api=127.0.0.1:%d", port), "--redirect-port", strconv.Itoa(freePort(t)))
	table := srv.ready(1)
	var row []string
	for line := range strings.Lines(table) {
		if strings.HasPrefix(line, "api ") {
			row = strings.Fields(line)
		}
	}
	if len(row) < 3 {
		t.Fatalf("no row for api in the start table:\n%s", table)
	}
	if want := localURL(port, "/mcp?api_key="+secretQueryValue+"&tenant=a"); row[1] != want {
		t.Errorf("LOCAL URL = %s, want %s", row[1], want)
	}
	if row[2] != secretQueryShown {
		t.Errorf("UPSTREAM = %s, want %s", row[2], secretQueryShown)
	}
}

// Flags that override a configured server are checked as the config is,
// before serve starts.
func TestServeValidatesFlagOverrides(t *testing.T) {
	cfg := writeConfig(t, "mcp:\n  servers:\n    docs:\n      url: http://127.0.0.1:9/mcp\n")
	for _, tt := range []struct {
		flags []string
		want  string
	}{
		// The message says the flags were the cause, not the config.
		{[]string{"--persist", "bogus"}, `--persist (on the command line): config: server "docs": auth.persist: "bogus" is not a persistence mode`},
		{[]string{"--redirect-port", "70000"}, `--redirect-port (on the command line): config: server "docs": auth.redirect_port: 70000 is out of range`},
		{[]string{"--client-secret", "s"}, `--client-secret (on the command line): config: server "docs": auth.client_secret: is set but auth.client_id is not`},
		{[]string{"--transport", "ws"}, `--transport (on the command line): config: server "docs": transport: "ws" is not a transport`},
		{[]string{"--transport", "stdio"}, "--transport stdio"},
	} {
		wantServeRefused(t, append([]string{"--config", cfg}, tt.flags...), tt.want)
	}
}

// --transport overrides a configured server's transport, as README says.
func TestServeTransportOverridesConfiguredServer(t *testing.T) {
	cfg := writeConfig(t, "mcp:\n  servers:\n    docs:\n      url: http://127.0.0.1:9/mcp\n")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	srv := startServe(t, newFakeKeychain(), "--config", cfg, "--transport", "sse", "--admin", addr,
		"--redirect-port", strconv.Itoa(freePort(t)))
	srv.ready(1)
	st, err := getAdminStatus(testContext(t), "http://"+addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Servers) != 1 || st.Servers[0].Transport != "sse" {
		t.Errorf("servers = %+v, want docs with transport sse", st.Servers)
	}
}

// A listener may neither take a login callback's port nor another
// listener's address: serve says which flag before it starts anything.
func TestServeListenConflicts(t *testing.T) {
	p, q := freePort(t), freePort(t)
	two := writeConfig(t, fmt.Sprintf(`
mcp:
  servers:
    a:
      url: http://127.0.0.1:9/a/mcp
      auth: {redirect_port: %d}
    b:
      url: http://127.0.0.1:9/b/mcp
      auth: {redirect_port: %d}
`, q, q))
	listening := writeConfig(t, fmt.Sprintf(`
mcp:
  servers:
    a:
      url: http://127.0.0.1:9/a/mcp
proxy:
  listen:
    a: 127.0.0.1:%d
`, p))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{
			[]string{"--config", two, "--listen", fmt.Sprintf("b=127.0.0.1:%d", q)},
			fmt.Sprintf(`--listen b=127.0.0.1:%d: port %d is the OAuth callback port of server "a" (auth.redirect_port)`, q, q),
		},
		{
			[]string{"--config", two, "--listen", fmt.Sprintf("a=localhost:%d", q)},
			fmt.Sprintf(`--listen a=localhost:%d: port %d is the OAuth callback port of server "a"`, q, q),
		},
		{
			[]string{"--config", two, "--listen", fmt.Sprintf("a=127.0.0.1:%d", p), "--listen", fmt.Sprintf("b=127.0.0.1:%d", p)},
			fmt.Sprintf(`--listen b=127.0.0.1:%d: 127.0.0.1:%d is also the listen address of server "a"`, p, p),
		},
		{
			[]string{"--config", listening, "--redirect-port", strconv.Itoa(p)},
			fmt.Sprintf(`proxy.listen.a (127.0.0.1:%d): port %d is the OAuth callback port of server "a" (--redirect-port)`, p, p),
		},
		{
			[]string{"--url", "http://127.0.0.1:9/mcp", "--listen", fmt.Sprintf("127.0.0.1:%d", p), "--redirect-port", strconv.Itoa(p)},
			fmt.Sprintf(`--listen 127.0.0.1:%d: port %d is the OAuth callback port`, p, p),
		},
	} {
		wantServeRefused(t, tt.args, tt.want)
	}
}

// The default status page gives way to a listener or login callback on
// its port, with one warning; an explicit --admin there is an error.
func TestServeDefaultStatusPageGivesWay(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg := writeConfig(t, "mcp:\n  servers:\n    docs:\n      url: http://127.0.0.1:9/mcp\nproxy:\n  listen:\n    docs: "+addr+"\n")
	for _, args := range [][]string{
		{"--config", cfg, "--redirect-port", strconv.Itoa(freePort(t))},
		{"--url", "http://127.0.0.1:9/mcp", "--redirect-port", strconv.Itoa(port)},
	} {
		r := runServeApp(t, &app{adminDefault: addr}, args...)
		if r.code != 0 || strings.Contains(r.stdout, "Status page") {
			t.Errorf("serve %q with the default page on %s: exit %d\n%s%s", args, addr, r.code, r.stdout, r.stderr)
		}
		if n := strings.Count(r.stderr, "status page not started"); n != 1 {
			t.Errorf("serve %q: %d warnings about the status page, want 1:\n%s", args, n, r.stderr)
		}
	}

	r := runCLI(t, newFakeKeychain(), "serve", "--url", "http://127.0.0.1:9/mcp", "--listen", addr, "--admin", addr)
	if want := "--admin " + addr + ": port " + strconv.Itoa(port); r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("serve --admin on the listener's port: exit %d, stderr %q; want an error with %q", r.code, r.stderr, want)
	}
}

// wantServeRefused runs serve with args and expects it to stop before
// starting, with an error containing want and no start table.
func wantServeRefused(t *testing.T, args []string, want string) {
	t.Helper()
	r := startServe(t, newFakeKeychain(), args...).wait()
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("serve %q: exit %d, stderr %q; want an error with %q", args, r.code, r.stderr, want)
	}
	if r.stdout != "" {
		t.Errorf("serve %q printed a start table:\n%s", args, r.stdout)
	}
}
