package autocert_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

// TestChallengeResolversNamedAtStart: when the certificates of a Provider
// name different resolvers, New says which, and why lego's own lookups
// cannot follow them all (lego keeps one list per process); when they
// agree, it says nothing.
func TestChallengeResolversNamedAtStart(t *testing.T) {
	ca := acmetest.New(t)
	tests := []struct {
		name  string
		extra []string // resolvers of extra[0]; extra[1] inherits the main block's
		want  string   // in the warning; empty: no warning
	}{
		{name: "same resolvers"},
		{name: "extra[0] differs", extra: []string{"192.0.2.53"},
			want: `"resolvers":"main, extra[1]: ` + ca.DNSAddr() + `; extra[0]: 192.0.2.53:53"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := ca.Config("example.com")
			cfg.CertPath, cfg.KeyPath, cfg.ACMEKeyPath = filepath.Join(dir, "m.crt"), filepath.Join(dir, "m.key"), filepath.Join(dir, "acme.key")
			cfg.Extra = []autocert.ConfigExtra{
				{Domains: []string{"a.example.com"}, Resolvers: tt.extra, CertPath: filepath.Join(dir, "a.crt"), KeyPath: filepath.Join(dir, "a.key")},
				{Domains: []string{"b.example.com"}, CertPath: filepath.Join(dir, "b.crt"), KeyPath: filepath.Join(dir, "b.key")},
			}
			var logs syncbuf.Buffer
			if _, err := autocert.New(context.Background(), cfg, autocert.WithLogger(zerolog.New(&logs))); err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(logs.String(), "lego keeps one list per process")
			if tt.want == "" {
				if warned {
					t.Errorf("warning for certificates that agree:\n%s", logs.String())
				}
				return
			}
			if !warned || !strings.Contains(logs.String(), tt.want) {
				t.Errorf("log does not name the certificates and their resolvers (%s):\n%s", tt.want, logs.String())
			}
		})
	}
}
