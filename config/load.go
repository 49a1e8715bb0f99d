package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// SecretsFile is the name of the secrets file merged over a config file
// from the same directory.
const SecretsFile = "fastagent.secrets.yaml"

// SecretsFileNew is the other name fast-agent 0.7 and later accept for
// the secrets file. A directory may hold only one of the two.
const SecretsFileNew = "fast-agent.secrets.yaml"

// Loader loads a config; the zero value uses the process environment.
type Loader struct {
	// LookupEnv resolves ${NAME} references; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
}

// Load reads the config file at path with the process environment.
// See Loader.Load.
func Load(path string) (*Config, error) { return Loader{}.Load(path) }

// Load reads the config file at path and, when it exists, the
// fastagent.secrets.yaml (or fast-agent.secrets.yaml; both is an error)
// in the same directory, deep-merged over it: maps
// merge key by key, any other value from the secrets file replaces the
// config's (lists included). ${NAME} and ${NAME:default} are expanded in
// the string values of both files.
//
// A missing config file gives an error matching fs.ErrNotExist. Invalid
// settings give one error per problem (errors.Join), each naming the file
// and key, and an error at a key whose value used unset variables names
// them. Problems that do not stop the proxy (unknown keys, unset
// variables, …) are returned in Config.Warnings; when settings are invalid,
// they follow the errors in the error's text instead, one per line starting
// "config: warning: ", since a misspelt key or an unset variable often
// explains an error.
func (l Loader) Load(path string) (*Config, error) {
	env := l.LookupEnv
	if env == nil {
		env = os.LookupEnv
	}
	// Keys are never addressed by koanf path (server names contain dots),
	// so the delimiter only has to be something no key contains.
	k := koanf.New("\x00")

	cfgParser := &expandParser{lookup: env}
	if err := k.Load(file.Provider(path), cfgParser); err != nil {
		return nil, fileError(path, cfgParser, err)
	}
	b := &builder{cfgFile: path, cfgTree: cfgParser.tree}

	var secretsUnset []unsetVar
	secretsPath, err := secretsFileFor(path)
	if err != nil {
		return nil, err
	}
	if filepath.Clean(path) != secretsPath {
		p := &expandParser{lookup: env}
		err := k.Load(file.Provider(secretsPath), p)
		switch {
		case err == nil:
			b.secFile, b.secTree, secretsUnset = secretsPath, p.tree, p.unset
		case !p.parsed && errors.Is(err, fs.ErrNotExist):
		default:
			return nil, fileError(secretsPath, p, err)
		}
	}
	b.addUnset(b.cfgFile, cfgParser.unset)
	b.addUnset(b.secFile, secretsUnset)

	c := b.build(k.Raw())
	if err := errors.Join(b.errs...); err != nil {
		if len(c.Warnings) == 0 {
			return nil, err
		}
		const prefix = "config: warning: "
		return nil, fmt.Errorf("%w\n%s%s", err, prefix, strings.Join(c.Warnings, "\n"+prefix))
	}
	return c, nil
}

// secretsFileFor returns the path of the secrets file next to the config
// file at path: the one of the two names that exists, or the classic name
// when neither does.
func secretsFileFor(path string) (string, error) {
	dir := filepath.Dir(path)
	var found []string
	for _, name := range []string{SecretsFile, SecretsFileNew} {
		p := filepath.Join(dir, name)
		// Errors other than "not exist" are Load's to report.
		if _, err := os.Stat(p); p != filepath.Clean(path) && !errors.Is(err, fs.ErrNotExist) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return filepath.Join(dir, SecretsFile), nil
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("config: both %s and %s exist next to %s; fast-agent refuses that too: keep one", found[0], found[1], path)
	}
}

func fileError(path string, p *expandParser, err error) error {
	if p.parsed { // YAML errors do not name the file; go-yaml's carry a line.
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return fmt.Errorf("config: %w", err) // *fs.PathError names the file
}

// builder turns the merged tree into a Config, collecting errors and
// warnings that name the file each key came from.
type builder struct {
	cfgFile, secFile string
	cfgTree, secTree map[string]any // each file's own tree; secTree is nil without secrets
	errs             []error
	warns            []string
	unset            []unsetRef      // in the values the proxy reads, config file first
	explained        map[string]bool // keyPath.String() of the values whose unset variables an error named
}

// unsetRef is a ${NAME} without default, unset, in the value at path of
// file, the value the merge kept.
type unsetRef struct {
	file string
	path keyPath
	name string
}

// fileOf returns the file that defined the value at path: the secrets file
// when its value won the merge, else the config file; for a missing key,
// the file of the closest ancestor.
func (b *builder) fileOf(path keyPath) string {
	for p := path; len(p) > 0; p = p[:len(p)-1] {
		sv, inSecrets := lookup(b.secTree, p)
		cv, inConfig := lookup(b.cfgTree, p)
		if inSecrets && (!inConfig || !isMap(sv) || !isMap(cv)) {
			return b.secFile
		}
		if inConfig {
			return b.cfgFile
		}
	}
	return b.cfgFile
}

func isMap(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// errorf records an error at path. When the value at path used unset
// variables, the message names them, and they are not warned about again.
func (b *builder) errorf(path keyPath, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if unset := b.unsetIn(path); unset != "" {
		msg += "; " + unset
		if b.explained == nil {
			b.explained = make(map[string]bool)
		}
		b.explained[path.String()] = true
	}
	b.errs = append(b.errs, fmt.Errorf("config: %s: %s: %s", b.fileOf(path), path, msg))
}

func (b *builder) warnf(path keyPath, format string, args ...any) {
	b.warns = append(b.warns, fmt.Sprintf("%s: %s: %s", b.fileOf(path), path, fmt.Sprintf(format, args...)))
}

// addUnset records the unset variables of one file, limited to the keys
// the proxy reads (a fast-agent config has ${…} for model providers and
// stdio servers that are none of the proxy's business) and to the values
// the merge kept.
func (b *builder) addUnset(file string, unset []unsetVar) {
	for _, u := range unset {
		if !relevant(u.path) {
			continue
		}
		if file == b.cfgFile {
			if _, overridden := lookup(b.secTree, u.path); overridden {
				continue
			}
		}
		b.unset = append(b.unset, unsetRef{file, u.path, u.name})
	}
}

// unsetIn describes the unset variables of the value at path
// ("${A} is not set", "${A} and ${B} are not set"), or returns "".
func (b *builder) unsetIn(path keyPath) string {
	var names []string
	key := path.String()
	for _, u := range b.unset {
		if u.path.String() == key {
			names = append(names, "${"+u.name+"}")
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0] + " is not set"
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " are not set"
}

// warnings returns the unset variables no error named, then the other
// warnings.
func (b *builder) warnings() []string {
	var ws []string
	for _, u := range b.unset {
		if !b.explained[u.path.String()] {
			ws = append(ws, fmt.Sprintf("%s: %s: ${%s} is not set; using \"\"", u.file, u.path, u.name))
		}
	}
	return append(ws, b.warns...)
}

func relevant(p keyPath) bool {
	switch {
	case len(p) > 0 && p[0] == "proxy":
		return true
	case len(p) > 3 && p[0] == "mcp" && p[1] == "servers":
		switch p[3] {
		case "transport", "url", "command", "target", "headers", "auth":
			return true
		}
	}
	return false
}

func (b *builder) build(tree map[string]any) *Config {
	c := &Config{Path: b.cfgFile, SecretsPath: b.secFile}
	mcp, _ := b.mapping(tree["mcp"], keyPath{"mcp"})
	servers, _ := b.mapping(mcp["servers"], keyPath{"mcp", "servers"})
	for _, name := range sortedKeys(servers) {
		if s, ok := b.server(name, servers[name]); ok {
			c.Servers = append(c.Servers, s)
		}
	}
	c.Listen = b.proxy(tree["proxy"], c)
	c.Warnings = b.warnings()
	return c
}

// mapping returns v as a map; nil (an empty YAML value) is an empty map.
func (b *builder) mapping(v any, path keyPath) (map[string]any, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case map[string]any:
		return v, true
	}
	b.errorf(path, "must be a mapping, not %s", kind(v))
	return nil, false
}

// kind names the YAML type of v for messages, never its value.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "empty"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// str returns a string value; nil is "".
func (b *builder) str(v any, path keyPath) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	}
	b.errorf(path, "must be a string, not %s", kind(v))
	return "", false
}

// scalar is str that also takes numbers and booleans (as YAML wrote them),
// for values such as header values and client IDs that are strings to the
// receiver but may look like numbers in YAML.
func (b *builder) scalar(v any, path keyPath) (string, bool) {
	switch v := v.(type) {
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(v), true
	}
	return b.str(v, path)
}

// blank reports whether a YAML value is absent, null or whitespace.
func blank(v any) bool {
	s, isString := v.(string)
	return v == nil || isString && strings.TrimSpace(s) == ""
}
