package reliability_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	legolog "github.com/go-acme/lego/v4/log"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The crash test runs this binary again as the process it kills.
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	// lego logs every ACME step to its own process-wide logger; the tests
	// read autocert's zerolog output instead (the secrets test captures
	// lego's log too).
	legolog.Logger = log.New(io.Discard, "", 0)
	goleak.VerifyTestMain(m, acmetest.LeakOptions()...)
}

// inCI reports whether the tests run in continuous integration, where
// nothing may be skipped and the crash test kills at least 200 times.
func inCI() bool { return os.Getenv("CI") != "" }

// caConfig returns ca's configuration for domains with every file in dir:
// certificate, key and account key.
func caConfig(ca *acmetest.Server, dir string, domains ...string) *autocert.Config {
	cfg := ca.Config(domains...)
	cfg.CertPath = filepath.Join(dir, "cert.crt")
	cfg.KeyPath = filepath.Join(dir, "priv.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	return cfg
}

// newProvider builds the Provider of cfg as a program does.
func newProvider(t testing.TB, cfg *autocert.Config, opts ...autocert.Option) *autocert.Provider {
	t.Helper()
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatalf("GetLegoConfig: %v", err)
	}
	p, err := autocert.NewProvider(cfg, user, legoCfg, opts...)
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	return p
}

// recorder is a Notifier that keeps every event it receives.
type recorder struct {
	mu     sync.Mutex
	events []autocert.Event
}

func (r *recorder) Notify(_ context.Context, e autocert.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// take returns the events received since the last call.
func (r *recorder) take() []autocert.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// kinds lists the kinds of events, for messages.
func kinds(events []autocert.Event) string {
	var k []string
	for _, e := range events {
		k = append(k, string(e.Kind()))
	}
	return strings.Join(k, ",")
}

// handshake does a real TLS handshake with a server using get for its
// certificates and returns the chain the client verified against roots
// for serverName.
func handshake(get func(*tls.ClientHelloInfo) (*tls.Certificate, error), serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	cliConn, srvConn, err := tcpPair()
	if err != nil {
		return nil, err
	}
	srv := tls.Server(srvConn, &tls.Config{GetCertificate: get})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake(); srv.Close() }()
	cli := tls.Client(cliConn, &tls.Config{ServerName: serverName, RootCAs: roots})
	_ = cli.SetDeadline(time.Now().Add(10 * time.Second))
	err = cli.Handshake()
	cli.Close()
	serr := <-errc
	if err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	return cli.ConnectionState().PeerCertificates[0], nil
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair() (client, server net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	if server = <-accepted; server == nil {
		client.Close()
		return nil, nil, fmt.Errorf("accept failed")
	}
	return client, server, nil
}

// verifyPair checks that c is a certificate for name whose chain verifies
// against roots and whose key belongs to it.
func verifyPair(c *tls.Certificate, name string, roots *x509.CertPool) error {
	if c == nil || c.Leaf == nil {
		return fmt.Errorf("no certificate")
	}
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		inter.AddCert(ic)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
		return err
	}
	pub, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("key %T has no public key", c.PrivateKey)
	}
	if eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(c.Leaf.PublicKey) {
		return fmt.Errorf("the key does not belong to the certificate")
	}
	return nil
}
