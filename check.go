package autocert

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
)

// DefaultCheckTimeout is how long Check waits, by default, for the
// resolvers to see each test TXT record.
const DefaultCheckTimeout = 2 * time.Minute

// maxCheckInterval bounds the pause between two looks for a test record.
const maxCheckInterval = 2 * time.Second

// ErrCheckFailed is wrapped by the error of Check when a step failed.
var ErrCheckFailed = errors.New("pre-flight check failed")

// CheckVerdict is the outcome of one step of Check.
type CheckVerdict string

// The verdicts of a step.
const (
	CheckOK   CheckVerdict = "ok"   // the step passed (a note may say what the first obtain will do)
	CheckWarn CheckVerdict = "warn" // an obtain may work, but likely not as configured
	CheckFail CheckVerdict = "fail" // an obtain would fail
)

// The steps of Check, as CheckStep.Step names them.
const (
	CheckStepConfig      = "config"       // the configuration is valid
	CheckStepStorage     = "storage"      // the storage opens
	CheckStepDirectory   = "directory"    // the CA's directory is reachable with the configured roots
	CheckStepEAB         = "eab"          // External Account Binding, when the CA requires it
	CheckStepProfile     = "profile"      // the profile asked is offered
	CheckStepAccount     = "account"      // the ACME account, looked up without creating it
	CheckStepDNSProvider = "dns_provider" // the DNS provider is built from its options
	CheckStepDNSRecord   = "dns_record"   // a test TXT record is written, seen by the resolvers, removed
	CheckStepFiles       = "files"        // the files of a "local" certificate
	CheckStepSelfSigned  = "self_signed"  // a "pseudo" certificate: nothing to check
)

// CheckStep is one line of a CheckReport. It holds no secret.
type CheckStep struct {
	// Certificate is "main" or "extra[N]"; empty for the steps of the
	// whole configuration.
	Certificate string `json:"certificate,omitempty"`
	// Step is one of the CheckStep* names.
	Step    string       `json:"step"`
	Verdict CheckVerdict `json:"verdict"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix, for a failure or a warning, is what to try.
	Fix string `json:"fix,omitempty"`
}

// String returns the step as one line (more, indented, for a detail of
// several lines, such as every problem of an invalid config), and its fix
// on the next.
func (s CheckStep) String() string {
	cert := s.Certificate
	if cert == "" {
		cert = "-"
	}
	detail := strings.ReplaceAll(strings.TrimRight(s.Detail, "\n"), "\n", "\n      ")
	line := fmt.Sprintf("%-4s  %-9s %-12s %s", s.Verdict, cert, s.Step, detail)
	if s.Fix != "" {
		line += "\n      fix: " + s.Fix
	}
	return line
}

// CheckReport is what Check found, step by step.
type CheckReport struct {
	// Steps are in the order they were checked.
	Steps []CheckStep `json:"steps"`
	// NotChecked names the certificates after the first that failed,
	// which were not checked.
	NotChecked []string `json:"not_checked,omitempty"`
}

// Failed returns the first failed step, nil when none failed.
func (r *CheckReport) Failed() *CheckStep {
	for i := range r.Steps {
		if r.Steps[i].Verdict == CheckFail {
			return &r.Steps[i]
		}
	}
	return nil
}

// WithCheckTimeout sets how long Check waits for the resolvers to see each
// test TXT record (DefaultCheckTimeout when d <= 0). It has no effect on
// a Provider.
func WithCheckTimeout(d time.Duration) Option { return func(s *settings) { s.checkTimeout = d } }

// WithCheckProgress makes Check give f each step as soon as it is
// decided, for a command that prints them as they come. It has no effect
// on a Provider.
func WithCheckProgress(f func(CheckStep)) Option { return func(s *settings) { s.checkStep = f } }

// Check is the pre-flight check of cfg, for a new user to run before the
// first obtain. It validates cfg (a copy: cfg is not changed), then, for
// the main certificate and each extra in order: for each of its CAs, it
// reaches the directory with the configured roots (ca_certs) and reads
// its meta, checks that External Account Binding is configured when the
// CA requires it and that the profile asked is offered, and looks up the
// ACME account of the account key without creating it (when the key file
// does not exist yet, the first obtain makes it, and that is no failure);
// then it builds the DNS provider from its options and, for each place a
// challenge record of the certificate goes (dns_challenge_alias and CNAME
// chains applied, as for an order), writes a TXT record with a random
// value through the provider, waits until the resolvers (the
// certificate's, or the system's) see it, and removes it, even when the
// wait fails or ctx ends. A "local" certificate's files are loaded; a
// "pseudo" one needs nothing.
//
// Check sends no order, creates no account and no account key, and writes
// nothing but the test records. It stops after the first certificate with
// a failed step, naming those left in CheckReport.NotChecked. The report
// is returned in any case; the error, when a step failed, wraps
// ErrCheckFailed. WithLogger, WithStorage, WithCheckTimeout and
// WithCheckProgress apply; other options are ignored.
func Check(ctx context.Context, cfg *Config, opts ...Option) (*CheckReport, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrInvalidConfig)
	}
	s := defaultSettings()
	for _, o := range opts {
		o(&s)
	}
	if s.checkTimeout <= 0 {
		s.checkTimeout = DefaultCheckTimeout
	}
	k := &checker{s: &s, report: &CheckReport{}}
	k.run(ctx, cfg.clone())
	if f := k.report.Failed(); f != nil {
		who := f.Certificate
		if who == "" {
			who = "config"
		}
		return k.report, fmt.Errorf("%w: %s: %s: %s", ErrCheckFailed, who, f.Step, f.Detail)
	}
	return k.report, nil
}

// checker is one run of Check.
type checker struct {
	s      *settings
	report *CheckReport
	// seen holds what was found of each CA and account key already
	// checked, so that the certificates sharing them ask the CA once.
	seen map[string]issuerFound
}

// issuerFound is what the directory and account steps found of one CA and
// account key.
type issuerFound struct {
	dir  CheckStep // the directory step
	meta directoryMeta
	acct accountLookup
}

// add records a step and reports it.
func (k *checker) add(st CheckStep) {
	k.report.Steps = append(k.report.Steps, st)
	if k.s.checkStep != nil {
		k.s.checkStep(st)
	}
}

func (k *checker) run(ctx context.Context, cfg *Config) {
	blocks := []*Config{cfg}
	for i := range cfg.Extra {
		merged := MergeExtraConfig(cfg, &cfg.Extra[i])
		blocks = append(blocks, (*Config)(&merged))
	}
	var secrets []string
	for _, b := range blocks {
		secrets = append(secrets, b.secrets()...)
	}
	scrub := redact.New(secrets...)
	if err := cfg.Validate(); err != nil {
		k.add(CheckStep{Step: CheckStepConfig, Verdict: CheckFail, Detail: scrub.Scrub(err.Error()),
			Fix: "correct each key named (\"autocert providers NAME\" lists the options of a DNS provider)"})
		return
	}
	names := []string{"main"}
	blocks = []*Config{cfg}
	for i := range cfg.Extra {
		merged := MergeExtraConfig(cfg, &cfg.Extra[i])
		blocks = append(blocks, (*Config)(&merged))
		names = append(names, fmt.Sprintf("extra[%d]", i))
	}
	k.add(CheckStep{Step: CheckStepConfig, Verdict: CheckOK, Detail: fmt.Sprintf("valid: %d certificate(s): %s", len(names), strings.Join(names, ", "))})

	if k.s.storage == nil {
		sctx, cancel := context.WithTimeout(ctx, storageOpenTimeout)
		st, err := cfg.openStorage(k.s.logger.WithContext(sctx))
		cancel()
		if err != nil {
			k.add(CheckStep{Step: CheckStepStorage, Verdict: CheckFail, Detail: scrub.Scrub(err.Error()),
				Fix: "check the storage block (type, DSN) and that the database is reachable"})
			return
		}
		defer closeStorage(st)
		k.s.storage = st
	}
	for i, b := range blocks {
		if !k.certificate(ctx, names[i], b) {
			k.report.NotChecked = names[i+1:]
			return
		}
	}
}

// certificate checks one certificate; it returns false when a step failed.
func (k *checker) certificate(ctx context.Context, name string, cfg *Config) bool {
	scrub := redact.New(cfg.secrets()...)
	failed := false
	add := func(st CheckStep) {
		st.Certificate = name
		st.Detail, st.Fix = scrub.Scrub(st.Detail), scrub.Scrub(st.Fix)
		failed = failed || st.Verdict == CheckFail
		k.add(st)
	}
	switch cfg.Provider {
	case ProviderPseudo:
		add(CheckStep{Step: CheckStepSelfSigned, Verdict: CheckOK, Detail: "provider pseudo: a self-signed certificate is made at the first obtain; nothing to check"})
		return true
	case ProviderLocal:
		c, err := newCertificate(name, cfg, nil, k.s, nil)
		if err != nil {
			add(CheckStep{Step: CheckStepFiles, Verdict: CheckFail, Detail: err.Error()})
			return false
		}
		k.localFiles(ctx, c, add)
		return !failed
	}
	k.issuers(ctx, cfg.issuerConfigs(), add)
	c, err := newCertificate(name, cfg, nil, k.s, nil)
	if err != nil {
		add(CheckStep{Step: CheckStepDNSProvider, Verdict: CheckFail, Detail: strings.TrimPrefix(err.Error(), name+": "),
			Fix: fmt.Sprintf("check the options of provider %s (\"autocert providers %s\" lists them) and their values", cfg.Provider, cfg.Provider)})
		return false
	}
	add(CheckStep{Step: CheckStepDNSProvider, Verdict: CheckOK, Detail: "provider " + cfg.Provider + " built from its options"})
	k.records(ctx, c, add)
	return !failed
}

// localFiles loads the files of a "local" certificate.
func (k *checker) localFiles(ctx context.Context, c *certificate, add func(CheckStep)) {
	sc, why, err := c.load(ctx)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		add(CheckStep{Step: CheckStepFiles, Verdict: CheckFail, Detail: err.Error(),
			Fix: "provider local serves files another tool writes: put the chain at cert_path and its key at key_path, or name a DNS provider to obtain them"})
	case err != nil:
		add(CheckStep{Step: CheckStepFiles, Verdict: CheckFail, Detail: err.Error(),
			Fix: "cert_path must hold a PEM chain and key_path its private key"})
	case why != "":
		add(CheckStep{Step: CheckStepFiles, Verdict: CheckWarn, Detail: why,
			Fix: "renew or replace the files with the tool that maintains them, or correct domains"})
	default:
		add(CheckStep{Step: CheckStepFiles, Verdict: CheckOK,
			Detail: fmt.Sprintf("%s: %s, valid until %s", c.cfg.CertPath, strings.Join(sc.cert.Leaf.DNSNames, ", "), sc.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))})
	}
}

// issuers checks the CAs of a certificate. With several, a CA that fails
// is only a warning while another passes (an order falls back to the next
// issuer), and each step names its issuer.
func (k *checker) issuers(ctx context.Context, list []*Config, add func(CheckStep)) {
	if len(list) == 1 {
		k.issuer(ctx, list[0], add)
		return
	}
	steps := make([][]CheckStep, len(list))
	passing := 0
	for i, is := range list {
		k.issuer(ctx, is, func(st CheckStep) { steps[i] = append(steps[i], st) })
		if !slices.ContainsFunc(steps[i], func(st CheckStep) bool { return st.Verdict == CheckFail }) {
			passing++
		}
	}
	for i, group := range steps {
		for _, st := range group {
			st.Detail = fmt.Sprintf("issuers[%d] (%s): %s", i, list[i].CADirURL, st.Detail)
			if st.Verdict == CheckFail && passing > 0 {
				st.Verdict = CheckWarn
				st.Detail += "; orders fall back to the next issuer that passes"
			}
			add(st)
		}
	}
}

// issuer checks one CA of a certificate: directory, EAB, profile, account.
func (k *checker) issuer(ctx context.Context, is *Config, add func(CheckStep)) {
	key := strings.Join(append([]string{is.CADirURL, is.ACMEKeyPath}, is.CACerts...), "\x00")
	found, ok := k.seen[key]
	if !ok {
		found = k.reach(ctx, is)
		if k.seen == nil {
			k.seen = make(map[string]issuerFound)
		}
		k.seen[key] = found
	}
	add(found.dir)
	if found.dir.Verdict == CheckFail {
		return
	}
	meta, acct := found.meta, found.acct

	switch {
	case !meta.ExternalAccountRequired && is.EABKid != "":
		add(CheckStep{Step: CheckStepEAB, Verdict: CheckOK, Detail: "eab_kid set; the CA does not require External Account Binding"})
	case !meta.ExternalAccountRequired:
		add(CheckStep{Step: CheckStepEAB, Verdict: CheckOK, Detail: "not required by the CA"})
	case is.EABKid != "":
		add(CheckStep{Step: CheckStepEAB, Verdict: CheckOK, Detail: "required by the CA; eab_kid and eab_hmac set"})
	case acct.found:
		add(CheckStep{Step: CheckStepEAB, Verdict: CheckOK, Detail: "required by the CA for new accounts; the account exists, so none is needed"})
	default:
		add(CheckStep{Step: CheckStepEAB, Verdict: CheckFail,
			Detail: "the CA requires External Account Binding for a new ACME account (externalAccountRequired in its directory), and eab_kid is not set",
			Fix:    "set eab_kid and eab_hmac to the key ID and HMAC key the CA gives (in its account dashboard or API)"})
	}

	list := strings.Join(slices.Sorted(maps.Keys(meta.Profiles)), ", ")
	switch checkProfile(is.Profile, meta.Profiles) {
	case profileNotOffered:
		add(CheckStep{Step: CheckStepProfile, Verdict: CheckFail, Detail: fmt.Sprintf("profile %q is not offered by the CA", is.Profile),
			Fix: "set profile to one the CA offers: " + list})
	case profileNoneOffer:
		add(CheckStep{Step: CheckStepProfile, Verdict: CheckWarn, Detail: fmt.Sprintf("profile %q set, but the CA offers no profiles: it issues with its default, or refuses the order", is.Profile),
			Fix: "remove profile, or use a CA that offers it"})
	case profileOffered:
		if is.Profile == "" {
			add(CheckStep{Step: CheckStepProfile, Verdict: CheckOK, Detail: "none set: the CA's default"})
		} else {
			add(CheckStep{Step: CheckStepProfile, Verdict: CheckOK, Detail: fmt.Sprintf("%q offered", is.Profile)})
		}
	}
	add(acct.step)
}

// reach reads the directory of is's CA and looks up the account of its
// key there.
func (k *checker) reach(ctx context.Context, is *Config) issuerFound {
	roots, err := caCertPool(is.CACerts)
	if err != nil {
		return issuerFound{dir: CheckStep{Step: CheckStepDirectory, Verdict: CheckFail, Detail: err.Error(),
			Fix: "ca_certs must name PEM files of the roots that sign the CA's HTTPS certificate"}}
	}
	hc := newACMEHTTPClient(roots)
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, directoryTimeout)
	defer cancel()
	meta, err := fetchDirectoryMeta(ctx, hc, is.CADirURL)
	if err != nil {
		fix := "check ca_dir_url and that this host reaches it (network, firewall, HTTPS proxy variables)"
		if unknownAuthority(err) {
			fix = "for a private CA, set ca_certs to the PEM file of the root that signs its HTTPS certificate"
		}
		return issuerFound{dir: CheckStep{Step: CheckStepDirectory, Verdict: CheckFail, Detail: err.Error(), Fix: fix}}
	}
	offered := "no profiles offered"
	if len(meta.Profiles) > 0 {
		offered = "profiles offered: " + strings.Join(slices.Sorted(maps.Keys(meta.Profiles)), ", ")
	}
	return issuerFound{
		dir:  CheckStep{Step: CheckStepDirectory, Verdict: CheckOK, Detail: is.CADirURL + " reachable; " + offered},
		meta: meta,
		acct: k.account(ctx, hc, is),
	}
}

// accountLookup is what the account step found.
type accountLookup struct {
	found bool
	step  CheckStep
}

// account looks up the ACME account of is's account key at its CA without
// creating it (newAccount with onlyReturnExisting); a key that does not
// exist is not created.
func (k *checker) account(ctx context.Context, hc *http.Client, is *Config) accountLookup {
	data, err := k.s.storage.Load(ctx, is.ACMEKeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return accountLookup{step: CheckStep{Step: CheckStepAccount, Verdict: CheckOK,
			Detail: fmt.Sprintf("no account yet: one will be registered at the first obtain (account key %s does not exist yet)", is.ACMEKeyPath)}}
	}
	if err != nil {
		return accountLookup{step: CheckStep{Step: CheckStepAccount, Verdict: CheckFail,
			Detail: fmt.Sprintf("%v %s: %v", ErrAccountKey, is.ACMEKeyPath, err), Fix: "check the storage and the permissions of acme_key_path"}}
	}
	key, err := parseAccountKeyFile(is.ACMEKeyPath, data)
	if err != nil {
		return accountLookup{step: CheckStep{Step: CheckStepAccount, Verdict: CheckFail, Detail: err.Error(),
			Fix: "point acme_key_path at the account's key; moving the file away makes a new key, hence a new account, at the first obtain"}}
	}
	user := &User{Email: is.Email, Key: key}
	lc := lego.NewConfig(user)
	lc.CADirURL = is.CADirURL
	lc.UserAgent = userAgent
	lc.HTTPClient = boundClient(hc, hc.Transport, ctx)
	fail := func(err error) accountLookup {
		return accountLookup{step: CheckStep{Step: CheckStepAccount, Verdict: CheckFail,
			Detail: "looking up the ACME account: " + err.Error(), Fix: "check that the CA answers ACME requests at ca_dir_url; try again later if it is busy"}}
	}
	client, err := lego.NewClient(lc)
	if err != nil {
		return fail(err)
	}
	var reg *registration.Resource
	if reg, err = client.Registration.ResolveAccountByKey(); err != nil {
		if accountGone(err) {
			return accountLookup{step: CheckStep{Step: CheckStepAccount, Verdict: CheckOK,
				Detail: fmt.Sprintf("no account of key %s at this CA yet: one will be registered at the first obtain", is.ACMEKeyPath)}}
		}
		return fail(err)
	}
	return accountLookup{found: true, step: CheckStep{Step: CheckStepAccount, Verdict: CheckOK, Detail: "found: " + reg.URI}}
}

// records writes, waits for and removes a test TXT record at each place
// the challenge records of c go.
func (k *checker) records(ctx context.Context, c *certificate, add func(CheckStep)) {
	d, _ := c.newChallengeDNS(ctx, c.dns)
	_, interval := d.Timeout()
	if interval <= 0 || interval > maxCheckInterval {
		interval = maxCheckInterval
	}
	done := map[string]bool{}
	for _, name := range c.cfg.Domains {
		name = strings.TrimPrefix(name, "*.")
		t, err := d.target(name)
		if err != nil {
			add(CheckStep{Step: CheckStepDNSRecord, Verdict: CheckFail, Detail: err.Error(),
				Fix: "correct the CNAME records at _acme-challenge." + name + ", or set dns_challenge_alias, or dns_follow_cname: false"})
			return
		}
		if done[t.fqdn()] {
			continue
		}
		done[t.fqdn()] = true
		if !k.record(ctx, d, name, t, interval, add) {
			return
		}
	}
}

// record writes a test record for name, at t, waits until the resolvers
// see it, and removes it; it returns false when a step failed.
func (k *checker) record(ctx context.Context, d *challengeDNS, name string, t challengeTarget, interval time.Duration, add func(CheckStep)) bool {
	token, keyAuth := rand.Text(), rand.Text()+"."+rand.Text()
	sum := sha256.Sum256([]byte(keyAuth))
	value := base64.RawURLEncoding.EncodeToString(sum[:])
	where := t.fqdn()
	if len(t.chain) > 1 {
		where += " (CNAME chain " + t.String() + ")"
	}
	provider := d.c.cfg.Provider

	start := time.Now()
	err := d.Present(name, token, keyAuth)
	// Removed in any case: Present may have written before it failed, and
	// it holds lego's resolver list until CleanUp.
	defer func() {
		cerr := d.CleanUp(name, token, keyAuth)
		if cerr != nil && err == nil {
			add(CheckStep{Step: CheckStepDNSRecord, Verdict: CheckWarn, Detail: fmt.Sprintf("removing the test TXT record at %s through %s: %v", t.fqdn(), provider, cerr),
				Fix: "remove the TXT record at " + t.fqdn() + " by hand; check that the provider's credentials may delete records"})
		}
	}()
	if err != nil {
		add(CheckStep{Step: CheckStepDNSRecord, Verdict: CheckFail, Detail: fmt.Sprintf("writing a test TXT record at %s through %s: %v", where, provider, err),
			Fix: fmt.Sprintf("check the credentials in options (they must allow editing TXT records in the zone of %s) and that the provider serves that zone", t.fqdn())})
		return false
	}

	whose := "resolvers " + strings.Join(d.resolvers, ", ")
	if !d.configured {
		whose = "the system's resolvers (" + strings.Join(d.resolvers, ", ") + ")"
	}
	if len(d.resolvers) == 0 {
		add(CheckStep{Step: CheckStepDNSRecord, Verdict: CheckFail, Detail: "written at " + where + ", but there is no resolver to ask: none configured and none in /etc/resolv.conf",
			Fix: "set resolvers to DNS servers that answer for the zone of " + t.fqdn()})
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, k.s.checkTimeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastErr error
	for {
		ok, err := txtVisible(wctx, d.resolvers, t.fqdn(), value)
		if ok {
			add(CheckStep{Step: CheckStepDNSRecord, Verdict: CheckOK,
				Detail: fmt.Sprintf("test TXT record written at %s, seen by %s after %s, removed", where, whose, time.Since(start).Round(time.Millisecond))})
			return true
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-wctx.Done():
			detail := fmt.Sprintf("test TXT record written at %s, not seen by %s within %s", where, whose, k.s.checkTimeout)
			if ctx.Err() != nil {
				detail = fmt.Sprintf("test TXT record written at %s; the check was interrupted (%v) before %s saw it", where, ctx.Err(), whose)
			}
			if lastErr != nil {
				detail += " (last error: " + lastErr.Error() + ")"
			}
			fix := "set resolvers to DNS servers that see the zone the provider writes to (in a split-horizon network, the view the CA sees), or wait longer (-timeout); the record was removed"
			if !d.configured {
				fix = "set resolvers to DNS servers that answer for the zone of " + t.fqdn() + ", or wait longer (-timeout); the record was removed"
			}
			add(CheckStep{Step: CheckStepDNSRecord, Verdict: CheckFail, Detail: detail, Fix: fix})
			return false
		case <-tick.C:
		}
	}
}
