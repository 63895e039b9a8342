package autocert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
	"github.com/rs/zerolog"
)

// Provider keeps the certificates of one Config (the main block and every
// extra) obtained, stored and fresh, and serves them to TLS handshakes
// through GetCert.
//
// A Provider is built once with NewProvider; its methods are safe for
// concurrent use.
type Provider struct {
	name    string  // "main" or "extra[N]"
	cfg     *Config // validated; for an extra, merged with the main block
	user    *User
	legoCfg *lego.Config
	acct    *account           // shared by the providers of one ACME account
	dns     challenge.Provider // nil for local and pseudo

	settings
	logger     zerolog.Logger // settings.logger with this provider's name
	failureKey string
	ariKey     string // storage key of the persisted renewal information
	fp         string // cfg.fingerprint(), kept in failure records

	main           *Provider   // the main provider; itself for main
	extraProviders []*Provider // main only

	obtainMu sync.Mutex // one obtain at a time for this certificate
	clientMu sync.Mutex
	client   *lego.Client

	// serveMu makes reading the stored certificate and serving it one
	// step, so that a reload racing with an obtain never serves the older
	// of two certificates; the certificate files are written under it.
	serveMu   sync.Mutex
	filesErr  bool                            // the last write of the certificate files failed; guarded by serveMu
	cert      atomic.Pointer[tls.Certificate] // the certificate served, Leaf set
	sni       atomic.Pointer[sniSnapshot]     // main only: what GetCert reads
	publishMu sync.Mutex                      // main only: one snapshot rebuild at a time

	rs        renewState // guarded by the scheduler's mutex (renew.go)
	schedOnce sync.Once  // main only
	sched     *scheduler // main only: renews main and the extras

	closer    io.Closer // main only: the storage the Provider opened, closed by Close
	closeOnce sync.Once
	closeErr  error
}

// account is an ACME account shared by the providers that use the same
// CA and account key: it is registered (or found) once.
type account struct {
	mu   sync.Mutex
	user *User
}

// settings are the process-side choices of a Provider, shared by main and
// extras.
type settings struct {
	logger    zerolog.Logger
	storage   Storage
	clock     Clock
	notifiers []Notifier
	progress  func(Progress)
	reread    time.Duration // periodic re-read of a shared storage; storageRereadInterval when 0
	fileCheck time.Duration // periodic look at the files of a FileStorage; fileCheckInterval when 0
	// noFileNotify turns off file-system notifications, leaving the
	// periodic look (tests of that fallback).
	noFileNotify bool
}

// Option configures a Provider.
type Option func(*settings)

// WithLogger sets the logger. The default writes JSON at Info level to
// standard error. The global zerolog logger is never changed.
func WithLogger(l zerolog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithStorage sets where certificates, keys and records are kept, in place
// of the config's storage block. The default is the storage the block
// names, or a FileStorage using the paths of the config when there is
// none. The caller keeps ownership of st: Provider.Close does not close
// it. The ACME account key is read where GetLegoConfig read it (the
// config's storage block).
func WithStorage(st Storage) Option { return func(s *settings) { s.storage = st } }

// WithClock sets the clock, for tests that drive time.
func WithClock(c Clock) Option { return func(s *settings) { s.clock = c } }

// NewProvider builds the Provider of cfg: the main certificate and one
// provider per extra. user and legoCfg come from cfg.GetLegoConfig (both
// nil for the local and pseudo providers). Extras on the same CA and
// account key share the account of the main block; an extra with its own
// CA or account key gets its own account. A user without a Key makes a
// Provider that loads and reports certificates but cannot order them (a
// tool that only reads the files): its extras on another CA read and
// create no account key either.
//
// NewProvider does not contact the CA or read certificates: call
// ObtainCertIfNotExistsAll next.
//
// Storage: without WithStorage, the Provider uses the storage of the
// config's storage block. It takes over the one GetLegoConfig opened for
// user, or opens it itself (local and pseudo providers, or a User made by
// hand), and owns it: Provider.Close closes it. With a storage shared by
// several instances, ScheduleRenewalAll also keeps the certificates served
// in step with it, and the certificate files are written on this instance
// (see ScheduleRenewalAll and Provider.Close).
func NewProvider(cfg *Config, user *User, legoCfg *lego.Config, opts ...Option) (_ *Provider, err error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrInvalidConfig)
	}
	// The storage GetLegoConfig opened is the Provider's from now on,
	// closed below if no Provider comes of it.
	opened := user.takeStorage()
	defer func() {
		if err != nil && opened != nil {
			closeStorage(opened)
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := settings{
		logger: zerolog.New(os.Stderr).Level(zerolog.InfoLevel).With().Timestamp().Logger(),
		clock:  systemClock{},
	}
	for _, o := range opts {
		o(&s)
	}
	if s.storage == nil {
		if opened == nil && cfg.sharedStorage() {
			ctx, cancel := context.WithTimeout(context.Background(), storageOpenTimeout)
			opened, err = cfg.OpenStorage(ctx)
			cancel()
			if err != nil {
				return nil, err
			}
		}
		s.storage = opened
		if s.storage == nil {
			s.storage = &FileStorage{}
		}
	}
	acct := &account{user: user}
	main, err := newProvider("main", cfg, user, legoCfg, acct, s)
	if err != nil {
		return nil, err
	}
	main.main = main
	var errs []error
	for i := range cfg.Extra {
		name := fmt.Sprintf("extra[%d]", i)
		merged := MergeExtraConfig(cfg, &cfg.Extra[i])
		ecfg := (*Config)(&merged)
		eu, elc, eacct := user, legoCfg, acct
		if isACME(ecfg.Provider) && (!isACME(cfg.Provider) || ecfg.CADirURL != cfg.CADirURL || ecfg.ACMEKeyPath != cfg.ACMEKeyPath) {
			// Its own account, kept in the same storage.
			if user != nil && user.Key == nil {
				eu = &User{Email: ecfg.Email}
				elc = lego.NewConfig(eu)
				elc.CADirURL = ecfg.CADirURL
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), storageOpenTimeout)
				eu, elc, err = ecfg.legoConfig(ctx, s.storage)
				cancel()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
					continue
				}
			}
			eacct = &account{user: eu}
		}
		ep, err := newProvider(name, ecfg, eu, elc, eacct, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ep.main = main
		main.extraProviders = append(main.extraProviders, ep)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c, ok := opened.(io.Closer); ok {
		main.closer = c
	}
	return main, nil
}

func newProvider(name string, cfg *Config, user *User, legoCfg *lego.Config, acct *account, s settings) (*Provider, error) {
	p := &Provider{
		name:       name,
		cfg:        cfg,
		user:       user,
		legoCfg:    legoCfg,
		acct:       acct,
		settings:   s,
		logger:     s.logger.With().Str("provider", name).Logger(),
		failureKey: failureKey(cfg.CertPath, cfg.KeyPath),
		ariKey:     ariKey(cfg.CertPath, cfg.KeyPath),
		fp:         cfg.fingerprint(),
	}
	if !isACME(cfg.Provider) {
		return p, nil
	}
	if user == nil || legoCfg == nil {
		return nil, fmt.Errorf("%s: %w: provider %q needs the user and lego config from GetLegoConfig", name, ErrInvalidConfig, cfg.Provider)
	}
	f, ok := LookupProvider(cfg.Provider)
	if !ok {
		return nil, fmt.Errorf("%s: %w %q", name, ErrUnknownProvider, cfg.Provider)
	}
	dns, err := f.NewDNSProvider(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("%s: DNS provider %s: %w", name, cfg.Provider, err)
	}
	p.dns = dns
	return p, nil
}

func isACME(provider string) bool {
	return provider != ProviderLocal && provider != ProviderPseudo
}

// GetName returns the provider's name: "main", or "extra[N]" for the
// extra at index N of Config.Extra.
func (p *Provider) GetName() string { return p.name }

// Config returns the provider's validated configuration (for an extra,
// merged with the main block). It must not be modified.
func (p *Provider) Config() *Config { return p.cfg }

// all returns main followed by the extras.
func (p *Provider) all() []*Provider {
	return append([]*Provider{p}, p.extraProviders...)
}

// ObtainCertIfNotExistsAll loads the stored certificate of the main block
// and of every extra, and obtains those that are missing, expired, or no
// longer match the configured domains or key type. Certificates are handled
// concurrently; each error names its provider ("main", "extra[0]"...) and
// all errors are joined. A certificate that loaded is served even when its
// replacement could not be obtained.
//
// An obtain is refused (ErrCoolingDown) within 15 seconds of a failure
// recorded for that certificate, so a restart loop cannot hammer the CA.
//
// An obtain is also refused before the retry time of a failure recorded
// for that certificate (1 hour after a first failure, doubling with each
// further one, or longer when the CA's Retry-After asks), unless the
// certificate's configuration changed since: a process restarted in a
// loop sends no more orders than one that kept running. ObtainAll with
// force, and ForceExpiryAll, are the explicit overrides.
func (p *Provider) ObtainCertIfNotExistsAll() error {
	return p.ObtainAll(context.Background(), false)
}

// ObtainAll is ObtainCertIfNotExistsAll under ctx, which bounds the wait
// for a certificate's storage lock (held by another instance ordering it).
// With force, the wait after recorded failures is ignored: what is
// missing, expired or no longer matches the config is ordered now (as
// `autocert obtain --force` does); certificates that fit are left alone.
func (p *Provider) ObtainAll(ctx context.Context, force bool) error {
	who := attemptStartup
	if force {
		who = attemptForced
	}
	all := p.all()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, q := range all {
		wg.Go(func() {
			if err := q.obtainIfNotExists(ctx, who); err != nil {
				errs[i] = fmt.Errorf("%s: %w", q.name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// LoadCertsAll loads the stored certificates of the main block and every
// extra and serves them, without contacting any CA: for tools that only
// show what is there. It writes no file. Each error names its provider;
// all are joined.
func (p *Provider) LoadCertsAll() error {
	ctx := context.Background()
	var errs []error
	for _, q := range p.all() {
		q.serveMu.Lock()
		sc, _, err := q.loadStoredPEM(ctx)
		if err == nil {
			q.setCert(sc.cert)
		}
		q.serveMu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", q.name, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Provider) obtainIfNotExists(ctx context.Context, who attempt) error {
	p.serveMu.Lock()
	sc, why, err := p.loadStoredPEM(ctx)
	if sc.cert != nil {
		p.serveLocked(sc)
	}
	p.serveMu.Unlock()
	if err == nil && why == "" {
		if isACME(p.cfg.Provider) {
			p.clearOutdatedFailure(ctx, sc)
		}
		return nil
	}
	switch p.cfg.Provider {
	case ProviderLocal:
		if err != nil {
			return err
		}
		p.logger.Warn().Str("reason", why).Msg("local certificate does not match the config")
		return nil
	case ProviderPseudo:
		return p.makePseudo(ctx)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.logger.Info().Err(err).Msg("no stored certificate, obtaining one")
		why = err.Error()
	case err != nil:
		p.logger.Warn().Err(err).Msg("stored certificate unusable, obtaining a new one")
		why = err.Error()
	}
	return p.obtain(ctx, why, nil, false, who)
}

// storedCert is a certificate as read from storage: the parsed pair and
// the PEM texts it was parsed from.
type storedCert struct {
	cert            *tls.Certificate
	certPEM, keyPEM []byte
}

// loadStoredPEM reads the certificate and key from storage. It returns the
// certificate when it loads (even if it needs replacing) with the PEM texts
// it was parsed from, why it needs replacing ("" when it does not), or an
// error when there is nothing usable.
//
// The certificate and the key are two reads: one that falls between the
// two writes of a Store by another process can see the new certificate
// with the old key. A pair that does not parse is therefore read again a
// few times, pairReadRetry apart, before it is reported.
func (p *Provider) loadStoredPEM(ctx context.Context) (storedCert, string, error) {
	for try := 1; ; try++ {
		sc, why, err := p.loadStoredPair(ctx)
		if !errors.Is(err, errPairUnparsed) || try == pairReadTries {
			return sc, why, err
		}
		t := time.NewTimer(time.Duration(try) * pairReadRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return sc, why, err
		case <-t.C:
		}
	}
}

// Reading a certificate and its key again when they do not make a pair.
const (
	pairReadTries = 3
	pairReadRetry = 10 * time.Millisecond
)

// errPairUnparsed marks a certificate and key that were read but do not
// parse as a pair.
var errPairUnparsed = errors.New("certificate and key do not parse as a pair")

// loadStoredPair is one read of the certificate and key, for loadStoredPEM.
func (p *Provider) loadStoredPair(ctx context.Context) (storedCert, string, error) {
	certPEM, err := p.storage.Load(ctx, p.cfg.CertPath)
	if err != nil {
		return storedCert{}, "", p.loadError("certificate", p.cfg.CertPath, err)
	}
	keyPEM, err := p.storage.Load(ctx, p.cfg.KeyPath)
	if err != nil {
		return storedCert{}, "", p.loadError("key", p.cfg.KeyPath, err)
	}
	cert, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		return storedCert{}, "", &pairError{certPath: p.cfg.CertPath, keyPath: p.cfg.KeyPath, err: err}
	}
	return storedCert{cert, certPEM, keyPEM}, p.mismatch(cert.Leaf, cert.PrivateKey), nil
}

// pairError says a stored certificate and key do not load as a pair. It
// is ErrMissingCertificate for errors.Is, and unwraps to the parse error.
type pairError struct {
	certPath, keyPath string
	err               error
}

func (e *pairError) Error() string {
	return fmt.Sprintf("%v: %s and %s: %v", ErrMissingCertificate, e.certPath, e.keyPath, e.err)
}

func (e *pairError) Unwrap() error { return e.err }

func (e *pairError) Is(target error) bool {
	return target == ErrMissingCertificate || target == errPairUnparsed
}

// missingFileError says a certificate or key file does not exist. It is
// both ErrMissingCertificate and fs.ErrNotExist for errors.Is.
type missingFileError struct{ what, path string }

func (e *missingFileError) Error() string {
	return fmt.Sprintf("%v: %s file %s does not exist", ErrMissingCertificate, e.what, e.path)
}

func (e *missingFileError) Is(target error) bool {
	return target == ErrMissingCertificate || target == fs.ErrNotExist
}

func (p *Provider) loadError(what, path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &missingFileError{what, path}
	}
	return fmt.Errorf("%w: reading %s file %s: %w", ErrMissingCertificate, what, path, err)
}

// mismatch says why a loaded certificate no longer fits the config: other
// names, another key type, or expired. It returns "" when it fits.
func (p *Provider) mismatch(leaf *x509.Certificate, key crypto.PrivateKey) string {
	if now := p.clock.Now(); !now.Before(leaf.NotAfter) {
		return "certificate expired at " + leaf.NotAfter.Format(time.RFC3339)
	}
	if len(p.cfg.Domains) > 0 && !sameNames(leaf.DNSNames, p.cfg.Domains) {
		return fmt.Sprintf("certificate names %v differ from configured domains %v", leaf.DNSNames, p.cfg.Domains)
	}
	if p.cfg.Provider != ProviderLocal && p.cfg.CertificateKeyType != "" {
		if kt := keyTypeName(key); kt != p.cfg.CertificateKeyType {
			return fmt.Sprintf("certificate key type %s differs from configured %s", kt, p.cfg.CertificateKeyType)
		}
	}
	return ""
}

func sameNames(have, want []string) bool {
	if len(have) != len(want) {
		return false
	}
	h := make([]string, len(have))
	for i, n := range have {
		h[i] = strings.ToLower(n)
	}
	w := make([]string, len(want))
	for i, n := range want {
		w[i] = strings.ToLower(n)
	}
	slices.Sort(h)
	slices.Sort(w)
	return slices.Equal(h, w)
}

// keyTypeName names a private key in the config's terms (EC256, RSA2048...).
func keyTypeName(key crypto.PrivateKey) string {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "EC256"
		case elliptic.P384():
			return "EC384"
		}
		return "EC"
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA%d", k.N.BitLen())
	case ed25519.PrivateKey:
		return "ED25519"
	}
	return fmt.Sprintf("%T", key)
}

func parseKeyPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

// attempt says who asks obtain for a certificate, which decides how a
// failure recorded in storage (by this instance or another) is honoured.
type attempt int

const (
	// attemptStartup: ObtainCertIfNotExistsAll. Refused within
	// startupCooldown of a failure, so a restart loop cannot hammer the
	// CA.
	attemptStartup attempt = iota
	// attemptScheduled: the scheduler, when the renewal rules say so. A
	// failure another instance recorded meanwhile is waited for, as if it
	// were this instance's.
	attemptScheduled
	// attemptForced: ForceExpiryAll, which ignores failures.
	attemptForced
)

// obtain orders a new certificate from the CA, stores it and serves it.
// old, when not nil, is the certificate being renewed; with replaces (a
// renewal on the CA's advice) its ARI identifier is sent so the CA can
// exempt the order from rate limits. The outcome is reported to the
// scheduler and the notifiers (renew.go).
//
// The certificate's storage lock is held throughout, so that instances
// sharing the storage send one order: once it holds the lock, obtain reads
// the storage again and serves, without ordering, a certificate another
// instance stored meanwhile; then it reads the failure record again (see
// mayAttempt).
func (p *Provider) obtain(ctx context.Context, reason string, old *x509.Certificate, replaces bool, who attempt) error {
	var events []Event // notified once the locks are released
	defer func() { p.notifyAll(ctx, events) }()
	p.obtainMu.Lock()
	defer p.obtainMu.Unlock()
	unlock, err := p.storage.Lock(ctx, p.cfg.CertPath)
	if err != nil {
		return fmt.Errorf("%w: lock %s: %w", ErrObtain, p.cfg.CertPath, err)
	}
	defer unlock()

	// Another instance sharing the storage may have just done the work.
	p.serveMu.Lock()
	sc, why, err := p.loadStoredPEM(ctx)
	if err == nil && why == "" && (old == nil || !sc.cert.Leaf.Equal(old)) {
		events = p.adoptLocked(sc)
		p.serveMu.Unlock()
		p.clearOutdatedFailure(ctx, sc)
		return nil
	}
	p.serveMu.Unlock()

	rec, _ := p.loadFailure(ctx)
	if rec.outdatedBy(sc, time.Time{}) {
		// About a certificate older than the one stored: this attempt
		// is the first since that one was obtained.
		rec = failureRecord{}
	}
	if who != attemptForced {
		if err := p.mayAttempt(rec, who); err != nil {
			return err
		}
	}
	if rec.configChanged(p.fp) {
		rec = failureRecord{} // the failures of another configuration
	}
	rec = p.attemptRecord(rec, sc)
	// Written before the order, so that a crash in the middle still counts.
	p.storeFailure(ctx, rec)

	p.logger.Info().Strs("domains", p.cfg.Domains).Str("reason", reason).Msg("obtaining certificate")
	var ari *x509.Certificate
	if replaces {
		ari = old
	}
	res, err := p.order(ari)
	if err == nil {
		var cert, prev *tls.Certificate
		if cert, err = parseKeyPair(res.Certificate, res.PrivateKey); err == nil {
			// Stored and served as one step: a reload that the change
			// notification of this Store starts finds it served.
			p.serveMu.Lock()
			err = p.storage.Store(ctx,
				Entry{Key: p.cfg.CertPath, Value: res.Certificate},
				Entry{Key: p.cfg.KeyPath, Value: res.PrivateKey, Private: true},
			)
			if err == nil {
				prev = p.cert.Load()
				p.serveLocked(storedCert{cert, res.Certificate, res.PrivateKey})
			} else {
				err = fmt.Errorf("saving certificate: %w", err)
			}
			p.serveMu.Unlock()
		}
		if err == nil {
			p.report(StepSaved, "", p.cfg.CertPath, 0)
			p.clearFailure(ctx)
			events = p.obtained(prev, cert, reason)
			return nil
		}
	}

	rec = p.failed(rec, err)
	p.storeFailure(ctx, rec)
	err = fmt.Errorf("%w: %w", ErrObtain, err)
	events = p.obtainFailed(rec, err)
	return &scrubbedError{p.scrub(err.Error()), err}
}

// mayAttempt decides, under the certificate's storage lock, whether the
// failure record rec (zero when there is none) lets who order now. A
// record of an attempt that did not finish, read while holding the lock,
// was left by a holder that died in the middle of its order (a crash, a
// kill, a lost host): another instance takes over at once, except at
// start-up after a second such crash in a row within startupCooldown,
// which looks like a crash loop. A finished failure refuses a start-up
// within startupCooldown; for the scheduler, a finished failure that
// another instance recorded since this one last looked (newer than the
// failure it knows) is adopted with its retry time, so the fleet backs off
// together instead of each instance retrying in turn. It returns nil, or
// the ErrCoolingDown error to return.
func (p *Provider) mayAttempt(rec failureRecord, who attempt) error {
	if rec.Time.IsZero() {
		return nil
	}
	if rec.configChanged(p.fp) {
		p.logger.Info().Time("failed_at", rec.Time).Time("retry_at", rec.RetryAt).
			Msg("the configuration changed since the last failure; not waiting for its retry time")
		return nil
	}
	now := p.clock.Now()
	switch who {
	case attemptStartup:
		until := rec.Time.Add(startupCooldown)
		if rec.unfinished() {
			if !now.Before(until) || rec.Attempts < 2 {
				return nil
			}
			return fmt.Errorf("%w: %d attempts in a row did not finish (the last began at %s), as in a crash loop; not retrying before %s; a forced renewal retries now",
				ErrCoolingDown, rec.Attempts, rec.Time.Format(time.RFC3339), until.Format(time.RFC3339))
		}
		// A start waits as long as a process that kept running would.
		var notAfter time.Time
		if c := p.cert.Load(); c != nil {
			notAfter = c.Leaf.NotAfter
		}
		if r := rec.retryAt(notAfter); r.After(until) {
			until = r
		}
		if !now.Before(until) {
			return nil
		}
		why := ""
		if rec.Message != "" {
			why = " (" + rec.Message + ")"
		}
		return fmt.Errorf("%w: last attempt failed at %s%s; not retrying before %s; a forced renewal (autocert obtain --force or renew --force, Provider.ForceExpiryAll) retries now",
			ErrCoolingDown, rec.Time.Format(time.RFC3339), why, until.Format(time.RFC3339))
	case attemptScheduled:
		if rec.unfinished() || !now.Before(rec.RetryAt) {
			return nil
		}
		s := p.scheduler()
		s.mu.Lock()
		adopt := rec.Time.After(p.rs.fail.Time)
		if adopt {
			p.rs.fail, p.rs.failFresh = rec, false
		}
		s.mu.Unlock()
		if !adopt {
			return nil
		}
		p.logger.Info().Time("failed_at", rec.Time).Time("retry_at", rec.RetryAt).Str("error", rec.Message).
			Msg("another instance failed to renew this certificate; waiting as it does")
		return fmt.Errorf("%w: another instance's attempt failed at %s; not retrying before %s",
			ErrCoolingDown, rec.Time.Format(time.RFC3339), rec.RetryAt.Format(time.RFC3339))
	}
	return nil
}

// retryAfterOf returns the wait a rate-limit answer of the CA asks for.
func retryAfterOf(err error, now time.Time) time.Duration {
	var rl *acme.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter == "" {
		return 0
	}
	if d, perr := time.ParseDuration(rl.RetryAfter + "s"); perr == nil {
		return d
	}
	if t, perr := http.ParseTime(rl.RetryAfter); perr == nil {
		return t.Sub(now)
	}
	return 0
}

// order runs one ACME order through lego.
func (p *Provider) order(replaces *x509.Certificate) (*certificate.Resource, error) {
	client, err := p.legoClient()
	if err != nil {
		return nil, err
	}
	p.report(StepOrder, "", strings.Join(p.cfg.Domains, ", "), 0)
	req := certificate.ObtainRequest{
		Domains: p.cfg.Domains,
		Bundle:  true,
		Profile: p.cfg.Profile,
	}
	if replaces != nil {
		if id, err := certificate.MakeARICertID(replaces); err == nil {
			req.ReplacesCertID = id
		}
	}
	res, err := client.Certificate.Obtain(req)
	if !accountGone(err) {
		return res, err
	}
	// The CA no longer knows the account (its database was reset, the
	// account was deactivated): find or register it again, once, rather
	// than fail every renewal until the process restarts.
	p.logger.Warn().Str("ca", p.cfg.CADirURL).
		Msg("the CA does not know the ACME account any more; looking it up or registering it again")
	p.forgetAccount(client)
	if client, err = p.legoClient(); err != nil {
		return nil, err
	}
	return client.Certificate.Obtain(req)
}

// accountGone reports whether err is the CA's answer that the account
// signing the request does not exist.
func accountGone(err error) bool {
	var prob *acme.ProblemDetails
	return errors.As(err, &prob) && prob.Type == "urn:ietf:params:acme:error:accountDoesNotExist"
}

// forgetAccount drops client, made for an account the CA has forgotten,
// and the account's registration (shared with the providers on the same
// account, whose clients meet the same answer and drop theirs), so that
// the next legoClient finds or registers the account anew.
func (p *Provider) forgetAccount(client *lego.Client) {
	p.clientMu.Lock()
	defer p.clientMu.Unlock()
	p.acct.mu.Lock()
	defer p.acct.mu.Unlock()
	if p.client == client {
		p.client = nil
	}
	p.user.setRegistration(nil)
}

// legoClient returns the provider's ACME client, creating it on first use:
// it fetches the CA's directory and finds or registers the account.
func (p *Provider) legoClient() (*lego.Client, error) {
	p.clientMu.Lock()
	defer p.clientMu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	p.acct.mu.Lock()
	defer p.acct.mu.Unlock()

	cfg := *p.legoCfg
	// An extra on the main block's account shares its lego config, but
	// its certificate is ordered with its own key type.
	if kt, ok := legoKeyType(p.cfg.CertificateKeyType); ok {
		cfg.Certificate.KeyType = kt
	}
	hc := *p.legoCfg.HTTPClient // lego wraps the client's transport: give it a copy
	if p.progress != nil {
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = progressTransport{base, p}
	}
	cfg.HTTPClient = &hc
	cfg.User = p.user
	client, err := lego.NewClient(&cfg)
	if err != nil {
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) || strings.Contains(err.Error(), "certificate signed by unknown authority") {
			return nil, fmt.Errorf("ACME directory %s: %w (for a private CA, set ca_certs to the PEM file of the root that signs its HTTPS certificate)", cfg.CADirURL, err)
		}
		return nil, fmt.Errorf("ACME directory %s: %w", cfg.CADirURL, err)
	}
	if err := p.checkDirectory(&cfg, client); err != nil {
		return nil, err
	}
	if p.user.GetRegistration() == nil {
		p.report(StepAccount, "", "looking up the ACME account at "+cfg.CADirURL, 0)
		reg, err := p.findOrRegister(client)
		if err != nil {
			return nil, err
		}
		p.user.setRegistration(reg)
	}
	if err := client.Challenge.SetDNS01Provider(p.withProgress(p.dns), p.dnsOptions()...); err != nil {
		return nil, err
	}
	p.client = client
	return client, nil
}

// findOrRegister finds the ACME account of the user's key, or registers
// one (with External Account Binding when configured), agreeing to the
// CA's terms of service.
func (p *Provider) findOrRegister(client *lego.Client) (*registration.Resource, error) {
	reg, err := client.Registration.ResolveAccountByKey()
	if err == nil {
		p.logger.Info().Str("account", reg.URI).Msg("registration reused")
		return reg, nil
	}
	var prob *acme.ProblemDetails
	if !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:accountDoesNotExist" {
		return nil, fmt.Errorf("looking up ACME account: %w", err)
	}
	if p.cfg.EABKid != "" {
		reg, err = client.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
			TermsOfServiceAgreed: true,
			Kid:                  p.cfg.EABKid,
			HmacEncoded:          p.cfg.EABHmac.Value(),
		})
	} else {
		reg, err = client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	}
	if err != nil {
		return nil, fmt.Errorf("registering ACME account: %w", err)
	}
	p.logger.Info().Str("account", reg.URI).Msg("registered ACME account")
	return reg, nil
}

// dnsOptions makes lego check propagation with this provider's own
// resolvers (never lego's process-wide list, which two Providers would
// fight over).
func (p *Provider) dnsOptions() []dns01.ChallengeOption {
	resolvers := p.cfg.Resolvers
	if len(resolvers) == 0 && p.progress == nil {
		return nil
	}
	var started propagationClock
	return []dns01.ChallengeOption{
		dns01.WrapPreCheck(func(domain, fqdn, value string, check dns01.PreCheckFunc) (ok bool, err error) {
			p.report(StepPropagation, domain, "waiting for "+fqdn, started.elapsed(fqdn, time.Now()))
			if len(resolvers) == 0 {
				ok, err = check(fqdn, value)
			} else {
				ok, err = txtVisible(resolvers, fqdn, value)
			}
			if ok {
				started.done(fqdn)
			}
			return ok, err
		}),
	}
}

// setCert serves cert for this provider and republishes the SNI snapshot.
func (p *Provider) setCert(cert *tls.Certificate) {
	p.cert.Store(cert)
	p.main.publish()
}
