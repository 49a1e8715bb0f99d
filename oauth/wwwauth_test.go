package oauth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var wwwAuthenticateTests = []struct {
	name   string
	values []string
	want   []Challenge
}{
	{
		name:   "conformance 401",
		values: []string{`Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="http://localhost:35585/.well-known/oauth-protected-resource/mcp"`},
		want: []Challenge{{Scheme: "Bearer", Params: map[string]string{
			"error":             "invalid_token",
			"error_description": "Missing Authorization header",
			"resource_metadata": "http://localhost:35585/.well-known/oauth-protected-resource/mcp",
		}}},
	},
	{
		name:   "conformance step-up 401",
		values: []string{`Bearer scope="mcp:basic", resource_metadata="http://localhost:1/.well-known/oauth-protected-resource/mcp"`},
		want: []Challenge{{Scheme: "Bearer", Params: map[string]string{
			"scope":             "mcp:basic",
			"resource_metadata": "http://localhost:1/.well-known/oauth-protected-resource/mcp",
		}}},
	},
	{
		name:   "conformance step-up 403",
		values: []string{`Bearer scope="mcp:basic mcp:write", resource_metadata="http://localhost:1/prm", error="insufficient_scope"`},
		want: []Challenge{{Scheme: "Bearer", Params: map[string]string{
			"scope":             "mcp:basic mcp:write",
			"resource_metadata": "http://localhost:1/prm",
			"error":             "insufficient_scope",
		}}},
	},
	{
		name:   "spec example",
		values: []string{`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="files:read"`},
		want: []Challenge{{Scheme: "Bearer", Params: map[string]string{
			"resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource",
			"scope":             "files:read",
		}}},
	},
	{
		name:   "two challenges in one value",
		values: []string{`DPoP algs="ES256 PS256", Bearer realm="x", scope="a b"`},
		want: []Challenge{
			{Scheme: "DPoP", Params: map[string]string{"algs": "ES256 PS256"}},
			{Scheme: "Bearer", Params: map[string]string{"realm": "x", "scope": "a b"}},
		},
	},
	{
		name:   "several header values",
		values: []string{`Basic realm="b"`, `Bearer realm="x"`},
		want: []Challenge{
			{Scheme: "Basic", Params: map[string]string{"realm": "b"}},
			{Scheme: "Bearer", Params: map[string]string{"realm": "x"}},
		},
	},
	{
		name:   "escapes in quoted string",
		values: []string{`Bearer realm="a \"quoted\" \\ w\ord"`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": `a "quoted" \ word`}}},
	},
	{
		name:   "comma inside quoted string",
		values: []string{`Bearer scope="a,b", realm="x"`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"scope": "a,b", "realm": "x"}}},
	},
	{
		name:   "case-insensitive names",
		values: []string{`BEARER Realm="x", SCOPE="y", Resource_Metadata="z"`},
		want:   []Challenge{{Scheme: "BEARER", Params: map[string]string{"realm": "x", "scope": "y", "resource_metadata": "z"}}},
	},
	{
		name:   "folded whitespace around commas",
		values: []string{"Bearer realm=\"x\" ,\r\n\tscope=\"y\"\n  ,  error=\"z\"  "},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "x", "scope": "y", "error": "z"}}},
	},
	{
		name:   "whitespace around equals",
		values: []string{`Bearer realm = "x", scope= y`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "x", "scope": "y"}}},
	},
	{
		name:   "token values",
		values: []string{`Bearer error=invalid_token, scope=read`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"error": "invalid_token", "scope": "read"}}},
	},
	{
		name:   "unquoted URL value",
		values: []string{`Bearer resource_metadata=https://h.example/.well-known/oauth-protected-resource?x=1, scope=s`},
		want: []Challenge{{Scheme: "Bearer", Params: map[string]string{
			"resource_metadata": "https://h.example/.well-known/oauth-protected-resource?x=1", "scope": "s",
		}}},
	},
	{
		name:   "token68",
		values: []string{`Basic YWxhZGRpbjpvcGVuc2VzYW1l==`},
		want:   []Challenge{{Scheme: "Basic", Token68: "YWxhZGRpbjpvcGVuc2VzYW1l=="}},
	},
	{
		name:   "token68 then another challenge",
		values: []string{`Negotiate abc/+d, Bearer realm="x"`},
		want: []Challenge{
			{Scheme: "Negotiate", Token68: "abc/+d"},
			{Scheme: "Bearer", Params: map[string]string{"realm": "x"}},
		},
	},
	{
		name:   "bare schemes",
		values: []string{`Bearer, Basic realm="x", Negotiate`},
		want: []Challenge{
			{Scheme: "Bearer"},
			{Scheme: "Basic", Params: map[string]string{"realm": "x"}},
			{Scheme: "Negotiate"},
		},
	},
	{
		name:   "repeated parameter keeps the first",
		values: []string{`Bearer scope="a", Scope="b"`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"scope": "a"}}},
	},
	{
		name:   "missing comma between parameters",
		values: []string{`Bearer realm="x" scope="y"`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "x", "scope": "y"}}},
	},
	{
		name:   "empty values",
		values: []string{`Bearer realm="", scope=, error=""`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "", "scope": "", "error": ""}}},
	},
	{
		name:   "unterminated quoted string",
		values: []string{`Bearer realm="x, scope=y`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "x, scope=y"}}},
	},
	{
		name:   "empty",
		values: []string{"", "  ", " , ,"},
		want:   nil,
	},
	{
		name:   "nil",
		values: nil,
		want:   nil,
	},
	{
		name:   "garbage is skipped",
		values: []string{`"""`, `=,=, @@ , Bearer realm="x", =junk, scope="y"`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "x", "scope": "y"}}},
	},
	{
		name:   "scheme glued to garbage",
		values: []string{`Bearer"x", Basic realm="r"`},
		want: []Challenge{
			{Scheme: "Bearer"},
			{Scheme: "Basic", Params: map[string]string{"realm": "r"}},
		},
	},
	{
		name:   "trailing backslash",
		values: []string{`Bearer realm="x\`},
		want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": `x\`}}},
	},
}

func TestParseWWWAuthenticate(t *testing.T) {
	for _, tt := range wwwAuthenticateTests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseWWWAuthenticate(tt.values)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseWWWAuthenticate(%q) mismatch (-want +got):\n%s", tt.values, diff)
			}
		})
	}
}

func TestChallengeString(t *testing.T) {
	c := Challenge{Scheme: "Bearer", Params: map[string]string{"scope": "a b", "realm": `q"\`}}
	if got, want := c.String(), `Bearer realm="q\"\\", scope="a b"`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	c = Challenge{Scheme: "Basic", Token68: "abc=="}
	if got, want := c.String(), `Basic abc==`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestBearerChallengeFrom(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   BearerChallenge
		ok     bool
	}{
		{
			name:   "after a DPoP challenge",
			values: []string{`DPoP algs="ES256"`, `bearer realm="r", scope="a b", error="insufficient_scope", error_description="more", error_uri="https://e", resource_metadata="https://m/prm"`},
			want: BearerChallenge{ResourceMetadata: "https://m/prm", Scope: "a b", Error: "insufficient_scope",
				ErrorDescription: "more", ErrorURI: "https://e", Realm: "r"},
			ok: true,
		},
		{
			name:   "first Bearer wins",
			values: []string{`Bearer scope="one", Bearer scope="two"`},
			want:   BearerChallenge{Scope: "one"},
			ok:     true,
		},
		{
			name:   "bare Bearer",
			values: []string{`Bearer`},
			ok:     true,
		},
		{
			name:   "no Bearer",
			values: []string{`Basic realm="x"`},
		},
		{
			name: "no header",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Www-Authenticate", v)
			}
			got, ok := BearerChallengeFrom(h)
			if ok != tt.ok {
				t.Errorf("ok = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("BearerChallengeFrom mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInsufficientScope(t *testing.T) {
	for _, tt := range []struct {
		err  string
		want bool
	}{{"insufficient_scope", true}, {"invalid_token", false}, {"", false}} {
		if got := (BearerChallenge{Error: tt.err}).InsufficientScope(); got != tt.want {
			t.Errorf("InsufficientScope() with error %q = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// FuzzParseWWWAuthenticate checks that the parser never panics and that
// formatting what it parsed and parsing that again gives the same result.
func FuzzParseWWWAuthenticate(f *testing.F) {
	for _, tt := range wwwAuthenticateTests {
		f.Add(strings.Join(tt.values, "\x00"))
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := ParseWWWAuthenticate(strings.Split(in, "\x00"))
		var formatted []string
		for _, c := range got {
			if c.Scheme == "" {
				t.Fatalf("challenge with an empty scheme from %q", in)
			}
			formatted = append(formatted, c.String())
		}
		again := ParseWWWAuthenticate([]string{strings.Join(formatted, ", ")})
		if diff := cmp.Diff(got, again); diff != "" {
			t.Errorf("parse(format(parse(%q))) mismatch (-first +second):\n%s", in, diff)
		}
	})
}
