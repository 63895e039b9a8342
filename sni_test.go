package autocert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// sniCertSpec describes a test certificate: its DNS names and, optionally,
// a subject common name that is not among them.
type sniCertSpec struct {
	names []string
	cn    string
}

// sniNames is a certificate holding names as DNS names.
func sniNames(names ...string) *sniCertSpec { return &sniCertSpec{names: names} }

// sniKey makes the key shared by a test's certificates.
func sniKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sniCert makes a self-signed leaf certificate with the given DNS names
// and common name, ready to serve.
func sniCert(t testing.TB, key crypto.Signer, cn string, names ...string) *tls.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              names,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// sniProvider builds a Provider with a main block and extras extras, all
// of provider pseudo with files in a temporary directory. Nothing is
// obtained: tests give certificates with setCert.
func sniProvider(t testing.TB, extras int) *Provider {
	t.Helper()
	dir := t.TempDir()
	cfg := &Config{
		Provider: ProviderPseudo,
		Domains:  []string{"placeholder.test"},
		CertPath: filepath.Join(dir, "main.crt"),
		KeyPath:  filepath.Join(dir, "main.key"),
	}
	for i := range extras {
		cfg.Extra = append(cfg.Extra, ConfigExtra{
			CertPath: filepath.Join(dir, fmt.Sprintf("extra%d.crt", i)),
			KeyPath:  filepath.Join(dir, fmt.Sprintf("extra%d.key", i)),
		})
	}
	p, err := NewProvider(cfg, nil, nil, WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sniServe builds a Provider serving one certificate per spec, main first;
// a nil spec leaves that provider without a certificate. It returns the
// provider and the certificates, indexed like the specs.
func sniServe(t testing.TB, specs ...*sniCertSpec) (*Provider, []*tls.Certificate) {
	t.Helper()
	key := sniKey(t)
	p := sniProvider(t, len(specs)-1)
	certs := make([]*tls.Certificate, len(specs))
	for i, q := range p.certs {
		if specs[i] == nil {
			continue
		}
		certs[i] = sniCert(t, key, specs[i].cn, specs[i].names...)
		q.setCert(certs[i])
	}
	return p, certs
}

// servedBy names the provider whose certificate c is: "main", "extra[N]".
func servedBy(p *Provider, certs []*tls.Certificate, c *tls.Certificate) string {
	for i, q := range p.certs {
		if c != nil && certs[i] == c {
			return q.name
		}
	}
	if c == nil {
		return "nil"
	}
	return "an unknown certificate"
}

func TestGetCert(t *testing.T) {
	long := strings.Repeat("a.", 126) + "example.com" // 263 bytes
	tests := []struct {
		name  string
		certs []*sniCertSpec    // main, then the extras
		want  map[string]string // server name -> provider whose certificate answers
	}{{
		name: "exact name before wildcard, whatever the order",
		certs: []*sniCertSpec{
			sniNames("example.com", "*.example.com"),
			sniNames("api.example.com"),
		},
		want: map[string]string{
			"api.example.com": "extra[0]",
			"www.example.com": "main",
			"example.com":     "main",
		},
	}, {
		name: "most specific wildcard, one label each",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("*.example.com"),
			sniNames("*.api.example.com"),
		},
		want: map[string]string{
			"x.api.example.com":   "extra[1]",
			"api.example.com":     "extra[0]",
			"x.example.com":       "extra[0]",
			"a.b.example.com":     "main",
			"y.x.api.example.com": "main",
			"example.com":         "main",
			"main.test":           "main",
		},
	}, {
		name: "deep wildcard covers exactly one label",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("*.a.b.c.d.example.com", "e.a.b.c.d.example.com"),
			sniNames("*.e.a.b.c.d.example.com"),
		},
		want: map[string]string{
			"x.a.b.c.d.example.com":   "extra[0]",
			"e.a.b.c.d.example.com":   "extra[0]",
			"x.e.a.b.c.d.example.com": "extra[1]",
			"a.b.c.d.example.com":     "main",
			"y.x.a.b.c.d.example.com": "main",
			"x.b.c.d.example.com":     "main",
		},
	}, {
		name: "case ignored on both sides, a trailing dot of the server name too",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("WWW.Example.COM", "*.Shop.Example.Com"),
		},
		want: map[string]string{
			"www.example.com":        "extra[0]",
			"WWW.EXAMPLE.COM":        "extra[0]",
			"wWw.ExAmPlE.cOm.":       "extra[0]",
			"www.example.com.":       "extra[0]",
			"Cart.SHOP.example.com":  "extra[0]",
			"cart.shop.example.com.": "extra[0]",
			"www.example.com..":      "main",
		},
	}, {
		// crypto/x509 takes a certificate name ending in a dot for no
		// pattern: it matches only a server name written the same way,
		// dot included, which a client never sends (Go clients drop it
		// from the SNI, as RFC 6066 asks).
		name: "certificate names written with a trailing dot are not matched",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("dotted.example.com.", "*.wild.example.com.", "both.example.com."),
			sniNames("both.example.com", "*.wild2.example.com"),
		},
		want: map[string]string{
			"dotted.example.com":   "main",
			"dotted.example.com.":  "main",
			"DOTTED.example.com":   "main",
			"x.wild.example.com":   "main",
			"x.wild.example.com.":  "main",
			"both.example.com":     "extra[1]",
			"both.example.com.":    "extra[1]",
			"x.wild2.example.com.": "extra[1]",
		},
	}, {
		name: "exact name before wildcard, whatever the case",
		certs: []*sniCertSpec{
			sniNames("*.example.com"),
			sniNames("www.example.com", "*.www.example.com"),
		},
		want: map[string]string{
			"WWW.example.com":    "extra[0]",
			"www.EXAMPLE.com":    "extra[0]",
			"www.example.com.":   "extra[0]",
			"A.www.example.com.": "extra[0]",
			"web.example.com":    "main",
		},
	}, {
		name: "overlapping extras: the first configured keeps a name",
		certs: []*sniCertSpec{
			sniNames("dup.example.com"),
			sniNames("dup.example.com", "shared.example.com", "*.shared.example.com"),
			sniNames("shared.example.com", "only1.example.com", "*.shared.example.com", "*.example.com"),
			sniNames("*.example.com", "only1.example.com", "only2.example.com"),
		},
		want: map[string]string{
			"dup.example.com":      "main",
			"shared.example.com":   "extra[0]",
			"x.shared.example.com": "extra[0]",
			"only1.example.com":    "extra[1]",
			"other.example.com":    "extra[1]",
			"only2.example.com":    "extra[2]",
		},
	}, {
		// Go clients (since Go 1.15) and browsers verify the DNS names
		// only: a certificate chosen by its common name fails them.
		name: "the common name is not a name",
		certs: []*sniCertSpec{
			{names: []string{"www.example.com"}, cn: "api.example.com"},
			sniNames("api.example.com"),
			{names: []string{"san.example.com"}, cn: "cn.example.com"},
			{cn: "*.wild-cn.example.com"},
			{cn: "legacy.example.com"},
		},
		want: map[string]string{
			"api.example.com":       "extra[0]",
			"www.example.com":       "main",
			"san.example.com":       "extra[1]",
			"cn.example.com":        "main",
			"x.wild-cn.example.com": "main",
			"legacy.example.com":    "main",
		},
	}, {
		name: "a main certificate without a usable name is still the default",
		certs: []*sniCertSpec{
			{names: []string{"main.example.com.", "bad..example.com"}, cn: "main.example.com"},
			sniNames("api.example.com"),
		},
		want: map[string]string{
			"main.example.com":  "main",
			"main.example.com.": "main",
			"":                  "main",
			"other.example.com": "main",
			"api.example.com":   "extra[0]",
		},
	}, {
		name: "an extra without a usable name answers for nothing",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			{names: []string{"x.example.com."}, cn: "x.example.com"},
			{cn: "y.example.com"},
		},
		want: map[string]string{
			"x.example.com": "main",
			"y.example.com": "main",
		},
	}, {
		name: "no server name gives the main certificate",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("*.example.com", "example.com"),
		},
		want: map[string]string{
			"":  "main",
			".": "main",
		},
	}, {
		name: "IP literals give the main certificate",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("192.0.2.1", "*.0.2.1", "10.0.0.256", "10.0.0.01", "*.10.0.0.1", "2001:db8::1"),
		},
		want: map[string]string{
			"192.0.2.1":     "main",
			"192.0.2.1.":    "main",
			"[192.0.2.1]":   "main",
			"2001:db8::1":   "main",
			"[2001:db8::1]": "main",
			"::1":           "main",
			"10.0.0.1":      "main",
			// Not addresses (a field over 255, a leading zero, five
			// fields): names, matched like any other.
			"10.0.0.256": "extra[0]",
			"10.0.0.01":  "extra[0]",
			"9.10.0.0.1": "extra[0]",
			"x.0.2.1":    "extra[0]",
		},
	}, {
		name: "server names that are not host names give the main certificate",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("*.example.com", "example.com"),
		},
		want: map[string]string{
			"exa mple.com":        "main",
			"a..example.com":      "main",
			".example.com":        "main",
			"-a.example.com":      "main",
			"*.example.com":       "main",
			"ünïcode.example.com": "main",
			"a\x00.example.com":   "main",
			long:                  "main",
			"a-.example.com":      "extra[0]", // '-' is allowed after the first byte
			"_acme.example.com":   "extra[0]", // as crypto/x509 allows '_'
			"a.example.com":       "extra[0]",
		},
	}, {
		name: "certificate names that are not host names are ignored",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("bad..example.com", "*.*.example.com", "*", "*.", "a*.example.com", "-x.example.com"),
			sniNames("*.example.com"),
		},
		want: map[string]string{
			"bad..example.com": "main",
			"x.y.example.com":  "main",
			"ab.example.com":   "extra[1]",
			"-x.example.com":   "main",
			"com":              "main",
		},
	}, {
		name: "single-label names and wildcards over a top-level domain",
		certs: []*sniCertSpec{
			sniNames("main.test"),
			sniNames("localhost"),
			sniNames("*.internal"),
		},
		want: map[string]string{
			"localhost":     "extra[0]",
			"LOCALHOST.":    "extra[0]",
			"db.internal":   "extra[1]",
			"internal":      "main",
			"a.db.internal": "main",
		},
	}, {
		name: "an extra stands in for main while main has no certificate",
		certs: []*sniCertSpec{
			nil,
			sniNames("a.example.com"),
			sniNames("b.example.com"),
		},
		want: map[string]string{
			"":              "extra[0]",
			"zzz.test":      "extra[0]",
			"b.example.com": "extra[1]",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, certs := sniServe(t, tt.certs...)
			for server, want := range tt.want {
				c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: server})
				if err != nil {
					t.Fatalf("GetCert(%q): %v", server, err)
				}
				if got := servedBy(p, certs, c); got != want {
					t.Errorf("GetCert(%q) = certificate of %s, want %s", server, got, want)
				}
				if err := sniCheckVerifies(certs, p.sni.snap.Load().main, server, c); err != nil {
					t.Error(err)
				}
			}
			c, err := p.GetCert(nil)
			if err != nil || c == nil || c != p.sni.snap.Load().main {
				t.Errorf("GetCert(nil) = %s, %v; want the main certificate", servedBy(p, certs, c), err)
			}
		})
	}
}

func TestGetCertNoCertificate(t *testing.T) {
	p := sniProvider(t, 2)
	for _, hello := range []*tls.ClientHelloInfo{nil, {}, {ServerName: "example.com"}} {
		c, err := p.GetCert(hello)
		if c != nil || !errors.Is(err, ErrNoCertificate) {
			t.Errorf("GetCert before any certificate = %v, %v; want nil, ErrNoCertificate", c, err)
		}
	}
}

// TestGetCertFollowsRenewal: when a certificate is replaced, its names go
// to the new one, names it no longer holds fall back, and the other
// certificates keep theirs.
func TestGetCertFollowsRenewal(t *testing.T) {
	key := sniKey(t)
	p, certs := sniServe(t, sniNames("example.com"), sniNames("old.example.com", "*.api.example.com"), sniNames("keep.example.com"))
	renewed := sniCert(t, key, "", "new.example.com", "*.api.example.com")
	p.certs[1].setCert(renewed)

	get := func(server string) *tls.Certificate {
		c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: server})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if get("new.example.com") != renewed || get("x.api.example.com") != renewed {
		t.Error("the renewed certificate does not answer for its names")
	}
	if get("old.example.com") != certs[0] {
		t.Error("a name the renewed certificate dropped is not answered by main")
	}
	if get("keep.example.com") != certs[2] {
		t.Error("another extra lost its name when extra[0] was renewed")
	}
}

// TestGetCertDoesNotAllocate: no server name, however written, costs an
// allocation.
func TestGetCertDoesNotAllocate(t *testing.T) {
	p, _ := sniServe(t, sniNames("example.com", "*.example.com"), sniNames("api.example.com", "*.api.example.com"))
	for _, server := range []string{
		"", "api.example.com", "x.api.example.com", "www.example.com", "miss.example.org",
		"API.Example.COM", "X.Api.EXAMPLE.com.", "api.example.com.", "192.0.2.1", "10.0.0.256",
		"[2001:db8::1]", "exa mple.com", strings.Repeat("a", 300),
	} {
		hello := &tls.ClientHelloInfo{ServerName: server}
		allocs := testing.AllocsPerRun(100, func() {
			if c, err := p.GetCert(hello); c == nil || err != nil {
				t.Fatalf("GetCert(%q) = %v, %v", server, c, err)
			}
		})
		if allocs != 0 {
			t.Errorf("GetCert(%q) allocates %v times", server, allocs)
		}
	}
}

// TestGetCertSwapUnderLoad: parallel real TLS handshakes over loopback
// while every certificate is replaced in a loop; each handshake completes
// and the client verifies the certificate against the name it asked for.
func TestGetCertSwapUnderLoad(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // only what this test starts
	specs := [][]string{
		{"example.com", "*.example.com"},
		{"api.example.com", "*.api.example.com"},
		{"other.test"},
	}
	servers := []string{"example.com", "www.example.com", "api.example.com", "v2.api.example.com", "other.test", "OTHER.test."}
	const versions = 3 // certificates each provider cycles through
	key := sniKey(t)
	p := sniProvider(t, len(specs)-1)
	roots := x509.NewCertPool()
	pool := make([][]*tls.Certificate, len(specs))
	for i, names := range specs {
		for range versions {
			c := sniCert(t, key, names[0], names...)
			roots.AddCert(c.Leaf)
			pool[i] = append(pool[i], c)
		}
		p.certs[i].setCert(pool[i][0])
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

	// The swapper replaces every certificate in turn until the clients are
	// done and it has made at least minSwaps swaps.
	const minSwaps = 200
	var swaps atomic.Int64
	clientsDone := make(chan struct{})
	var swapping sync.WaitGroup
	swapping.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-clientsDone:
				if swaps.Load() >= minSwaps {
					return
				}
			default:
			}
			for j, q := range p.certs {
				q.setCert(pool[j][i%versions])
				swaps.Add(1)
			}
		}
	})

	const clients, perClient = 4, 15
	errs := make(chan error, clients*perClient)
	var dialing sync.WaitGroup
	for k := range clients {
		dialing.Go(func() {
			for n := range perClient {
				server := servers[(k+n)%len(servers)]
				d := tls.Dialer{Config: &tls.Config{ServerName: server, RootCAs: roots}}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
				cancel()
				if err != nil {
					errs <- fmt.Errorf("handshake for %q: %w", server, err)
					continue
				}
				leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
				if err := leaf.VerifyHostname(server); err != nil {
					errs <- err
				}
				c.Close()
			}
		})
	}
	swapsBefore := swaps.Load()
	dialing.Wait()
	swapsDuring := swaps.Load() - swapsBefore
	close(clientsDone)
	swapping.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if swapsDuring == 0 {
		t.Errorf("no certificate was replaced while the handshakes ran")
	}
	t.Logf("%d handshakes, %d swaps during them", clients*perClient, swapsDuring)
}

// TestTLSConfig: the config serves through GetCert with TLS 1.2 at least
// and offers h2 then http/1.1.
func TestTLSConfig(t *testing.T) {
	p, certs := sniServe(t, sniNames("example.com"), sniNames("api.example.com"))
	cfg := p.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
	}
	if got := strings.Join(cfg.NextProtos, ","); got != "h2,http/1.1" {
		t.Errorf("NextProtos = %s, want h2,http/1.1", got)
	}
	c, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "api.example.com"})
	if err != nil || c != certs[1] {
		t.Errorf("GetCertificate(api.example.com) = certificate of %s, %v; want extra[0]", servedBy(p, certs, c), err)
	}
	cfg.NextProtos[0] = "changed"
	if p.TLSConfig().NextProtos[0] != "h2" {
		t.Error("changing a returned config changed the next one")
	}
}

// TestGetCertVerifiesLikeX509 serves random sets of certificates whose
// DNS names and common names come from a few labels, with wildcards,
// upper case and trailing dots, and asks GetCert for every name those
// labels make: each answer is what sniReference chooses, and passes
// sniCheckVerifies (a verifying client accepts every certificate GetCert
// chooses by name, and gets one whenever a configured certificate would
// verify).
func TestGetCertVerifiesLikeX509(t *testing.T) {
	labels := []string{"a", "www"}
	hosts := []string{"example.com"}
	for range 2 {
		for _, h := range hosts {
			for _, l := range labels {
				if !slices.Contains(hosts, l+"."+h) {
					hosts = append(hosts, l+"."+h)
				}
			}
		}
	}
	var asks []string
	for _, h := range hosts {
		asks = append(asks, h, h+".", strings.ToUpper(h))
	}
	r := mrand.New(mrand.NewPCG(9, 12))
	name := func() string {
		n := hosts[r.IntN(len(hosts))]
		if r.IntN(3) == 0 {
			n = "*." + n
		}
		if r.IntN(4) == 0 {
			n += "."
		}
		if r.IntN(4) == 0 {
			n = strings.ToUpper(n)
		}
		return n
	}

	const slots, rounds = 4, 300
	key := sniKey(t)
	p := sniProvider(t, slots-1)
	hits := 0
	for range rounds {
		certs := make([]*tls.Certificate, slots)
		for i, q := range p.certs {
			if r.IntN(6) > 0 {
				var names []string
				for range r.IntN(4) {
					names = append(names, name())
				}
				cn := ""
				if r.IntN(2) == 0 {
					cn = name()
				}
				certs[i] = sniCert(t, key, cn, names...)
			}
			q.setCert(certs[i])
		}
		for _, server := range asks {
			got, err := p.GetCert(&tls.ClientHelloInfo{ServerName: server})
			if errors.Is(err, ErrNoCertificate) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := sniReference(certs, server); got != want {
				t.Fatalf("GetCert(%q) chose certificate %d, reference %d", server, slices.Index(certs, got), slices.Index(certs, want))
			}
			if err := sniCheckVerifies(certs, p.sni.snap.Load().main, server, got); err != nil {
				t.Fatal(err)
			}
			if got.Leaf.VerifyHostname(server) == nil {
				hits++
			}
		}
	}
	// The workload is what it says: many asks find a certificate.
	t.Logf("%d of %d asks got a certificate that verifies", hits, rounds*len(asks))
	if hits < rounds*len(asks)/4 {
		t.Errorf("only %d of %d asks got a certificate that verifies", hits, rounds*len(asks))
	}
}

// sniHostName is what a host name looks like to crypto/x509 (ASCII
// letters, digits, '_', and '-' not first, in non-empty labels), written
// independently of hostKey.
var sniHostName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$`)

// sniAskable returns server without one trailing dot, and whether it is
// a server name GetCert looks up: a host name of at most 253 bytes that is
// not an IP address. GetCert answers any other with the main certificate.
func sniAskable(server string) (string, bool) {
	h := strings.TrimSuffix(server, ".")
	return h, len(h) <= 253 && net.ParseIP(h) == nil && sniHostName.MatchString(h)
}

// sniReference is the brute-force answer GetCert must give: it walks the
// certificates in configured order and lets crypto/x509 decide whether a
// certificate fits, first by its exact DNS names, then by its wildcards;
// else the main certificate. Like a verifying client, it ignores the
// common name and reads the DNS names as they are written, so that one
// with a trailing dot matches no host name. On top of VerifyHostname it
// applies GetCert's own rules: one trailing dot of the server name is
// ignored, and a server name that sniAskable refuses gets the main
// certificate.
func sniReference(certs []*tls.Certificate, server string) *tls.Certificate {
	var main *tls.Certificate
	for _, c := range certs {
		if c != nil {
			main = c
			break
		}
	}
	h, ok := sniAskable(server)
	if !ok {
		return main
	}
	for _, wildcard := range []bool{false, true} {
		for _, c := range certs {
			if c == nil {
				continue
			}
			var names []string
			for _, n := range c.Leaf.DNSNames {
				if strings.HasPrefix(n, "*.") == wildcard {
					names = append(names, n)
				}
			}
			if (&x509.Certificate{DNSNames: names}).VerifyHostname(h) == nil {
				return c
			}
		}
	}
	return main
}

// sniCheckVerifies checks got, GetCert's answer for server among certs
// (main being the default answer), against what a verifying client
// accepts, as crypto/x509 decides it: a certificate other than main
// verifies for server; and when server is a name GetCert looks up and some
// certificate verifies for it, got verifies for it too.
func sniCheckVerifies(certs []*tls.Certificate, main *tls.Certificate, server string, got *tls.Certificate) error {
	if got != main {
		if err := got.Leaf.VerifyHostname(server); err != nil {
			return fmt.Errorf("server name %q: certificate %d chosen though it does not verify: %w", server, slices.Index(certs, got), err)
		}
	}
	h, ok := sniAskable(server)
	if !ok || got.Leaf.VerifyHostname(h) == nil {
		return nil
	}
	for i, c := range certs {
		if c != nil && c.Leaf.VerifyHostname(h) == nil {
			return fmt.Errorf("server name %q: certificate %d chosen, which does not verify, though certificate %d does", server, slices.Index(certs, got), i)
		}
	}
	return nil
}

// FuzzSNI compares the matcher with sniReference, and checks each answer
// with sniCheckVerifies. spec lists the certificates in configured order,
// one a line, main first: DNS names separated by commas, "cn:" before the
// common name, a line "-" for a provider without a certificate. Besides
// server (as given, in upper case and with a trailing dot), it asks for
// names made from the certificates' own names and common names, so that
// random inputs often hit: each name, without its trailing dot, its
// wildcard filled with server's first label, and each name one label
// deeper.
func FuzzSNI(f *testing.F) {
	f.Fuzz(func(t *testing.T, spec, server string) {
		var certs []*tls.Certificate
		for i, line := range strings.Split(spec, "\n") {
			if i == 16 {
				break
			}
			if line == "-" {
				certs = append(certs, nil)
				continue
			}
			leaf := &x509.Certificate{}
			for _, n := range strings.Split(line, ",") {
				if cn, ok := strings.CutPrefix(n, "cn:"); ok {
					leaf.Subject.CommonName = cn
				} else {
					leaf.DNSNames = append(leaf.DNSNames, n)
				}
			}
			certs = append(certs, &tls.Certificate{Leaf: leaf})
		}
		s := newSNISnapshot(certs)
		// The same certificates served one change at a time, in another
		// order and after others, as the Provider's certificates publish:
		// the incremental index answers as the one built at once.
		var x sniIndex
		x.reset(make([]*tls.Certificate, len(certs)))
		for i := len(certs) - 1; i >= 0; i-- {
			x.set(i, certs[(i+1)%len(certs)])
		}
		for i := range certs {
			x.set(i, certs[i])
		}
		inc := x.snap.Load()

		label, _, _ := strings.Cut(server, ".")
		asks := []string{server, strings.ToUpper(server), server + "."}
		for _, c := range certs {
			if c == nil {
				continue
			}
			for _, n := range append(slices.Clone(c.Leaf.DNSNames), c.Leaf.Subject.CommonName) {
				if len(asks) > 200 {
					break
				}
				asks = append(asks, n, strings.TrimSuffix(n, "."), label+"."+n)
				if rest, ok := strings.CutPrefix(n, "*"); ok {
					asks = append(asks, label+rest, label+strings.TrimSuffix(rest, "."))
				}
			}
		}
		for _, name := range asks {
			got, want := s.match(name), sniReference(certs, name)
			if got != want {
				t.Fatalf("server name %q: matcher chose certificate %d, reference %d", name, slices.Index(certs, got), slices.Index(certs, want))
			}
			if inc := inc.match(name); inc != got {
				t.Fatalf("server name %q: the index changed one certificate at a time chose certificate %d, the one built at once %d", name, slices.Index(certs, inc), slices.Index(certs, got))
			}
			if got == nil {
				continue // no certificate at all
			}
			if err := sniCheckVerifies(certs, s.main, name, got); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// setCert serves cert for c, as an obtain or a reload does.
func (c *certificate) setCert(cert *tls.Certificate) {
	c.serveMu.Lock()
	defer c.serveMu.Unlock()
	c.publishLocked(cert)
}

// newSNISnapshot indexes the names of certs, given in configured order
// (main first; nil for a provider without a certificate). The main
// certificate is certs[0], or the first certificate present when main has
// none yet. Where two certificates hold the same name, the first keeps it.
func newSNISnapshot(certs []*tls.Certificate) *sniSnapshot {
	var x sniIndex
	x.reset(certs)
	return x.snap.Load()
}
