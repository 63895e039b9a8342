// Package scalecerts makes the certificates of the scale benchmarks: n
// certificates and keys (ECDSA P-256, one name each, signed by one CA), on
// disk in the two layouts a configuration uses (every certificate in one
// shared directory, and a directory per certificate). Making 100,000 takes
// seconds, so a set is made once per machine and kept under os.TempDir(),
// keyed by n, until it has less than a month of validity left.
package scalecerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// version names the layout of a set on disk; a change makes new sets.
const version = "v1"

// Validity of the certificates of a set, and the validity left below which
// a kept set is made again.
const (
	validity = 365 * 24 * time.Hour
	minLeft  = 30 * 24 * time.Hour
)

// Set is n certificates on disk. Certificate i holds the one name Name(i).
type Set struct {
	N   int
	Dir string // the root of the set
}

// Name is the DNS name of certificate i.
func (s *Set) Name(i int) string { return fmt.Sprintf("h%d.scale.example.com", i) }

// SharedDir is the directory holding every certificate of the shared
// layout.
func (s *Set) SharedDir() string { return filepath.Join(s.Dir, "shared") }

// Shared returns the certificate and key files of certificate i in the
// shared layout: SharedDir()/h<i>.crt and .key.
func (s *Set) Shared(i int) (certPath, keyPath string) {
	base := filepath.Join(s.SharedDir(), "h"+strconv.Itoa(i))
	return base + ".crt", base + ".key"
}

// PerDir returns the certificate and key files of certificate i in the
// layout with a directory per certificate: dirs/h<i>/cert.crt and
// cert.key (hard links to the files of the shared layout).
func (s *Set) PerDir(i int) (certPath, keyPath string) {
	dir := filepath.Join(s.Dir, "dirs", "h"+strconv.Itoa(i))
	return filepath.Join(dir, "cert.crt"), filepath.Join(dir, "cert.key")
}

// Read returns the PEM texts of certificate i: the chain (leaf, then the
// CA) and the key.
func (s *Set) Read(i int) (certPEM, keyPEM []byte, err error) {
	c, k := s.Shared(i)
	if certPEM, err = os.ReadFile(c); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = os.ReadFile(k); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// Get returns the set of n certificates, making it when there is none
// with a month of validity left. Two processes making the same set at
// once each make one; the first to finish keeps it.
func Get(n int) (*Set, error) {
	if n < 1 {
		return nil, fmt.Errorf("scalecerts: n = %d", n)
	}
	s := &Set{N: n, Dir: filepath.Join(os.TempDir(), fmt.Sprintf("autocert-scalecerts-%s-%d", version, n))}
	if s.usable() {
		return s, nil
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(os.TempDir(), filepath.Base(s.Dir)+".making-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := generate(&Set{N: n, Dir: tmp}); err != nil {
		return nil, fmt.Errorf("scalecerts: making %d certificates: %w", n, err)
	}
	if err := os.Rename(tmp, s.Dir); err != nil && !s.usable() {
		return nil, err
	}
	return s, nil
}

// completeFile is written last in a set: the time its certificates expire.
const completeFile = "complete"

func (s *Set) usable() bool {
	b, err := os.ReadFile(filepath.Join(s.Dir, completeFile))
	if err != nil {
		return false
	}
	notAfter, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	return err == nil && time.Until(notAfter) > minLeft
}

// generate makes the set s, in parallel.
func generate(s *Set) error {
	now := time.Now()
	notAfter := now.Add(validity).Truncate(time.Second)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "autocert scale benchmark CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for _, d := range []string{s.SharedDir(), filepath.Join(s.Dir, "dirs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}

	err = parallel(s.N, func(i int) error { return s.makeCert(i, ca, caKey, caPEM, now, notAfter) })
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, completeFile), []byte(notAfter.Format(time.RFC3339)+"\n"), 0o644)
}

// makeCert makes certificate i and its files.
func (s *Set) makeCert(i int, ca *x509.Certificate, caKey *ecdsa.PrivateKey, caPEM []byte, now, notAfter time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(i) + 2),
		Subject:      pkix.Name{CommonName: s.Name(i)},
		DNSNames:     []string{s.Name(i)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caPEM...)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	sc, sk := s.Shared(i)
	if err := os.WriteFile(sc, certPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(sk, keyPEM, 0o600); err != nil {
		return err
	}
	dc, dk := s.PerDir(i)
	if err := os.Mkdir(filepath.Dir(dc), 0o755); err != nil {
		return err
	}
	for _, l := range [][2]string{{sc, dc}, {sk, dk}} {
		if err := os.Link(l[0], l[1]); err != nil {
			if !errors.Is(err, os.ErrPermission) && !errors.Is(err, errors.ErrUnsupported) {
				return err
			}
			data, mode := certPEM, os.FileMode(0o644)
			if l[0] == sk {
				data, mode = keyPEM, 0o600
			}
			if err := os.WriteFile(l[1], data, mode); err != nil {
				return err
			}
		}
	}
	return nil
}

// Pair is the PEM texts of one certificate chain and its key.
type Pair struct{ Cert, Key []byte }

// ReadAll reads the PEM texts of every certificate of s.
func (s *Set) ReadAll() ([]Pair, error) {
	pairs := make([]Pair, s.N)
	err := parallel(s.N, func(i int) error {
		c, k, err := s.Read(i)
		pairs[i] = Pair{c, k}
		return err
	})
	return pairs, err
}

// ParseAll parses every pair as a server loading them must at least:
// tls.X509KeyPair, then x509.ParseCertificate of the leaf when
// X509KeyPair left it unset, on GOMAXPROCS goroutines (as many as can
// run), and returns the time it took: the floor of loading them.
func ParseAll(pairs []Pair) (time.Duration, error) {
	start := time.Now()
	err := parallel(len(pairs), func(i int) error {
		c, err := tls.X509KeyPair(pairs[i].Cert, pairs[i].Key)
		if err == nil && c.Leaf == nil {
			c.Leaf, err = x509.ParseCertificate(c.Certificate[0])
		}
		return err
	})
	return time.Since(start), err
}

// Floor is the shortest of a few runs of ParseAll over pairs: at least
// one, and more until a second has passed, at most five.
func Floor(pairs []Pair) (time.Duration, error) {
	var best, total time.Duration
	for run := 0; run < 5 && (run == 0 || total < time.Second); run++ {
		d, err := ParseAll(pairs)
		if err != nil {
			return 0, err
		}
		if run == 0 || d < best {
			best = d
		}
		total += d
	}
	return best, nil
}

// parallel calls f(0) ... f(n-1) on GOMAXPROCS goroutines and returns the
// first error.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}
