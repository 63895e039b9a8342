package autocert

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestBundleFile: with bundle_path, the key and the chain are written to
// one 0600 file that loads as the pair served, after the first obtain and
// after each renewal; a bundle that does not hold the certificate served
// (left by a crash between the store and the bundle's write) is written
// again at the next start; an extra does not inherit the main block's
// bundle_path; and a bundle_path that is another file of the config is an
// error naming it.
func TestBundleFile(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{
		Provider:   ProviderPseudo,
		Domains:    []string{"bundle.test"},
		CertPath:   filepath.Join(dir, "c.crt"),
		KeyPath:    filepath.Join(dir, "c.key"),
		BundlePath: filepath.Join(dir, "bundle", "c.pem"),
		Extra: []ConfigExtra{{Domains: []string{"other.test"},
			CertPath: filepath.Join(dir, "o.crt"), KeyPath: filepath.Join(dir, "o.key")}},
	}
	ctx := context.Background()
	start := func() *Provider {
		t.Helper()
		p, err := New(ctx, cfg, WithLogger(zerolog.Nop()))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.ObtainAll(ctx, false); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(p *Provider, when string) {
		t.Helper()
		fi, err := os.Stat(cfg.BundlePath)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: bundle mode %v, want 0600", when, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(cfg.BundlePath)
		if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
			t.Errorf("%s: the bundle does not start with the key:\n%.60s", when, data)
		}
		pair, err := tls.X509KeyPair(data, data)
		if err != nil {
			t.Fatalf("%s: the bundle does not load as a pair: %v", when, err)
		}
		if !pair.Leaf.Equal(p.certs[0].current().Leaf) {
			t.Errorf("%s: the bundle holds another certificate than the one served", when)
		}
	}

	p := start()
	check(p, "after the first obtain")
	if err := p.RenewAll(ctx); err != nil {
		t.Fatal(err)
	}
	check(p, "after a renewal")
	stale, _ := os.ReadFile(cfg.BundlePath)
	if err := p.RenewAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.BundlePath, stale, 0o600); err != nil { // as if the process died before writing it
		t.Fatal(err)
	}
	check(start(), "after a start that found an old bundle")
	if m, _ := filepath.Glob(filepath.Join(dir, "bundle", "*")); len(m) != 1 {
		t.Errorf("files in the bundle's directory: %v, want the bundle alone", m)
	}

	bad := *cfg
	bad.Extra = []ConfigExtra{{Domains: []string{"other.test"}, CertPath: filepath.Join(dir, "o.crt"),
		KeyPath: filepath.Join(dir, "o.key"), BundlePath: cfg.CertPath}}
	err := bad.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "extra[0].bundle_path") {
		t.Errorf("a bundle_path that is the main cert_path: %v; want a problem naming extra[0].bundle_path", err)
	}
}
