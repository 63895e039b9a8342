package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
)

// loadDoc writes doc to a config file and loads it as the command does.
func loadDoc(t *testing.T, doc string, withoutSecrets bool) (*autocert.Config, *commandConfig, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "autocert.yml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadConfig(path, withoutSecrets)
}

// unsetNames returns the variables that err reports as unset.
func unsetNames(err error) []string {
	re := regexp.MustCompile(`environment variable (\w+) is not set`)
	names := map[string]bool{}
	for _, e := range flatten(err) {
		if m := re.FindStringSubmatch(e.Error()); m != nil && errors.Is(e, autocert.ErrUnsetVariable) {
			names[m[1]] = true
		}
	}
	return slices.Sorted(maps.Keys(names))
}

// TestOptionalVariables: for status, only variables that nothing but
// secrets status does not read refer to, without a default, may stay
// unset; the others are errors naming them, as every unset variable is
// for the commands that order.
func TestOptionalVariables(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"options and command secrets", "autocert:\n  options: {token: '${A}', pair: '${B}:${C}'}\n  extra:\n    - options: {token: '${D}'}\n" +
			"command:\n  api: {listen: '127.0.0.1:1', token: '${E}'}\n  webhooks:\n    - url: '${F}'\n", []string{"A", "B", "C", "D", "E", "F"}},
		{"top-level block", "options: {token: '${A}'}\ndomains: ['${B}.example.com']\n", []string{"A"}},
		{"also used elsewhere", "autocert:\n  email: '${A}@example.com'\n  options: {token: '${A}', other: '${B}'}\n", []string{"B"}},
		{"with a default", "autocert:\n  options: {token: '${A:-x}', other: '${B-y}'}\n", nil},
		{"literal", "autocert:\n  options: {token: '$${A}'}\n", nil},
		{"not secrets", "autocert:\n  eab_hmac: '${A}'\n  storage: {type: postgres, dsn: '${B}'}\ncommand:\n  deploy_hook: '${C}'\n", nil},
		{"alias out of options", "autocert:\n  options: &o {token: '${A}'}\n  extra:\n    - domains: [*o]\n", nil},
		{"alias into options", "x: &t '${A}'\nautocert:\n  options: {token: *t}\n", []string{"A"}},
		{"not YAML", "autocert: [", nil},
	}
	for _, name := range []string{"A", "B", "C", "D", "E", "F"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	refs := regexp.MustCompile(`(?:^|[^$])\$\{([A-Z])\}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The variables referred to without a default.
			all := map[string]bool{}
			for _, m := range refs.FindAllStringSubmatch(tt.doc, -1) {
				all[m[1]] = true
			}
			_, _, err := loadDoc(t, tt.doc, false)
			if got := unsetNames(err); fmt.Sprint(got) != fmt.Sprint(slices.Sorted(maps.Keys(all))) {
				t.Errorf("without status, the unset variables reported are %v, want all of %v", got, slices.Sorted(maps.Keys(all)))
			}
			_, _, err = loadDoc(t, tt.doc, true)
			for _, name := range unsetNames(err) {
				delete(all, name)
			}
			got := slices.Sorted(maps.Keys(all))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("optional variables = %v, want %v (%v)", got, tt.want, err)
			}
		})
	}
}

// TestExpandEnv: the command section expands variables like the autocert
// block.
func TestExpandEnv(t *testing.T) {
	t.Setenv("AUTOCERT_TEST_SET", "value")
	t.Setenv("AUTOCERT_TEST_EMPTY", "")
	doc := func(token string) string {
		return "autocert:\n  provider: pseudo\n  domains: [example.com]\ncommand:\n  api:\n    listen: 127.0.0.1:1\n    token: '" + token + "'\n"
	}
	for in, want := range map[string]string{
		"plain":                                    "plain",
		"a ${AUTOCERT_TEST_SET} b":                 "a value b",
		"${AUTOCERT_TEST_UNSET:-def}":              "def",
		"${AUTOCERT_TEST_EMPTY:-def}":              "def",
		"${AUTOCERT_TEST_EMPTY-def}":               "",
		"${AUTOCERT_TEST_UNSET-def}":               "def",
		"$${AUTOCERT_TEST_SET}":                    "${AUTOCERT_TEST_SET}",
		"$HOME stays":                              "$HOME stays",
		"${AUTOCERT_TEST_SET}${AUTOCERT_TEST_SET}": "valuevalue",
	} {
		_, cc, err := loadDoc(t, doc(in), false)
		if err != nil || cc.API.Token != want {
			t.Errorf("token %q: got %+v, %v; want %q", in, cc, err, want)
		}
	}
	for _, in := range []string{"${AUTOCERT_TEST_UNSET}", "${AUTOCERT_TEST_SET"} {
		if _, _, err := loadDoc(t, doc(in), false); err == nil {
			t.Errorf("token %q: no error", in)
		}
	}
}

// TestCommandSectionLoaderRules: the command section is read by the
// library's loader, so it follows the autocert block's rules where its
// own parser had drifted: every key is expanded and "$${" is a literal
// "${" in each; a reference must name a variable; a null value leaves a
// key unset; duplicate keys are named with the first; a file over 1 MiB
// is refused.
func TestCommandSectionLoaderRules(t *testing.T) {
	t.Setenv("AUTOCERT_TEST_FORMAT", "slack")
	t.Setenv("AUTOCERT_TEST_TLS", "true")
	const head = "autocert:\n  provider: pseudo\n  domains: [example.com]\ncommand:\n"
	tests := []struct {
		name, section string
		check         func(*commandConfig) bool
		want          []string // problems, one per line, without the file
	}{
		{name: "literal in the deploy hook", section: "  deploy_hook: 'echo $${HOME} $${'\n",
			check: func(cc *commandConfig) bool {
				return slices.Equal(cc.DeployHook, []string{"echo ${HOME} ${"}) && cc.DeployShell
			}},
		{name: "literal in a list", section: "  deploy_hook: [echo, '$${HOME}']\n",
			check: func(cc *commandConfig) bool {
				return slices.Equal(cc.DeployHook, []string{"echo", "${HOME}"}) && !cc.DeployShell
			}},
		{name: "format and tls expanded", section: "  api:\n    listen: 127.0.0.1:1\n    tls: ${AUTOCERT_TEST_TLS}\n  webhooks:\n    - url: https://hooks.example.com/x\n      format: ${AUTOCERT_TEST_FORMAT}\n",
			check: func(cc *commandConfig) bool { return cc.API.TLS && cc.Webhooks[0].Format == webhookFormats["slack"] }},
		{name: "no variable name", section: "  deploy_hook: 'echo ${:-x}'\n",
			want: []string{`5: command.deploy_hook: "${" must be followed by a variable name`}},
		{name: "unsupported form", section: "  deploy_hook: 'echo ${AUTOCERT_TEST_FORMAT:?oops}'\n",
			want: []string{"5: command.deploy_hook: unsupported reference to AUTOCERT_TEST_FORMAT"}},
		{name: "a digit first", section: "  deploy_hook: 'echo ${1ST}'\n",
			want: []string{`5: command.deploy_hook: "${" must be followed by a variable name`}},
		{name: "null values", section: "  deploy_hook: ~\n  deploy_timeout:\n  api: null\n  webhooks: ~\n",
			check: func(cc *commandConfig) bool {
				return cc.DeployHook == nil && cc.DeployTimeout == defaultDeployTimeout && cc.API == nil && cc.Webhooks == nil
			}},
		{name: "null section", section: "  ~\n",
			check: func(cc *commandConfig) bool { return cc.DeployTimeout == defaultDeployTimeout && cc.API == nil }},
		{name: "null list entry", section: "  webhooks:\n    - ~\n",
			want: []string{"6: command.webhooks[0]: expected a mapping of keys, got nothing"}},
		{name: "duration", section: "  deploy_timeout: 1m30s\n",
			check: func(cc *commandConfig) bool { return cc.DeployTimeout == 90*time.Second }},
		{name: "duplicate key", section: "  deploy_timeout: 1m\n  deploy_timeout: 2m\n",
			want: []string{"6: command.deploy_timeout: duplicate key (first at line 5)"}},
		{name: "every problem at once, in order", section: "  api:\n    listen: 0.0.0.0:1\n  deploy_hook: []\n  webhooks:\n    - url: x\n      format: telegram\n      secret: y\n",
			want: []string{"7: command.deploy_hook: the list is empty", "11: command.webhooks[0].secret: unknown key (known: url, format)"}},
		{name: "validation problems at once", section: "  api:\n    listen: 0.0.0.0:1\n  webhooks:\n    - format: telegram\n",
			want: []string{"6: command.api.token: required: the API would listen on 0.0.0.0:1", "8: command.webhooks[0].url: missing",
				`8: command.webhooks[0].format: unknown format "telegram"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cc, err := loadDoc(t, head+tt.section, false)
			if tt.want == nil {
				if err != nil || !tt.check(cc) {
					t.Errorf("got %+v, %v", cc, err)
				}
				return
			}
			var got []string
			for _, e := range flatten(err) {
				var fe *autocert.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("not a FieldError: %v", e)
					continue
				}
				got = append(got, strings.TrimPrefix(e.Error(), fe.File+":"))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d: %s\nwant: %s", i, got[i], w)
				}
			}
		})
	}

	t.Run("larger than 1 MiB", func(t *testing.T) {
		doc := head + "  deploy_hook: echo\n" + "# " + strings.Repeat("x", 1<<20) + "\n"
		_, _, err := loadDoc(t, doc, false)
		if !errors.Is(err, autocert.ErrInvalidConfig) || !strings.Contains(err.Error(), "larger than the limit of 1024 KiB") {
			t.Errorf("a file over 1 MiB: %v", err)
		}
	})
}
