package autocert_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/miekg/dns"
	"github.com/rs/zerolog"
)

// checkConfig returns a config of ca for a main certificate of domains
// and an extra for "api."+domains[0], its files in a new directory.
func checkConfig(t *testing.T, ca *acmetest.Server, domains ...string) (*autocert.Config, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := ca.Config(domains...)
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "main.crt"), filepath.Join(dir, "main.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	cfg.Extra = []autocert.ConfigExtra{{
		Domains:  []string{"api." + strings.TrimPrefix(domains[0], "*.")},
		CertPath: filepath.Join(dir, "api.crt"), KeyPath: filepath.Join(dir, "api.key"),
	}}
	return cfg, dir
}

// txtAt returns the TXT values of fqdn in the DNS server of acmetest.
func txtAt(t *testing.T, ca *acmetest.Server, fqdn string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(fqdn), dns.TypeTXT)
	in, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, ca.DNSAddr())
	if err != nil {
		t.Fatalf("TXT %s: %v", fqdn, err)
	}
	var out []string
	for _, rr := range in.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}

// runCheck runs autocert.Check, the log in a buffer, and fails the test
// when the report and the steps given to WithCheckProgress differ.
func runCheck(t *testing.T, ctx context.Context, cfg *autocert.Config, opts ...autocert.Option) (*autocert.CheckReport, string, error) {
	t.Helper()
	var logs bytes.Buffer
	var streamed []autocert.CheckStep
	opts = append([]autocert.Option{autocert.WithLogger(zerolog.New(&logs)),
		autocert.WithCheckProgress(func(s autocert.CheckStep) { streamed = append(streamed, s) })}, opts...)
	report, err := autocert.Check(ctx, cfg, opts...)
	if report == nil {
		t.Fatalf("Check returned no report: %v", err)
	}
	if !slices.Equal(streamed, report.Steps) {
		t.Errorf("steps given to WithCheckProgress %v differ from the report's %v", streamed, report.Steps)
	}
	return report, logs.String(), err
}

// stepsOf returns the steps of certificate cert named step.
func stepsOf(r *autocert.CheckReport, cert, step string) []autocert.CheckStep {
	var out []autocert.CheckStep
	for _, s := range r.Steps {
		if s.Certificate == cert && s.Step == step {
			out = append(out, s)
		}
	}
	return out
}

// TestCheckPasses: the check of a good configuration on the embedded CA
// passes every step, creates no account, no account key and no file,
// sends no order, and leaves no TXT record; once the account exists, it
// is found. A wildcard and its base name share one test record.
func TestCheckPasses(t *testing.T) {
	ca := acmetest.New(t)
	cfg, dir := checkConfig(t, ca, "check-ok.test", "*.check-ok.test")
	cfg.Profile = "default"
	report, logs, err := runCheck(t, context.Background(), cfg)
	if err != nil {
		t.Fatalf("Check: %v\nreport: %v\nlog:\n%s", err, report.Steps, logs)
	}
	for _, s := range report.Steps {
		if s.Verdict != autocert.CheckOK {
			t.Errorf("step %v", s)
		}
	}
	for _, cert := range []string{"main", "extra[0]"} {
		for _, step := range []string{autocert.CheckStepDirectory, autocert.CheckStepEAB, autocert.CheckStepProfile, autocert.CheckStepAccount, autocert.CheckStepDNSProvider} {
			if n := len(stepsOf(report, cert, step)); n != 1 {
				t.Errorf("%s: %d %s steps, want 1", cert, n, step)
			}
		}
		if a := stepsOf(report, cert, autocert.CheckStepAccount); len(a) == 1 && !strings.Contains(a[0].Detail, "no account yet: one will be registered at the first obtain") {
			t.Errorf("%s: account step %q", cert, a[0].Detail)
		}
	}
	recs := stepsOf(report, "main", autocert.CheckStepDNSRecord)
	if len(recs) != 1 || !strings.Contains(recs[0].Detail, "_acme-challenge.check-ok.test.") || !strings.Contains(recs[0].Detail, ca.DNSAddr()) {
		t.Errorf("main: record steps %v, want one at _acme-challenge.check-ok.test. seen by %s", recs, ca.DNSAddr())
	}
	if recs := stepsOf(report, "extra[0]", autocert.CheckStepDNSRecord); len(recs) != 1 || !strings.Contains(recs[0].Detail, "_acme-challenge.api.check-ok.test.") {
		t.Errorf("extra[0]: record steps %v", recs)
	}
	if n := len(ca.Orders()); n != 0 {
		t.Errorf("the check sent %d orders", n)
	}
	if n := ca.Accounts(); n != 0 {
		t.Errorf("the check created %d accounts", n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the check wrote files: %v", entries)
	}
	for _, name := range []string{"_acme-challenge.check-ok.test", "_acme-challenge.api.check-ok.test"} {
		if left := txtAt(t, ca, name); len(left) != 0 {
			t.Errorf("TXT records left at %s: %q", name, left)
		}
	}

	// Once the account exists, the check finds it, and still orders
	// nothing and creates no account.
	p, err := autocert.New(context.Background(), cfg, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainAll(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	orders, accounts := len(ca.Orders()), ca.Accounts()
	report, logs, err = runCheck(t, context.Background(), cfg)
	if err != nil {
		t.Fatalf("Check after obtain: %v\nlog:\n%s", err, logs)
	}
	if a := stepsOf(report, "main", autocert.CheckStepAccount); len(a) != 1 || !strings.HasPrefix(a[0].Detail, "found: ") {
		t.Errorf("account steps after obtain: %v, want found", a)
	}
	if len(ca.Orders()) != orders || ca.Accounts() != accounts {
		t.Errorf("the check after obtain: orders %d -> %d, accounts %d -> %d", orders, len(ca.Orders()), accounts, ca.Accounts())
	}
}

// TestCheckAliasAndLocal: with dns_challenge_alias (and CNAMEs not
// followed) the test record goes to the alias; a "local" certificate's
// files are loaded and a "pseudo" one needs nothing.
func TestCheckAliasAndLocal(t *testing.T) {
	ca := acmetest.New(t)
	cfg, dir := checkConfig(t, ca, "check-alias.test", "*.check-alias.test")
	no := false
	cfg.DNSChallengeAlias = "acme-zone.check-delegated.test"
	cfg.DNSFollowCNAME = &no
	// A local certificate: the files of a pseudo certificate.
	pseudo := autocert.Config{Provider: autocert.ProviderPseudo, Domains: []string{"local.test"},
		CertPath: filepath.Join(dir, "local.crt"), KeyPath: filepath.Join(dir, "local.key")}
	pp, err := autocert.New(context.Background(), &pseudo, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := pp.ObtainAll(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	cfg.Extra = append(cfg.Extra,
		autocert.ConfigExtra{Provider: autocert.ProviderLocal, Domains: []string{"local.test"}, CertPath: pseudo.CertPath, KeyPath: pseudo.KeyPath},
		autocert.ConfigExtra{Provider: autocert.ProviderPseudo, Domains: []string{"dev.test"}, CertPath: filepath.Join(dir, "dev.crt"), KeyPath: filepath.Join(dir, "dev.key")})

	report, logs, err := runCheck(t, context.Background(), cfg)
	if err != nil {
		t.Fatalf("Check: %v\nsteps: %v\nlog:\n%s", err, report.Steps, logs)
	}
	const alias = "_acme-challenge.acme-zone.check-delegated.test."
	for _, cert := range []string{"main", "extra[0]"} {
		recs := stepsOf(report, cert, autocert.CheckStepDNSRecord)
		if len(recs) != 1 || !strings.Contains(recs[0].Detail, "written at "+alias+", seen by") {
			t.Errorf("%s: record steps %v, want one at %s", cert, recs, alias)
		}
	}
	if f := stepsOf(report, "extra[1]", autocert.CheckStepFiles); len(f) != 1 || f[0].Verdict != autocert.CheckOK || !strings.Contains(f[0].Detail, "local.test, valid until") {
		t.Errorf("local certificate: %v", f)
	}
	if f := stepsOf(report, "extra[2]", autocert.CheckStepSelfSigned); len(f) != 1 || f[0].Verdict != autocert.CheckOK {
		t.Errorf("pseudo certificate: %v", f)
	}
	for _, name := range []string{alias, "_acme-challenge.check-alias.test", "_acme-challenge.api.check-alias.test"} {
		if left := txtAt(t, ca, name); len(left) != 0 {
			t.Errorf("TXT records left at %s: %q", name, left)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "dev.crt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the check of a pseudo certificate wrote its file: %v", err)
	}
}

// closedUDPPort returns a loopback address where nothing answers DNS.
func closedUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// emptyDNS starts a DNS server on loopback that answers every question
// with an empty NOERROR answer, as a resolver with another view of the
// zone would, and returns its address.
func emptyDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return pc.LocalAddr().String()
}

// TestCheckFailures: each problem fails its step with the fix to try;
// the check stops after that certificate, sends no order, creates no
// account, and leaves no TXT record, even when its wait is interrupted.
func TestCheckFailures(t *testing.T) {
	const kid, hmac = "kid-1", "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw"
	plain := acmetest.New(t)
	eab := acmetest.New(t, acmetest.WithEAB(kid, hmac))
	tests := []struct {
		name     string
		ca       *acmetest.Server
		edit     func(*autocert.Config)
		cancel   time.Duration // cancel the check's context after this long
		step     string
		detail   string // in the failed step's detail
		fix      string // in its fix
		recorded bool   // a test record was written: check it is gone
	}{
		{
			name: "invalid config", ca: plain,
			edit: func(c *autocert.Config) { c.Options[acmetest.OptionAPIURL] = "ftp://nowhere" },
			step: autocert.CheckStepConfig, detail: `option "api_url" is not an http or https URL`, fix: "correct each key named",
		},
		{
			name: "CA unreachable", ca: plain,
			edit: func(c *autocert.Config) { c.CADirURL = "https://" + closedUDPPort(t) + "/dir" },
			step: autocert.CheckStepDirectory, detail: "connection refused", fix: "check ca_dir_url",
		},
		{
			name: "CA roots missing", ca: plain,
			edit: func(c *autocert.Config) { c.CACerts = nil },
			step: autocert.CheckStepDirectory, detail: "certificate", fix: "set ca_certs",
		},
		{
			name: "profile not offered", ca: plain,
			edit: func(c *autocert.Config) { c.Profile = "tiny" },
			step: autocert.CheckStepProfile, detail: `profile "tiny" is not offered`, fix: "one the CA offers: default",
		},
		{
			name: "EAB required but missing", ca: eab,
			edit: func(c *autocert.Config) { c.EABKid, c.EABHmac = "", "" },
			step: autocert.CheckStepEAB, detail: "requires External Account Binding", fix: "set eab_kid and eab_hmac",
		},
		{
			name: "DNS provider refuses the credentials", ca: plain,
			edit: func(c *autocert.Config) { c.Options[acmetest.OptionAPIToken] = "wrong-token" },
			step: autocert.CheckStepDNSRecord, detail: "writing a test TXT record at _acme-challenge.", fix: "check the credentials in options",
		},
		{
			name: "resolvers never see the record", ca: plain,
			edit: func(c *autocert.Config) { c.Resolvers = []string{closedUDPPort(t)} },
			step: autocert.CheckStepDNSRecord, detail: "not seen by resolvers", fix: "set resolvers to DNS servers", recorded: true,
		},
		{
			name: "resolvers of another view", ca: plain,
			edit: func(c *autocert.Config) { c.Resolvers = []string{emptyDNS(t)} },
			step: autocert.CheckStepDNSRecord, detail: "not seen by resolvers", fix: "in a split-horizon network", recorded: true,
		},
		{
			name: "interrupted", ca: plain, cancel: 300 * time.Millisecond,
			edit: func(c *autocert.Config) { c.Resolvers = []string{closedUDPPort(t)} },
			step: autocert.CheckStepDNSRecord, detail: "the check was interrupted", fix: "the record was removed", recorded: true,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			domain := "check-fail-" + string(rune('a'+i)) + ".test"
			cfg, dir := checkConfig(t, tt.ca, domain)
			tt.edit(cfg)
			orders, accounts := len(tt.ca.Orders()), tt.ca.Accounts()
			ctx := context.Background()
			if tt.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.cancel)
				defer cancel()
			}
			report, logs, err := runCheck(t, ctx, cfg, autocert.WithCheckTimeout(time.Second))
			if !errors.Is(err, autocert.ErrCheckFailed) {
				t.Fatalf("Check = %v, want ErrCheckFailed\nsteps: %v\nlog:\n%s", err, report.Steps, logs)
			}
			f := report.Failed()
			if f.Step != tt.step || !strings.Contains(f.Detail, tt.detail) || !strings.Contains(f.Fix, tt.fix) {
				t.Errorf("failed step %+v\nwant step %s, %q in the detail, %q in the fix", *f, tt.step, tt.detail, tt.fix)
			}
			if tt.step != autocert.CheckStepConfig && (f.Certificate != "main" || !slices.Equal(report.NotChecked, []string{"extra[0]"})) {
				t.Errorf("failed %s, not checked %v; want main failed, extra[0] not checked", f.Certificate, report.NotChecked)
			}
			if s := report.Steps[len(report.Steps)-1]; s.Certificate == "extra[0]" {
				t.Errorf("extra[0] was checked after main failed: %v", s)
			}
			if len(tt.ca.Orders()) != orders || tt.ca.Accounts() != accounts {
				t.Errorf("orders %d -> %d, accounts %d -> %d", orders, len(tt.ca.Orders()), accounts, tt.ca.Accounts())
			}
			if tt.recorded && !strings.Contains(f.Detail, "written at _acme-challenge."+domain+".") {
				t.Errorf("detail %q does not say where the record was written", f.Detail)
			}
			if left := txtAt(t, tt.ca, "_acme-challenge."+domain); len(left) != 0 {
				t.Errorf("TXT records left: %q", left)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the check wrote files: %v", entries)
			}
			token := tt.ca.ProviderOptions()[acmetest.OptionAPIToken].Value()
			for _, s := range report.Steps {
				if strings.Contains(s.String(), token) || strings.Contains(s.String(), hmac) {
					t.Errorf("a secret in step %v", s)
				}
			}
		})
	}
}

// TestCheckEABAccountExists: at a CA that requires External Account
// Binding, a config without EAB passes the check once the account of its
// key exists (it needs no binding), and the account is found.
func TestCheckEABAccountExists(t *testing.T) {
	ca := acmetest.New(t, acmetest.WithEAB("kid-1", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"))
	cfg, _ := checkConfig(t, ca, "check-eab.test")
	p, err := autocert.New(context.Background(), cfg, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainAll(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	cfg.EABKid, cfg.EABHmac = "", ""
	accounts := ca.Accounts()
	report, logs, err := runCheck(t, context.Background(), cfg)
	if err != nil {
		t.Fatalf("Check: %v\nsteps: %v\nlog:\n%s", err, report.Steps, logs)
	}
	if e := stepsOf(report, "main", autocert.CheckStepEAB); len(e) != 1 || !strings.Contains(e[0].Detail, "the account exists") {
		t.Errorf("eab steps %v", e)
	}
	if a := stepsOf(report, "extra[0]", autocert.CheckStepAccount); len(a) != 1 || !strings.HasPrefix(a[0].Detail, "found: ") {
		t.Errorf("extra[0] account steps %v", a)
	}
	if ca.Accounts() != accounts {
		t.Errorf("accounts %d -> %d", accounts, ca.Accounts())
	}
}

// TestCheckProfileAtCAWithoutProfiles: a profile set for a CA that offers
// none is a warning, which does not fail the check.
func TestCheckProfileAtCAWithoutProfiles(t *testing.T) {
	ca := acmetest.New(t, acmetest.WithoutProfiles())
	cfg, _ := checkConfig(t, ca, "check-noprofiles.test")
	cfg.Profile = "shortlived"
	report, logs, err := runCheck(t, context.Background(), cfg)
	if err != nil {
		t.Fatalf("Check: %v\nsteps: %v\nlog:\n%s", err, report.Steps, logs)
	}
	for _, cert := range []string{"main", "extra[0]"} {
		p := stepsOf(report, cert, autocert.CheckStepProfile)
		if len(p) != 1 || p[0].Verdict != autocert.CheckWarn || !strings.Contains(p[0].Detail, "the CA offers no profiles") || p[0].Fix == "" {
			t.Errorf("%s: profile steps %v, want a warning with a fix", cert, p)
		}
	}
}

// TestCheckIssuers: with an issuers list, each CA is checked and its steps
// name it; a CA that fails is a warning while another passes (an order
// falls back to it), and a failure when none does.
func TestCheckIssuers(t *testing.T) {
	second, other := acmetest.New(t), acmetest.New(t)
	tests := []struct {
		name    string
		firstOK bool // the first issuer is reachable
		want    autocert.CheckVerdict
	}{
		{name: "first unreachable, second passes", want: autocert.CheckWarn},
		{name: "both unreachable", want: autocert.CheckFail},
		{name: "both pass", firstOK: true, want: autocert.CheckOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, dir := checkConfig(t, second, "check-issuers.test")
			cfg.Extra = nil
			down := func(name string) autocert.Issuer {
				return autocert.Issuer{CADirURL: "https://" + closedUDPPort(t) + "/dir", CACerts: cfg.CACerts,
					ACMEKeyPath: filepath.Join(dir, name+".key")}
			}
			first := down("first")
			if tt.firstOK {
				oc := other.Config("check-issuers.test")
				first = autocert.Issuer{CADirURL: oc.CADirURL, CACerts: oc.CACerts, ACMEKeyPath: filepath.Join(dir, "first.key")}
			}
			last := autocert.Issuer{CADirURL: cfg.CADirURL, CACerts: cfg.CACerts, ACMEKeyPath: cfg.ACMEKeyPath}
			if tt.want == autocert.CheckFail {
				last = down("last")
			}
			cfg.Issuers = []autocert.Issuer{first, last}
			cfg.CADirURL, cfg.CACerts, cfg.ACMEKeyPath = "", nil, ""
			report, logs, err := runCheck(t, context.Background(), cfg)
			if tt.want == autocert.CheckFail {
				if !errors.Is(err, autocert.ErrCheckFailed) {
					t.Fatalf("Check = %v, want ErrCheckFailed\nreport: %v", err, report.Steps)
				}
			} else if err != nil {
				t.Fatalf("Check: %v\nreport: %v\nlog:\n%s", err, report.Steps, logs)
			}
			dirs := stepsOf(report, "main", autocert.CheckStepDirectory)
			if len(dirs) != 2 || !strings.HasPrefix(dirs[0].Detail, "issuers[0] (") || !strings.HasPrefix(dirs[1].Detail, "issuers[1] (") {
				t.Fatalf("directory steps %v: want one per issuer, each naming it", dirs)
			}
			if dirs[0].Verdict != tt.want {
				t.Errorf("first issuer's directory step %v, want verdict %v", dirs[0], tt.want)
			}
			if tt.want == autocert.CheckWarn && !strings.Contains(dirs[0].Detail, "fall back to the next issuer") {
				t.Errorf("warning %q does not say orders fall back", dirs[0].Detail)
			}
			if tt.want != autocert.CheckFail {
				if recs := stepsOf(report, "main", autocert.CheckStepDNSRecord); len(recs) != 1 || recs[0].Verdict != autocert.CheckOK {
					t.Errorf("record steps %v, want one passing", recs)
				}
			}
			if n := len(second.Orders()) + len(other.Orders()); n != 0 {
				t.Errorf("the check sent %d orders", n)
			}
		})
	}
}
