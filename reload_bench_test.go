package autocert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"testing"
	"time"
)

// BenchmarkReload is the cost of serving one certificate that another
// process stored, with n certificates in one directory: the files of one
// certificate are replaced (as another instance or `autocert renew`
// does, by renames; not timed) and the certificate is reloaded as the
// file following does on a notification: read, parse, check, serve,
// update the SNI index. Each operation alternates between two pairs, so
// each reload serves a certificate it did not serve before.
func BenchmarkReload(b *testing.B) {
	for _, n := range []int{100, 1_000, 10_000, 100_000} {
		if testing.Short() && n > 10_000 {
			continue
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			p := filesProvider(b, n)
			defer p.Close()
			c := p.certs[n/2]
			pairs := [2][2][]byte{reloadPair(b, c.cfg.Domains[0]), reloadPair(b, c.cfg.Domains[0])}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				b.StopTimer()
				pair := pairs[i%2]
				replaceFile(b, c.cfg.CertPath, pair[0])
				replaceFile(b, c.cfg.KeyPath, pair[1])
				b.StartTimer()
				if out := c.reload(ctx); out.kind != outAdopted {
					b.Fatalf("reload: outcome %v, err %v; want the new certificate adopted", out.kind, out.err)
				}
				i++
			}
		})
	}
}

// reloadPair returns a certificate for name, valid for a year, and its
// key, in PEM.
func reloadPair(b *testing.B, name string) [2][]byte {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	return [2][]byte{
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

// replaceFile replaces path with data by a rename, as another process
// storing a certificate does.
func replaceFile(b *testing.B, path string, data []byte) {
	b.Helper()
	tmp := path + ".bench-tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
}
