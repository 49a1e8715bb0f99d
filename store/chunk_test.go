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
	good := chunkHeader(3, v)
	sum := good[strings.LastIndex(good, ":")+1:]
	tests := []struct {
		header      string
		wantParts   int
		wantChunked bool
		wantErr     bool
	}{
		{good, 3, true, false},
		{tokenJSON, 0, false, false},
		{"", 0, false, false},
		{"mcp-oauth-proxy-chunked:v1:0:" + sum, 0, true, true},
		{"mcp-oauth-proxy-chunked:v1:-1:" + sum, 0, true, true},
		{"mcp-oauth-proxy-chunked:v1:4097:" + sum, 0, true, true},
		{"mcp-oauth-proxy-chunked:v1:3:" + sum[:10], 0, true, true},
		{"mcp-oauth-proxy-chunked:v1:3", 0, true, true},
		{"mcp-oauth-proxy-chunked:v2:3:" + sum, 0, true, true},
	}
	for _, tc := range tests {
		parts, gotSum, chunked, err := parseChunkHeader(tc.header)
		if parts != tc.wantParts || chunked != tc.wantChunked || (err != nil) != tc.wantErr {
			t.Errorf("parseChunkHeader(%q) = %d, %v, %v; want %d, %v, error %v",
				tc.header, parts, chunked, err, tc.wantParts, tc.wantChunked, tc.wantErr)
		}
		if err == nil && chunked {
			if verr := verifyChunks(v, gotSum); verr != nil {
				t.Errorf("verifyChunks of the original value: %v", verr)
			}
			if verr := verifyChunks([]byte(tokenJSON+" "), gotSum); verr == nil {
				t.Errorf("verifyChunks accepted a different value")
			}
		}
	}
}
