package autocert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// sniTestCA is a certificate authority made for one test: a self-signed
// root that issues leaf certificates.
type sniTestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newSNITestCA(t *testing.T) *sniTestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "autocert SNI test root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &sniTestCA{cert: cert, key: key}
}

// issue writes to dir a certificate file name.crt and a key file name.key
// holding a leaf issued by the CA with the given subject common name and
// DNS names. It returns the paths and the leaf's serial number.
func (ca *sniTestCA) issue(t *testing.T, dir, name, cn string, dnsNames ...string) (certPath, keyPath string, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dnsNames,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath, serial
}

// TestGetCertChoosesWhatClientsVerify serves, with provider local, files
// issued by a root of the test's own: a main certificate whose subject
// common name is a name it does not hold as a DNS name, an extra holding a
// DNS name only with a trailing dot, and an extra holding both names as
// DNS names. Real TLS clients verifying against the root ask for each
// name: every handshake succeeds with the certificate that holds the name
// as a DNS name, since clients ignore the common name and a DNS name
// written with a trailing dot matches no server name.
func TestGetCertChoosesWhatClientsVerify(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ca := newSNITestCA(t)
	dir := t.TempDir()
	mainCrt, mainKey, mainSerial := ca.issue(t, dir, "main", "api.example.com", "www.example.com")
	dotCrt, dotKey, dotSerial := ca.issue(t, dir, "dotted", "", "shop.example.com.")
	apiCrt, apiKey, apiSerial := ca.issue(t, dir, "api", "", "api.example.com", "shop.example.com")
	cfg := &autocert.Config{
		Provider: autocert.ProviderLocal,
		CertPath: mainCrt,
		KeyPath:  mainKey,
		Extra: []autocert.ConfigExtra{
			{CertPath: dotCrt, KeyPath: dotKey},
			{CertPath: apiCrt, KeyPath: apiKey},
		},
	}
	p, err := autocert.NewProvider(cfg, nil, nil, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	var serving sync.WaitGroup
	serving.Go(func() {
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				c.(*tls.Conn).Handshake()
			})
		}
	})
	defer func() {
		ln.Close()
		serving.Wait()
	}()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	tests := []struct {
		serverName string
		want       *big.Int // serial of the certificate that must answer
		wantName   string
	}{
		{"api.example.com", apiSerial, "extra[1]"},
		{"API.Example.com.", apiSerial, "extra[1]"},
		{"shop.example.com", apiSerial, "extra[1]"},
		{"www.example.com", mainSerial, "main"},
	}
	for _, tt := range tests {
		t.Run(tt.serverName, func(t *testing.T) {
			d := tls.Dialer{Config: &tls.Config{ServerName: tt.serverName, RootCAs: roots}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatalf("handshake verifying %s against the root: %v", tt.serverName, err)
			}
			defer c.Close()
			leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
			if leaf.SerialNumber.Cmp(tt.want) != 0 {
				t.Errorf("served %s, want the certificate of %s", describeServed(leaf, mainSerial, dotSerial, apiSerial), tt.wantName)
			}
		})
	}
}

// describeServed names the test certificate leaf is.
func describeServed(leaf *x509.Certificate, mainSerial, dotSerial, apiSerial *big.Int) string {
	for name, serial := range map[string]*big.Int{"main": mainSerial, "extra[0]": dotSerial, "extra[1]": apiSerial} {
		if leaf.SerialNumber.Cmp(serial) == 0 {
			return "the certificate of " + name
		}
	}
	return fmt.Sprintf("an unknown certificate for %v", leaf.DNSNames)
}
