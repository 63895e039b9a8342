package autocert

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestLoadConfigLookup: the variables come from the lookup function, not
// the environment; its values are not expanded again; a variable it does
// not know is an error naming it, unless a default is given.
func TestLoadConfigLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "autocert.yml")
	doc := "provider: cfgtest-dns\nemail: ${LOOKUP_EMAIL}\ndomains: [a.example.com]\n" +
		"options:\n  api_token: ${LOOKUP_TOKEN}\n  zone: ${LOOKUP_ZONE:-zone-default}\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOOKUP_EMAIL", "env@example.com") // not read
	vars := map[string]string{"LOOKUP_EMAIL": "ops@example.com", "LOOKUP_TOKEN": "${NOT_EXPANDED}"}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	cfg, err := LoadConfigLookup(path, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Email != "ops@example.com" || cfg.Options["api_token"].Value() != "${NOT_EXPANDED}" || cfg.Options["zone"].Value() != "zone-default" {
		t.Errorf("got email %q, options %q %q", cfg.Email, cfg.Options["api_token"].Value(), cfg.Options["zone"].Value())
	}
	delete(vars, "LOOKUP_TOKEN")
	_, err = LoadConfigLookup(path, lookup)
	if !errors.Is(err, ErrUnsetVariable) || !strings.Contains(err.Error(), "autocert.yml:5: options.api_token: environment variable LOOKUP_TOKEN is not set") {
		t.Errorf("unknown variable: %v", err)
	}
}

// testSection is a section of every kind of key WithSection decodes.
type testSection struct {
	Name     string            `yaml:"name"`
	Enabled  bool              `yaml:"enabled"`
	Count    int               `yaml:"count"`
	Timeout  time.Duration     `yaml:"timeout"`
	Tags     []string          `yaml:"tags"`
	Labels   map[string]string `yaml:"labels"`
	Server   *testServer       `yaml:"server"`
	Targets  []testTarget      `yaml:"targets"`
	Command  testCommand       `yaml:"command"`
	Untagged string
	Skipped  string `yaml:"-"`
	hidden   string

	validated int   // calls of Validate
	problems  error // what Validate returns
}

type testServer struct {
	Listen string `yaml:"listen"`
	TLS    bool   `yaml:"tls"`
}

type testTarget struct {
	URL string `yaml:"url"`
}

// testCommand is a string (run by a shell) or a list (the program and its
// arguments), decoded by its UnmarshalYAML.
type testCommand struct {
	argv  []string
	shell bool
	line  int
}

var errTestCommand = errors.New("expected a command")

func (c *testCommand) UnmarshalYAML(n *yaml.Node) error {
	c.line = n.Line
	switch n.Kind {
	case yaml.ScalarNode:
		c.argv, c.shell = []string{n.Value}, true
		return nil
	case yaml.SequenceNode:
		return n.Decode(&c.argv)
	}
	return fmt.Errorf("%w (a string or a list)", errTestCommand)
}

func (s *testSection) Validate() error {
	s.validated++
	return s.problems
}

// sectionFile writes the autocert block and a section to a file.
func sectionFile(t *testing.T, section string) string {
	t.Helper()
	return cfgWriteFile(t, t.TempDir(), "app.yml", "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n"+section)
}

// TestLoadConfigFileSection: a section is decoded by its Go types, with
// variables expanded as in the autocert block; keys absent or null keep
// their value; Validate is called once.
func TestLoadConfigFileSection(t *testing.T) {
	t.Setenv("SECTION_TEST_NAME", "from-env")
	t.Setenv("SECTION_TEST_TIMEOUT", "90s")
	path := sectionFile(t, `  name: ${SECTION_TEST_NAME}
  enabled: yes
  count: 3
  timeout: ${SECTION_TEST_TIMEOUT}
  tags: [a, '$${b}']
  labels: {k: v, empty: ~}
  server: {listen: "127.0.0.1:1", tls: true}
  targets:
    - url: https://a.example.com
    - url: https://b.example.com
  command: systemctl reload nginx
  untagged: u
`)
	sec := &testSection{Name: "default", Skipped: "kept", hidden: "kept"}
	cfg, err := LoadConfigFile(path, WithSection("app", sec))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Provider != ProviderPseudo || !slices.Equal(cfg.Domains, []string{"a.example.com"}) {
		t.Errorf("autocert block: %+v", cfg)
	}
	want := testSection{Name: "from-env", Enabled: true, Count: 3, Timeout: 90 * time.Second, Tags: []string{"a", "${b}"},
		Labels: map[string]string{"k": "v", "empty": ""}, Server: &testServer{"127.0.0.1:1", true},
		Targets: []testTarget{{"https://a.example.com"}, {"https://b.example.com"}},
		Command: testCommand{[]string{"systemctl reload nginx"}, true, 15}, Untagged: "u", Skipped: "kept", hidden: "kept", validated: 1}
	if !reflect.DeepEqual(*sec, want) {
		t.Errorf("section\n%+v\nwant\n%+v", *sec, want)
	}

	// Null and absent keys keep their value; so does an empty section.
	for _, doc := range []string{"  name: ~\n  server:\n  targets: null\n", "  ~\n", ""} {
		sec := &testSection{Name: "default", Server: &testServer{Listen: "x"}}
		path := sectionFile(t, doc)
		if doc == "" {
			path = cfgWriteFile(t, t.TempDir(), "app.yml", "autocert:\n  provider: pseudo\n  domains: [a.example.com]\n")
		}
		if _, err := LoadConfigFile(path, WithSection("app", sec)); err != nil {
			t.Fatal(err)
		}
		if sec.Name != "default" || sec.Server.Listen != "x" || sec.validated != 1 {
			t.Errorf("section %q: %+v", doc, sec)
		}
	}
}

// TestLoadConfigFileSectionErrors: the problems of a section are those of
// the autocert block, each a FieldError naming the file, line and key;
// they are reported at once with the block's, in the order of the file.
func TestLoadConfigFileSectionErrors(t *testing.T) {
	t.Setenv("SECTION_TEST_SECRET", "s3cr3t-value-never-shown")
	errCause := errors.New("the cause")
	tests := []struct {
		name     string
		doc      string // the whole file, when it starts with "autocert:" or "provider:"
		problems error  // returned by Validate
		want     []string
		is       error
		validate bool // Validate is called
	}{
		{name: "unknown key among few", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  server: {listen: x, tsl: true}\n",
			want: []string{"app.yml:5: app.server.tsl: unknown key (known: listen, tls)"}},
		{name: "unknown key among many", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  tgs: [a]\n",
			want: []string{"app.yml:5: app.tgs: unknown key (did you mean tags?)"}},
		{name: "skipped and unexported fields are no keys", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  skipped: a\n  hidden: b\n",
			want: []string{"app.yml:5: app.skipped: unknown key", "app.yml:6: app.hidden: unknown key"}},
		{name: "duplicate key", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  name: a\n  name: b\n",
			want: []string{"app.yml:6: app.name: duplicate key (first at line 5)"}},
		{name: "duplicate section", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  name: a\napp:\n  name: b\n",
			want: []string{"app.yml:6: app: duplicate key (first at line 4)"}},
		{name: "wrong types", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  name: [a]\n  enabled: maybe\n  count: many\n  tags: a\n  server: a\n  targets:\n    - ~\n",
			want: []string{"app.yml:5: app.name: expected a string, got a list", "app.yml:6: app.enabled: expected true or false",
				"app.yml:7: app.count: expected a whole number", "app.yml:8: app.tags: expected a list of strings",
				"app.yml:9: app.server: expected a mapping of keys", "app.yml:11: app.targets[0]: expected a mapping of keys, got nothing"}},
		{name: "durations", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  timeout: 5\n",
			want: []string{"app.yml:5: app.timeout: expected a positive duration, such as 90s or 5m"}},
		{name: "negative duration", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  timeout: -1m\n",
			want: []string{"app.yml:5: app.timeout: expected a positive duration"}},
		{name: "no secret in a type error", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  count: ${SECTION_TEST_SECRET}\n  timeout: ${SECTION_TEST_SECRET}\n",
			want: []string{"app.yml:5: app.count: expected a whole number, got a single value", "app.yml:6: app.timeout: expected a positive duration"}},
		{name: "an Unmarshaler's error", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  command: {a: b}\n",
			want: []string{"app.yml:5: app.command: expected a command (a string or a list)"}, is: errTestCommand},
		{name: "unset variable", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  targets:\n    - url: ${SECTION_TEST_UNSET}\n",
			want: []string{"app.yml:6: app.targets[0].url: environment variable SECTION_TEST_UNSET is not set"}, is: ErrUnsetVariable},
		{name: "not a mapping", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp: [a]\n",
			want: []string{"app.yml:4: app: expected a mapping of keys, got a list"}},
		{name: "without the autocert block", doc: "provider: pseudo\ndomains: [a.example.com]\napp:\n  name: a\n",
			want: []string{`app.yml:3: app: the app section needs the autocert keys under "autocert:"`}},
		{name: "block and section problems in the order of the file", doc: "app:\n  count: x\nautocert:\n  provider: pseudo\n  domains: [a.example.com]\n  emial: x\n",
			want: []string{"app.yml:2: app.count: expected a whole number", "app.yml:6: emial: unknown key (did you mean email?)"}},
		{name: "validation of both at once", doc: "autocert:\n  provider: pseudo\n  domains: [exa mple.com]\napp:\n  server: {listen: x}\n  targets:\n    - url: ftp://a\n",
			problems: errors.Join(&FieldError{Path: "targets[0].url", Msg: "expected an https URL"}, &FieldError{Path: "server.tls", Msg: "required"},
				&FieldError{Line: 2, Path: "count", Msg: "at a line of its own"}, &FieldError{Msg: "about the section"}, fmt.Errorf("plain: %w", errCause)),
			want: []string{"app.yml:2: app.count: at a line of its own", `app.yml:3: domains[0]: invalid domain "exa mple.com"`,
				"app.yml:4: app: about the section", "app.yml:4: app: plain: the cause", "app.yml:5: app.server.tls: required", "app.yml:7: app.targets[0].url: expected an https URL"},
			is: errCause, validate: true},
		{name: "no validation after a problem of decoding", doc: "autocert:\n  provider: pseudo\n  domains: [a.example.com]\napp:\n  count: x\n",
			problems: &FieldError{Msg: "not reported"}, want: []string{"app.yml:5: app.count: expected a whole number"}},
		{name: "validation when the block has problems", doc: "autocert:\n  provider: pseudo\n  domans: [a.example.com]\napp:\n  count: 1\n",
			problems: &FieldError{Path: "count", Msg: "too few"}, want: []string{"app.yml:3: domans: unknown key", "app.yml:5: app.count: too few"}, validate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := cfgWriteFile(t, t.TempDir(), "app.yml", tt.doc)
			sec := &testSection{problems: tt.problems}
			cfg, err := LoadConfigFile(path, WithSection("app", sec))
			if cfg != nil {
				t.Error("config returned with an error")
			}
			got := cfgProblemTexts(err)
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], strings.Replace(w, "app.yml", path, 1)) {
					t.Errorf("problem %d:\n%s\nwant:\n%s", i, got[i], w)
				}
			}
			if !errors.Is(err, ErrInvalidConfig) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap ErrInvalidConfig and %v", tt.is)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("a secret in an error: %v", err)
			}
			if (sec.validated > 0) != tt.validate {
				t.Errorf("Validate called %d times", sec.validated)
			}
		})
	}
}

// TestLoadConfigFileOptions: WithLookup serves the block and the sections;
// WithOptionalVariables leaves unset references as written in the keys it
// accepts (told each key, also through an alias) and only there; misuses
// of the options are errors; a file over 1 MiB is refused.
func TestLoadConfigFileOptions(t *testing.T) {
	vars := map[string]string{"LOOKUP_DOMAIN": "b.example.com", "LOOKUP_NAME": "from-lookup"}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	path := cfgWriteFile(t, t.TempDir(), "app.yml", "autocert:\n  provider: pseudo\n  domains: [a.example.com, '${LOOKUP_DOMAIN}']\napp:\n  name: ${LOOKUP_NAME}\n")
	sec := &testSection{}
	cfg, err := LoadConfigFile(path, WithSection("app", sec), WithLookup(lookup))
	if err != nil || cfg.Domains[1] != "b.example.com" || sec.Name != "from-lookup" {
		t.Errorf("WithLookup: %v, %+v, %v", cfg, sec, err)
	}

	path = cfgWriteFile(t, t.TempDir(), "app.yml", `autocert:
  provider: cfgtest-dns
  email: a@example.com
  domains: [a.example.com]
  options: {api_token: "${OPT_TOKEN}", zone: "x-${OPT_ZONE}-${LOOKUP_NAME}", other: &o "${OPT_SHARED}"}
app:
  name: "${OPT_NAME}"
  targets:
    - url: ${OPT_URL}
  tags: [*o]
`)
	var asked []string
	optional := func(key string) bool {
		asked = append(asked, key)
		return strings.HasPrefix(key, "options.") || key == "app.targets[0].url"
	}
	sec = &testSection{}
	_, err = LoadConfigFile(path, WithSection("app", sec), WithLookup(lookup), WithOptionalVariables(optional))
	cfgCheckProblems(t, err, path+":7: app.name: environment variable OPT_NAME is not set",
		path+":10: app.tags[0]: environment variable OPT_SHARED is not set")
	wantAsked := []string{"options.api_token", "options.zone", "options.other", "app.name", "app.targets[0].url", "app.tags[0]"}
	if !slices.Equal(asked, wantAsked) {
		t.Errorf("optional asked for %q, want %q", asked, wantAsked)
	}
	path = cfgWriteFile(t, t.TempDir(), "app.yml", strings.Replace(strings.Replace(string(mustReadFile(t, path)), "  name: \"${OPT_NAME}\"\n", "", 1), "  tags: [*o]\n", "", 1))
	sec = &testSection{}
	cfg, err = LoadConfigFile(path, WithSection("app", sec), WithLookup(lookup), WithOptionalVariables(optional))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Options["api_token"].Value() != "${OPT_TOKEN}" || cfg.Options["zone"].Value() != "x-${OPT_ZONE}-from-lookup" || sec.Targets[0].URL != "${OPT_URL}" {
		t.Errorf("references not left as written: %q %q %q", cfg.Options["api_token"].Value(), cfg.Options["zone"].Value(), sec.Targets[0].URL)
	}

	for _, opts := range [][]LoadOption{
		{WithSection("autocert", &testSection{})},
		{WithSection("", &testSection{})},
		{WithSection("app", &testSection{}), WithSection("app", &testSection{})},
		{WithSection("app", testSection{})},
		{WithSection("app", (*testSection)(nil))},
		{WithSection("app", new(string))},
	} {
		if _, err := LoadConfigFile(path, opts...); err == nil || errors.Is(err, ErrInvalidConfig) {
			t.Errorf("a misuse of the options: %v", err)
		}
	}

	big := cfgWriteFile(t, t.TempDir(), "app.yml", "autocert:\n  provider: pseudo\n  domains: [a.example.com]\n# "+strings.Repeat("x", maxFileSize)+"\n")
	if _, err := LoadConfigFile(big, WithSection("app", &testSection{})); err == nil || !strings.Contains(err.Error(), "larger than the limit of 1024 KiB") {
		t.Errorf("a file over 1 MiB: %v", err)
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
