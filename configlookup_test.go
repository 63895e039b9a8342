package autocert

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
