package provider_test

// Regression tests for the defects found when autocert ran on real
// installations (issue "Right on real installations").

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/rs/zerolog"
)

// TestExtraKeyTypeOnSharedAccount: an extra on the main block's CA and
// account, with a key type of its own, is ordered with that key type, and
// the next start finds nothing to order.
func TestExtraKeyTypeOnSharedAccount(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "example.com")
	cfg.CertificateKeyType = "EC256"
	cfg.Extra = []autocert.ConfigExtra{{
		Domains:            []string{"rsa.example.com"},
		CertPath:           filepath.Join(dir, "rsa.crt"),
		KeyPath:            filepath.Join(dir, "rsa.key"),
		CertificateKeyType: "RSA2048",
	}}
	var logs syncbuf.Buffer
	p := newProvider(t, cfg, autocert.WithLogger(zerolog.New(&logs)))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	if ca.Accounts() != 1 {
		t.Fatalf("%d accounts, want the main block's one", ca.Accounts())
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "rsa.crt"), filepath.Join(dir, "rsa.key"))
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := pair.PrivateKey.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("extra's key is %T, want an RSA 2048 key", pair.PrivateKey)
	}
	if _, ok := served(t, p, ca.Roots(), "rsa.example.com").PublicKey.(*rsa.PublicKey); !ok {
		t.Error("the extra's served certificate has no RSA key")
	}
	orders := len(ca.Orders())
	p2 := newProvider(t, cfg, autocert.WithLogger(zerolog.New(&logs)))
	if err := p2.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	if n := len(ca.Orders()) - orders; n != 0 {
		t.Errorf("a second start sent %d orders, want none", n)
	}
	if strings.Contains(logs.String(), "differs from configured") {
		t.Errorf("a stored certificate was found not to match:\n%s", logs.String())
	}
}

// TestRestartLoopAfterRateLimit: after the CA answered rateLimited with a
// Retry-After of a day, 30 starts in a loop (each also starting and
// stopping the scheduler, as a service restarted by its manager does)
// send no order and say until when and why; a start with a changed
// configuration orders at once; ObtainAll with force and ForceExpiryAll
// override the wait.
func TestRestartLoopAfterRateLimit(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "limited.example.com")
	ca.FailOrders(1, acmetest.Problem{Type: "rateLimited", Detail: "too many new orders", RetryAfter: 24 * time.Hour})
	clock := &offsetClock{}
	if err := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.Nop())).ObtainCertIfNotExistsAll(); !errors.Is(err, autocert.ErrObtain) {
		t.Fatalf("first start: %v, want the rate limit", err)
	}
	if n := len(ca.Orders()); n != 1 {
		t.Fatalf("%d orders at the first start, want 1", n)
	}
	_, fields := failureRecord(t, dir)
	retryAt, perr := time.Parse(time.RFC3339, fields["retry_at"])
	if perr != nil || retryAt.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("record %v, want a retry a day later", fields)
	}

	for i := range 30 {
		clock.offset = time.Duration(i+1) * 20 * time.Second // past the 15 s rule
		var logs syncbuf.Buffer
		p := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.New(&logs)))
		err := p.ObtainCertIfNotExistsAll()
		if !errors.Is(err, autocert.ErrCoolingDown) {
			t.Fatalf("start %d: %v, want ErrCoolingDown", i+1, err)
		}
		if i == 0 {
			for _, want := range []string{retryAt.UTC().Format(time.RFC3339), "too many new orders", "force"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("start %d: %q does not say %q", i+1, err, want)
				}
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		p.ScheduleRenewalAll(autocert.ContextParent(ctx))
		eventually(t, "the scheduler planned the certificate", func() bool {
			return !p.RenewalStatus()[0].NextRenewal.IsZero()
		})
		if st := p.RenewalStatus()[0]; !st.NextRenewal.Equal(retryAt) {
			t.Errorf("start %d: next renewal %v, want the persisted retry time %v", i+1, st.NextRenewal, retryAt)
		}
		cancel()
		stopped(t, p)
	}
	if n := len(ca.Orders()); n != 1 {
		t.Fatalf("30 restarts inside the wait: %d orders in all, want 1", n)
	}

	// A user who fixed the config (here: another name) retries at once.
	changed := caConfig(ca, dir, "limited.example.com", "www.limited.example.com")
	p := newProvider(t, changed, autocert.WithClock(clock), autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatalf("start with a changed config: %v", err)
	}
	if n := ca.OrderCount("limited.example.com", "www.limited.example.com"); n != 1 {
		t.Errorf("changed config: %d orders, want 1", n)
	}
	noFailureRecord(t, dir)

	// With the first config back, after a new rate limit, the explicit
	// override still orders.
	ca.FailOrders(1, acmetest.Problem{Type: "rateLimited", Detail: "again", RetryAfter: 24 * time.Hour})
	p = newProvider(t, cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); !errors.Is(err, autocert.ErrObtain) {
		t.Fatalf("second rate limit: %v", err)
	}
	clock.offset += time.Minute
	p = newProvider(t, cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); !errors.Is(err, autocert.ErrCoolingDown) {
		t.Fatalf("start inside the new wait: %v", err)
	}
	orders := len(ca.Orders())
	if err := p.ObtainAll(context.Background(), true); err != nil {
		t.Fatalf("ObtainAll with force: %v", err)
	}
	if n := len(ca.Orders()) - orders; n != 1 {
		t.Errorf("ObtainAll with force: %d orders, want 1", n)
	}
	noFailureRecord(t, dir)
	if err := p.ObtainAll(context.Background(), true); err != nil || len(ca.Orders())-orders != 1 {
		t.Errorf("ObtainAll with force and a certificate that fits: %v, %d orders; want nothing done", err, len(ca.Orders())-orders-1)
	}

	// ForceExpiryAll renews it whatever the records say.
	ca.FailOrders(1, acmetest.Problem{Type: "rateLimited", Detail: "and again", RetryAfter: 24 * time.Hour})
	if !p.ForceExpiryAll() {
		t.Fatal("ForceExpiryAll refused")
	}
	waitRenewal(t, p)
	if st := p.RenewalStatus()[0]; st.Forced == nil || st.Forced.Err == nil {
		t.Fatalf("forced renewal against a rate limit: %+v", st.Forced)
	}
	orders = len(ca.Orders())
	if !p.ForceExpiryAll() {
		t.Fatal("ForceExpiryAll refused")
	}
	waitRenewal(t, p)
	if n := len(ca.Orders()) - orders; n != 1 {
		t.Errorf("forced: %d orders, want 1", n)
	}
	if st := p.RenewalStatus()[0]; st.Forced == nil || st.Forced.Err != nil {
		t.Errorf("forced renewal: %+v", st.Forced)
	}
	if served(t, p, ca.Roots(), "limited.example.com") == nil {
		t.Fatal("nothing served")
	}
	noFailureRecord(t, dir)
}

// TestAdoptedCertificateClearsUnfinishedRecord: a process that died after
// storing its certificate but before removing the record of its attempt
// leaves an "attempt did not finish" record. The next start adopts the
// certificate and clears the record: the certificate shows no failure, and
// the next attempt counts as the first, not the second in a row (which
// would refuse the next start and plan the retry 2 hours later).
func TestAdoptedCertificateClearsUnfinishedRecord(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	records := func() []string { m, _ := filepath.Glob(filepath.Join(dir, ".autocert_failure-*")); return m }
	var during []string // the record's detail as each order began
	name := registerWrapped(t, ca, func(p challenge.Provider) challenge.Provider {
		return presentHook{p, func() {
			for _, r := range records() {
				data, _ := os.ReadFile(r)
				during = append(during, string(data))
			}
		}}
	})
	cfg := caConfig(ca, dir, "crash.example.com")
	cfg.Provider, cfg.Options = name, nil
	if err := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop())).ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	// What the interrupted process left: the record it wrote before its
	// order, older than the certificate it stored.
	record := filepath.Join(dir, ".last_failure-"+recordHash(cfg))
	started := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	unfinished := started.Format(time.RFC3339) + "\nattempts: 1\nerror: attempt did not finish\n"
	if err := os.WriteFile(record, []byte(unfinished), 0o600); err != nil {
		t.Fatal(err)
	}
	old := started.Add(-time.Minute)
	if err := os.Chtimes(record, old, old); err != nil {
		t.Fatal(err)
	}

	p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	noFailureRecord(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	scheduleUntil(t, p, ctx, cancel)
	eventually(t, "the scheduler planned the certificate", func() bool {
		return !p.RenewalStatus()[0].NextRenewal.IsZero()
	})
	if st := p.RenewalStatus()[0]; st.Failures != 0 || st.LastError != "" || !st.LastFailure.IsZero() {
		t.Errorf("a healthy certificate shows a failure: %+v", st)
	}

	// The next order is the first attempt since the success.
	during = nil
	if !p.ForceExpiryAll() {
		t.Fatal("ForceExpiryAll refused")
	}
	waitRenewal(t, p)
	if len(during) != 1 || !strings.Contains(during[0], "attempts: 1\n") {
		t.Errorf("record during the next order: %q, want one counting 1 attempt", during)
	}
	noFailureRecord(t, dir)
}

// recordHash is the hash in the name of cfg's last-failure record.
func recordHash(cfg *autocert.Config) string {
	sum := sha256.Sum256([]byte(cfg.CertPath + "|" + cfg.KeyPath))
	return hex.EncodeToString(sum[:6])
}

// TestFileModes: the last-failure record holds error text and is 0600;
// the directory autocert creates for the certificates (the account key
// is created first) is 0755, so the 0644 certificate is readable by
// other users, whatever the umask; keys stay 0600.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	ca := acmetest.New(t)
	dir := filepath.Join(t.TempDir(), "certs")
	cfg := caConfig(ca, dir, "modes.example.com")
	ca.FailOrders(1, acmetest.Problem{Type: "serverInternal", Detail: "later"})
	if err := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop())).ObtainCertIfNotExistsAll(); err == nil {
		t.Fatal("the first order succeeded")
	}
	m, _ := filepath.Glob(filepath.Join(dir, ".last_failure-*"))
	if len(m) != 1 {
		t.Fatalf("records %v", m)
	}
	wantMode(t, m[0], 0o600)
	p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if !p.ForceExpiryAll() {
		t.Fatal("ForceExpiryAll refused")
	}
	waitRenewal(t, p)
	if st := p.RenewalStatus()[0]; st.Forced == nil || st.Forced.Err != nil {
		t.Fatalf("forced renewal: %+v", st.Forced)
	}
	wantMode(t, dir, 0o755|os.ModeDir)
	wantMode(t, cfg.CertPath, 0o644)
	wantMode(t, cfg.KeyPath, 0o600)
	wantMode(t, cfg.ACMEKeyPath, 0o600)
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
	}
}
