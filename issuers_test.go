package autocert_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/rs/zerolog"
)

// issuerAt is an issuer entry for the embedded CA ca, its account key in
// dir under name.
func issuerAt(ca *acmetest.Server, dir, name string) autocert.Issuer {
	return autocert.Issuer{CADirURL: ca.DirectoryURL(), CACerts: []string{ca.CACertFile()},
		ACMEKeyPath: filepath.Join(dir, name+".key")}
}

// twoIssuers is a configuration for names that orders from first, then
// from second: its single-CA keys are moved into the issuers list.
func twoIssuers(t *testing.T, first, second *acmetest.Server, names ...string) *autocert.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := first.Config(names...)
	cfg.CADirURL, cfg.CACerts, cfg.EABKid, cfg.EABHmac = "", nil, "", ""
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	cfg.Issuers = []autocert.Issuer{issuerAt(first, dir, "acme1"), issuerAt(second, dir, "acme2")}
	return cfg
}

// eventLog records the events of a Provider.
type eventLog struct {
	mu     sync.Mutex
	events []autocert.Event
}

func (l *eventLog) Notify(_ context.Context, e autocert.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	return nil
}

func (l *eventLog) take() []autocert.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

// createdOrders counts the orders a CA created (refused ones left out).
func createdOrders(ca *acmetest.Server) int {
	n := 0
	for _, o := range ca.Orders() {
		if o.Problem == "" {
			n++
		}
	}
	return n
}

// TestIssuerFallback: with two issuers, an order that fails at the first
// CA for a reason of that CA (offline, rateLimited, serverInternal, an
// account it refuses) goes to the second in the same attempt, which
// issues; the status and the event name the CA that issued and the one
// that failed; the first CA creates no order and the second one order.
// Once the first CA is healthy, the next renewal goes back to it: one
// order there, none more at the second.
func TestIssuerFallback(t *testing.T) {
	const hmac = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY" // 32 bytes
	tests := []struct {
		name    string
		first   []acmetest.Option
		setup   func(cfg *autocert.Config) // changes the first issuer
		breakCA func(ca *acmetest.Server)
		healCA  func(ca *acmetest.Server) // nil: the first CA stays unusable
		errText string                    // in the first CA's error
	}{
		{
			name:    "first CA offline",
			breakCA: func(ca *acmetest.Server) { ca.SetOffline(true) },
			healCA:  func(ca *acmetest.Server) { ca.SetOffline(false) },
			errText: "ACME directory",
		},
		{
			name: "first CA rate-limits",
			breakCA: func(ca *acmetest.Server) {
				ca.FailOrders(1000, acmetest.Problem{Type: "rateLimited", Detail: "too many new orders"})
			},
			healCA:  func(ca *acmetest.Server) { ca.FailOrders(0, acmetest.Problem{}) },
			errText: "too many new orders",
		},
		{
			name: "first CA fails orders with serverInternal",
			breakCA: func(ca *acmetest.Server) {
				ca.FailOrders(1000, acmetest.Problem{Type: "serverInternal", Detail: "database unavailable"})
			},
			healCA:  func(ca *acmetest.Server) { ca.FailOrders(0, acmetest.Problem{}) },
			errText: "database unavailable",
		},
		{
			name:    "first CA requires EAB, none configured",
			first:   []acmetest.Option{acmetest.WithEAB("kid-1", hmac)},
			errText: "eab_kid and eab_hmac are required",
		},
		{
			name:  "first CA refuses the EAB key",
			first: []acmetest.Option{acmetest.WithEAB("kid-1", hmac)},
			setup: func(cfg *autocert.Config) {
				cfg.Issuers[0].EABKid, cfg.Issuers[0].EABHmac = "kid-unknown", hmac
			},
			errText: "registering ACME account",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca1, ca2 := acmetest.New(t, tt.first...), acmetest.New(t)
			names := []string{"fallback.example.com"}
			cfg := twoIssuers(t, ca1, ca2, names...)
			if tt.setup != nil {
				tt.setup(cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if tt.breakCA != nil {
				tt.breakCA(ca1)
			}
			events := &eventLog{}
			p, err := autocert.New(context.Background(), cfg, autocert.WithNotifier(events), autocert.WithLogger(zerolog.Nop()))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			if err := p.ObtainAll(ctx, false); err != nil {
				t.Fatalf("ObtainAll: %v", err)
			}
			if n := createdOrders(ca1); n != 0 {
				t.Errorf("the failing CA created %d orders", n)
			}
			if n := ca2.OrderCount(names...); n != 1 {
				t.Errorf("the second CA created %d orders, want 1", n)
			}
			st := p.RenewalStatus()[0]
			if st.CA != ca2.DirectoryURL() {
				t.Errorf("status CA = %q, want the second CA %s", st.CA, ca2.DirectoryURL())
			}
			var obtained *autocert.CertObtained
			for _, e := range events.take() {
				if o, ok := e.(*autocert.CertObtained); ok {
					obtained = o
				}
			}
			if obtained == nil {
				t.Fatal("no CertObtained event")
			}
			if obtained.CA != ca2.DirectoryURL() || len(obtained.CAErrors) != 1 || obtained.CAErrors[0].CA != ca1.DirectoryURL() ||
				!strings.Contains(obtained.CAErrors[0].Error, tt.errText) {
				t.Errorf("CertObtained: CA %q, failed %+v; want issued by %s after a failure at %s naming %q",
					obtained.CA, obtained.CAErrors, ca2.DirectoryURL(), ca1.DirectoryURL(), tt.errText)
			}
			if !strings.Contains(obtained.Message(), "CA: "+ca2.DirectoryURL()) {
				t.Errorf("message does not name the CA:\n%s", obtained.Message())
			}
			if strings.Contains(obtained.CAErrors[0].Error, hmac) {
				t.Error("the EAB HMAC key is in the event")
			}
			if _, err := os.Stat(cfg.Issuers[1].ACMEKeyPath); err != nil {
				t.Errorf("the second CA's account key: %v", err)
			}
			if tt.healCA == nil {
				return
			}

			tt.healCA(ca1)
			if err := p.RenewAll(ctx); err != nil {
				t.Fatalf("renewal with the first CA healthy: %v", err)
			}
			if n := ca1.OrderCount(names...); n != 1 {
				t.Errorf("the first CA created %d orders, want 1: the renewal starts from the first issuer", n)
			}
			if n := ca2.OrderCount(names...); n != 1 {
				t.Errorf("the second CA created %d orders, want still 1", n)
			}
			if ca1.Accounts() != 1 || ca2.Accounts() != 1 {
				t.Errorf("accounts: %d at the first CA, %d at the second; want one each", ca1.Accounts(), ca2.Accounts())
			}
			if st := p.RenewalStatus()[0]; st.CA != ca1.DirectoryURL() || len(st.CAErrors) != 0 {
				t.Errorf("status after the renewal: CA %q, errors %+v; want the first CA", st.CA, st.CAErrors)
			}
			for _, e := range events.take() {
				if r, ok := e.(*autocert.CertRenewed); ok && (r.CA != ca1.DirectoryURL() || len(r.CAErrors) != 0) {
					t.Errorf("CertRenewed: CA %q, failed %+v", r.CA, r.CAErrors)
				}
			}
			// Served, and issued by the first CA.
			if leaf := handshake(t, p, ca1.Roots(), names[0]); leaf.Issuer.CommonName != ca1.Intermediate().Subject.CommonName {
				t.Errorf("served a certificate issued by %q, want %q", leaf.Issuer.CommonName, ca1.Intermediate().Subject.CommonName)
			}
		})
	}
}

// TestIssuerValidationFailureStops: a failed validation of the names at
// the first CA (its resolver cannot see the challenge record) ends the
// attempt: it would fail at any CA, and the second CA is not asked. The
// failure record names the CA, and both the status and the event list
// the one CA that failed.
func TestIssuerValidationFailureStops(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	ca1 := acmetest.New(t, acmetest.WithValidationResolver(dead))
	ca2 := acmetest.New(t)
	cfg := twoIssuers(t, ca1, ca2, "novalid.example.com")
	events := &eventLog{}
	p, err := autocert.New(context.Background(), cfg, autocert.WithNotifier(events), autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.ObtainAll(context.Background(), false)
	if !errors.Is(err, autocert.ErrObtain) {
		t.Fatalf("ObtainAll = %v; want a failure", err)
	}
	if n := len(ca2.Orders()); n != 0 {
		t.Errorf("the second CA got %d orders after a validation failure", n)
	}
	if n := createdOrders(ca1); n != 1 {
		t.Errorf("the first CA created %d orders, want 1", n)
	}
	st := p.RenewalStatus()[0]
	if len(st.CAErrors) != 1 || st.CAErrors[0].CA != ca1.DirectoryURL() || !strings.Contains(st.LastError, ca1.DirectoryURL()) {
		t.Errorf("status: errors %+v, last error %q; want the first CA's failure alone", st.CAErrors, st.LastError)
	}
	var failed *autocert.RenewalFailed
	for _, e := range events.take() {
		if f, ok := e.(*autocert.RenewalFailed); ok {
			failed = f
		}
	}
	if failed == nil || len(failed.CAErrors) != 1 || failed.CAErrors[0].CA != ca1.DirectoryURL() {
		t.Fatalf("RenewalFailed = %+v", failed)
	}
}

// TestIssuersAllFail: when every issuer fails for a CA-side reason, the
// failure record, the status and the event name each CA with its error,
// in order, and a restart reads them back from the record.
func TestIssuersAllFail(t *testing.T) {
	ca1, ca2 := acmetest.New(t), acmetest.New(t)
	ca1.SetOffline(true)
	ca2.FailOrders(1000, acmetest.Problem{Type: "serverInternal", Detail: "second CA down for maintenance"})
	cfg := twoIssuers(t, ca1, ca2, "allfail.example.com")
	events := &eventLog{}
	p, err := autocert.New(context.Background(), cfg, autocert.WithNotifier(events), autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainAll(context.Background(), false); err == nil {
		t.Fatal("ObtainAll succeeded with both CAs failing")
	}
	check := func(when string, got []autocert.CAError) {
		t.Helper()
		if len(got) != 2 || got[0].CA != ca1.DirectoryURL() || got[1].CA != ca2.DirectoryURL() ||
			!strings.Contains(got[1].Error, "second CA down for maintenance") {
			t.Errorf("%s: CA errors %+v; want the first, then the second CA", when, got)
		}
	}
	st := p.RenewalStatus()[0]
	check("status", st.CAErrors)
	if !strings.Contains(st.LastError, "every issuer failed") {
		t.Errorf("last error %q", st.LastError)
	}
	for _, e := range events.take() {
		if f, ok := e.(*autocert.RenewalFailed); ok {
			check("event", f.CAErrors)
			if !strings.Contains(f.Message(), "Failed at "+ca2.DirectoryURL()) {
				t.Errorf("event message:\n%s", f.Message())
			}
		}
	}
	p.Close()

	p2, err := autocert.New(context.Background(), cfg, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	p2.LoadRenewalStatus(context.Background())
	check("status read from the record", p2.RenewalStatus()[0].CAErrors)
}

// TestIssuerConfigValidation: the ca names, the EAB requirement of the
// CAs known to need it, and the rules of the issuers list, checked before
// any network.
func TestIssuerConfigValidation(t *testing.T) {
	base := func() *autocert.Config {
		return &autocert.Config{Provider: "cfgtest-dns", Email: "a@example.com", Domains: []string{"example.com"},
			Options: autocert.Options{"api_token": "tok-0123456789"}}
	}
	tests := []struct {
		name    string
		edit    func(c *autocert.Config)
		wantErr []string // parts of the error; none for valid
		check   func(t *testing.T, c *autocert.Config)
	}{
		{name: "letsencrypt", edit: func(c *autocert.Config) { c.CA = "letsencrypt" },
			check: func(t *testing.T, c *autocert.Config) {
				if c.CADirURL != "https://acme-v02.api.letsencrypt.org/directory" || c.ACMEKeyPath != autocert.DefaultACMEKeyPath {
					t.Errorf("ca_dir_url %q, acme_key_path %q", c.CADirURL, c.ACMEKeyPath)
				}
			}},
		{name: "staging in any case", edit: func(c *autocert.Config) { c.CA = " LetsEncrypt-Staging " },
			check: func(t *testing.T, c *autocert.Config) {
				if c.CA != "letsencrypt-staging" || c.CADirURL != "https://acme-staging-v02.api.letsencrypt.org/directory" ||
					c.ACMEKeyPath == autocert.DefaultACMEKeyPath {
					t.Errorf("ca %q, ca_dir_url %q, acme_key_path %q", c.CA, c.CADirURL, c.ACMEKeyPath)
				}
			}},
		{name: "zerossl without EAB", edit: func(c *autocert.Config) { c.CA = "zerossl" },
			wantErr: []string{"eab_kid: required by zerossl", "app.zerossl.com/developer"}},
		{name: "zerossl by URL without EAB", edit: func(c *autocert.Config) { c.CADirURL = "https://acme.zerossl.com/v2/DV90" },
			wantErr: []string{"eab_kid: required by zerossl"}},
		{name: "google without EAB", edit: func(c *autocert.Config) { c.CA = "google" },
			wantErr: []string{"eab_kid: required by google", "gcloud publicca external-account-keys create"}},
		{name: "google-staging without EAB", edit: func(c *autocert.Config) { c.CA = "google-staging" },
			wantErr: []string{"eab_kid: required by google-staging"}},
		{name: "google with EAB", edit: func(c *autocert.Config) { c.CA, c.EABKid, c.EABHmac = "google", "kid", "aG1hYw" },
			check: func(t *testing.T, c *autocert.Config) {
				if c.CADirURL != "https://dv.acme-v02.api.pki.goog/directory" {
					t.Errorf("ca_dir_url %q", c.CADirURL)
				}
			}},
		{name: "buypass ended", edit: func(c *autocert.Config) { c.CA = "buypass" },
			wantErr: []string{`ca: unknown CA "buypass": use one of letsencrypt, letsencrypt-staging, zerossl, google, google-staging`}},
		{name: "ca and another ca_dir_url", edit: func(c *autocert.Config) { c.CA, c.CADirURL = "letsencrypt", "https://ca.example/dir" },
			wantErr: []string{"ca: set either ca or ca_dir_url, not both"}},
		{name: "issuers and ca_dir_url", edit: func(c *autocert.Config) {
			c.CADirURL, c.EABKid, c.EABHmac = "https://ca.example/dir", "kid", "aG1hYw"
			c.Issuers = []autocert.Issuer{{CA: "letsencrypt"}}
		}, wantErr: []string{"issuers: set either issuers or ca_dir_url, eab_kid, eab_hmac, not both"}},
		{name: "issuer without a CA", edit: func(c *autocert.Config) { c.Issuers = []autocert.Issuer{{CA: "letsencrypt"}, {Profile: "x"}} },
			wantErr: []string{"issuers[1].ca: required"}},
		{name: "issuer on zerossl without EAB", edit: func(c *autocert.Config) {
			c.Issuers = []autocert.Issuer{{CA: "letsencrypt"}, {CA: "zerossl"}}
		}, wantErr: []string{"issuers[1].eab_kid: required by zerossl"}},
		{name: "issuer unknown name", edit: func(c *autocert.Config) { c.Issuers = []autocert.Issuer{{CA: "letsencrpyt"}} },
			wantErr: []string{`issuers[0].ca: unknown CA "letsencrpyt"`}},
		{name: "issuer listed twice", edit: func(c *autocert.Config) {
			c.Issuers = []autocert.Issuer{{CA: "letsencrypt"}, {CADirURL: "https://acme-v02.api.letsencrypt.org/directory"}}
		}, wantErr: []string{"issuers[1].ca_dir_url: https://acme-v02.api.letsencrypt.org/directory is also issuers[0]"}},
		{name: "issuer half an EAB", edit: func(c *autocert.Config) {
			c.Issuers = []autocert.Issuer{{CADirURL: "https://ca.example/dir", EABKid: "kid"}}
		}, wantErr: []string{"issuers[0].eab_hmac: required when eab_kid is set"}},
		{name: "issuers with their defaults, inherited by an extra", edit: func(c *autocert.Config) {
			c.Issuers = []autocert.Issuer{{CA: "letsencrypt"}, {CA: "zerossl", EABKid: "kid", EABHmac: "aG1hYw"}}
			c.Extra = []autocert.ConfigExtra{
				{CertPath: "a.crt", KeyPath: "a.key"},
				{CertPath: "b.crt", KeyPath: "b.key", CA: "letsencrypt-staging"},
				{CertPath: "c.crt", KeyPath: "c.key", Issuers: []autocert.Issuer{{CA: "google-staging", EABKid: "g", EABHmac: "Zw"}}},
			}
		}, check: func(t *testing.T, c *autocert.Config) {
			if c.CADirURL != "" || c.ACMEKeyPath != "" {
				t.Errorf("single-CA keys filled beside issuers: %q %q", c.CADirURL, c.ACMEKeyPath)
			}
			if c.Issuers[0].ACMEKeyPath != autocert.DefaultACMEKeyPath || c.Issuers[1].CADirURL != "https://acme.zerossl.com/v2/DV90" ||
				c.Issuers[1].ACMEKeyPath == autocert.DefaultACMEKeyPath || !strings.HasPrefix(c.Issuers[1].ACMEKeyPath, "certs/acme_") {
				t.Errorf("issuers %+v", c.Issuers)
			}
			if m := autocert.MergeExtraConfig(c, &c.Extra[0]); len(m.Issuers) != 2 || m.CADirURL != "" {
				t.Errorf("extra[0] does not inherit the list: %+v", m.Issuers)
			}
			if m := autocert.MergeExtraConfig(c, &c.Extra[1]); m.Issuers != nil || m.CADirURL != "https://acme-staging-v02.api.letsencrypt.org/directory" ||
				m.ACMEKeyPath == "" || m.ACMEKeyPath == autocert.DefaultACMEKeyPath {
				t.Errorf("extra[1] with its own ca: issuers %+v, ca_dir_url %q, key %q", m.Issuers, m.CADirURL, m.ACMEKeyPath)
			}
			if m := autocert.MergeExtraConfig(c, &c.Extra[2]); len(m.Issuers) != 1 || m.Issuers[0].CA != "google-staging" {
				t.Errorf("extra[2] does not have its own list: %+v", m.Issuers)
			}
			again := *c
			if err := again.Validate(); err != nil {
				t.Errorf("not idempotent: %v", err)
			}
		}},
		{name: "extra inherits the main block's issuer problem once", edit: func(c *autocert.Config) {
			c.Issuers = []autocert.Issuer{{CA: "zerossl"}}
			c.Extra = []autocert.ConfigExtra{{CertPath: "a.crt", KeyPath: "a.key"}}
		}, wantErr: []string{"issuers[0].eab_kid: required by zerossl"}},
		{name: "extra with eab_kid beside inherited issuers", edit: func(c *autocert.Config) {
			c.Issuers = []autocert.Issuer{{CA: "letsencrypt"}}
			c.Extra = []autocert.ConfigExtra{{CertPath: "a.crt", KeyPath: "a.key", EABKid: "k", EABHmac: "aG1hYw"}}
		}, wantErr: []string{"extra[0].issuers: set either issuers or eab_kid, eab_hmac, not both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.edit(c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it; want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not hold %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "aG1hYw") {
				t.Error("the EAB HMAC key is in the error")
			}
			if n := strings.Count(err.Error(), tt.wantErr[0]); n != 1 {
				t.Errorf("%q reported %d times", tt.wantErr[0], n)
			}
		})
	}
}

// TestParseConfigIssuers: the issuers list is read from YAML and JSON
// alike, ${VAR} expanded in it, and its HMAC keys are secrets.
func TestParseConfigIssuers(t *testing.T) {
	t.Setenv("ISSUERS_TEST_EAB_HMAC", "c2VjcmV0LWhtYWM")
	yamlText := `provider: cfgtest-dns
email: admin@example.com
domains: [example.com]
options:
  api_token: tok-0123456789
issuers:
  - ca: letsencrypt
  - ca: zerossl
    eab_kid: kid-1
    eab_hmac: ${ISSUERS_TEST_EAB_HMAC}
    profile: classic
  - ca_dir_url: https://ca.example/acme/directory
    acme_key_path: keys/private-ca.key
`
	jsonText := `{"provider": "cfgtest-dns", "email": "admin@example.com", "domains": ["example.com"],
 "options": {"api_token": "tok-0123456789"},
 "issuers": [{"ca": "letsencrypt"},
  {"ca": "zerossl", "eab_kid": "kid-1", "eab_hmac": "${ISSUERS_TEST_EAB_HMAC}", "profile": "classic"},
  {"ca_dir_url": "https://ca.example/acme/directory", "acme_key_path": "keys/private-ca.key"}]}`
	for _, text := range []string{yamlText, jsonText} {
		cfg, err := autocert.ParseConfig([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		want := []autocert.Issuer{
			{CA: "letsencrypt", CADirURL: "https://acme-v02.api.letsencrypt.org/directory", ACMEKeyPath: autocert.DefaultACMEKeyPath},
			{CA: "zerossl", CADirURL: "https://acme.zerossl.com/v2/DV90", EABKid: "kid-1", EABHmac: "c2VjcmV0LWhtYWM", Profile: "classic",
				ACMEKeyPath: cfg.Issuers[1].ACMEKeyPath},
			{CADirURL: "https://ca.example/acme/directory", ACMEKeyPath: "keys/private-ca.key"},
		}
		if !slices.EqualFunc(cfg.Issuers, want, func(a, b autocert.Issuer) bool {
			return a.CA == b.CA && a.CADirURL == b.CADirURL && a.EABKid == b.EABKid && a.EABHmac == b.EABHmac &&
				a.Profile == b.Profile && a.ACMEKeyPath == b.ACMEKeyPath && len(a.CACerts) == 0
		}) {
			t.Errorf("issuers = %+v\nwant %+v", cfg.Issuers, want)
		}
		if strings.Contains(cfg.Issuers[1].EABHmac.String(), "c2VjcmV0") {
			t.Error("the HMAC key prints")
		}
	}
	// The secret stays out of errors about its block.
	_, err := autocert.ParseConfig([]byte(strings.Replace(yamlText, "profile: classic", "profile: classic\n    ca: google", 1)))
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("ParseConfig = %v", err)
	}
}

// TestIssuerPacedPerCA: each issuer is paced under the rate limits of its
// own CA. With the first CA offline, the second issues once; its limit of
// one order a day leaves no room for a second order, so the next attempt
// skips it, recording why, and sends it nothing.
func TestIssuerPacedPerCA(t *testing.T) {
	ca1, ca2 := acmetest.New(t), acmetest.New(t)
	ca1.SetOffline(true)
	names := []string{"paced.example.com"}
	cfg := twoIssuers(t, ca1, ca2, names...)
	p, err := autocert.New(context.Background(), cfg, autocert.WithLogger(zerolog.Nop()),
		autocert.WithRateLimits(ca2.DirectoryURL(), autocert.RateLimits{OrdersPerAccount: autocert.RateLimit{Count: 1, Window: 24 * time.Hour}}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if err := p.ObtainAll(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := p.RenewAll(ctx); err == nil {
		t.Fatal("renewal succeeded with the first CA offline and no room at the second")
	}
	if n := len(ca2.Orders()); n != 1 {
		t.Errorf("the second CA got %d orders, want 1", n)
	}
	st := p.RenewalStatus()[0]
	if len(st.CAErrors) != 2 || st.CAErrors[1].CA != ca2.DirectoryURL() ||
		!strings.Contains(st.CAErrors[1].Error, "skipped: no room under its rate limits (new orders per account: 1 per 24h0m0s)") {
		t.Errorf("CA errors %+v", st.CAErrors)
	}
	if st.CA != ca2.DirectoryURL() {
		t.Errorf("status CA %q: the certificate served is the second CA's", st.CA)
	}
}

// TestIssuerFallbackOnEnforcedRateLimit: the first CA enforces its limit
// of one new order per account an hour (as Let's Encrypt enforces its
// own). The first certificate comes from it; the renewal that follows at
// once is refused there with rateLimited and comes from the second CA;
// an hour later (the CA's clock moved on) the next renewal goes back to
// the first. Each CA creates exactly the orders it issues for.
func TestIssuerFallbackOnEnforcedRateLimit(t *testing.T) {
	var mu sync.Mutex
	offset := time.Duration(0)
	caClock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}
	ca1 := acmetest.New(t, acmetest.WithOrderRateLimit(1, time.Hour), acmetest.WithClock(caClock))
	ca2 := acmetest.New(t)
	names := []string{"limited.example.com"}
	cfg := twoIssuers(t, ca1, ca2, names...)
	p, err := autocert.New(context.Background(), cfg, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	step := func(what string, do func() error, wantCA *acmetest.Server, want1, want2 int) {
		t.Helper()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := p.RenewalStatus()[0].CA; got != wantCA.DirectoryURL() {
			t.Errorf("%s: issued by %s, want %s", what, got, wantCA.DirectoryURL())
		}
		if n1, n2 := ca1.OrderCount(names...), ca2.OrderCount(names...); n1 != want1 || n2 != want2 {
			t.Errorf("%s: orders created %d at the first CA, %d at the second; want %d and %d", what, n1, n2, want1, want2)
		}
	}
	step("first certificate", func() error { return p.ObtainAll(ctx, false) }, ca1, 1, 0)
	step("renewal within the hour", func() error { return p.RenewAll(ctx) }, ca2, 1, 1)
	refused := 0
	for _, o := range ca1.Orders() {
		if strings.HasSuffix(o.Problem, ":rateLimited") {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("the first CA refused %d orders with rateLimited, want 1", refused)
	}
	mu.Lock()
	offset = time.Hour
	mu.Unlock()
	step("renewal an hour later", func() error { return p.RenewAll(ctx) }, ca1, 2, 1)
}
