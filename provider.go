package autocert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/go-acme/lego/v4/lego"
)

// Provider keeps the certificates of one Config (the main block and every
// extra) obtained, stored and fresh, and serves them to TLS handshakes
// through GetCert.
//
// A Provider is built once with New (or NewProvider); its methods are safe
// for concurrent use.
type Provider struct {
	cfg   *Config        // the main block, validated
	certs []*certificate // main first, then the extras in configured order
	sni   sniIndex       // what GetCert reads
	sched *scheduler     // owns the renewal state of every certificate

	closer    io.Closer // the storage New opened, closed by Close
	closeOnce sync.Once
	closeErr  error
}

// New builds the Provider of cfg: the main certificate and one per extra.
// It validates cfg (once, filling in its defaults as Validate does) and
// keeps a copy of it, so the caller may reuse or change cfg; it opens the storage of the config's storage block
// unless WithStorage gives one (logging through the Provider's logger),
// and reads or creates the ACME account key of each account in that
// storage, under acme_key_path: extras on the same CA and account key as
// the main block share its account; an extra with its own CA or account
// key gets its own. ctx bounds the opening of the storage and the reading
// of the keys (at most 30 seconds in any case).
//
// New does not contact the CA or read certificates: call ObtainAll next.
// Close releases what New opened.
func New(ctx context.Context, cfg *Config, opts ...Option) (_ *Provider, err error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrInvalidConfig)
	}
	s := defaultSettings()
	for _, o := range opts {
		o(&s)
	}
	s.scrubbers = new(redact.Pool)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.clone() // the Provider's own: the caller's may change
	ctx, cancel := context.WithTimeout(ctx, storageOpenTimeout)
	defer cancel()
	p := &Provider{cfg: cfg}
	if s.storage == nil {
		st, err := cfg.openStorage(s.logger.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				closeStorage(st)
			}
		}()
		if c, ok := st.(io.Closer); ok && cfg.sharedStorage() {
			p.closer = c
		}
		s.storage = st
	}
	accounts, err := newAccounts(ctx, cfg, &s)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, issuers := range accounts {
		name, ccfg := "main", cfg
		if i > 0 {
			name = fmt.Sprintf("extra[%d]", i-1)
			merged := MergeExtraConfig(cfg, &cfg.Extra[i-1])
			ccfg = (*Config)(&merged)
		}
		c, err := newCertificate(name, ccfg, issuers, &s, &p.sni)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, is := range issuers {
			if !slices.Contains(is.acct.certs, c) {
				is.acct.certs = append(is.acct.certs, c)
			}
		}
		p.certs = append(p.certs, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p.sni.certs = p.certs
	p.sched = newScheduler(&s, p.certs)
	return p, nil
}

// NewProvider builds the Provider of cfg, as New does, with the main
// block's ACME account given: user and legoCfg come from cfg.GetLegoConfig
// (both nil for the local and pseudo providers). A user without a Key
// makes a Provider that loads and reports certificates but cannot order
// them (a tool that only reads the files): its extras on another CA read
// and create no account key either.
func NewProvider(cfg *Config, user *User, legoCfg *lego.Config, opts ...Option) (*Provider, error) {
	return New(context.Background(), cfg, append(slices.Clip(opts), withAccount(user, legoCfg))...)
}

// Close releases what New opened: the storage of the config's storage
// block, when it implements io.Closer (a database connection pool, say).
// A Storage given with WithStorage is the caller's and stays open. Close
// returns the storage's error; later calls return the same.
//
// Stop the scheduler first (end the context of ScheduleRenewalAll's parent
// and wait for SchedulerDone), since renewals need the storage. GetCert
// keeps serving, from memory, the certificates loaded before Close.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		if p.closer != nil {
			p.closeErr = p.closer.Close()
		}
	})
	return p.closeErr
}

// GetName returns "main", the name of the main block; the extras are
// named "extra[N]" in errors, events and RenewalStatus.
func (p *Provider) GetName() string { return p.certs[0].name }

// Config returns the validated configuration of the main block. It must
// not be modified.
func (p *Provider) Config() *Config { return p.cfg }

// ObtainCertIfNotExistsAll is ObtainAll(context.Background(), false).
func (p *Provider) ObtainCertIfNotExistsAll() error { return p.ObtainAll(context.Background(), false) }

// ObtainAll loads the stored certificate of the main block and of every
// extra, serves it, and obtains those that are missing, expired, or no
// longer match the configured domains or key type. Certificates are
// handled concurrently; each error names its certificate ("main",
// "extra[0]"...) and all errors are joined. A certificate that loaded is
// served even when its replacement could not be obtained. ctx bounds the
// whole: the wait for a certificate's storage lock (held by another
// instance ordering it), the order, and the DNS propagation check.
//
// An obtain is refused (ErrCoolingDown) within 15 seconds of a failure
// recorded for that certificate, so a restart loop cannot hammer the CA,
// and before the retry time of a failure recorded for that certificate
// (1 hour after a first failure, doubling with each further one, or longer
// when the CA's Retry-After asks), unless the certificate's configuration
// changed since: a process restarted in a loop sends no more orders than
// one that kept running. With force, the wait after recorded failures is
// ignored (as `autocert obtain --force` does); certificates that fit are
// left alone either way.
func (p *Provider) ObtainAll(ctx context.Context, force bool) error {
	who := attemptStartup
	if force {
		who = attemptForced
	}
	return p.sched.startupAll(ctx, who)
}

// LoadCertsAll is Load(context.Background()).
func (p *Provider) LoadCertsAll() error { return p.Load(context.Background()) }

// Load loads the stored certificates of the main block and every extra and
// serves them, without contacting any CA: for tools that only show what is
// there. It writes no file. Each error names its certificate; all are
// joined.
func (p *Provider) Load(ctx context.Context) error {
	errs := make([]error, len(p.certs))
	eachCert(p.certs, func(i int, c *certificate) {
		if err := c.loadOnly(ctx); err != nil {
			errs[i] = fmt.Errorf("%s: %w", c.name, err)
		}
	})
	return errors.Join(errs...)
}

// eachCert calls f for every certificate of certs and its index, on a few
// goroutines (startLoaders at most), and returns when all calls have
// returned: reading and parsing n certificates costs no more goroutines
// than the machine can run, whatever n.
func eachCert(certs []*certificate, f func(i int, c *certificate)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(certs), startLoaders()) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(certs) {
					return
				}
				f(i, certs[i])
			}
		})
	}
	wg.Wait()
}

// startLoaders is the number of goroutines that read and parse the stored
// certificates at start: twice the processors, so that a read waiting for
// its storage (a database round trip, a file not in the page cache) leaves
// the processors busy, and at least eight.
func startLoaders() int { return max(8, 2*runtime.GOMAXPROCS(0)) }

// ForceExpiryAll is ForceExpiry(context.Background()).
func (p *Provider) ForceExpiryAll() bool { return p.ForceExpiry(context.Background()) }

// ForceExpiry renews the main certificate and every extra at once, under
// ctx, ignoring the wait after failures; "local" certificates are left
// alone. It returns false, starting nothing, while a previous forced
// renewal is still running, or when there is nothing to renew. The
// certificates served are replaced as each renewal succeeds;
// WaitRenewalDone waits for them all, and RenewalStatus tells each
// outcome. The renewals run whether or not the scheduler runs.
func (p *Provider) ForceExpiry(ctx context.Context) bool { return p.sched.force(ctx) != nil }

// RenewAll renews every certificate but the "local" ones now, ignoring
// the wait after failures, and waits for the renewals: it returns nil when
// all succeeded, else their errors joined, each naming its certificate.
// When ctx ends, the renewals stop at their next request to the CA or DNS
// check, record no failure, and RenewAll returns once they have stopped,
// with errors wrapping ctx's. While a forced renewal asked otherwise
// (ForceExpiry) runs, RenewAll waits for it instead, until ctx ends.
func (p *Provider) RenewAll(ctx context.Context) error {
	if round := p.sched.force(ctx); round != nil {
		<-round.done // bound to ctx: it ends soon after ctx does
		return p.sched.forcedErrors()
	}
	round := p.sched.lastForce()
	if round == nil {
		return nil // nothing to renew
	}
	select {
	case <-round.done:
		return p.sched.forcedErrors()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ScheduleRenewalAll starts the scheduler under parent's context, as
// Start does.
func (p *Provider) ScheduleRenewalAll(parent Parent) { p.Start(parent.Context()) }

// Start keeps the main certificate and every extra renewed in the
// background until ctx ends; see the package documentation for the
// renewal rules. A certificate is renewed at the first of: a random
// point, chosen once and kept across restarts, in the renewal window its
// CA suggests (ACME Renewal Information, asked for again at least twice a
// day), with the old certificate named in the order so the CA can exempt
// it from rate limits; the time when min(lifetime/3, 30 days) of its
// validity remains (half its lifetime under 10 days), less a small jitter;
// at once when it no longer matches the configured domains or key type.
// After a failure it waits 1 h, then 2 h, 4 h... up to 24 h, at most a
// quarter of the remaining validity, longer if the CA's Retry-After asks;
// the wait is persisted. The old certificate is served until a new one is
// stored. "local" certificates are reloaded when their files change.
// Notifiers first receive an ExpirySummary.
//
// With the file layout (FileStorage), the certificates served follow
// their files: a certificate another process stored there (a second
// instance sharing the directory, `autocert renew --force`) is loaded and
// served within a fraction of a second (file-system notifications), or
// within five seconds where notifications do not come (a network file
// system), and announced with a CertReloaded event; the files are not
// written again.
//
// With a storage other than the file layout (one shared by several
// instances), the certificates served follow the storage: when the
// storage implements Watcher, a certificate another instance stores is
// loaded and served as soon as the change is reported (within a second
// with storage/postgres), and every certificate is read again when the
// storage says changes may have been missed (after a lost connection) and
// every five minutes in any case. A certificate swapped in this way is
// written to its cert_path and key_path files and announced to the
// notifiers with a CertReloaded event.
//
// One scheduler serves all certificates, however often this is called.
// When ctx ends no new work starts; an order already sent to the CA
// finishes, and its certificate is stored and served. SchedulerDone
// tells when everything has stopped.
func (p *Provider) Start(ctx context.Context) { p.sched.start(ctx) }

// Run is Start, then waits until ctx ends and the scheduler has stopped
// (SchedulerDone). It returns ctx's error.
func (p *Provider) Run(ctx context.Context) error {
	p.sched.start(ctx)
	<-p.sched.done
	return ctx.Err()
}

// SchedulerDone returns a channel closed once the scheduler started by
// Start or ScheduleRenewalAll has stopped after its context ended, and the
// work it had started (an order in flight, a notification) has finished.
// It is never closed if the scheduler was not started.
func (p *Provider) SchedulerDone() <-chan struct{} { return p.sched.done }

// WaitRenewalDone waits until every renewal started by the last
// ForceExpiryAll has finished, the new certificates being served, and
// returns true; it returns false when ctx ends first, or when no forced
// renewal was ever asked. Whether each succeeded is in RenewalStatus.
func (p *Provider) WaitRenewalDone(ctx context.Context) bool {
	r := p.sched.lastForce()
	if r == nil {
		return false
	}
	select {
	case <-r.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Format implements fmt.Formatter: a Provider prints as its name and
// domains, whatever the verb, never the configuration it holds (whose
// secrets fmt could not hide once reached through an unexported field).
func (p *Provider) Format(f fmt.State, verb rune) {
	if p == nil {
		fmt.Fprint(f, "<nil>")
		return
	}
	fmt.Fprintf(f, "autocert.Provider{main %v, %d extra}", p.cfg.Domains, len(p.certs)-1)
}
