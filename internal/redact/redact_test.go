package redact

import (
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint("token-a"), Fingerprint("token-b")
	if a == b || !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+12 {
		t.Errorf("Fingerprint = %q, %q", a, b)
	}
	if a != Fingerprint("token-a") {
		t.Error("Fingerprint is not deterministic")
	}
	if strings.Contains(a, "token-a") {
		t.Error("Fingerprint leaks the secret")
	}
	if Fingerprint("") != "" {
		t.Error(`Fingerprint("") != ""`)
	}
}

func TestURL(t *testing.T) {
	tests := map[string]string{
		"https://user:hunter2@example.com/mcp": "https://user:xxxxx@example.com/mcp",
		"https://example.com/mcp?login":        "https://example.com/mcp?login",
		"http://[::1:bad":                      "<invalid URL>",
	}
	for in, want := range tests {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}
