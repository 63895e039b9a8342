package provider_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

// TestInitialSetupFromYAML follows the seed's "Initial Setup" flow on a YAML
// file: a wildcard and its apex are obtained through real DNS-01, written
// with the right modes, and served by SNI with a chain the CA's root
// verifies.
func TestInitialSetupFromYAML(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	path := configYAML(t, ca, dir, "example.com", "*.example.com")

	var logs syncbuf.Buffer
	logger := zerolog.New(&logs).Level(zerolog.DebugLevel)

	// The seed's flow, as written (ScheduleRenewalAll comes with renewal).
	autocertCfg, err := autocert.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	user, legoCfg, err := autocertCfg.GetLegoConfig()
	if err != nil {
		t.Fatal(err)
	}
	provider, err := autocert.NewProvider(autocertCfg, user, legoCfg, autocert.WithLogger(logger))
	if err != nil {
		t.Fatalf("autocert error: %v", err)
	}
	if err := provider.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatalf("failed to obtain certificates: %v", err)
	}
	provider.PrintCertExpiriesAll()

	certPath := filepath.Join(dir, "certs", "cert.crt")
	keyPath := filepath.Join(dir, "certs", "priv.key")
	for path, mode := range map[string]os.FileMode{
		certPath: 0o644, keyPath: 0o600, filepath.Join(dir, "certs", "acme.key"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("expected file: %v", err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), mode)
		}
	}

	chain := readChain(t, certPath)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, name := range []string{"example.com", "www.example.com", "anything.example.com"} {
		if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Roots(), Intermediates: inter}); err != nil {
			t.Errorf("file chain does not verify for %s: %v", name, err)
		}
		leaf := served(t, provider, ca.Roots(), name)
		if !leaf.Equal(chain[0]) {
			t.Errorf("%s: handshake served serial %x, file holds %x", name, leaf.SerialNumber, chain[0].SerialNumber)
		}
	}
	if ca.Accounts() != 1 || ca.OrderCount("example.com", "*.example.com") != 1 {
		t.Errorf("CA saw %d accounts and %d orders, want 1 and 1", ca.Accounts(), ca.OrderCount("example.com", "*.example.com"))
	}
	infos, err := provider.GetCertInfos()
	if err != nil || len(infos) != 1 || infos[0].Provider != "main" || len(infos[0].DNSNames) != 2 {
		t.Errorf("GetCertInfos = %+v, %v", infos, err)
	}
	out := logs.String()
	for _, want := range []string{"certificate obtained", "certificate expiry"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	token := ca.ProviderOptions()[acmetest.OptionAPIToken].Value()
	if strings.Contains(out, token) {
		t.Errorf("the DNS API token appears in the log")
	}
	if _, err := os.Stat(filepath.Join(dir, "certs")); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "certs", ".last_failure-*")); len(m) != 0 {
		t.Errorf("last-failure record left after success: %v", m)
	}
}

// TestSecondStartContactsNobody: a restart with the files in place creates
// no account and sends no order; changing the domains orders again.
func TestSecondStartContactsNobody(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	path := configYAML(t, ca, dir, "example.com", "*.example.com")
	first, err := start(t, path)
	if err != nil {
		t.Fatal(err)
	}
	serial := served(t, first, ca.Roots(), "example.com").SerialNumber

	second, err := start(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := served(t, second, ca.Roots(), "example.com").SerialNumber; got.Cmp(serial) != 0 {
		t.Errorf("second start serves serial %x, want the stored %x", got, serial)
	}
	if a, o := ca.Accounts(), len(ca.Orders()); a != 1 || o != 1 {
		t.Errorf("after a second start the CA saw %d accounts and %d orders, want 1 and 1", a, o)
	}

	path = configYAML(t, ca, dir, "example.com", "*.example.com", "example.org")
	third, err := start(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if n := ca.OrderCount("example.com", "*.example.com", "example.org"); n != 1 {
		t.Errorf("changed domains: %d orders for the new set, want 1", n)
	}
	if a := ca.Accounts(); a != 1 {
		t.Errorf("changed domains created a new account (%d accounts)", a)
	}
	leaf := served(t, third, ca.Roots(), "example.org")
	if leaf.VerifyHostname("example.org") != nil {
		t.Errorf("example.org not served after the domains changed")
	}
}

// offsetClock is the real clock moved forward by a settable offset.
type offsetClock struct{ offset time.Duration }

func (c *offsetClock) Now() time.Time { return time.Now().Add(c.offset) }
func (c *offsetClock) NewTimer(d time.Duration) autocert.Timer {
	return realTimer{time.NewTimer(d)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// TestFailureCooldownAtStartup: a failed order leaves a last-failure record;
// a start within 15 s of it, or before its retry time, sends no order and
// says until when; a start after the retry time orders again and a
// success removes the record.
func TestFailureCooldownAtStartup(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	path := configYAML(t, ca, dir, "example.com")
	ca.FailOrders(1, acmetest.Problem{Type: "serverInternal", Detail: "the CA is having a bad day"})

	clock := &offsetClock{}
	_, err := start(t, path, autocert.WithClock(clock))
	if !errors.Is(err, autocert.ErrObtain) || !strings.Contains(err.Error(), "bad day") || !strings.HasPrefix(err.Error(), "main: ") {
		t.Fatalf("first start: %v, want the CA's problem, wrapped in ErrObtain and naming main", err)
	}
	records, _ := filepath.Glob(filepath.Join(dir, "certs", ".last_failure-*"))
	if len(records) != 1 {
		t.Fatalf("last-failure records: %v, want one", records)
	}
	data, _ := os.ReadFile(records[0])
	firstLine, _, _ := strings.Cut(string(data), "\n")
	if _, err := time.Parse(time.RFC3339, firstLine); err != nil {
		t.Errorf("record's first line %q is not an RFC 3339 time", firstLine)
	}

	orders := len(ca.Orders())
	_, err = start(t, path, autocert.WithClock(clock))
	if !errors.Is(err, autocert.ErrCoolingDown) || !strings.Contains(err.Error(), "not retrying before") {
		t.Fatalf("restart within 15 s: %v, want ErrCoolingDown saying until when", err)
	}
	if len(ca.Orders()) != orders {
		t.Fatalf("restart within 15 s sent an order")
	}

	// Past the 15 s rule, a start still waits for the retry time of the
	// record (an hour after a first failure), as a process that kept
	// running would.
	clock.offset = 16 * time.Second
	_, err = start(t, path, autocert.WithClock(clock))
	if !errors.Is(err, autocert.ErrCoolingDown) || !strings.Contains(err.Error(), "bad day") {
		t.Fatalf("restart after 16 s: %v, want ErrCoolingDown until the retry time, saying why", err)
	}
	if len(ca.Orders()) != orders {
		t.Fatalf("restart inside the back-off sent an order")
	}

	clock.offset = time.Hour + time.Second
	p, err := start(t, path, autocert.WithClock(clock))
	if err != nil {
		t.Fatalf("start after the retry time: %v", err)
	}
	served(t, p, ca.Roots(), "example.com")
	if records, _ := filepath.Glob(filepath.Join(dir, "certs", ".last_failure-*")); len(records) != 0 {
		t.Errorf("success left the record %v", records)
	}
}

// TestEABRequired: a CA that requires External Account Binding registers
// with the configured kid/HMAC and refuses a config without them.
func TestEABRequired(t *testing.T) {
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	ca := acmetest.New(t, acmetest.WithEAB(kid, hmac))
	dir := t.TempDir()

	cfg := ca.Config("example.com")
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "a-acme.key")
	if cfg.EABKid != kid || cfg.EABHmac.Value() != hmac {
		t.Fatalf("acmetest config lacks the EAB key")
	}
	var logs syncbuf.Buffer
	p := newProvider(t, cfg, autocert.WithLogger(zerolog.New(&logs).Level(zerolog.DebugLevel)))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatalf("with EAB: %v", err)
	}
	served(t, p, ca.Roots(), "example.com")
	if strings.Contains(logs.String(), hmac) {
		t.Error("the EAB HMAC appears in the log")
	}

	cfg = ca.Config("example.com")
	cfg.EABKid, cfg.EABHmac = "", ""
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "b-acme.key")
	err := newProvider(t, cfg).ObtainCertIfNotExistsAll()
	if err == nil || !strings.Contains(err.Error(), "externalAccountRequired") {
		t.Fatalf("without EAB: %v, want the CA's externalAccountRequired problem", err)
	}
	if strings.Contains(err.Error(), hmac) {
		t.Error("the EAB HMAC appears in an error")
	}
}

func newProvider(t *testing.T, cfg *autocert.Config, opts ...autocert.Option) *autocert.Provider {
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

// TestCorruptAccountKeyIsNeverReplaced: an account key that does not parse
// stops the start with an error naming it, and the file is left as it was.
func TestCorruptAccountKeyIsNeverReplaced(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	path := configYAML(t, ca, dir, "example.com")
	keyPath := filepath.Join(dir, "certs", "acme.key")
	garbage := []byte("-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n")
	os.MkdirAll(filepath.Dir(keyPath), 0o700)
	if err := os.WriteFile(keyPath, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := autocert.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = cfg.GetLegoConfig()
	if !errors.Is(err, autocert.ErrAccountKey) || !strings.Contains(err.Error(), keyPath) {
		t.Fatalf("GetLegoConfig with a corrupt key: %v, want ErrAccountKey naming %s", err, keyPath)
	}
	if got, _ := os.ReadFile(keyPath); !bytes.Equal(got, garbage) {
		t.Fatal("the corrupt account key file was changed")
	}
	if ca.Accounts() != 0 {
		t.Fatal("an account was created")
	}
}

// TestConfigMistakesAreNamed: unknown provider, unset variable.
func TestConfigMistakesAreNamed(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "c.yml")
		os.WriteFile(p, []byte(text), 0o600)
		return p
	}
	_, err := autocert.LoadConfig(write("provider: acmetset\nemail: a@example.com\ndomains: [example.com]\n"))
	if !errors.Is(err, autocert.ErrUnknownProvider) || !strings.Contains(err.Error(), `did you mean "acmetest"`) && !strings.Contains(err.Error(), "did you mean acmetest") {
		t.Errorf("typo in provider: %v", err)
	}
	_, err = autocert.LoadConfig(write("provider: acmetest\nemail: a@example.com\ndomains: [example.com]\noptions:\n  api_url: ${AUTOCERT_TEST_SURELY_UNSET}\n  api_token: x\n"))
	if !errors.Is(err, autocert.ErrUnsetVariable) || !strings.Contains(err.Error(), "AUTOCERT_TEST_SURELY_UNSET") {
		t.Errorf("unset variable: %v", err)
	}
}
