package autocert

import (
	"fmt"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// LoadConfigLookup is LoadConfig with the environment variables of ${VAR}
// references looked up by lookup instead of os.LookupEnv: a program may
// take them from elsewhere, or tolerate some being unset (a tool that
// only shows what is stored needs no credential). As with LoadConfig, a
// variable for which lookup reports false, referenced without a default,
// is an error naming it. lookup's value is used as it is, without
// further expansion.
func LoadConfigLookup(path string, lookup func(name string) (value string, ok bool)) (*Config, error) {
	return LoadConfigFile(path, WithLookup(lookup))
}

// LoadConfigFile reads a configuration file as LoadConfig does, with the
// options given: where the variables of ${VAR} references come from
// (WithLookup), which of them may stay unset (WithOptionalVariables),
// and other top-level sections of the same file that the program reads
// with the same decoder and the same rules (WithSection). With no option
// it is LoadConfig.
func LoadConfigFile(path string, opts ...LoadOption) (*Config, error) {
	l := loadOptions{lookup: os.LookupEnv}
	for _, o := range opts {
		o(&l)
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	data, err := readFileLimited(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("reading autocert config: %w", err)
	}
	return l.parse(data, path)
}

// A LoadOption changes how LoadConfigFile reads a file.
type LoadOption func(*loadOptions)

type loadOptions struct {
	lookup   func(string) (string, bool)
	optional func(key string) bool
	sections []section
}

// section is a top-level section of the file that the program decodes.
type section struct {
	name string
	v    any
}

// WithLookup looks up the variables of ${VAR} references with lookup
// instead of os.LookupEnv (see LoadConfigLookup); nil stands for
// os.LookupEnv.
func WithLookup(lookup func(name string) (value string, ok bool)) LoadOption {
	return func(l *loadOptions) {
		if l.lookup = lookup; lookup == nil {
			l.lookup = os.LookupEnv
		}
	}
}

// WithOptionalVariables lets a reference without a default to an unset
// variable stay as it is written ("${NAME}") in the keys for which
// optional reports true, instead of being an error. optional is called
// only for such a reference, with the key as errors name it:
// "options.api_token", "extra[0].options.api_token", or
// "command.api.token" in a section. A program that uses only part of the
// configuration, such as one showing what is stored, can so run without
// the credentials of the rest; it must not use the values of those keys.
// A value holding such references and used again through a YAML alias is
// checked with the key of each use ("extra[0].options" for a mapping of
// options): where optional reports false, the variables are errors.
func WithOptionalVariables(optional func(key string) bool) LoadOption {
	return func(l *loadOptions) { l.optional = optional }
}

// WithSection decodes the top-level section name of the file into v, a
// pointer to a struct, with the decoder of the autocert block. The file
// must then hold the autocert keys under "autocert:"; an absent or empty
// section leaves v as it is.
//
// The keys are the yaml names of the struct's exported fields (yaml:"name";
// without a tag, the lowercased field name; "-" skips a field). Values are
// expanded as in the autocert block, and decoded by their Go types:
// strings, bools (also yes/no, on/off), numbers, time.Duration in Go's
// syntax ("90s", "5m"; positive), lists of strings, maps of strings to
// strings, and structs, pointers to structs and lists of structs of their
// own keys. A type implementing yaml.Unmarshaler (of go.yaml.in/yaml/v3)
// decodes itself from its node, variables already expanded; its error's
// message is reported at the key. A null value leaves a field as it is.
//
// After decoding a section without problems (or finding none),
// LoadConfigFile calls v's Validate method if it has one (Validate()
// error): each *FieldError in the result (alone or joined with
// errors.Join) names a key of the section ("api.token",
// "webhooks[0].url"; "" for the section itself), and gets the file, the
// section's name before its path, and when it has none the line of that
// key or of the nearest enclosing one. Any other error is reported as a
// problem of the section. As with every configuration error, messages
// must not quote a secret.
//
// Every problem of the autocert block and of the sections is reported at
// once, each a *FieldError with its file, line and key, in the order of
// the file.
func WithSection(name string, v any) LoadOption {
	return func(l *loadOptions) { l.sections = append(l.sections, section{name, v}) }
}

// check reports a misuse of the options.
func (l *loadOptions) check() error {
	seen := make(map[string]bool)
	for _, s := range l.sections {
		switch rv := reflect.ValueOf(s.v); {
		case s.name == "" || s.name == "autocert":
			return fmt.Errorf("autocert: WithSection(%q): the name of a section must be another top-level key", s.name)
		case seen[s.name]:
			return fmt.Errorf("autocert: WithSection(%q) given twice", s.name)
		case rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct:
			return fmt.Errorf("autocert: WithSection(%q): got %T, want a non-nil pointer to a struct", s.name, s.v)
		}
		seen[s.name] = true
	}
	return nil
}

// withoutSections returns the top-level mapping root, read as the
// autocert block, without the keys of sections, and adds those found to
// invalid: each is a problem, since a section needs the autocert keys
// under "autocert:".
func (d *configDecoder) withoutSections(root *yaml.Node, sections []section, invalid map[string]bool) *yaml.Node {
	names := make(map[string]bool, len(sections))
	for _, s := range sections {
		names[s.name] = true
	}
	block := *root
	block.Content = nil
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Kind == yaml.ScalarNode && names[k.Value] {
			d.add(k.Line, k.Value, nil, `the %s section needs the autocert keys under "autocert:" (without it, every top-level key is read as an autocert key)`, k.Value)
			invalid[k.Value] = true
			continue
		}
		block.Content = append(block.Content, k, root.Content[i+1])
	}
	return &block
}

// section decodes the section s, found at kv (zero when absent or not
// to be read), and validates it when valid and it decodes without
// problems.
func (d *configDecoder) section(s section, kv keyValue, seen map[*yaml.Node]bool, valid bool) {
	v := reflect.ValueOf(s.v).Elem()
	before := len(d.problems)
	if kv.key != nil {
		d.lines[s.name] = kv.key.Line
		d.expand(kv.value, s.name, seen)
		d.decodeStruct(kv.value, v, s.name)
	}
	val, ok := s.v.(interface{ Validate() error })
	if !valid || len(d.problems) > before || !ok {
		return
	}
	for _, e := range flattenJoined(val.Validate()) {
		p, ok := e.(*FieldError)
		if ok {
			c := *p
			p = &c
		} else {
			p = &FieldError{Msg: e.Error(), Err: e}
		}
		p.File = d.file
		if p.Path == "" {
			p.Path = s.name
		} else {
			p.Path = s.name + "." + p.Path
		}
		if p.Line == 0 {
			p.Line = d.lineOf(p.Path)
		}
		d.problems = append(d.problems, p)
	}
}

// flattenJoined returns the errors joined in err by errors.Join, at any
// depth, and err itself when it joins none; nil for nil. A *FieldError,
// whose Unwrap also returns several errors, is not taken apart.
func flattenJoined(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if _, field := err.(*FieldError); err == nil || !ok || field {
		if err == nil {
			return nil
		}
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flattenJoined(e)...)
	}
	return out
}
