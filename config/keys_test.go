package config

import "testing"

func TestKeyPathString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path keyPath
		want string
	}{
		{keyPath{"mcp", "servers", "hf", "url"}, "mcp.servers.hf.url"},
		{keyPath{"mcp", "servers", "api.example.com", "url"}, `mcp.servers."api.example.com".url`},
		{keyPath{"mcp", "servers", "a", "auth", "scope", "[2]"}, "mcp.servers.a.auth.scope[2]"},
		{keyPath{"mcp", "servers", "a", "headers", "X Key"}, `mcp.servers.a.headers."X Key"`},
		{keyPath{"mcp", "servers", ""}, `mcp.servers.""`},
		{keyPath{"proxy"}, "proxy"},
	} {
		if got := tc.path.String(); got != tc.want {
			t.Errorf("%#v.String() = %s, want %s", tc.path, got, tc.want)
		}
	}
}

func TestKeyPathChildDoesNotAlias(t *testing.T) {
	t.Parallel()
	base := make(keyPath, 2, 10)
	base[0], base[1] = "mcp", "servers"
	a := base.child("a")
	b := base.child("b")
	if a.String() != "mcp.servers.a" || b.String() != "mcp.servers.b" {
		t.Errorf("children of one path share storage: %s, %s", a, b)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	known := serverKeys.all()
	for _, tc := range []struct{ key, want string }{
		{"tranport", ` (did you mean "transport"?)`},
		{"trasnport", ` (did you mean "transport"?)`},
		{"URL", ` (did you mean "url"?)`},
		{"ur", ` (did you mean "url"?)`},
		{"header", ` (did you mean "headers"?)`},
		{"arg", ` (did you mean "args"?)`},
		{"colour", ""},
		{"x", ""},
		{"completely_different", ""},
	} {
		if got := suggest(tc.key, known); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "abc", 0},
		{"abc", "abd", 1},
		{"abc", "acb", 1},
		{"tranport", "transport", 1},
		{"kitten", "sitting", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
