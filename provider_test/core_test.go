package provider_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/challenge"
)

// TestResolversArePerProvider: two Providers in one process, obtaining at
// the same time, each check propagation only with their own resolvers. One
// points at the test DNS server and succeeds; the other at a port where
// nothing answers and fails, naming that resolver.
func TestResolversArePerProvider(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	good := ca.Config("good.example.com")
	good.CertPath, good.KeyPath, good.ACMEKeyPath = filepath.Join(dir, "g.crt"), filepath.Join(dir, "g.key"), filepath.Join(dir, "acme.key")
	bad := ca.Config("bad.example.com")
	bad.CertPath, bad.KeyPath, bad.ACMEKeyPath = filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key"), filepath.Join(dir, "acme.key")
	deadResolver := closedUDPPort(t)
	bad.Resolvers = []string{deadResolver}
	bad.Provider = registerWrapped(t, ca, func(p challenge.Provider) challenge.Provider { return shortTimeout{p} })
	bad.Options = nil

	pg, pb := newProvider(t, good), newProvider(t, bad)
	var wg sync.WaitGroup
	var errGood, errBad error
	wg.Go(func() { errGood = pg.ObtainCertIfNotExistsAll() })
	wg.Go(func() { errBad = pb.ObtainCertIfNotExistsAll() })
	wg.Wait()
	if errGood != nil {
		t.Errorf("provider with the working resolver: %v", errGood)
	}
	if errBad == nil || !strings.Contains(errBad.Error(), deadResolver) {
		t.Errorf("provider with a dead resolver: %v, want an error naming %s", errBad, deadResolver)
	}
	served(t, pg, ca.Roots(), "good.example.com")
}

// closedUDPPort returns a loopback address where no DNS server listens.
func closedUDPPort(t *testing.T) string {
	t.Helper()
	c, err := netListenUDP()
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// registerWrapped registers, under a name unique to this call, a DNS
// provider that is ca's own wrapped by wrap, and returns the name.
func registerWrapped(t *testing.T, ca *acmetest.Server, wrap func(challenge.Provider) challenge.Provider) string {
	t.Helper()
	p := wrap(ca.DNSProvider())
	name := fmt.Sprintf("wrapped-%s-%p", strings.ToLower(t.Name()), p)
	autocert.RegisterProvider(name, autocert.DNSProviderFunc(func(autocert.Options) (challenge.Provider, error) {
		return p, nil
	}))
	return name
}

// presentHook runs a function before each Present of a provider.
type presentHook struct {
	challenge.Provider
	before func()
}

func (h presentHook) Present(domain, token, keyAuth string) error {
	h.before()
	return h.Provider.Present(domain, token, keyAuth)
}

// Timeout keeps the wrapped provider's propagation timing.
func (h presentHook) Timeout() (timeout, interval time.Duration) {
	return h.Provider.(challenge.ProviderTimeout).Timeout()
}

// shortTimeout gives up on propagation after a second.
type shortTimeout struct{ challenge.Provider }

func (shortTimeout) Timeout() (timeout, interval time.Duration) {
	return time.Second, 50 * time.Millisecond
}

// TestFailureRecordWrittenBeforeTheOrder: while an order runs, the
// certificate's last-failure record already exists, so that a crash in the
// middle of the order still counts as a failure at the next start; a
// success removes it.
func TestFailureRecordWrittenBeforeTheOrder(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	records := func() []string { m, _ := filepath.Glob(filepath.Join(dir, ".last_failure-*")); return m }
	var seen []int
	name := registerWrapped(t, ca, func(p challenge.Provider) challenge.Provider {
		return presentHook{p, func() { seen = append(seen, len(records())) }}
	})
	cfg := ca.Config("example.com")
	cfg.Provider, cfg.Options = name, nil
	cfg.CertPath, cfg.KeyPath, cfg.ACMEKeyPath = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), filepath.Join(dir, "acme.key")
	if err := newProvider(t, cfg).ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != 1 {
		t.Errorf("last-failure records present during the order: %v, want [1]", seen)
	}
	if m := records(); len(m) != 0 {
		t.Errorf("record left after success: %v", m)
	}
}

// TestLocalProvider serves files another tool maintains and names a
// missing file.
func TestLocalProvider(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := ca.Config("example.com")
	cfg.CertPath, cfg.KeyPath, cfg.ACMEKeyPath = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), filepath.Join(dir, "acme.key")
	if err := newProvider(t, cfg).ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	orders := len(ca.Orders())

	local := &autocert.Config{Provider: "local", CertPath: cfg.CertPath, KeyPath: cfg.KeyPath}
	p := newProvider(t, local)
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	served(t, p, ca.Roots(), "example.com")
	if len(ca.Orders()) != orders {
		t.Error("the local provider contacted the CA")
	}

	missing := &autocert.Config{Provider: "local", CertPath: filepath.Join(dir, "nope.crt"), KeyPath: cfg.KeyPath}
	err := newProvider(t, missing).ObtainCertIfNotExistsAll()
	if !errors.Is(err, autocert.ErrMissingCertificate) || !strings.Contains(err.Error(), "nope.crt") {
		t.Errorf("missing local file: %v, want ErrMissingCertificate naming nope.crt", err)
	}
}

// TestPseudoProvider makes a self-signed certificate for development and
// keeps it across restarts.
func TestPseudoProvider(t *testing.T) {
	dir := t.TempDir()
	cfg := &autocert.Config{Provider: "pseudo", Domains: []string{"dev.test", "*.dev.test"},
		CertPath: filepath.Join(dir, "c.crt"), KeyPath: filepath.Join(dir, "c.key")}
	p := newProvider(t, cfg)
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	c, err := p.GetCert(nil)
	if err != nil || c.Leaf.VerifyHostname("x.dev.test") != nil {
		t.Fatalf("pseudo certificate: %v", err)
	}
	p2 := newProvider(t, cfg)
	if err := p2.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	c2, _ := p2.GetCert(nil)
	if !c2.Leaf.Equal(c.Leaf) {
		t.Error("restart made a new self-signed certificate instead of loading the stored one")
	}
}
