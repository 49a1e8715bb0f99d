package oauth

import (
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url           string
		allowInsecure bool
		wantErr       string // substring; "" for success
	}{
		{"https://as.example.com/authorize", false, ""},
		{"HTTPS://AS.example.com", false, ""},
		{"https://as.example.com:8443/t?x=1", false, ""},
		{"http://localhost:3000/mcp", false, ""},
		{"http://LOCALHOST/mcp", false, ""},
		{"http://127.0.0.1:8080/token", false, ""},
		{"http://127.5.6.7/token", false, ""},
		{"http://[::1]:9000/token", false, ""},
		{"http://as.example.com/token", false, "--allow-insecure-http"},
		{"http://10.0.0.1/token", false, "--allow-insecure-http"},
		{"http://localhost.evil.com/token", false, "--allow-insecure-http"},
		{"http://128.0.0.1/token", false, "--allow-insecure-http"},
		{"http://as.example.com/token", true, ""},
		{"javascript:alert(1)", false, `scheme "javascript" is not allowed`},
		{"javascript:alert(1)", true, `scheme "javascript" is not allowed`},
		{"data:text/html,hi", true, `scheme "data" is not allowed`},
		{"file:///etc/passwd", true, `scheme "file" is not allowed`},
		{"vbscript:x", true, `scheme "vbscript" is not allowed`},
		{"ftp://as.example.com/x", true, `scheme "ftp" is not allowed`},
		{"/relative/path", false, "is not absolute"},
		{"as.example.com/token", false, "is not absolute"},
		{"", false, "is not absolute"},
		{"https:///nohost", false, "has no host"},
		{"https://", false, "has no host"},
		{"https://as.example.com/%zz", false, "invalid URL"},
	}
	for _, tt := range tests {
		err := CheckURL(tt.url, tt.allowInsecure)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("CheckURL(%q, %v) = %v, want nil", tt.url, tt.allowInsecure, err)
		case tt.wantErr != "" && err == nil:
			t.Errorf("CheckURL(%q, %v) = nil, want error containing %q", tt.url, tt.allowInsecure, tt.wantErr)
		case err != nil && (!strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "oauth: ")):
			t.Errorf("CheckURL(%q, %v) = %v, want an oauth: error containing %q", tt.url, tt.allowInsecure, err, tt.wantErr)
		case err != nil && tt.url != "" && !strings.Contains(err.Error(), tt.url):
			t.Errorf("CheckURL(%q, %v) = %v, want the URL named", tt.url, tt.allowInsecure, err)
		}
	}
}

func TestCheckURLHidesQueryAndUserInfo(t *testing.T) {
	for _, raw := range []string{
		"http://mcp.example.com/mcp?api_key=SECRET",
		"ftp://mcp.example.com/mcp?api_key=SECRET#x",
		"https://user:SECRET@/mcp",
		"https://mcp.example.com/%zz?api_key=SECRET",
		"mcp.example.com/mcp?api_key=SECRET",
	} {
		err := CheckURL(raw, false)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "/mcp") &&
			!strings.Contains(err.Error(), "%zz") {
			t.Errorf("CheckURL(%q) = %v, want an error naming the URL without its secret", raw, err)
		}
	}
}
