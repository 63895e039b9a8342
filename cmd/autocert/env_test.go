package main

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

// TestOptionalVariables: only variables that nothing but secrets status
// does not read refer to, without a default, may stay unset.
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(optionalVariables([]byte(tt.doc))))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("optionalVariables = %v, want %v", got, tt.want)
			}
		})
	}
}
