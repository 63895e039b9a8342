package autocert

import (
	"container/heap"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/rs/zerolog"
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

// maxWorkers bounds the certificates the scheduler works on at once, and
// the orders of a Provider that run at once, whoever asked for them.
const maxWorkers = 4

// scheduler owns the renewal state of the certificates of one Provider:
// it decides when each is obtained, renewed or reloaded, runs the
// certificate's obtain or reload, applies the outcome to the certificate's
// state, and hands the resulting events to the notifiers. One goroutine
// runs its loop, with one timer set to the earliest time at which a
// certificate needs looking at, and at most maxWorkers goroutines do the
// work. Orders, whoever asks for them, are paced under the rate limits of
// their CA (pacer) and hold one of maxWorkers slots while they run.
type scheduler struct {
	clock        Clock
	logger       zerolog.Logger
	notifier     notifier
	storage      Storage
	reread       time.Duration
	fileCheck    time.Duration
	noFileNotify bool

	entries []*entry // main first, then the extras; fixed at construction
	pacer   *pacer
	slots   chan struct{} // one per order running; maxWorkers

	wake chan struct{} // asks the loop to look at the queue again
	done chan struct{} // closed once stopped and idle

	mu      sync.Mutex // guards what follows and the renewState of every entry
	queue   renewQueue
	started bool
	running bool // the loop runs
	stopped bool // the loop has ended
	closed  bool // done is closed
	active  int  // goroutines working
	aux     int  // other goroutines running: keeping in step with storage
	forced  *forceRound
}

// entry is one certificate and what the scheduler knows of it.
type entry struct {
	c   *certificate
	pk  *paceKeys   // the rate limits its orders count against (at its first issuer); nil when none
	pks []*paceKeys // those at each of its issuers, pks[0] being pk
	rs  renewState  // guarded by the scheduler's mu
}

// renewState is what the scheduler knows of one certificate.
type renewState struct {
	loaded bool          // fail and ari were read from storage
	fail   failureRecord // the last failure; zero Time when none
	// failFresh: fail was set by an attempt of this process, which a
	// record read from storage meanwhile must not overwrite.
	failFresh bool
	ari       ariRecord // renewal information, maybe of an older certificate

	due    due       // the renewal last planned
	pace   paceWait  // the turn of its order under the CA's rate limits; zero when none is waited for
	next   time.Time // when the scheduler looks at the certificate next
	index  int       // in the scheduler's queue, when queued
	queued bool
	busy   bool // a goroutine is working on it (then it is not queued)
	parked bool // its forced renewal waits in the round for its turn under the CA's rate limits

	renewing    bool
	lastRenewal time.Time
	obtained    string       // serial of the certificate this process last obtained
	issuer      issuerRecord // the CA that issued the certificate stored, when known
	force       bool         // a forced renewal is asked and not started
	forceCtx    context.Context
	forced      *ForcedRenewal

	// "local" certificates
	polled   bool
	polledAt time.Time
	seen     [2]statResult // of the certificate and key files
	warned   string        // serial of the certificate last warned about
}

// paceWait is when an order may be sent under the rate limits of its CA,
// and the limit it waits for.
type paceWait struct {
	at    time.Time
	limit string
}

// forceRound is one forced renewal of every certificate.
type forceRound struct {
	pending int
	done    chan struct{}
	entries []*entry
	next    int      // entries[next:] may wait for a worker to take them
	parked  parkHeap // those waiting for their turn under the CA's rate limits
}

func newScheduler(s *settings, certs []*certificate) *scheduler {
	// The secrets of every certificate, each once (the extras inherit
	// the main block's): the notifier's Scrubber keeps them until used.
	var secrets []string
	seen := make(map[string]bool)
	for _, c := range certs {
		for _, sec := range c.cfg.secrets() {
			if !seen[sec] {
				seen[sec] = true
				secrets = append(secrets, sec)
			}
		}
	}
	sc := &scheduler{
		clock:        s.clock,
		logger:       s.logger,
		notifier:     notifier{notifiers: s.notifiers, logger: s.logger, scrubber: redact.NewLazy(secrets...)},
		storage:      s.storage,
		reread:       s.reread,
		fileCheck:    s.fileCheck,
		noFileNotify: s.noFileNotify,
		pacer:        newPacer(s.rateLimits),
		slots:        make(chan struct{}, maxWorkers),
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	sc.entries = make([]*entry, 0, len(certs))
	for _, c := range certs {
		e := &entry{c: c}
		for _, is := range c.issuers {
			e.pks = append(e.pks, sc.pacer.keysAt(c, is))
		}
		if len(e.pks) > 0 {
			e.pk = e.pks[0]
		}
		sc.entries = append(sc.entries, e)
	}
	return sc
}

// start starts the scheduler under ctx, once.
func (s *scheduler) start(ctx context.Context) {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return
	}
	s.started, s.running = true, true
	now := s.clock.Now()
	for _, e := range s.entries {
		s.planLocked(e, now)
	}
	summary := len(s.notifier.notifiers) > 0
	if summary {
		s.active++
	}
	_, files := s.storage.(*FileStorage)
	s.aux++ // syncStorage or syncFiles
	s.mu.Unlock()
	if summary {
		go func() {
			s.notifier.notify(ctx, s.expirySummary(now))
			s.finish()
		}()
	}
	if files {
		go s.syncFiles(ctx)
	} else {
		go s.syncStorage(ctx)
	}
	go s.run(ctx)
}

// run is the scheduler's loop, after its first look at the records of
// every certificate (firstPass).
func (s *scheduler) run(ctx context.Context) {
	s.firstPass(ctx)
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

// firstPass reads the failure and renewal records of every certificate
// whose records are not read yet, and plans each: what the loop would
// otherwise do with one worker per certificate, at the cost of a goroutine
// start, a trip through the queue and a read of every record each, though
// most certificates are not due and have no records. The directories
// holding the records of many certificates are listed once
// (listRecords), and the records are read on a few goroutines
// (eachCert), which end with the pass. Work that remains to do (an order,
// renewal information to fetch, a "local" certificate to look at) is then
// dispatched by the loop as usual.
func (s *scheduler) firstPass(ctx context.Context) {
	s.mu.Lock()
	var todo []*entry
	for _, e := range s.entries {
		if !e.rs.loaded && !e.rs.busy {
			todo = append(todo, e)
		}
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	certs := make([]*certificate, len(todo))
	for i, e := range todo {
		certs[i] = e.c
	}
	l := listRecords(s.storage, certs)
	eachCert(certs, func(i int, _ *certificate) {
		if ctx.Err() == nil {
			s.loadListed(ctx, todo[i], l)
		}
	})
	// Every entry planned anew, then the queue ordered once: O(n), where
	// fixing the queue entry by entry would cost O(n log n).
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range todo {
		if e.rs.busy {
			continue
		}
		e.rs.next = e.nextLocked(now)
		if !e.rs.queued {
			e.rs.index, e.rs.queued = len(s.queue), true
			s.queue = append(s.queue, e)
		}
	}
	heap.Init(&s.queue)
}

// dispatch starts work on the certificates that are due, and returns how
// long until the next one is; ok is false when nothing is queued or all
// workers are busy (a worker wakes the loop when it ends).
func (s *scheduler) dispatch(ctx context.Context) (wait time.Duration, ok bool) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) > 0 && s.active < maxWorkers {
		e := s.queue[0]
		if e.rs.next.After(now) {
			return e.rs.next.Sub(now), true
		}
		s.startLocked(ctx, e)
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

// startLocked takes e off the queue and starts a worker on it.
func (s *scheduler) startLocked(ctx context.Context, e *entry) {
	if e.rs.queued {
		heap.Remove(&s.queue, e.rs.index)
	}
	e.rs.busy = true
	s.active++
	go s.work(ctx, e)
}

// work does what is due for e, forced renewals asked meanwhile included,
// then queues e again; then, while a forced round has certificates
// waiting for a worker, it takes them in turn (see nextForced).
func (s *scheduler) work(ctx context.Context, e *entry) {
	for e != nil {
		s.workOn(ctx, e)
		e = s.nextForced()
	}
	s.mu.Lock()
	s.active--
	s.closeIfIdleLocked()
	s.mu.Unlock()
	s.poke()
}

// workOn does what is due for e, forced renewals asked meanwhile
// included, then queues e again.
func (s *scheduler) workOn(ctx context.Context, e *entry) {
	for {
		s.mu.Lock()
		e.rs.parked = false // taken, by whichever worker
		force, fctx := e.rs.force, e.rs.forceCtx
		e.rs.force, e.rs.forceCtx = false, nil
		s.mu.Unlock()

		s.tick(ctx, e, force, fctx)

		s.mu.Lock()
		if e.rs.force && !e.rs.parked {
			s.mu.Unlock()
			continue
		}
		e.rs.busy = false
		s.planLocked(e, s.clock.Now())
		s.mu.Unlock()
		return
	}
}

// nextForced takes, and returns, the next certificate of the forced round
// that waits for a worker: the next not started, else the one parked with
// the earliest turn under the CA's rate limits, once that turn comes (or
// the round's context ends). It returns nil when none is left, so that a
// round runs on at most maxWorkers goroutines whatever its size, and a
// certificate waiting for its turn holds no worker while others can go.
func (s *scheduler) nextForced() *entry {
	for {
		s.mu.Lock()
		if e := s.nextForcedLocked(); e != nil {
			s.mu.Unlock()
			return e
		}
		r := s.forced
		for r != nil && len(r.parked) > 0 && (!r.parked[0].e.rs.parked || r.parked[0].e.rs.busy) {
			heap.Pop(&r.parked) // taken meanwhile (the loop started it at its turn)
		}
		if r == nil || len(r.parked) == 0 {
			s.mu.Unlock()
			return nil
		}
		p := r.parked[0]
		now := s.clock.Now()
		fctx := p.e.rs.forceCtx
		if !p.at.After(now) || fctx.Err() != nil {
			heap.Pop(&r.parked)
			s.takeLocked(p.e)
			s.mu.Unlock()
			return p.e
		}
		s.mu.Unlock()
		t := s.clock.NewTimer(p.at.Sub(now))
		select {
		case <-t.C():
		case <-fctx.Done():
		}
		t.Stop()
	}
}

// nextForcedLocked takes, and returns, the next certificate of the forced
// round not started yet; nil when none is left.
func (s *scheduler) nextForcedLocked() *entry {
	r := s.forced
	if r == nil {
		return nil
	}
	for r.next < len(r.entries) {
		e := r.entries[r.next]
		r.next++
		if e.rs.force && !e.rs.busy && !e.rs.parked {
			s.takeLocked(e)
			return e
		}
	}
	return nil
}

// takeLocked takes e off the queue for a worker.
func (s *scheduler) takeLocked(e *entry) {
	if e.rs.queued {
		heap.Remove(&s.queue, e.rs.index)
	}
	e.rs.busy = true
}

// parkedEntry is a certificate of a forced round waiting for its turn
// under the CA's rate limits, at.
type parkedEntry struct {
	e  *entry
	at time.Time
}

// parkHeap orders the parked certificates of a round by their turn.
type parkHeap []parkedEntry

func (h parkHeap) Len() int           { return len(h) }
func (h parkHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h parkHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *parkHeap) Push(x any)        { *h = append(*h, x.(parkedEntry)) }
func (h *parkHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tick does what is due for e. A forced renewal runs under fctx, the
// context it was asked with, even after ctx ended; other work starts only
// while ctx lives, and once started, an order is completed and stored.
func (s *scheduler) tick(ctx context.Context, e *entry, force bool, fctx context.Context) {
	c := e.c
	s.load(ctx, e)
	if c.local() {
		if ctx.Err() == nil {
			s.pollLocal(ctx, e)
		}
		return
	}
	now := s.clock.Now()
	cur := c.current()
	if !force {
		if ctx.Err() != nil {
			return
		}
		if cur != nil && c.acme() {
			s.mu.Lock()
			fetch := e.ariFetchAtLocked(now)
			prev := e.rs.ari
			s.mu.Unlock()
			if !fetch.IsZero() && !fetch.After(now) {
				rec := c.refreshARI(ctx, cur.Leaf, prev, now)
				s.mu.Lock()
				if served := c.current(); served != nil && ariID(served.Leaf) == rec.CertID {
					e.rs.ari = rec
				}
				s.mu.Unlock()
			}
		}
	}
	s.mu.Lock()
	d := e.dueLocked(now)
	if !force && d.at.After(now) {
		e.rs.pace = paceWait{} // no order: the turn it had is given up
	}
	s.mu.Unlock()
	if !force && d.at.After(now) {
		return
	}
	req := obtainRequest{who: attemptScheduled}
	wctx, octx := ctx, context.WithoutCancel(ctx)
	if force {
		req.who, wctx, octx = attemptForced, fctx, fctx
	}
	reason := d.reason
	if force {
		reason = reasonForced
	}
	mismatch := ""
	if cur != nil {
		mismatch = c.mismatch(cur.Leaf, cur.PrivateKey)
		req.old = cur.Leaf
	}
	req.reason = describeReason(reason, mismatch)
	// Renewing on the CA's advice: name the certificate replaced, so the
	// CA can exempt the order from rate limits.
	req.replaces = d.reason == reasonARI && !d.at.After(now)

	err := s.attempt(wctx, octx, e, req, false)
	if force && errors.Is(err, ErrPaced) {
		if fctx.Err() != nil {
			err = fmt.Errorf("%w: waiting for the CA's rate limits: %w", ErrObtain, fctx.Err())
		} else if s.park(e, fctx) {
			return // its turn comes later: the round takes it up then
		}
	}
	if force {
		s.forcedDone(e, err)
	}
}

// park keeps e, whose forced renewal waits for its turn under the CA's
// rate limits, in its round until that turn: a worker of the round (or
// the loop, at the time planned) takes it up then. It reports false when
// no round holds e.
func (s *scheduler) park(e *entry, fctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.forced
	if r == nil || e.rs.forced == nil || !e.rs.forced.Finished.IsZero() {
		return false
	}
	e.rs.force, e.rs.forceCtx, e.rs.parked = true, fctx, true
	heap.Push(&r.parked, parkedEntry{e, e.rs.pace.at})
	return true
}

// startupAll loads the stored certificate of every entry and serves it,
// and obtains a new one for each that is missing or no longer fits:
// ObtainAll. The certificates are read and parsed on a few goroutines
// (eachCert); each obtain runs on a goroutine of its own, started as soon
// as its certificate is found wanting, and waits there for its turn under
// the CA's rate limits and for an order slot. It returns the errors
// joined, each naming its certificate, in the order of the entries.
func (s *scheduler) startupAll(ctx context.Context, who attempt) error {
	certs := make([]*certificate, len(s.entries))
	for i, e := range s.entries {
		certs[i] = e.c
	}
	errs := make([]error, len(certs))
	var obtains sync.WaitGroup
	l := listRecords(s.storage, certs)
	eachCert(certs, func(i int, c *certificate) {
		out, why := c.loadAtStart(ctx, l)
		if why == "" {
			if out.err != nil {
				errs[i] = fmt.Errorf("%s: %w", c.name, out.err)
			}
			return
		}
		e := s.entries[i]
		obtains.Go(func() {
			if err := s.attempt(ctx, ctx, e, obtainRequest{who: who, reason: why}, false); err != nil {
				errs[i] = fmt.Errorf("%s: %w", c.name, err)
			}
		})
	})
	obtains.Wait()
	return errors.Join(errs...)
}

// attempt obtains e's certificate as req asks, once its order has its
// turn under the CA's rate limits and a slot (see pace, which waits under
// wctx, for its turn too when waitTurn is set), applies the outcome to e's
// renewal state and notifies its events. The order runs under ctx. It
// returns the outcome's error, or pace's.
func (s *scheduler) attempt(wctx, ctx context.Context, e *entry, req obtainRequest, waitTurn bool) error {
	release, err := s.pace(wctx, e, req, waitTurn)
	if err != nil {
		return err
	}
	s.mu.Lock()
	req.known = e.rs.fail
	if req.old != nil && e.rs.issuer.Serial == serialHex(req.old) {
		req.issuedBy = e.rs.issuer.CA
	}
	e.rs.renewing = true
	s.mu.Unlock()
	if len(e.pks) > 1 {
		renewal := req.old != nil && sameNames(req.old.DNSNames, e.c.cfg.Domains)
		req.paces = &issuerPaces{pacer: s.pacer, keys: e.pks, renewal: renewal}
	}
	out := e.c.obtain(ctx, req)
	if out.kind == outFailed && out.last < len(e.pks) {
		s.pacer.failed(e.pks[out.last], s.clock.Now())
	}
	release()
	s.mu.Lock()
	e.rs.renewing = false
	s.mu.Unlock()
	if out.kind == outNotStarted && ctx.Err() != nil {
		return out.err // given up: nothing happened, nothing to wait for
	}
	s.notifier.notifyAll(ctx, s.apply(e, out, req.who))
	return out.err
}

// pace waits until e's order may be sent, and returns with one of the
// scheduler's slots, to give back with release. An order takes its turn
// under the rate limits of its CA (the slot the pacer plans for it, kept
// in e's renewal state) and, once it holds a slot, is counted as sent
// unless the orders already sent leave no room. An order whose turn has
// not come waits for it when waitTurn is set (a forced renewal); else pace
// returns an error wrapping ErrPaced, and the scheduler plans e for that
// turn. An error wrapping wctx's is returned when wctx ends first.
func (s *scheduler) pace(wctx context.Context, e *entry, req obtainRequest, waitTurn bool) (release func(), err error) {
	release = func() { <-s.slots }
	renewal := false
	if e.pk != nil && len(e.pk.domains) > 0 && req.old != nil {
		renewal = sameNames(req.old.DNSNames, e.c.cfg.Domains)
	}
	for {
		var w paceWait
		if e.pk != nil {
			now := s.clock.Now()
			s.mu.Lock()
			w = e.rs.pace
			s.mu.Unlock()
			if w.at.IsZero() {
				w.at, w.limit = s.pacer.reserve(e.pk, renewal, now)
			}
			if !w.at.After(now) {
				w = paceWait{}
			}
		}
		if w.at.IsZero() {
			select {
			case s.slots <- struct{}{}:
			case <-wctx.Done():
				return nil, fmt.Errorf("%w: waiting for an order slot: %w", ErrObtain, wctx.Err())
			}
			if e.pk == nil {
				return release, nil
			}
			if w.at, w.limit = s.pacer.send(e.pk, renewal, s.clock.Now()); w.at.IsZero() {
				s.mu.Lock()
				e.rs.pace = paceWait{}
				s.mu.Unlock()
				return release, nil
			}
			release()
		}
		if err := s.waitPaced(wctx, e, w, waitTurn); err != nil {
			return nil, err
		}
	}
}

// waitPaced keeps w as e's turn under the rate limits of its CA; it waits
// until then with wait, else it returns an error wrapping ErrPaced. It
// returns wctx's error when wctx ends first.
func (s *scheduler) waitPaced(wctx context.Context, e *entry, w paceWait, wait bool) error {
	s.mu.Lock()
	known := e.rs.pace
	e.rs.pace = w
	s.mu.Unlock()
	if known != w {
		e.c.logger.Info().Time("until", w.at).Str("limit", w.limit).
			Msg("the order waits for its turn under the CA's rate limits")
	}
	if !wait {
		return fmt.Errorf("%w (%s): the order waits until %s", ErrPaced, w.limit, w.at.Format(time.RFC3339))
	}
	t := s.clock.NewTimer(w.at.Sub(s.clock.Now()))
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-wctx.Done():
		return fmt.Errorf("%w: waiting for the CA's rate limits: %w", ErrObtain, wctx.Err())
	}
}

// reload reads e's certificate from storage and serves it when another
// process stored a new one, applying the outcome; it returns the events to
// deliver.
func (s *scheduler) reload(ctx context.Context, e *entry) ([]Event, error) {
	out := e.c.reload(ctx)
	return s.apply(e, out, attemptScheduled), out.err
}

// apply brings e's renewal state in line with the outcome out of an
// obtain or reload asked by who, plans e's next look, and returns the
// events to notify (also logging what happened).
func (s *scheduler) apply(e *entry, out outcome, who attempt) []Event {
	c := e.c
	now := s.clock.Now()
	switch out.kind {
	case outAdopted:
		s.mu.Lock()
		if !c.local() {
			// What was known of the previous certificate (failures,
			// renewal information) is read again from storage.
			e.rs.fail, e.rs.failFresh, e.rs.loaded = failureRecord{}, false, false
		}
		e.rs.pace = paceWait{}
		s.planLocked(e, now)
		s.mu.Unlock()
		s.poke()
		return c.reloadedEvents(out, now)
	case outStored:
		s.mu.Lock()
		e.rs.fail, e.rs.failFresh = failureRecord{}, true
		e.rs.lastRenewal = now
		e.rs.obtained = serialHex(out.cert.Leaf)
		e.rs.issuer = issuerRecord{Serial: e.rs.obtained, CA: out.ca}
		s.planLocked(e, now)
		s.mu.Unlock()
		s.poke()
		return c.obtainedEvents(out, now)
	case outFailed:
		s.mu.Lock()
		e.rs.fail, e.rs.failFresh = out.rec, true
		s.planLocked(e, now)
		s.mu.Unlock()
		s.poke()
		return c.failedEvents(out.rec, out.err, now)
	case outRefused:
		if out.adopt {
			s.mu.Lock()
			e.rs.fail, e.rs.failFresh = out.rec, false
			s.mu.Unlock()
		}
	case outNotStarted:
		if who == attemptStartup {
			return nil // the scheduler tries again when it starts
		}
		// A failure before the order (the storage lock, say) leaves no
		// record: wait all the same rather than retry at once, and log
		// and notify it like any failed attempt, so that a renewal that
		// cannot even start does not fail in silence.
		s.mu.Lock()
		f := e.rs.fail
		s.mu.Unlock()
		if f.Time.Before(now) {
			rec := c.failed(failureRecord{Attempts: f.Attempts + 1, Config: c.fp}, out.err)
			return s.apply(e, outcome{kind: outFailed, rec: rec, err: out.err}, who)
		}
	}
	return nil
}

// load reads e's failure and ARI records from storage, once.
func (s *scheduler) load(ctx context.Context, e *entry) { s.loadListed(ctx, e, nil) }

// loadListed is load, reading no record that l says is not there.
func (s *scheduler) loadListed(ctx context.Context, e *entry, l recordListing) {
	c := e.c
	s.mu.Lock()
	loaded := e.rs.loaded
	s.mu.Unlock()
	if loaded {
		return
	}
	fail, fok := c.loadFailureListed(ctx, l)
	if fok && c.acme() && fail.outdatedBy(storedCert{cert: c.current()}, time.Time{}) {
		// Older than the certificate served: the next attempt is the
		// first. (A record of another configuration is kept, to be
		// shown, but not waited for: see dueLocked.)
		fok = false
	}
	var ari ariRecord
	var iss issuerRecord
	aok, iok := false, false
	if c.acme() {
		ari, aok = c.loadARI(ctx, l)
	}
	if len(c.issuers) > 1 {
		iss, iok = c.loadIssuer(ctx, l)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if iok && e.rs.issuer.Serial == "" {
		e.rs.issuer = iss
	}
	if fok && !e.rs.failFresh {
		e.rs.fail = fail
	}
	if aok && e.rs.ari.CertID == "" {
		e.rs.ari = ari
	}
	e.rs.loaded = true
}

// planLocked works out when e needs looking at next and (re)queues it,
// unless a worker has it.
func (s *scheduler) planLocked(e *entry, now time.Time) {
	e.rs.next = e.nextLocked(now)
	if e.rs.busy {
		return
	}
	if e.rs.queued {
		heap.Fix(&s.queue, e.rs.index)
	} else {
		heap.Push(&s.queue, e)
	}
}

// nextLocked works out when e needs looking at next.
func (e *entry) nextLocked(now time.Time) time.Time {
	var next time.Time
	switch {
	case !e.rs.loaded:
		next = now
	case e.c.local():
		next = e.rs.polledAt.Add(localPollInterval)
	default:
		next = e.dueLocked(now).at
		if p := e.rs.pace.at; p.After(next) {
			next = p // waiting for its turn under the CA's rate limits
		}
		if f := e.ariFetchAtLocked(now); !f.IsZero() && f.Before(next) {
			next = f
		}
	}
	return next
}

// dueLocked applies the renewal rules to the certificate e serves, and
// keeps the result as the renewal planned.
func (e *entry) dueLocked(now time.Time) due {
	var leaf *x509.Certificate
	var obtained time.Time
	mismatch := ""
	if cur := e.c.current(); cur != nil {
		leaf = cur.Leaf
		if e.rs.obtained != "" && e.rs.obtained == serialHex(leaf) {
			obtained = e.rs.lastRenewal
		} else {
			// A certificate this process has just obtained for the
			// config is what the CA gives for it: ordering again would
			// loop. Any other is checked against the config.
			mismatch = e.c.mismatch(leaf, cur.PrivateKey)
		}
	}
	fail := e.rs.fail
	if fail.configChanged(e.c.fp) {
		fail = failureRecord{} // the user changed the config since: no waiting
	}
	d := renewalDue(now, leaf, obtained, mismatch, e.rs.ari, fail)
	e.rs.due = d
	return d
}

// ariFetchAtLocked returns when to fetch the renewal information of the
// certificate e serves; zero when it has none to fetch.
func (e *entry) ariFetchAtLocked(now time.Time) time.Time {
	cur := e.c.current()
	if cur == nil || !e.c.acme() {
		return time.Time{}
	}
	id := ariID(cur.Leaf)
	if id == "" {
		return time.Time{}
	}
	if e.rs.ari.CertID != id {
		return now
	}
	return e.rs.ari.NextFetch
}

// force starts a forced renewal of every certificate but the "local"
// ones, under ctx; it returns nil, starting nothing, while the previous
// one runs, or when there is nothing to renew.
func (s *scheduler) force(ctx context.Context) *forceRound {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forced != nil && s.forced.pending > 0 {
		return nil
	}
	round := &forceRound{done: make(chan struct{})}
	for _, e := range s.entries {
		if !e.c.local() {
			round.entries = append(round.entries, e)
		}
	}
	if len(round.entries) == 0 {
		return nil
	}
	round.pending = len(round.entries)
	s.forced = round
	for _, e := range round.entries {
		e.rs.force, e.rs.forceCtx = true, ctx
		e.rs.forced = &ForcedRenewal{Requested: now}
	}
	// At most maxWorkers goroutines, whatever the number of certificates:
	// each worker, once done, takes the next certificate of the round
	// that waits (nextForcedLocked); a busy certificate's own worker sees
	// its forced renewal.
	for s.active < maxWorkers {
		e := s.nextForcedLocked()
		if e == nil {
			break
		}
		s.active++
		go s.work(ctx, e)
	}
	return round
}

// lastForce returns the last forced round; nil when none was asked.
func (s *scheduler) lastForce() *forceRound {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forced
}

// forcedDone records the outcome of e's forced renewal.
func (s *scheduler) forcedDone(e *entry, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := e.rs.forced; f != nil {
		f.Finished = s.clock.Now()
		if err != nil {
			f.Err = e.c.scrubber.Error(err)
			f.Error = f.Err.Error()
		}
	}
	if r := s.forced; r != nil && r.pending > 0 {
		r.pending--
		if r.pending == 0 {
			close(r.done)
		}
	}
}

// forcedErrors returns the errors of the last forced round, joined, each
// naming its certificate.
func (s *scheduler) forcedErrors() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forced == nil {
		return nil
	}
	var errs []error
	for _, e := range s.forced.entries {
		if f := e.rs.forced; f != nil && f.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.c.name, f.Err)) // f.Err is scrubbed
		}
	}
	return errors.Join(errs...)
}

// renewQueue is a min-heap of entries by the time they need looking at.
type renewQueue []*entry

func (q renewQueue) Len() int           { return len(q) }
func (q renewQueue) Less(i, j int) bool { return q[i].rs.next.Before(q[j].rs.next) }
func (q renewQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].rs.index, q[j].rs.index = i, j
}

func (q *renewQueue) Push(x any) {
	e := x.(*entry)
	e.rs.index, e.rs.queued = len(*q), true
	*q = append(*q, e)
}

func (q *renewQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	e.rs.queued = false
	return e
}
