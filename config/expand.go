package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
)

// varRef is fast-agent's pattern: ${NAME} or ${NAME:default}, the name not
// trimmed, no escape for a literal "${".
var varRef = regexp.MustCompile(`\$\{([^}]+)\}`)

// unsetVar records a ${NAME} without default whose variable is not set.
type unsetVar struct {
	path keyPath
	name string
}

// expandParser is a koanf.Parser for one file: YAML, then ${VAR} expansion
// in every string value (not in keys), as fast-agent's resolve_env_vars
// does, except that an unset variable without default becomes "" (and is
// recorded) rather than staying a literal "${NAME}" that would be sent
// upstream.
type expandParser struct {
	lookup func(string) (string, bool)

	parsed bool           // Unmarshal was called: a later error is the file's content, not its absence
	tree   map[string]any // the file's own expanded tree, kept to tell which file defined a key
	unset  []unsetVar     // in key order
}

func (p *expandParser) Unmarshal(b []byte) (map[string]any, error) {
	p.parsed = true
	m, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		return nil, err
	}
	tree, _ := p.walk(m, nil).(map[string]any)
	if tree == nil { // an empty file
		tree = map[string]any{}
	}
	p.tree = tree
	// koanf's merge shares nested maps between files and mutates them;
	// p.tree must keep this file's values only.
	out, _ := cloneTree(tree).(map[string]any)
	return out, nil
}

func (p *expandParser) Marshal(map[string]any) ([]byte, error) {
	return nil, fmt.Errorf("config: writing configuration is not supported")
}

// walk returns a copy of v with string values expanded and every map keyed
// by strings, visiting keys in sorted order so warnings come out stably.
func (p *expandParser) walk(v any, path keyPath) any {
	switch v := v.(type) {
	case string:
		return p.expand(v, path)
	case map[string]any:
		out := make(map[string]any, len(v))
		for _, k := range sortedKeys(v) {
			out[k] = p.walk(v[k], path.child(k))
		}
		return out
	case map[any]any: // YAML keys that are not strings: 8101, true, …
		keys := make(map[string]any, len(v))
		for k, x := range v {
			keys[fmt.Sprint(k)] = x
		}
		return p.walk(keys, path)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = p.walk(x, path.child(indexKey(i)))
		}
		return out
	default:
		return v
	}
}

func (p *expandParser) expand(s string, path keyPath) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var reported []string
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		name, def, hasDef := strings.Cut(ref[2:len(ref)-1], ":")
		if v, ok := p.lookup(name); ok {
			return v
		}
		if hasDef {
			return def
		}
		if !slices.Contains(reported, name) {
			reported = append(reported, name)
			p.unset = append(p.unset, unsetVar{path, name})
		}
		return ""
	})
}

func cloneTree(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = cloneTree(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cloneTree(x)
		}
		return out
	default:
		return v
	}
}

// lookup returns the value at path in tree.
func lookup(tree map[string]any, path keyPath) (any, bool) {
	var cur any = tree
	for _, k := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[k]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, ok := parseIndexKey(k)
			if !ok || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}
