package interop_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

// TestIssuerFallbackToStepCA: a certificate with two issuers, the embedded
// CA first and step-ca second. While the embedded CA is offline, the
// order goes to step-ca in the same attempt: the files and the handshake
// hold a chain to step-ca's root, and the status names step-ca as the CA
// and the embedded CA's failure. The pre-flight check then warns about
// the embedded CA (orders fall back) and finds the account at step-ca
// (looked up without creating one). Once the embedded CA is back, a
// forced renewal goes to it again, and step-ca hears of no other order.
func TestIssuerFallbackToStepCA(t *testing.T) {
	dns, ca, dir := newStepCA(t)
	const name = "fallback.stepca.test"
	certs := filepath.Join(dir, "certs")
	cfg := stepcaConfig(dns, ca, provACME, certs, name)
	stepURL := cfg.CADirURL
	cfg.Issuers = []autocert.Issuer{
		{CADirURL: dns.DirectoryURL(), CACerts: []string{dns.CACertFile()}, ACMEKeyPath: filepath.Join(certs, "embedded.key")},
		{CADirURL: stepURL, CACerts: cfg.CACerts, ACMEKeyPath: cfg.ACMEKeyPath},
	}
	cfg.CADirURL, cfg.CACerts, cfg.ACMEKeyPath = "", nil, ""

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dns.SetOffline(true)
	var logs syncbuf.Buffer
	p, err := autocert.New(ctx, cfg, autocert.WithLogger(zerolog.New(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.ObtainAll(ctx, false); err != nil {
		t.Fatalf("ObtainAll with the first issuer offline: %v\nlog:\n%s", err, logs.String())
	}
	leaf := verifyChain(t, cfg.CertPath, ca.pki.roots(), name)
	if got := served(t, p, ca.pki.roots(), name); !got.Equal(leaf) {
		t.Errorf("handshake serves serial %x, the file holds step-ca's %x", got.SerialNumber, leaf.SerialNumber)
	}
	if n := loggedOrders(ca); n != 1 {
		t.Errorf("step-ca logged %d orders created, want 1", n)
	}
	if n := len(dns.Orders()); n != 0 {
		t.Errorf("the offline embedded CA recorded %d orders", n)
	}
	st := p.RenewalStatus()
	if len(st) != 1 || st[0].CA != stepURL {
		t.Fatalf("status %+v: want step-ca (%s) as the CA", st, stepURL)
	}

	// The pre-flight check on the same config and files.
	report, err := autocert.Check(ctx, cfg, autocert.WithLogger(zerolog.Nop()), autocert.WithCheckTimeout(time.Minute))
	if err != nil {
		t.Fatalf("Check: %v\nsteps: %v", err, report.Steps)
	}
	var dirs, accounts []autocert.CheckStep
	for _, s := range report.Steps {
		switch s.Step {
		case autocert.CheckStepDirectory:
			dirs = append(dirs, s)
		case autocert.CheckStepAccount:
			accounts = append(accounts, s)
		}
	}
	if len(dirs) != 2 || dirs[0].Verdict != autocert.CheckWarn || dirs[1].Verdict != autocert.CheckOK {
		t.Errorf("directory steps %v: want the offline embedded CA a warning, step-ca ok", dirs)
	}
	if len(accounts) != 1 || !strings.Contains(accounts[0].Detail, "found: ") || !strings.Contains(accounts[0].Detail, "issuers[1]") {
		t.Errorf("account steps %v: want step-ca's account found", accounts)
	}
	if n := loggedOrders(ca); n != 1 {
		t.Errorf("the check sent an order to step-ca (%d orders created in its log)", n)
	}

	// Back online: the next renewal starts from the first issuer again.
	dns.SetOffline(false)
	if err := p.RenewAll(ctx); err != nil {
		t.Fatalf("RenewAll: %v\nlog:\n%s", err, logs.String())
	}
	leaf2 := verifyChain(t, cfg.CertPath, dns.Roots(), name)
	if got := served(t, p, dns.Roots(), name); !got.Equal(leaf2) {
		t.Errorf("after the renewal the handshake serves serial %x, want the embedded CA's %x", got.SerialNumber, leaf2.SerialNumber)
	}
	if st := p.RenewalStatus(); len(st) != 1 || st[0].CA != dns.DirectoryURL() || len(st[0].CAErrors) != 0 {
		t.Errorf("status after the renewal %+v: want the embedded CA, no errors", st)
	}
	if n := loggedOrders(ca); n != 1 {
		t.Errorf("step-ca logged %d orders created after the renewal, want still 1", n)
	}
}

// loggedOrders counts the orders step-ca created, from its request log (a
// Provider made with New cannot be tracked as startProvider tracks one).
// The log line is written once step-ca has answered: it is surely written
// by the time the order's later requests are answered, which is when
// this is called.
func loggedOrders(ca *stepCA) int {
	n := 0
	for _, line := range strings.Split(ca.log.String(), "\n") {
		if strings.Contains(line, `"path":"/acme/`+provACME+`/new-order"`) && strings.Contains(line, `"status":201`) {
			n++
		}
	}
	return n
}
