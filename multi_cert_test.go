package autocert_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
)

// TestMainAndExtrasObtainedConcurrently: a main certificate and two extras
// are obtained in one call, on one ACME account, and each name is served
// the certificate that covers it.
func TestMainAndExtrasObtainedConcurrently(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := ca.Config("example.com", "*.example.com")
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "main.crt"), filepath.Join(dir, "main.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	cfg.Extra = []autocert.ConfigExtra{
		{Domains: []string{"api.example.com", "*.api.example.com"}, CertPath: filepath.Join(dir, "api.crt"), KeyPath: filepath.Join(dir, "api.key")},
		{Domains: []string{"example.org"}, CertPath: filepath.Join(dir, "org.crt"), KeyPath: filepath.Join(dir, "org.key")},
	}
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
	if ca.Accounts() != 1 {
		t.Errorf("%d ACME accounts, want the main block's one shared by the extras", ca.Accounts())
	}
	for _, set := range [][]string{{"example.com", "*.example.com"}, {"api.example.com", "*.api.example.com"}, {"example.org"}} {
		if n := ca.OrderCount(set...); n != 1 {
			t.Errorf("%v: %d orders, want 1", set, n)
		}
	}
	if names := []string{p.GetName(), ""}; names[0] != "main" {
		t.Errorf("GetName = %q", names[0])
	}
	infos, err := p.GetCertInfos()
	if err != nil || len(infos) != 3 || infos[1].Provider != "extra[0]" || infos[2].Provider != "extra[1]" {
		t.Fatalf("GetCertInfos = %+v, %v", infos, err)
	}

	tests := []struct{ serverName, wantFirstName string }{
		{"example.com", "example.com"},
		{"www.example.com", "example.com"},
		{"api.example.com", "api.example.com"},
		{"v1.api.example.com", "api.example.com"},
		{"example.org", "example.org"},
	}
	for _, tt := range tests {
		leaf := handshake(t, p, ca.Roots(), tt.serverName)
		if leaf.DNSNames[0] != tt.wantFirstName && !contains(leaf.DNSNames, tt.wantFirstName) {
			t.Errorf("%s: served a certificate for %v, want the one for %s", tt.serverName, leaf.DNSNames, tt.wantFirstName)
		}
		if err := leaf.VerifyHostname(tt.serverName); err != nil {
			t.Errorf("%s: %v", tt.serverName, err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// handshake does a real TLS handshake over loopback against p.GetCert and
// returns the verified leaf.
func handshake(t *testing.T, p *autocert.Provider, roots *x509.CertPool, serverName string) *x509.Certificate {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: p.GetCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake()
		c.Close()
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{}, "tcp", ln.Addr().String(), &tls.Config{ServerName: serverName, RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake for %s: %v", serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}
