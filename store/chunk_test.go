package store

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestSplitChunks(t *testing.T) {
	tests := []struct {
		name  string
		value string
		size  int
		want  []string
	}{
		{"fits", "abc", 3, []string{"abc"}},
		{"even", "abcdef", 3, []string{"abc", "def"}},
		{"remainder", "abcdefg", 3, []string{"abc", "def", "g"}},
		{"two-byte rune on the cut", "ab€cd", 3, []string{"ab", "€", "cd"}},
		{"four-byte rune on the cut", "a𝄞b", 4, []string{"a", "𝄞", "b"}},
		{"rune longer than a part", "𝄞𝄞", 2, []string{"\xf0\x9d", "\x84\x9e", "\xf0\x9d", "\x84\x9e"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := splitChunks([]byte(tc.value), tc.size)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("splitChunks(%q, %d) (-want +got):\n%s", tc.value, tc.size, diff)
			}
		})
	}
}

func TestSplitChunksKeepsText(t *testing.T) {
	v := bigValue(20 << 10)
	for _, size := range []int{256, 300, 2000, 2560} {
		parts := splitChunks(v, size)
		for i, p := range parts {
			if len(p) > size || !utf8.ValidString(p) || p == "" {
				t.Errorf("size %d: part %d is %d bytes, valid UTF-8 %v", size, i, len(p), utf8.ValidString(p))
			}
		}
		if got := strings.Join(parts, ""); got != string(v) {
			t.Errorf("size %d: parts do not join to the value", size)
		}
	}
}

func TestParseChunkHeader(t *testing.T) {
	v := []byte(tokenJSON)
	good := chunkHeader(0, 3, v)
	sum := good[strings.LastIndex(good, ":")+1:]
	tests := []struct {
		header      string
		want        chunkSpan // sum is checked separately
		wantChunked bool
		wantErr     bool
	}{
		{good, chunkSpan{0, 3, ""}, true, false},
		{chunkHeader(5, 3, v), chunkSpan{5, 3, ""}, true, false},
		{"mcp-oauth-proxy-chunked:v1:3:" + sum, chunkSpan{0, 3, ""}, true, false},
		{"mcp-oauth-proxy-chunked:v2:7:2:" + sum, chunkSpan{7, 2, ""}, true, false},
		{tokenJSON, chunkSpan{}, false, false},
		{"", chunkSpan{}, false, false},
		{"mcp-oauth-proxy-chunked:v1:0:" + sum, chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v1:-1:" + sum, chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v1:4097:" + sum, chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v1:3:" + sum[:10], chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v1:3", chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v1:1:3:" + sum, chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v2:3:" + sum, chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v2:-1:3:" + sum, chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v2:8193:3:" + sum, chunkSpan{}, true, true},
		{"mcp-oauth-proxy-chunked:v3:0:3:" + sum, chunkSpan{}, true, true},
	}
	for _, tc := range tests {
		span, chunked, err := parseChunkHeader(tc.header)
		got := span
		got.sum = ""
		if got != tc.want || chunked != tc.wantChunked || (err != nil) != tc.wantErr {
			t.Errorf("parseChunkHeader(%q) = %+v, %v, %v; want %+v, %v, error %v",
				tc.header, got, chunked, err, tc.want, tc.wantChunked, tc.wantErr)
		}
		if err == nil && chunked {
			if verr := verifyChunks(v, span.sum); verr != nil {
				t.Errorf("verifyChunks of the original value: %v", verr)
			}
			if verr := verifyChunks([]byte(tokenJSON+" "), span.sum); verr == nil {
				t.Errorf("verifyChunks accepted a different value")
			}
		}
	}
}

// A new value's parts never land on the parts of the value it replaces,
// and their indices stay bounded however the sizes go.
func TestNextStart(t *testing.T) {
	old := chunkSpan{}
	for i, n := range []int{3, 5, 2, 2, 7, 1, 4096, 4096, 1, 4096} {
		start := nextStart(old, n)
		if start < old.end() && start+n > old.start {
			t.Fatalf("step %d: %d parts at %d overlap the old parts %d…%d", i, n, start, old.start, old.end()-1)
		}
		if start > maxStart {
			t.Fatalf("step %d: start %d is beyond maxStart", i, start)
		}
		old = chunkSpan{start: start, parts: n}
	}
}
