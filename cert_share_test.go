package autocert_test

import (
	"bytes"
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
)

// TestCertificatesShareTheirIntermediate: the certificates of one CA that
// a Provider serves, whether just obtained or loaded from storage at a
// start, hold one copy of the CA's intermediate, not one each.
func TestCertificatesShareTheirIntermediate(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := ca.Config("a.example.com")
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	cfg.Extra = []autocert.ConfigExtra{
		{Domains: []string{"b.example.com"}, CertPath: filepath.Join(dir, "b.crt"), KeyPath: filepath.Join(dir, "b.key")},
		{Domains: []string{"c.example.com"}, CertPath: filepath.Join(dir, "c.crt"), KeyPath: filepath.Join(dir, "c.key")},
	}
	for _, start := range []string{"obtained", "loaded"} {
		user, legoCfg, err := cfg.GetLegoConfig()
		if err != nil {
			t.Fatal(err)
		}
		p, err := autocert.NewProvider(cfg, user, legoCfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.ObtainCertIfNotExistsAll(); err != nil {
			t.Fatal(err)
		}
		var first *tls.Certificate
		for _, name := range []string{"a.example.com", "b.example.com", "c.example.com"} {
			c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: name})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Certificate) < 2 {
				t.Fatalf("%s: %s: a chain of %d certificates, want the leaf and an intermediate", start, name, len(c.Certificate))
			}
			if c.Leaf.DNSNames[0] != name {
				t.Fatalf("%s: %s: served the certificate for %v", start, name, c.Leaf.DNSNames)
			}
			if first == nil {
				first = c
				continue
			}
			a, b := first.Certificate[1], c.Certificate[1]
			if !bytes.Equal(a, b) {
				t.Fatalf("%s: %s: another intermediate than the first certificate's", start, name)
			}
			if &a[0] != &b[0] {
				t.Errorf("%s: %s: holds its own copy of the intermediate", start, name)
			}
		}
	}
	if n := ca.OrderCount("a.example.com"); n != 1 {
		t.Errorf("%d orders for a.example.com, want 1: the second start loads", n)
	}
}
