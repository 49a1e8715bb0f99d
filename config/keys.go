package config

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// keyPath is a position in the YAML tree, one element per key. List
// elements are written "[i]" (see indexKey). Server names may contain dots,
// so paths are never built by splitting a dotted string.
type keyPath []string

// child returns p extended by keys, never sharing p's backing array.
func (p keyPath) child(keys ...string) keyPath {
	return append(p[:len(p):len(p)], keys...)
}

func indexKey(i int) string { return "[" + strconv.Itoa(i) + "]" }

func parseIndexKey(s string) (int, bool) {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return 0, false
	}
	i, err := strconv.Atoi(s[1 : len(s)-1])
	return i, err == nil && i >= 0
}

func isIndexKey(s string) bool {
	_, ok := parseIndexKey(s)
	return ok
}

// String renders p as a dotted path, quoting keys that would make it
// ambiguous: mcp.servers."api.example.com".url, mcp.servers.x.scope[1].
func (p keyPath) String() string {
	var b strings.Builder
	for i, k := range p {
		switch {
		case isIndexKey(k):
			b.WriteString(k)
			continue
		case i > 0:
			b.WriteByte('.')
		}
		if k == "" || strings.ContainsAny(k, ".[]\" \t\r\n") {
			k = strconv.Quote(k)
		}
		b.WriteString(k)
	}
	return b.String()
}

// keySet holds the keys known in one section: ours, and those only
// fast-agent uses, which are accepted without a warning.
type keySet struct {
	ours      []string
	fastAgent []string
}

func (s keySet) known(k string) bool {
	return slices.Contains(s.ours, k) || slices.Contains(s.fastAgent, k)
}

func (s keySet) all() []string {
	return slices.Sorted(slices.Values(slices.Concat(s.ours, s.fastAgent)))
}

var (
	serverKeys = keySet{
		ours: []string{"transport", "url", "command", "headers", "auth", "target", "access_token"},
		// fast-agent's MCPServerSettings (0.3 – 0.10).
		fastAgent: []string{
			"name", "description", "args", "env", "cwd", "roots", "sampling", "elicitation",
			"read_timeout_seconds", "read_transport_sse_timeout_seconds", "http_timeout_seconds",
			"http_read_timeout_seconds", "reconnect_on_disconnect", "load_on_start",
			"include_instructions", "ping_interval_seconds", "max_missed_pings", "management",
			"defer_loading", "protocol_mode", "connector_id", "tool_filter", "implementation",
		},
	}
	authKeys = keySet{
		ours: []string{"oauth", "persist", "redirect_port", "redirect_path", "scope",
			"client_id", "client_secret", "client_metadata_url", "resource", "authorize_params"},
		fastAgent: []string{"forward"},
	}
	proxyKeys = keySet{ours: []string{"listen"}}
)

// suggest returns ` (did you mean "x"?)` when one of candidates is a near
// miss of k (a typo or a different case), or "".
func suggest(k string, candidates []string) string {
	lk := strings.ToLower(k)
	limit := min(2, max(1, len(k)/3))
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if d := editDistance(lk, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || best == k {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of adjacent bytes cost 1.
func editDistance(a, b string) int {
	// Three rows: i-2, i-1 and i.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func sortedKeys[M ~map[K]V, K cmp.Ordered, V any](m M) []K {
	return slices.Sorted(maps.Keys(m))
}
