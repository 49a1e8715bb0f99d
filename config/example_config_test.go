package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The shipped example must stay loadable, warning-free without any
// environment variable, and describe the servers its comments promise.
func TestExampleConfigFile(t *testing.T) {
	t.Parallel()
	const path = "../fastagent.config.yaml.example"
	c, err := Loader{LookupEnv: env(nil)}.Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	if c.SecretsPath != "" {
		t.Errorf("SecretsPath = %q; a fastagent.secrets.yaml next to the example would change it", c.SecretsPath)
	}

	auth := func(f func(*Auth)) Auth {
		a := DefaultAuth()
		f(&a)
		return a
	}
	want := []Server{{
		Name:      "crm",
		Transport: HTTP,
		URL:       "https://crm.example.com/mcp",
		Auth: auth(func(a *Auth) {
			a.ClientID, a.Scope = "mcp-oauth-proxy", "crm.read crm.write"
		}),
	}, {
		Name:      "entra",
		Transport: HTTP,
		URL:       "https://entra.example.com/mcp",
		Auth: auth(func(a *Auth) {
			a.Resource, a.AuthorizeParams = ResourceNone, map[string]string{"prompt": "select_account"}
		}),
	}, {
		Name:      "filesystem",
		Transport: Stdio,
		Command:   "npx",
		Auth:      DefaultAuth(),
	}, {
		Name:      "huggingface",
		Transport: HTTP,
		URL:       "https://huggingface.co/mcp?login",
		Auth:      DefaultAuth(),
	}, {
		Name:      "issues",
		Transport: HTTP,
		URL:       "https://issues.example.com/mcp",
		Auth: auth(func(a *Auth) {
			a.Scope = "read:issues read:repo"
			a.ClientMetadataURL = "https://client.example.com/mcp-oauth-proxy.json"
		}),
	}, {
		Name:      "legacy-sse",
		Transport: SSE,
		URL:       "https://mcp.example.com/sse",
		Headers:   map[string]string{"X-Client-Version": "1.0"},
		Auth:      DefaultAuth(),
	}, {
		Name:      "static-token",
		Transport: HTTP,
		URL:       "https://static.example.com/mcp",
		Headers:   map[string]string{"Authorization": "Bearer "},
		Auth:      auth(func(a *Auth) { a.OAuth = false }),
	}}
	if diff := cmp.Diff(want, c.Servers); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
	wantListen := map[string]string{
		"huggingface":  "127.0.0.1:8101",
		"legacy-sse":   "127.0.0.1:8102",
		"issues":       "127.0.0.1:8103",
		"crm":          "127.0.0.1:8104",
		"entra":        "127.0.0.1:8105",
		"static-token": "127.0.0.1:8106",
	}
	if diff := cmp.Diff(wantListen, c.Listen); diff != "" {
		t.Errorf("listen (-want +got):\n%s", diff)
	}

	// With the variables set, the pre-registered client takes them.
	c, err = Loader{LookupEnv: env(map[string]string{
		"CRM_CLIENT_ID": "crm-id", "CRM_CLIENT_SECRET": "crm-secret", "STATIC_TOKEN": "tok",
	})}.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	crm := mustServer(t, c, "crm")
	if crm.Auth.ClientID != "crm-id" || crm.Auth.ClientSecret != "crm-secret" {
		t.Errorf("crm client = %q, %q; want crm-id, crm-secret", crm.Auth.ClientID, crm.Auth.ClientSecret)
	}
	if got := mustServer(t, c, "static-token").Headers["Authorization"]; got != "Bearer tok" {
		t.Errorf("static-token Authorization = %q, want %q", got, "Bearer tok")
	}
}
