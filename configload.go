package autocert

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/autocert-dev/autocert/internal/suggest"
	"go.yaml.in/yaml/v3"
)

// LoadConfig reads a configuration file, YAML or JSON, of at most 1 MiB,
// and validates it (see ParseConfig). Every error names the file, and the
// line when known:
// "autocert.yaml:12: extra[1].domains[0]: invalid domain ...".
func LoadConfig(path string) (*Config, error) {
	return LoadConfigFile(path)
}

// ParseConfig reads a configuration, YAML or JSON, and validates it with
// Config.Validate.
//
// The keys are those of Config (snake_case), either at the top level or
// under an "autocert" key, in which case the rest of the document is
// ignored (it may be the configuration of the application embedding
// autocert).
//
// In values, ${VAR} is replaced by the environment variable VAR, and
// ${VAR:-default} by default when VAR is unset or empty (${VAR-default}:
// only when unset); "$${" stands for a literal "${". A variable that is
// unset and has no default is an error naming it (wrapping
// ErrUnsetVariable). Substitution happens after parsing, so a value may
// hold any character without breaking the document.
//
// The forms of GoDoxy's configuration are accepted beside autocert's own:
// domains (and resolvers) as one string of items separated by commas or
// spaces ("a.example.com, *.a.example.com", also from ${DOMAINS}), an
// empty item being an error; nested mappings under options, whose keys
// become dotted ones ("oauth2_config: {client_id: x}" is
// "oauth2_config.client_id"); and the key type names that Validate
// normalises (P256, 2048...).
//
// Unknown keys, duplicate keys and values of the wrong type are errors,
// reported with their line and key; every error wraps ErrInvalidConfig,
// and all are reported at once.
func ParseConfig(data []byte) (*Config, error) {
	return parseConfig(data, "", os.LookupEnv)
}

func parseConfig(data []byte, file string, lookup func(string) (string, bool)) (*Config, error) {
	l := loadOptions{lookup: lookup}
	return l.parse(data, file)
}

func (l *loadOptions) parse(data []byte, file string) (*Config, error) {
	d := &configDecoder{file: file, lookup: l.lookup, optional: l.optional,
		lines: make(map[string]int), kept: make(map[*yaml.Node][]string)}
	root, block := d.findBlock(data)
	if block == nil {
		return nil, d.err()
	}
	keys := make(map[string]keyValue) // of the sections
	invalid := make(map[string]bool)  // sections not to validate
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Kind != yaml.ScalarNode || !slices.ContainsFunc(l.sections, func(s section) bool { return s.name == k.Value }) {
			continue
		}
		if first, dup := keys[k.Value]; dup {
			d.add(k.Line, k.Value, nil, "duplicate key (first at line %d)", first.key.Line)
			invalid[k.Value] = true
			continue
		}
		keys[k.Value] = keyValue{k, root.Content[i+1]}
	}
	if block == root && len(l.sections) > 0 {
		block = d.withoutSections(root, l.sections, invalid)
		clear(keys) // the rest of the top level is the autocert block
	}
	seen := make(map[*yaml.Node]bool)
	before := len(d.problems)
	d.expand(block, "", seen)
	cfg := new(Config)
	d.decodeStruct(block, reflect.ValueOf(cfg).Elem(), "")
	blockDecoded := len(d.problems) == before
	for _, s := range l.sections {
		d.section(s, keys[s.name], seen, !invalid[s.name])
	}
	if blockDecoded {
		for _, p := range cfg.validate() {
			p.File, p.Line = file, d.problemLine(p.Path)
			d.problems = append(d.problems, p)
		}
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// configDecoder turns the YAML node tree of a configuration into a Config,
// recording the line of every key for the messages of Validate.
type configDecoder struct {
	file     string
	lookup   func(string) (string, bool)
	optional func(key string) bool // of WithOptionalVariables, or nil
	lines    map[string]int        // key path -> line
	problems []*FieldError
	// kept are the scalars in which references to unset variables were
	// left as written (WithOptionalVariables), with those variables.
	kept map[*yaml.Node][]string
}

func (d *configDecoder) add(line int, path string, cause error, format string, args ...any) {
	d.problems = append(d.problems, &FieldError{
		File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...), Err: cause,
	})
}

func (d *configDecoder) err() error {
	sortByLine(d.problems)
	return joinFieldErrors(d.problems)
}

// sortByLine orders problems as a reader meets them in the file; those
// without a line (a missing key) come first.
func sortByLine(problems []*FieldError) {
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
}

// lineOf returns the line of path, or of its nearest enclosing key.
func (d *configDecoder) lineOf(path string) int {
	for path != "" {
		if line, ok := d.lines[path]; ok {
			return line
		}
		if strings.HasSuffix(path, "]") {
			path = path[:strings.LastIndexByte(path, '[')]
		} else if i := strings.LastIndexByte(path, '.'); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
	return 0
}

// problemLine returns the line of the key of a problem Validate found.
// A key missing beside the one it goes with (eab_hmac beside eab_kid) has
// the line of that one; another missing key, that of its block.
func (d *configDecoder) problemLine(path string) int {
	if _, ok := d.lines[path]; !ok {
		var other string
		switch {
		case strings.HasSuffix(path, "eab_hmac"):
			other = strings.TrimSuffix(path, "eab_hmac") + "eab_kid"
		case strings.HasSuffix(path, "eab_kid"):
			other = strings.TrimSuffix(path, "eab_kid") + "eab_hmac"
		}
		if line, ok := d.lines[other]; ok && other != "" {
			return line
		}
	}
	return d.lineOf(path)
}

// findBlock parses the document and returns its top-level mapping and
// the mapping that holds the configuration (the same when there is no
// autocert key), or a nil block after recording why there is none.
func (d *configDecoder) findBlock(data []byte) (root, block *yaml.Node) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		// JSON: a tab can only be white space outside strings (JSON strings
		// escape it), but YAML refuses tabs in some places.
		data = bytes.ReplaceAll(data, []byte("\t"), []byte(" "))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(0, "", nil, "the configuration is empty")
		} else {
			d.syntaxError(data, err)
		}
		return nil, nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.add(next.Line, "", nil, "a second YAML document (after ---) is not supported: keep the configuration in one document")
		return nil, nil
	case !errors.Is(err, io.EOF):
		d.syntaxError(data, err)
		return nil, nil
	}
	root = resolveAlias(doc.Content[0])
	if isNull(root) {
		d.add(root.Line, "", nil, "the configuration is empty")
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		d.add(root.Line, "", nil, "expected a mapping of autocert keys (at the top level or under autocert:), got %s", describe(root))
		return nil, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "autocert" {
			block = resolveAlias(root.Content[i+1])
			if isNull(block) {
				d.add(k.Line, "autocert", nil, "the block is empty")
				return nil, nil
			}
			if block.Kind != yaml.MappingNode {
				d.add(block.Line, "autocert", nil, "expected a mapping of autocert keys, got %s", describe(block))
				return nil, nil
			}
			return root, block
		}
	}
	return root, root
}

// yamlLine matches the position yaml puts at the start of a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntaxError records a parse error with its line and a hint for the
// usual mistakes.
func (d *configDecoder) syntaxError(data []byte, err error) {
	msg, line := err.Error(), 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = m[2]
		line, _ = strconv.Atoi(m[1])
		if m[1] == "" {
			// The parser leaves out the line when it is the first one.
			line = retryLine(data)
		}
	}
	hint := ""
	switch {
	case line > 0 && tabIndented(data, line):
		hint = "indent with spaces, not tabs"
	case strings.Contains(msg, "did not find expected alphabetic or numeric character"),
		strings.HasPrefix(msg, "unknown anchor"):
		hint = `a value starting with "*" is an alias in YAML: quote wildcard domains, as in "*.example.com"`
		if line == 0 {
			line = lineWithPrefix(data, "*")
		}
	case strings.Contains(msg, "mapping values are not allowed"):
		hint = `check the indentation, and quote values that contain ": "`
	case strings.Contains(msg, "did not find expected key"):
		hint = "check the indentation of the keys of this block"
	case strings.Contains(msg, "found character that cannot start any token"):
		hint = "quote values that start with @, ` or %, and indent with spaces"
	case strings.Contains(msg, "tab character"):
		hint = "indent with spaces, not tabs"
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	d.add(line, "", nil, "syntax error: %s", msg)
}

// tabIndented reports whether the indentation of a line holds a tab.
func tabIndented(data []byte, line int) bool {
	lines := bytes.Split(data, []byte("\n"))
	if line > len(lines) {
		return false
	}
	l := lines[line-1]
	indent := l[:len(l)-len(bytes.TrimLeft(l, " \t-"))]
	return bytes.IndexByte(indent, '\t') >= 0
}

// retryLine finds the line of a syntax error that yaml reported without
// one: parsed again one line lower, the error has a line number.
func retryLine(data []byte) int {
	var n yaml.Node
	err := yaml.Unmarshal(append([]byte("\n"), data...), &n)
	if err == nil {
		return 0
	}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil && m[1] != "" {
		if line, _ := strconv.Atoi(m[1]); line > 1 {
			return line - 1
		}
	}
	return 0
}

// lineWithPrefix returns the first line whose value (after "- " or
// "key: ") starts with prefix, or 0.
func lineWithPrefix(data []byte, prefix string) int {
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if _, v, ok := strings.Cut(l, ": "); ok {
			l = strings.TrimSpace(v)
		}
		l = strings.TrimSpace(strings.TrimLeft(l, "-[ "))
		if strings.HasPrefix(l, prefix) {
			return i + 1
		}
	}
	return 0
}

// expand replaces environment variable references in every scalar value
// (not in keys) under n, and returns the variables whose references were
// left as written under n (WithOptionalVariables). seen keeps a node
// shared through aliases from being expanded twice; used again under a
// key for which optional reports false, a node holding such references
// has them reported there.
func (d *configDecoder) expand(n *yaml.Node, path string, seen map[*yaml.Node]bool) []string {
	if n == nil {
		return nil
	}
	if seen[n] {
		names := d.kept[n]
		if len(names) > 0 && !d.optional(path) {
			d.unset(n, path, names)
		}
		return names
	}
	seen[n] = true
	var kept []string
	switch n.Kind {
	case yaml.AliasNode:
		if t := n.Alias; t != nil && seen[t] {
			// Checked here, for the line of the alias.
			if kept = d.kept[t]; len(kept) > 0 && !d.optional(path) {
				d.unset(n, path, kept)
			}
			break
		}
		kept = d.expand(n.Alias, path, seen)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			kept = append(kept, d.expand(n.Content[i+1], joinPath(path, n.Content[i].Value), seen)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			kept = append(kept, d.expand(c, fmt.Sprintf("%s[%d]", path, i), seen)...)
		}
	case yaml.ScalarNode:
		val, unset, err := expandVars(n.Value, d.lookup)
		if err != nil {
			d.add(n.Line, path, nil, "%v", err)
			return nil
		}
		if len(unset) > 0 {
			if d.optional == nil || !d.optional(path) {
				d.unset(n, path, unset)
				return nil
			}
			kept = unset
		}
		if val != n.Value {
			n.Value = val
			if n.Style == 0 {
				n.Tag = "" // plain: let the new value decide its type
			}
		}
	}
	if len(kept) > 0 {
		slices.Sort(kept)
		kept = slices.Compact(kept)
		d.kept[n] = kept
	}
	return kept
}

// unset reports the variables of names, referred to by n at path, as
// unset.
func (d *configDecoder) unset(n *yaml.Node, path string, names []string) {
	for _, name := range names {
		d.add(n.Line, path, ErrUnsetVariable,
			"environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
	}
}

// expandVars replaces ${NAME}, ${NAME:-default} and ${NAME-default} in s,
// and "$${" by "${". It returns the names of the variables that are unset
// without a default, whose references it leaves as written ("${NAME}").
// Errors quote no default (it may be a secret).
func expandVars(s string, lookup func(string) (string, bool)) (string, []string, error) {
	if !strings.Contains(s, "${") {
		return s, nil, nil
	}
	var b strings.Builder
	var unset []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
			continue
		case !strings.HasPrefix(s[i:], "${"):
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", nil, errors.New(`unterminated "${" (write "$${" for a literal "${")`)
		}
		expr := s[i+2 : i+2+end]
		i += 2 + end + 1
		n := 0
		for n < len(expr) && (expr[n] == '_' || expr[n] >= 'A' && expr[n] <= 'Z' || expr[n] >= 'a' && expr[n] <= 'z' || n > 0 && expr[n] >= '0' && expr[n] <= '9') {
			n++
		}
		name, rest := expr[:n], expr[n:]
		if name == "" {
			return "", nil, errors.New(`"${" must be followed by a variable name (letters, digits, _) and "}" (write "$${" for a literal "${")`)
		}
		val, ok := lookup(name)
		switch {
		case rest == "":
			if !ok {
				unset = append(unset, name)
				val = "${" + name + "}"
			}
		case strings.HasPrefix(rest, ":-"):
			if !ok || val == "" {
				val = rest[2:]
			}
		case strings.HasPrefix(rest, "-"):
			if !ok {
				val = rest[1:]
			}
		default:
			return "", nil, fmt.Errorf("unsupported reference to %s: write ${%s} or ${%s:-default}", name, name, name)
		}
		b.WriteString(val)
	}
	return b.String(), unset, nil
}

// decodeStruct decodes a mapping into the struct v, whose fields are
// named by their yaml tags.
func (d *configDecoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	n = resolveAlias(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.add(n.Line, path, nil, "expected a mapping of keys, got %s", describe(n))
		return
	}
	fields, names := yamlFields(v.Type())
	for _, p := range d.pairs(n, path) {
		name := p.key.Value
		fp := joinPath(path, name)
		i, ok := fields[name]
		if !ok {
			d.unknownKey(p.key, fp, names)
			continue
		}
		d.lines[fp] = p.key.Line
		if listKey(v.Type(), name) {
			d.decodeStrings(p.value, v.Field(i), fp, true)
			continue
		}
		d.decodeValue(p.value, v.Field(i), fp)
	}
}

var (
	configType      = reflect.TypeFor[Config]()
	configExtraType = reflect.TypeFor[ConfigExtra]()
	optionsType     = reflect.TypeFor[Options]()
)

// listKey reports whether the key name of a struct of type t is a list
// that may also be written as one string of comma-separated items, as
// GoDoxy's configuration accepts: the domains and resolvers of a block.
// Their items never hold a comma or a space; those of ca_certs, file
// names, may, so it stays a list.
func listKey(t reflect.Type, name string) bool {
	return (t == configType || t == configExtraType) && (name == "domains" || name == "resolvers")
}

// decodeStrings decodes a list of strings into v. With oneString, the
// list may also be one string (as ${DOMAINS} gives): items separated by
// commas or spaces ("a.example.com, b.example.com"), or a YAML list
// ("[a.example.com, b.example.com]").
func (d *configDecoder) decodeStrings(n *yaml.Node, v reflect.Value, path string, oneString bool) {
	n = resolveAlias(n)
	if isNull(n) {
		return // unset
	}
	items := n.Content
	switch {
	case n.Kind == yaml.ScalarNode && oneString:
		var ok bool
		if items, ok = d.splitList(n, path); !ok {
			return
		}
	case n.Kind != yaml.SequenceNode:
		hint := `write one "- value" line per entry, or [a, b]`
		if oneString {
			hint = `write one "- value" line per entry, [a, b], or "a, b"`
		}
		d.add(n.Line, path, nil, "expected a list of strings, got %s (%s)", describe(n), hint)
		return
	}
	t := v.Type()
	s := reflect.MakeSlice(t, 0, len(items))
	for i, item := range items {
		ip := fmt.Sprintf("%s[%d]", path, i)
		item = resolveAlias(item)
		d.lines[ip] = item.Line
		if item.Kind != yaml.ScalarNode || isNull(item) {
			d.add(item.Line, ip, nil, "expected a string, got %s", describe(item))
			continue
		}
		s = reflect.Append(s, reflect.ValueOf(item.Value).Convert(t.Elem()))
	}
	v.Set(s)
}

// splitList returns the items of a list written as the one string of n,
// as scalars on n's line. An empty item (",," or a comma at either end)
// is an error naming its index.
func (d *configDecoder) splitList(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	item := func(val string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val, Line: n.Line, Column: n.Column}
	}
	text := strings.TrimSpace(n.Value)
	if strings.HasPrefix(text, "[") || strings.HasPrefix(text, "- ") {
		var doc yaml.Node
		err := yaml.Unmarshal([]byte(text), &doc)
		var list *yaml.Node
		if err == nil && len(doc.Content) == 1 {
			list = doc.Content[0]
		}
		if list == nil || list.Kind != yaml.SequenceNode {
			d.add(n.Line, path, nil, `the value starts like a YAML list ("[" or "- ") but is not one: write [a, b], or a, b`)
			return nil, false
		}
		items := make([]*yaml.Node, len(list.Content))
		for i, c := range list.Content {
			if c.Kind == yaml.ScalarNode && !isNull(c) {
				items[i] = item(c.Value)
				continue
			}
			c.Line, c.Column = n.Line, n.Column
			items[i] = c
		}
		return items, true
	}
	var items []*yaml.Node
	ok := true
	for _, part := range strings.Split(text, ",") {
		fields := strings.Fields(part)
		if len(fields) == 0 {
			d.add(n.Line, fmt.Sprintf("%s[%d]", path, len(items)), nil, "empty item in the comma-separated list")
			items = append(items, nil) // keeps the index of the next item
			ok = false
			continue
		}
		for _, f := range fields {
			items = append(items, item(f))
		}
	}
	return items, ok
}

// decodeOptions adds the options of the mapping n, under path, to m. A
// nested mapping, as GoDoxy's configuration writes ovh's
// "oauth2_config: {client_id: ..., client_secret: ...}", gives its keys
// under its own key and a dot ("oauth2_config.client_id"), the names the
// DNS providers take; prefix is that of n's keys ("" or "oauth2_config.").
// first holds the line of every key given so far, so that one written both
// ways is a duplicate.
func (d *configDecoder) decodeOptions(n *yaml.Node, m Options, path, prefix string, first map[string]int) {
	at := path // the path of n
	if prefix != "" {
		at = joinPath(path, strings.TrimSuffix(prefix, "."))
	}
	for _, p := range d.pairs(n, at) {
		key := prefix + p.key.Value
		kp := joinPath(path, key)
		val := resolveAlias(p.value)
		if val.Kind == yaml.MappingNode {
			d.lines[kp] = p.key.Line
			d.decodeOptions(val, m, path, key+".", first)
			continue
		}
		if line, dup := first[key]; dup {
			d.add(p.key.Line, kp, nil, "duplicate option (first at line %d; a nested mapping and a dotted key name the same option)", line)
			continue
		}
		first[key] = p.key.Line
		d.lines[kp] = p.key.Line
		if val.Kind != yaml.ScalarNode {
			d.add(val.Line, kp, nil, "expected a string or a mapping of options, got %s", describe(val))
			continue
		}
		s := val.Value
		if isNull(val) {
			s = ""
		}
		m[key] = Redacted(s)
	}
}

// fewKeys is the number of keys up to which an unknown key is answered
// with all of them rather than with the nearest.
const fewKeys = 5

// unknownKey reports the key k, at path, that is none of names: when
// there are few, all are listed; else the nearest is suggested, or all
// listed when none is near.
func (d *configDecoder) unknownKey(k *yaml.Node, path string, names []string) {
	switch s := suggest.Nearest(k.Value, names); {
	case len(names) <= fewKeys:
		d.add(k.Line, path, nil, "unknown key (known: %s)", strings.Join(names, ", "))
	case s != "":
		d.add(k.Line, path, nil, "unknown key (did you mean %s?)", s)
	default:
		d.add(k.Line, path, nil, "unknown key (known keys: %s)", strings.Join(names, ", "))
	}
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// unmarshaler returns v as a yaml.Unmarshaler, allocating a nil pointer,
// or nil when its type is not one.
func unmarshaler(v reflect.Value) yaml.Unmarshaler {
	switch t := v.Type(); {
	case t.Kind() == reflect.Pointer && t.Implements(unmarshalerType):
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return v.Interface().(yaml.Unmarshaler)
	case v.CanAddr() && reflect.PointerTo(t).Implements(unmarshalerType):
		return v.Addr().Interface().(yaml.Unmarshaler)
	}
	return nil
}

// decodeValue decodes n into v. Its messages never quote a value.
func (d *configDecoder) decodeValue(n *yaml.Node, v reflect.Value, path string) {
	n = resolveAlias(n)
	if isNull(n) {
		return // unset
	}
	if u := unmarshaler(v); u != nil {
		if err := u.UnmarshalYAML(n); err != nil {
			d.add(n.Line, path, err, "%v", err)
		}
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		dur, err := time.Duration(0), error(nil)
		if n.Kind == yaml.ScalarNode {
			dur, err = time.ParseDuration(n.Value)
		}
		if n.Kind != yaml.ScalarNode || err != nil || dur <= 0 {
			d.add(n.Line, path, nil, "expected a positive duration, such as 90s or 5m")
			return
		}
		v.SetInt(int64(dur))

	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.add(n.Line, path, nil, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)

	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		d.decodeStrings(n, v, path, false)

	case t == optionsType:
		if n.Kind != yaml.MappingNode {
			d.add(n.Line, path, nil, "expected a mapping of names to values, got %s", describe(n))
			return
		}
		m := make(Options, len(n.Content)/2)
		d.decodeOptions(n, m, path, "", make(map[string]int))
		v.Set(reflect.ValueOf(m))

	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.SequenceNode {
			d.add(n.Line, path, nil, `expected a list, got %s (start each entry with "- ")`, describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			d.lines[ip] = resolveAlias(item).Line
			if isNull(resolveAlias(item)) {
				d.add(item.Line, ip, nil, "expected a mapping of keys, got %s", describe(item))
				continue
			}
			d.decodeStruct(item, s.Index(i), ip)
		}
		v.Set(s)

	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.add(n.Line, path, nil, "expected a mapping of keys, got %s", describe(n))
			return
		}
		d.decodeStruct(n, v, path)

	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.add(n.Line, path, nil, "expected a mapping of keys, got %s", describe(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decodeStruct(n, v.Elem(), path)

	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		if n.Kind != yaml.MappingNode {
			d.add(n.Line, path, nil, "expected a mapping of names to values, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for _, p := range d.pairs(n, path) {
			kp := joinPath(path, p.key.Value)
			d.lines[kp] = p.key.Line
			val := resolveAlias(p.value)
			if val.Kind != yaml.ScalarNode {
				d.add(val.Line, kp, nil, "expected a string, got %s", describe(val))
				continue
			}
			s := val.Value
			if isNull(val) {
				s = ""
			}
			m.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), reflect.ValueOf(s).Convert(t.Elem()))
		}
		v.Set(m)

	default:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.add(n.Line, path, nil, "expected %s, got %s", kindName(t), describe(n))
		}
	}
}

// kindName describes a Go type in a user's terms.
func kindName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem() // an optional value: *bool is still true or false
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a value of type " + t.String()
}

// keyValue is one entry of a mapping.
type keyValue struct{ key, value *yaml.Node }

// pairs returns the entries of a mapping, with YAML merge keys ("<<")
// applied; a duplicate key is an error.
func (d *configDecoder) pairs(n *yaml.Node, path string) []keyValue {
	var out []keyValue
	var merges []*yaml.Node
	first := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.add(k.Line, path, nil, "a key must be a plain name, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if line, dup := first[k.Value]; dup {
			d.add(k.Line, joinPath(path, k.Value), nil, "duplicate key (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		out = append(out, keyValue{k, v})
	}
	for _, m := range merges {
		m = resolveAlias(m)
		sources := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, src := range sources {
			src = resolveAlias(src)
			if src.Kind != yaml.MappingNode {
				d.add(src.Line, path, nil, "a merge key (<<) needs a mapping, got %s", describe(src))
				continue
			}
			for _, p := range d.pairs(src, path) {
				if _, set := first[p.key.Value]; !set {
					first[p.key.Value] = p.key.Line
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// yamlFields maps the yaml names of a struct's fields to their index, and
// lists the names in field order.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	fields := make(map[string]int, t.NumField())
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = i
		names = append(names, name)
	}
	return fields, names
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of a node for messages, without its value.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	return "a single value"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
