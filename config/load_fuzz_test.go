package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fzEnv is the environment of FuzzLoad; fzSecret is the value that must
// never reach an error or a warning.
const fzSecret = "env-SECRET-7q"

var fzEnv = map[string]string{
	"SECRET": fzSecret,
	"URL":    "https://ex.example/mcp?k=" + fzSecret,
	"PORT":   "8101",
	"EMPTY":  "",
}

// FuzzLoad loads arbitrary config and secrets files with ${VAR}
// expansion. Loading never panics; an error names the file; no error or
// warning shows a variable's value; a loaded config is complete.
func FuzzLoad(f *testing.F) {
	seeds := []struct{ config, secrets string }{
		{"mcp:\n  servers:\n    hf:\n      url: ${URL}\n      headers: {X-Key: \"${SECRET}\"}\n", ""},
		{"mcp:\n  servers:\n    a:\n      url: https://a.example/mcp\n      auth: {client_id: id, redirect_port: ${PORT}}\n", "mcp:\n  servers:\n    a:\n      auth: {client_secret: ${SECRET}}\n"},
		{"mcp:\n  servers:\n    a:\n      url: ${NOPE:https://d.example/mcp}\n      transport: ${EMPTY}\nproxy:\n  listen:\n    a: 127.0.0.1:${PORT}\n", ""},
		{"mcp:\n  servers:\n    a:\n      url: \"ftp://${SECRET}@x/\"\n      auth: {redirect_port: ${SECRET}}\n", ""},
		{"mcp:\n  servers:\n    s:\n      command: npx\n      args: [\"${SECRET}\"]\n", ""},
		{"mcp: [1, 2]\n", "mcp: {servers: {a: {url: ${UNSET}}}}\n"},
		{"mcp:\n  servers:\n    a.b:\n      url: https://x.example/mcp\n      transport: sse\n", ""},
		{"{{{", ""},
		{"", ""},
	}
	for _, name := range []string{"fastagent", "merge", "secrets-syntax", "syntax"} {
		cfg, _ := os.ReadFile(filepath.Join("testdata", name, "fastagent.config.yaml"))
		sec, _ := os.ReadFile(filepath.Join("testdata", name, SecretsFile))
		seeds = append(seeds, struct{ config, secrets string }{string(cfg), string(sec)})
	}
	for _, s := range seeds {
		f.Add(s.config, s.secrets)
	}
	f.Fuzz(func(t *testing.T, config, secrets string) {
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
		lookup := func(name string) (string, bool) { v, ok := fzEnv[name]; return v, ok }
		c, err := Loader{LookupEnv: lookup}.Load(path)
		literal := strings.Contains(config+secrets, "SECRET-7q")
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, dir) {
				t.Errorf("error names no file: %v", err)
			}
			if !literal && strings.Contains(msg, fzSecret) {
				t.Errorf("error shows a variable's value: %v", err)
			}
			return
		}
		for _, w := range c.Warnings {
			if !literal && strings.Contains(w, fzSecret) {
				t.Errorf("warning shows a variable's value: %s", w)
			}
		}
		for _, s := range c.Servers {
			if s.Name == "" || s.Transport == "" {
				t.Errorf("loaded server %+v lacks a name or transport", s)
			}
			if s.Transport != Stdio && (s.Auth.RedirectPort < 1 || s.Auth.RedirectPort > 65535 || !strings.HasPrefix(s.Auth.RedirectPath, "/")) {
				t.Errorf("server %s: redirect port %d, path %q", s.Name, s.Auth.RedirectPort, s.Auth.RedirectPath)
			}
			if s.Transport != Stdio && s.Auth.Persist != PersistKeyring && s.Auth.Persist != PersistMemory {
				t.Errorf("server %s: persist %q", s.Name, s.Auth.Persist)
			}
		}
	})
}
