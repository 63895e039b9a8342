package autocert

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Parent is what ScheduleRenewalAll runs under: the scheduler stops when
// its context ends. Any value with this method will do, such as a task of
// the host program; ContextParent wraps a plain context.
type Parent interface {
	Context() context.Context
}

// ContextParent returns a Parent whose context is ctx.
func ContextParent(ctx context.Context) Parent { return contextParent{ctx} }

type contextParent struct{ ctx context.Context }

func (p contextParent) Context() context.Context { return p.ctx }

// The lifetime rule: a certificate is renewed when one third of its
// lifetime remains (one half when it is valid for less than ten days), but
// not earlier than thirty days before it expires, minus a jitter of at
// most a twentieth of that, capped at six hours.
const (
	maxRenewBefore = 30 * 24 * time.Hour
	shortLifetime  = 10 * 24 * time.Hour
	maxJitter      = 6 * time.Hour
)

// maxWorkers bounds the certificates the scheduler works on at once.
const maxWorkers = 4

// Reasons a renewal is due, as RenewalStatus.Reason reports them.
const (
	reasonMissing  = "missing"  // no certificate is served
	reasonExpired  = "expired"  // the certificate served has expired
	reasonMismatch = "mismatch" // the domains or key type changed in the config
	reasonLifetime = "lifetime" // the lifetime rule
	reasonARI      = "ari"      // the point chosen in the CA's renewal window
	reasonForced   = "forced"   // ForceExpiryAll
)

// renewBefore is how long before its expiry a certificate valid for
// lifetime is renewed by the lifetime rule.
func renewBefore(lifetime time.Duration) time.Duration {
	if lifetime < shortLifetime {
		return lifetime / 2
	}
	return min(lifetime/3, maxRenewBefore)
}

// jitterMax is the largest jitter taken off a renewal due renewBefore
// ahead of expiry.
func jitterMax(renewBefore time.Duration) time.Duration {
	return min(renewBefore/20, maxJitter)
}

// jitter returns the jitter of leaf: a fraction of jitterMax drawn from
// the certificate's own bytes, so it differs between certificates (a fleet
// does not renew in one burst) yet is the same at every start.
func jitter(leaf *x509.Certificate, renewBefore time.Duration) time.Duration {
	src := leaf.Raw
	if len(src) == 0 && leaf.SerialNumber != nil {
		src = leaf.SerialNumber.Bytes()
	}
	sum := sha256.Sum256(src)
	frac := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53) // in [0, 1)
	return time.Duration(frac * float64(jitterMax(renewBefore)))
}

// due is when a certificate should be renewed, and why.
type due struct {
	at     time.Time
	reason string // one of the reason constants
	retry  bool   // at was pushed back to wait after a failure
}

// renewalDue applies the renewal rules at now to the certificate leaf (nil
// when none is served), which no longer fits the config when mismatch is
// not empty, with the CA's renewal information ari (used when it is about
// leaf) and the last failure fail (zero Time when none). obtained, when
// after leaf's NotBefore, is when this process obtained leaf: the lifetime
// rule then counts the lifetime from it, since a CA that backdates
// NotBefore (step-ca, by a minute) would otherwise make a short-lived
// certificate due before it was even issued, and renewed again and again.
func renewalDue(now time.Time, leaf *x509.Certificate, obtained time.Time, mismatch string, ari ariRecord, fail failureRecord) due {
	var d due
	var notAfter time.Time
	switch {
	case leaf == nil:
		d = due{at: now, reason: reasonMissing}
	case !now.Before(leaf.NotAfter):
		d, notAfter = due{at: now, reason: reasonExpired}, leaf.NotAfter
	case mismatch != "":
		d, notAfter = due{at: now, reason: reasonMismatch}, leaf.NotAfter
	default:
		notAfter = leaf.NotAfter
		from := leaf.NotBefore
		if obtained.After(from) && obtained.Before(leaf.NotAfter) {
			from = obtained
		}
		rb := renewBefore(leaf.NotAfter.Sub(from))
		d = due{at: leaf.NotAfter.Add(-rb - jitter(leaf, rb)), reason: reasonLifetime}
		if ari.about(ariID(leaf)) && ari.RenewAt.Before(d.at) {
			d = due{at: ari.RenewAt, reason: reasonARI}
		}
	}
	if !fail.Time.IsZero() {
		if r := fail.retryAt(notAfter); r.After(d.at) {
			d.at, d.retry = r, true
		}
	}
	return d
}

// describeReason turns a reason into the words of logs and events.
func describeReason(reason, mismatch string) string {
	switch reason {
	case reasonMissing:
		return "no certificate"
	case reasonExpired:
		return "certificate expired"
	case reasonMismatch:
		return mismatch
	case reasonLifetime:
		return "renewal due by the certificate's lifetime"
	case reasonARI:
		return "renewal window suggested by the CA"
	case reasonForced:
		return "forced"
	}
	return reason
}

// RenewalStatus is the renewal state of one certificate, as this process
// knows it. It marshals to JSON for status pages and the HTTP API.
type RenewalStatus struct {
	// Provider is "main" or "extra[N]".
	Provider string `json:"provider"`
	// NextRenewal is when the scheduler will next try to renew the
	// certificate; zero until the scheduler has looked at it, and for
	// "local" certificates.
	NextRenewal time.Time `json:"next_renewal,omitzero"`
	// Reason names the rule that set NextRenewal: "ari" (the point chosen
	// in the CA's renewal window), "lifetime", "mismatch" (the config
	// changed), "expired" or "missing".
	Reason string `json:"reason,omitempty"`
	// WindowStart and WindowEnd are the renewal window the CA suggested
	// (ACME Renewal Information); zero when unknown.
	WindowStart time.Time `json:"window_start,omitzero"`
	WindowEnd   time.Time `json:"window_end,omitzero"`
	// Renewing is true while an order is in progress.
	Renewing bool `json:"renewing,omitempty"`
	// LastRenewal is when this process last obtained the certificate.
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	// LastFailure, LastError and Failures describe the failures since the
	// last success; RetryAt is when the scheduler tries again (it is also
	// NextRenewal's lower bound).
	LastFailure time.Time `json:"last_failure,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Failures    int       `json:"failures,omitempty"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
	// Forced is the outcome of the last ForceExpiryAll for this
	// certificate; nil when none was asked.
	Forced *ForcedRenewal `json:"forced,omitempty"`
}

// ForcedRenewal is the outcome of a renewal forced by ForceExpiryAll.
type ForcedRenewal struct {
	Requested time.Time `json:"requested"`
	// Finished is zero while the renewal runs.
	Finished time.Time `json:"finished,omitzero"`
	// Err is nil when the renewal succeeded; it wraps ErrObtain otherwise.
	Err error `json:"-"`
	// Error is the message of Err.
	Error string `json:"error,omitempty"`
}

// renewState is what the scheduler knows of one certificate. It is
// guarded by the scheduler's mutex.
type renewState struct {
	loaded bool          // fail and ari were read from storage
	fail   failureRecord // the last failure; zero Time when none
	// failFresh: fail was set by an attempt of this process, which a
	// record read from storage meanwhile must not overwrite.
	failFresh bool
	ari       ariRecord // renewal information, maybe of an older certificate

	due    due       // the renewal last planned
	next   time.Time // when the scheduler looks at the certificate next
	index  int       // in the scheduler's queue, when queued
	queued bool
	busy   bool // a goroutine is working on it (then it is not queued)

	renewing    bool
	lastRenewal time.Time
	obtained    string // serial of the certificate this process last obtained
	force       bool   // a forced renewal is asked and not started
	forced      *ForcedRenewal

	// "local" certificates
	polled   bool
	polledAt time.Time
	seen     [2]statResult // of the certificate and key files
	warned   string        // serial of the certificate last warned about
}

// scheduler renews the certificates of one Provider and its extras: one
// goroutine, one timer set to the earliest time at which a certificate
// needs looking at, and at most maxWorkers goroutines doing the work.
type scheduler struct {
	clock Clock
	wake  chan struct{} // asks the loop to look at the queue again
	done  chan struct{} // closed once stopped and idle

	mu      sync.Mutex
	queue   renewQueue
	started bool
	running bool // the loop runs: new work goes to ctx
	stopped bool // the loop has ended
	closed  bool // done is closed
	ctx     context.Context
	active  int         // goroutines working
	aux     int         // other goroutines running: keeping in step with a shared storage
	force   *forceRound // the last forced round
}

// forceRound is one call of ForceExpiryAll.
type forceRound struct {
	pending int
	done    chan struct{}
}

func newScheduler(clock Clock) *scheduler {
	return &scheduler{clock: clock, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// scheduler returns the scheduler of p's Provider (kept by main).
func (p *Provider) scheduler() *scheduler {
	m := p.main
	if m == nil {
		m = p
	}
	m.schedOnce.Do(func() { m.sched = newScheduler(m.clock) })
	return m.sched
}

// ScheduleRenewalAll keeps the main certificate and every extra renewed in
// the background until parent's context ends. A certificate is renewed at
// the first of: a random point, chosen once and kept across restarts, in
// the renewal window its CA suggests (ACME Renewal Information, asked for
// again at least twice a day), with the old certificate named in the order
// so the CA can exempt it from rate limits; the time when min(lifetime/3,
// 30 days) of its validity remains (half its lifetime under 10 days), less
// a small jitter; at once when it no longer matches the configured domains
// or key type. After a failure it waits 1 h, then 2 h, 4 h... up to 24 h,
// at most a quarter of the remaining validity, longer if the CA's
// Retry-After asks; the wait is persisted. The old certificate is served
// until a new one is stored. "local" certificates are reloaded when their
// files change. Notifiers first receive an ExpirySummary.
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
// When the context ends no new work starts; an order already sent to the
// CA finishes, and its certificate is stored and served. SchedulerDone
// tells when everything has stopped. parent must not be nil.
func (p *Provider) ScheduleRenewalAll(parent Parent) {
	s := p.scheduler()
	ctx := parent.Context()
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return
	}
	s.started, s.running, s.ctx = true, true, ctx
	now := s.clock.Now()
	all := p.main.all()
	for _, q := range all {
		s.planLocked(q, now)
	}
	summary := len(p.notifiers) > 0
	if summary {
		s.active++
	}
	shared := p.main.sharesStorage()
	s.aux++ // syncStorage or syncFiles
	s.mu.Unlock()
	if summary {
		go func() {
			p.main.notify(ctx, p.main.expirySummary(now))
			s.finish()
		}()
	}
	if shared {
		go s.syncStorage(ctx, p.main)
	} else {
		go s.syncFiles(ctx, p.main)
	}
	go s.run(ctx)
}

// SchedulerDone returns a channel closed once the scheduler started by
// ScheduleRenewalAll has stopped after its parent's context ended, and the
// work it had started (an order in flight, a notification) has finished.
// It is never closed if ScheduleRenewalAll was not called.
func (p *Provider) SchedulerDone() <-chan struct{} { return p.scheduler().done }

func (p *Provider) expirySummary(now time.Time) *ExpirySummary {
	e := &ExpirySummary{Time: now}
	for _, q := range p.all() {
		ce := CertExpiry{Provider: q.name, Domains: q.cfg.Domains}
		if c := q.cert.Load(); c != nil {
			ce.Domains, ce.Serial, ce.NotAfter = c.Leaf.DNSNames, serialHex(c.Leaf), c.Leaf.NotAfter
		}
		e.Certificates = append(e.Certificates, ce)
	}
	return e
}

// run is the scheduler's loop.
func (s *scheduler) run(ctx context.Context) {
	// The timer is made when first needed: a timer made and stopped at
	// once would show, to a test clock, a deadline never meant.
	var timer Timer
	var fired <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			s.stop()
			return
		}
		switch wait, ok := s.dispatch(ctx); {
		case ok && timer == nil:
			timer = s.clock.NewTimer(wait)
			fired = timer.C()
		case ok:
			timer.Reset(wait)
		case timer != nil:
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			s.stop()
			return
		case <-fired:
		case <-s.wake:
		}
	}
}

// dispatch starts work on the certificates that are due, and returns how
// long until the next one is; ok is false when nothing is queued or all
// workers are busy (a worker wakes the loop when it ends).
func (s *scheduler) dispatch(ctx context.Context) (wait time.Duration, ok bool) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) > 0 && s.active < maxWorkers {
		p := s.queue[0]
		if p.rs.next.After(now) {
			return p.rs.next.Sub(now), true
		}
		s.startLocked(ctx, p)
	}
	return 0, false
}

func (s *scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running, s.stopped = false, true
	s.closeIfIdleLocked()
}

func (s *scheduler) closeIfIdleLocked() {
	if s.stopped && s.active == 0 && s.aux == 0 && !s.closed {
		s.closed = true
		close(s.done)
	}
}

// finish ends the work of a goroutine that is not a worker.
func (s *scheduler) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	s.closeIfIdleLocked()
}

// finishAux ends a goroutine counted in aux.
func (s *scheduler) finishAux() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aux--
	s.closeIfIdleLocked()
}

// poke wakes the loop.
func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// startLocked takes p off the queue and starts a worker on it.
func (s *scheduler) startLocked(ctx context.Context, p *Provider) {
	if p.rs.queued {
		heap.Remove(&s.queue, p.rs.index)
	}
	p.rs.busy = true
	s.active++
	go s.work(ctx, p)
}

// work does what is due for p, forced renewals asked meanwhile included,
// then queues p again.
func (s *scheduler) work(ctx context.Context, p *Provider) {
	for {
		s.mu.Lock()
		force := p.rs.force
		p.rs.force = false
		s.mu.Unlock()

		s.tick(ctx, p, force)

		s.mu.Lock()
		if p.rs.force {
			s.mu.Unlock()
			continue
		}
		p.rs.busy = false
		s.active--
		s.planLocked(p, s.clock.Now())
		s.closeIfIdleLocked()
		s.mu.Unlock()
		s.poke()
		return
	}
}

// tick does what is due for p. A forced renewal runs even after ctx ended
// (it was asked for and is being waited for); other work starts only while
// ctx lives. Once started, an order is completed and stored.
func (s *scheduler) tick(ctx context.Context, p *Provider, force bool) {
	s.load(ctx, p)
	if p.cfg.Provider == ProviderLocal {
		if ctx.Err() == nil {
			p.pollLocal(ctx)
		}
		return
	}
	now := s.clock.Now()
	cur := p.cert.Load()
	if !force {
		if ctx.Err() != nil {
			return
		}
		if cur != nil && isACME(p.cfg.Provider) {
			s.mu.Lock()
			fetch := p.ariFetchAtLocked(now)
			prev := p.rs.ari
			s.mu.Unlock()
			if !fetch.IsZero() && !fetch.After(now) {
				p.refreshARI(ctx, cur.Leaf, prev, now)
			}
		}
	}
	s.mu.Lock()
	d := p.dueLocked(now)
	s.mu.Unlock()
	if !force && d.at.After(now) {
		return
	}
	reason := d.reason
	if force {
		reason = reasonForced
	}
	mismatch := ""
	if cur != nil {
		mismatch = p.mismatch(cur.Leaf, cur.PrivateKey)
	}
	// Renewing on the CA's advice: name the certificate replaced, so the
	// CA can exempt the order from rate limits.
	replaces := d.reason == reasonARI && !d.at.After(now)
	err := p.renew(ctx, describeReason(reason, mismatch), cur, replaces, force)
	if err != nil && !errors.Is(err, ErrCoolingDown) {
		// A failure before the order (the storage lock, say) leaves no
		// record: wait all the same rather than retry at once. (Cooling
		// down: obtain adopted another instance's failure record.)
		s.mu.Lock()
		f := p.rs.fail
		s.mu.Unlock()
		if f.Time.Before(now) {
			rec := p.failed(failureRecord{Attempts: f.Attempts + 1, Config: p.fp}, err)
			// Logged and notified like any failed attempt: a renewal
			// that cannot even start must not fail in silence.
			p.notifyAll(ctx, p.obtainFailed(rec, err))
		}
	}
	if force {
		s.forcedDone(p, err)
	}
}

// load reads p's failure and ARI records from storage, once.
func (s *scheduler) load(ctx context.Context, p *Provider) {
	s.mu.Lock()
	loaded := p.rs.loaded
	s.mu.Unlock()
	if loaded {
		return
	}
	fail, fok := p.loadFailure(ctx)
	if fok && isACME(p.cfg.Provider) && fail.outdatedBy(storedCert{cert: p.cert.Load()}, time.Time{}) {
		// Older than the certificate served: the next attempt is the
		// first. (A record of another configuration is kept, to be
		// shown, but not waited for: see dueLocked.)
		fok = false
	}
	var ari ariRecord
	aok := false
	if isACME(p.cfg.Provider) {
		ari, aok = p.loadARI(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if fok && !p.rs.failFresh {
		p.rs.fail = fail
	}
	if aok && p.rs.ari.CertID == "" {
		p.rs.ari = ari
	}
	p.rs.loaded = true
}

// planLocked works out when p needs looking at next and (re)queues it,
// unless a worker has it.
func (s *scheduler) planLocked(p *Provider, now time.Time) {
	var next time.Time
	switch {
	case !p.rs.loaded:
		next = now
	case p.cfg.Provider == ProviderLocal:
		next = p.rs.polledAt.Add(localPollInterval)
	default:
		p.rs.due = p.dueLocked(now)
		next = p.rs.due.at
		if f := p.ariFetchAtLocked(now); !f.IsZero() && f.Before(next) {
			next = f
		}
	}
	p.rs.next = next
	if p.rs.busy {
		return
	}
	if p.rs.queued {
		heap.Fix(&s.queue, p.rs.index)
	} else {
		heap.Push(&s.queue, p)
	}
}

// dueLocked applies the renewal rules to the certificate p serves.
func (p *Provider) dueLocked(now time.Time) due {
	var leaf *x509.Certificate
	var obtained time.Time
	mismatch := ""
	if c := p.cert.Load(); c != nil {
		leaf = c.Leaf
		if p.rs.obtained == serialHex(leaf) {
			obtained = p.rs.lastRenewal
		}
		// A certificate this process has just obtained for the config is
		// what the CA gives for it: ordering again would loop.
		if p.rs.obtained != serialHex(leaf) {
			mismatch = p.mismatch(leaf, c.PrivateKey)
		}
	}
	fail := p.rs.fail
	if fail.configChanged(p.fp) {
		fail = failureRecord{} // the user changed the config since: no waiting
	}
	d := renewalDue(now, leaf, obtained, mismatch, p.rs.ari, fail)
	p.rs.due = d
	return d
}

// ariFetchAtLocked returns when to fetch the renewal information of the
// certificate p serves; zero when it has none to fetch.
func (p *Provider) ariFetchAtLocked(now time.Time) time.Time {
	c := p.cert.Load()
	if c == nil || !isACME(p.cfg.Provider) {
		return time.Time{}
	}
	id := ariID(c.Leaf)
	if id == "" {
		return time.Time{}
	}
	if p.rs.ari.CertID != id {
		return now
	}
	return p.rs.ari.NextFetch
}

// refreshARI fetches the renewal information of leaf and keeps it (and
// persists it when the window is usable). A failed fetch or an unusable
// window is logged and ignored: the previous window, if any, still counts,
// and the lifetime rule applies anyway.
func (p *Provider) refreshARI(ctx context.Context, leaf *x509.Certificate, prev ariRecord, now time.Time) {
	id := ariID(leaf)
	rec, err := p.fetchARI(leaf, prev, now)
	switch {
	case err == errNoARI:
		rec = ariRecord{CertID: id, NextFetch: now.Add(ariMaxRefresh)}
	case err != nil:
		p.logger.Warn().Str("error", p.scrub(err.Error())).Msg("ignoring renewal information")
		if prev.CertID != id {
			prev = ariRecord{CertID: id}
		}
		rec = prev
		rec.NextFetch = now.Add(ariErrorRefresh)
	default:
		if !rec.RenewAt.Equal(prev.RenewAt) {
			p.logger.Info().Time("window_start", rec.Start).Time("window_end", rec.End).
				Time("renew_at", rec.RenewAt).Msg("renewal window from the CA")
		}
		if serr := p.storage.Store(context.WithoutCancel(ctx), Entry{Key: p.ariKey, Value: rec.marshal()}); serr != nil {
			p.logger.Warn().Err(serr).Str("file", p.ariKey).Msg("cannot write renewal record")
		}
	}
	s := p.scheduler()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := p.cert.Load(); c != nil && ariID(c.Leaf) == id {
		p.rs.ari = rec
	}
}

// renew replaces old (nil when no certificate is served) for the reason
// given; replaces sends old's ARI identifier with the order; force ignores
// recorded failures. The work is finished even if ctx ends meanwhile.
func (p *Provider) renew(ctx context.Context, reason string, old *tls.Certificate, replaces, force bool) error {
	s := p.scheduler()
	s.mu.Lock()
	p.rs.renewing = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		p.rs.renewing = false
		s.mu.Unlock()
	}()
	ctx = context.WithoutCancel(ctx)
	if p.cfg.Provider == ProviderPseudo {
		return p.renewPseudo(ctx, reason)
	}
	var leaf *x509.Certificate
	if old != nil {
		leaf = old.Leaf
	}
	who := attemptScheduled
	if force {
		who = attemptForced
	}
	return p.obtain(ctx, reason, leaf, replaces, who)
}

// renewPseudo makes a new self-signed certificate.
func (p *Provider) renewPseudo(ctx context.Context, reason string) error {
	prev := p.cert.Load()
	if err := p.makePseudo(ctx); err != nil {
		rec, _ := p.loadFailure(ctx)
		var stored storedCert
		if prev != nil {
			stored.cert = prev
		}
		rec = p.failed(p.attemptRecord(rec, stored), err)
		p.storeFailure(ctx, rec)
		err = fmt.Errorf("%w: %w", ErrObtain, err)
		p.notifyAll(ctx, p.obtainFailed(rec, err))
		return err
	}
	p.clearFailure(ctx)
	p.notifyAll(ctx, p.obtained(prev, p.cert.Load(), reason))
	return nil
}

// obtained is told by obtain that cert was stored and is now served in
// place of prev (nil when none was): the scheduler plans the next renewal,
// the success is logged, and the event for the notifiers is returned (the
// caller sends it once its locks are released).
func (p *Provider) obtained(prev, cert *tls.Certificate, reason string) []Event {
	now := p.clock.Now()
	s := p.scheduler()
	s.mu.Lock()
	p.rs.fail, p.rs.failFresh = failureRecord{}, true
	p.rs.lastRenewal = now
	p.rs.obtained = serialHex(cert.Leaf)
	s.planLocked(p, now)
	s.mu.Unlock()
	s.poke()

	l := cert.Leaf
	if prev == nil {
		p.logger.Info().Strs("domains", l.DNSNames).Str("serial", serialHex(l)).
			Time("not_after", l.NotAfter).Msg("certificate obtained")
		return []Event{&CertObtained{Provider: p.name, Domains: l.DNSNames, Serial: serialHex(l),
			NotBefore: l.NotBefore, NotAfter: l.NotAfter, Time: now}}
	}
	p.logger.Info().Strs("domains", l.DNSNames).Str("serial", serialHex(l)).Str("reason", reason).
		Time("not_after", l.NotAfter).Msg("certificate renewed")
	return []Event{&CertRenewed{Provider: p.name, Domains: l.DNSNames, Reason: reason,
		Serial: serialHex(l), NotBefore: l.NotBefore, NotAfter: l.NotAfter,
		PreviousSerial: serialHex(prev.Leaf), PreviousNotAfter: prev.Leaf.NotAfter, Time: now}}
}

// obtainFailed is told by obtain that an attempt failed with err and was
// recorded as rec: the scheduler waits, the failure is logged (at Warn
// while a valid certificate is still served, else at Error), and so is a
// certificate that will expire before the next attempt; the events for the
// notifiers are returned.
func (p *Provider) obtainFailed(rec failureRecord, err error) []Event {
	now := p.clock.Now()
	s := p.scheduler()
	s.mu.Lock()
	p.rs.fail, p.rs.failFresh = rec, true
	s.planLocked(p, now)
	s.mu.Unlock()
	s.poke()

	msg := p.scrub(err.Error())
	cur := p.cert.Load()
	ev := &RenewalFailed{Provider: p.name, Domains: p.cfg.Domains, Err: &scrubbedError{msg, err}, Error: msg,
		Failures: rec.Attempts, RetryAt: rec.RetryAt, Time: now}
	if cur != nil && now.Before(cur.Leaf.NotAfter) {
		ev.NotAfter = cur.Leaf.NotAfter
		p.logger.Warn().Str("error", msg).Int("failures", rec.Attempts).Time("retry_at", rec.RetryAt).
			Time("not_after", cur.Leaf.NotAfter).Msg("renewal failure")
	} else {
		p.logger.Error().Str("error", msg).Int("failures", rec.Attempts).Time("retry_at", rec.RetryAt).
			Msg("certificate retrieval failure")
	}
	if ev.NotAfter.IsZero() || ev.NotAfter.After(rec.RetryAt) {
		return []Event{ev}
	}
	l := cur.Leaf
	p.logger.Error().Time("not_after", l.NotAfter).Time("retry_at", rec.RetryAt).
		Msg("certificate will expire before the next renewal attempt")
	return []Event{ev, &CertExpiring{Provider: p.name, Domains: l.DNSNames, Serial: serialHex(l), NotAfter: l.NotAfter,
		Reason: "The certificate expires before the next renewal attempt, at " +
			rec.RetryAt.UTC().Format(time.RFC3339) + "; force a renewal once the cause is fixed.",
		Time: now}}
}

// reload loads the certificate in storage and serves it if it is not the
// one served; it reports whether it swapped. A stored certificate that no
// longer fits the config is refused, except for "local" certificates
// (served with a warning: another tool owns them). When it is the one
// served, the certificate files are written if they do not hold it (see
// writeFilesLocked).
func (p *Provider) reload(ctx context.Context) (bool, error) {
	events, err := p.reloadEvents(ctx)
	p.notifyAll(ctx, events)
	return len(events) > 0, err
}

// reloadEvents is reload returning the events of a swap (none when it did
// not swap) instead of notifying them.
func (p *Provider) reloadEvents(ctx context.Context) ([]Event, error) {
	p.serveMu.Lock()
	defer p.serveMu.Unlock()
	sc, why, err := p.loadStoredPEM(ctx)
	if err != nil {
		return nil, err
	}
	if cur := p.cert.Load(); cur != nil && cur.Leaf.Equal(sc.cert.Leaf) {
		p.writeFilesLocked(sc)
		return nil, nil
	}
	if why != "" {
		if p.cfg.Provider != ProviderLocal {
			return nil, fmt.Errorf("%w: stored certificate not usable: %s", ErrMissingCertificate, why)
		}
		p.logger.Warn().Str("reason", why).Msg("local certificate does not match the config")
	}
	return p.adoptLocked(sc), nil
}

// ForceExpiryAll renews the main certificate and every extra at once,
// ignoring the wait after failures; "local" certificates are left alone.
// It returns false, starting nothing, while a previous forced renewal is
// still running, or when there is nothing to renew. The certificates
// served are replaced as each renewal succeeds; WaitRenewalDone waits for
// them all, and RenewalStatus tells each outcome.
//
// The renewals run whether or not ScheduleRenewalAll was called.
func (p *Provider) ForceExpiryAll() bool {
	s := p.scheduler()
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.force != nil && s.force.pending > 0 {
		return false
	}
	round := &forceRound{done: make(chan struct{})}
	var todo []*Provider
	for _, q := range p.main.all() {
		if q.cfg.Provider != ProviderLocal {
			todo = append(todo, q)
		}
	}
	if len(todo) == 0 {
		return false
	}
	round.pending = len(todo)
	s.force = round
	ctx := context.Background()
	if s.running {
		ctx = s.ctx
	}
	for _, q := range todo {
		q.rs.force = true
		q.rs.forced = &ForcedRenewal{Requested: now}
		if !q.rs.busy {
			s.startLocked(ctx, q)
		}
	}
	return true
}

// forcedDone records the outcome of p's forced renewal.
func (s *scheduler) forcedDone(p *Provider, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := p.rs.forced; f != nil {
		f.Finished = s.clock.Now()
		if err != nil {
			f.Err, f.Error = &scrubbedError{p.scrub(err.Error()), err}, p.scrub(err.Error())
		}
	}
	if r := s.force; r != nil && r.pending > 0 {
		r.pending--
		if r.pending == 0 {
			close(r.done)
		}
	}
}

// WaitRenewalDone waits until every renewal started by the last
// ForceExpiryAll has finished, the new certificates being served, and
// returns true; it returns false when ctx ends first, or when no forced
// renewal was ever asked. Whether each succeeded is in RenewalStatus.
func (p *Provider) WaitRenewalDone(ctx context.Context) bool {
	s := p.scheduler()
	s.mu.Lock()
	r := s.force
	s.mu.Unlock()
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

// RenewalStatus returns the renewal state of the main certificate and of
// every extra, in that order.
func (p *Provider) RenewalStatus() []RenewalStatus {
	s := p.scheduler()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RenewalStatus
	for _, q := range p.main.all() {
		rs := &q.rs
		st := RenewalStatus{Provider: q.name, Renewing: rs.renewing, LastRenewal: rs.lastRenewal}
		if rs.loaded && q.cfg.Provider != ProviderLocal && !rs.due.at.IsZero() {
			st.NextRenewal, st.Reason = rs.due.at, rs.due.reason
		}
		if c := q.cert.Load(); c != nil && rs.ari.about(ariID(c.Leaf)) {
			st.WindowStart, st.WindowEnd = rs.ari.Start, rs.ari.End
		}
		if f := rs.fail; !f.Time.IsZero() {
			var notAfter time.Time
			if c := q.cert.Load(); c != nil {
				notAfter = c.Leaf.NotAfter
			}
			st.LastFailure, st.LastError, st.Failures, st.RetryAt = f.Time, f.Message, f.Attempts, f.retryAt(notAfter)
		}
		if rs.forced != nil {
			f := *rs.forced
			st.Forced = &f
		}
		out = append(out, st)
	}
	return out
}

// renewQueue is a min-heap of providers by the time they need looking at.
type renewQueue []*Provider

func (q renewQueue) Len() int           { return len(q) }
func (q renewQueue) Less(i, j int) bool { return q[i].rs.next.Before(q[j].rs.next) }
func (q renewQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].rs.index, q[j].rs.index = i, j
}

func (q *renewQueue) Push(x any) {
	p := x.(*Provider)
	p.rs.index, p.rs.queued = len(*q), true
	*q = append(*q, p)
}

func (q *renewQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	p.rs.queued = false
	return p
}
