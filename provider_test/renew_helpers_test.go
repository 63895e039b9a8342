package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
)

// selfSigned returns a PEM certificate for names valid from notBefore to
// notAfter, its PEM key, and the parsed certificate.
func selfSigned(t *testing.T, names []string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), leaf
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// recorder is a Notifier that keeps the events it receives.
type recorder struct {
	ch chan autocert.Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan autocert.Event, 256)} }

func (r *recorder) Notify(_ context.Context, e autocert.Event) error {
	r.ch <- e
	return nil
}

// next returns the next event of the kind given, skipping others; it fails
// the test when none comes within 20 s.
func (r *recorder) next(t *testing.T, kind autocert.EventKind) autocert.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-r.ch:
			if e.Kind() == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event", kind)
			return nil
		}
	}
}

// none fails the test if an event of kind is waiting.
func (r *recorder) none(t *testing.T, kind autocert.EventKind) {
	t.Helper()
	for {
		select {
		case e := <-r.ch:
			if e.Kind() == kind {
				t.Fatalf("unexpected %s event: %s", kind, e.Message())
			}
		default:
			return
		}
	}
}

// eventually polls cond until it holds, failing the test after 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// schedule starts p's scheduler under a context that the test's cleanup
// cancels, waiting for the scheduler and its work to end. It returns the
// cancel function, for tests that stop it earlier.
func schedule(t *testing.T, p *autocert.Provider) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	scheduleUntil(t, p, ctx, cancel)
	return cancel
}

// idle waits until the scheduler, driven by clock, has armed its timer for
// a time after now: it has done everything due at now.
func idle(t *testing.T, clock interface {
	WaitForTimer(context.Context, func(time.Time) bool) (time.Time, error)
	Now() time.Time
}) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	now := clock.Now()
	at, err := clock.WaitForTimer(ctx, func(d time.Time) bool { return d.After(now) })
	if err != nil {
		t.Fatalf("scheduler never went idle: %v", err)
	}
	return at
}

// leafOf returns the certificate p serves for name, without a handshake.
func leafOf(t *testing.T, p *autocert.Provider, name string) *x509.Certificate {
	t.Helper()
	c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// pool returns a pool of the certificates given.
func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// countLines counts the lines of a log that contain s.
func countLines(log, s string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// tlsServer serves TLS on a loopback port with p.GetCert, as a program
// using autocert does, until the test ends; it returns the address.
func tlsServer(t *testing.T, p *autocert.Provider) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: p.GetCert})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dialLeaf does a TLS handshake with addr for serverName, verifying the
// chain against roots at the current time, and returns the leaf.
func dialLeaf(addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: serverName, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// handshakeLoop does TLS handshakes in a loop until stopped, keeping the
// failures and the serials seen.
type handshakeLoop struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	n       int
	fails   []error
	serials map[string]bool
}

func startHandshakes(addr, serverName string, roots *x509.CertPool) *handshakeLoop {
	l := &handshakeLoop{stop: make(chan struct{}), done: make(chan struct{}), serials: make(map[string]bool)}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			leaf, err := dialLeaf(addr, serverName, roots)
			l.mu.Lock()
			l.n++
			if err != nil {
				l.fails = append(l.fails, err)
			} else {
				l.serials[leaf.SerialNumber.Text(16)] = true
			}
			l.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return l
}

func (l *handshakeLoop) saw(serial string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.serials[serial]
}

// end stops the loop and returns the number of handshakes and failures.
func (l *handshakeLoop) end() (int, []error) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.fails
}
