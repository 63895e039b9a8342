package acmetest_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/registration"
	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// lego logs every step to stderr through a package variable; set it
	// once, before any test runs.
	legolog.Logger = log.New(io.Discard, "", 0)
	goleak.VerifyTestMain(m, acmetest.LeakOptions()...)
}

// user is a lego ACME account.
type user struct {
	key crypto.PrivateKey
	reg *registration.Resource
}

func (u *user) GetEmail() string                        { return acmetest.Email }
func (u *user) GetRegistration() *registration.Resource { return u.reg }
func (u *user) GetPrivateKey() crypto.PrivateKey        { return u.key }

// clientOptions tune newClient.
type clientOptions struct {
	// transport, when set, wraps the client's HTTP transport.
	transport func(http.RoundTripper) http.RoundTripper
}

// newClient returns a lego client of a new, unregistered account that
// trusts s's HTTPS and solves DNS-01 through the "acmetest" provider built
// from s's options by the registry, as autocert would.
func newClient(t testing.TB, s *acmetest.Server, o clientOptions) (*lego.Client, *user) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := &user{key: key}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = s.DirectoryURL()
	cfg.UserAgent = "acmetest-test"
	cfg.Certificate.KeyType = certcrypto.EC256
	cfg.Certificate.OverallRequestLimit = 1000
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trustPool(t, s.CACertFile())}}
	t.Cleanup(tr.CloseIdleConnections)
	var rt http.RoundTripper = tr
	if o.transport != nil {
		rt = o.transport(tr)
	}
	// No Timeout: lego leaves some response bodies unclosed, and a
	// client timeout keeps a goroutine per such request alive.
	cfg.HTTPClient = &http.Client{Transport: rt}
	c, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatalf("lego.NewClient: %v", err)
	}
	f, ok := autocert.LookupProvider(acmetest.ProviderName)
	if !ok {
		t.Fatal("provider acmetest is not registered")
	}
	p, err := f.NewDNSProvider(s.ProviderOptions())
	if err != nil {
		t.Fatalf("NewDNSProvider: %v", err)
	}
	// lego's own check asks the system's resolvers (a process-wide
	// setting); ask the server's DNS instead.
	dnsAddr := s.DNSAddr()
	check := func(_, fqdn, value string, _ dns01.PreCheckFunc) (bool, error) {
		values, err := lookupTXT(dnsAddr, fqdn)
		return slices.Contains(values, value), err
	}
	if err := c.Challenge.SetDNS01Provider(p, dns01.WrapPreCheck(check)); err != nil {
		t.Fatal(err)
	}
	return c, u
}

// newAccount returns a client of a registered account.
func newAccount(t testing.TB, s *acmetest.Server) *lego.Client {
	t.Helper()
	c, u := newClient(t, s, clientOptions{})
	register(t, c, u)
	return c
}

func register(t testing.TB, c *lego.Client, u *user) {
	t.Helper()
	reg, err := c.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	u.reg = reg
}

// obtain issues a certificate and returns its chain, leaf first.
func obtain(t testing.TB, c *lego.Client, req certificate.ObtainRequest) []*x509.Certificate {
	t.Helper()
	req.Bundle = true
	res, err := c.Certificate.Obtain(req)
	if err != nil {
		t.Fatalf("Obtain %v: %v", req.Domains, err)
	}
	return parseChain(t, res.Certificate)
}

func parseChain(t testing.TB, pemData []byte) []*x509.Certificate {
	t.Helper()
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, pemData = pem.Decode(pemData)
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
		t.Fatal("no certificate in PEM")
	}
	return chain
}

func trustPool(t testing.TB, path string) *x509.CertPool {
	t.Helper()
	pemData, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatalf("no certificate in %s", path)
	}
	return pool
}

// txtValue returns the DNS-01 TXT value for a key authorization (RFC 8555,
// section 8.4), computed here rather than by lego, which also looks up
// CNAMEs at the system's resolvers.
func txtValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// lookupTXT asks the DNS server at addr, over UDP, for the TXT values of
// name.
func lookupTXT(addr, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	in, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, err
	}
	var values []string
	for _, rr := range in.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			values = append(values, strings.Join(txt.Txt, ""))
		}
	}
	return values, nil
}

// problemCounter counts responses carrying an ACME problem of one type.
type problemCounter struct {
	next     http.RoundTripper
	problem  string
	n        atomic.Int64
	noNonces atomic.Int64 // of those, responses without a Replay-Nonce
}

func (pc *problemCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := pc.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if bytes.Contains(body, []byte(`"`+pc.problem+`"`)) {
		pc.n.Add(1)
		if resp.Header.Get("Replay-Nonce") == "" {
			pc.noNonces.Add(1)
		}
	}
	return resp, nil
}
