// Package provider_test holds black-box tests of the autocert public API,
// run against a real ACME CA and DNS server started in the test process.
package provider_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	legolog "github.com/go-acme/lego/v4/log"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// lego logs every ACME step to its own process-wide logger; the tests
	// read autocert's zerolog output instead.
	legolog.Logger = log.New(io.Discard, "", 0)
	goleak.VerifyTestMain(m, acmetest.LeakOptions()...)
}

// configYAML writes an autocert YAML file for ca into dir, the way a user
// would: the DNS provider's credentials come from environment variables.
func configYAML(t *testing.T, ca *acmetest.Server, dir string, domains ...string) string {
	t.Helper()
	opts := ca.ProviderOptions()
	t.Setenv("ACMETEST_API_URL", opts[acmetest.OptionAPIURL].Value())
	t.Setenv("ACMETEST_API_TOKEN", opts[acmetest.OptionAPIToken].Value())
	var ds strings.Builder
	for _, d := range domains {
		fmt.Fprintf(&ds, "    - %q\n", d)
	}
	text := fmt.Sprintf(`autocert:
  provider: acmetest
  email: admin@example.com
  domains:
%s  cert_path: %s
  key_path: %s
  acme_key_path: %s
  ca_dir_url: %s
  ca_certs:
    - %s
  resolvers:
    - %s
  options:
    api_url: ${ACMETEST_API_URL}
    api_token: ${ACMETEST_API_TOKEN}
`, ds.String(), filepath.Join(dir, "certs", "cert.crt"), filepath.Join(dir, "certs", "priv.key"),
		filepath.Join(dir, "certs", "acme.key"), ca.DirectoryURL(), ca.CACertFile(), ca.DNSAddr())
	path := filepath.Join(dir, "autocert.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs the seed's "Initial Setup" flow on a config file.
func start(t *testing.T, path string, opts ...autocert.Option) (*autocert.Provider, error) {
	t.Helper()
	cfg, err := autocert.LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatalf("GetLegoConfig: %v", err)
	}
	p, err := autocert.NewProvider(cfg, user, legoCfg, opts...)
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	return p, p.ObtainCertIfNotExistsAll()
}

// served does a real TLS handshake for serverName against a server using
// p.GetCert and returns the leaf certificate it presented, verified
// against the CA's roots.
func served(t *testing.T, p *autocert.Provider, roots *x509.CertPool, serverName string) *x509.Certificate {
	t.Helper()
	cliConn, srvConn := netPipe(t)
	srv := tls.Server(srvConn, &tls.Config{GetCertificate: p.GetCert})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake(); srv.Close() }()
	cli := tls.Client(cliConn, &tls.Config{ServerName: serverName, RootCAs: roots})
	err := cli.Handshake()
	cli.Close()
	if serr := <-errc; err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		t.Fatalf("TLS handshake for %q: %v", serverName, err)
	}
	return cli.ConnectionState().PeerCertificates[0]
}

// readChain parses the PEM certificates of a file.
func readChain(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		t.Fatalf("%s holds no certificate", path)
	}
	return chain
}
