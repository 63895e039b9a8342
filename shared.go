package autocert

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// storageOpenTimeout bounds the opening of the storage of a config's
// storage block by GetLegoConfig and NewProvider, and the reading or
// creation of the account key that follows.
const storageOpenTimeout = 30 * time.Second

// Keeping the certificates served in step with a shared storage. These are
// real-time intervals, not read through the Provider's Clock: they are
// about lost connections, not about certificate lifetimes.
const (
	// storageRereadInterval is how often every certificate is read again
	// from a shared storage, as a safety net against a change notification
	// that was lost (or a storage that sends none).
	storageRereadInterval = 5 * time.Minute
	// Back-off between attempts to run Watcher.Watch again after it
	// returned an error.
	watchRetryMin = time.Second
	watchRetryMax = time.Minute
)

// Close releases what the Provider opened: the storage of the config's
// storage block, when GetLegoConfig or NewProvider opened it and it
// implements io.Closer (a database connection pool, say). A Storage given
// with WithStorage is the caller's and stays open. Close returns the
// storage's error; later calls return the same.
//
// Stop the scheduler first (end the context of ScheduleRenewalAll's parent
// and wait for SchedulerDone), since renewals need the storage. GetCert
// keeps serving, from memory, the certificates loaded before Close.
func (p *Provider) Close() error {
	m := p.main
	if m == nil {
		m = p
	}
	m.closeOnce.Do(func() {
		if m.closer != nil {
			m.closeErr = m.closer.Close()
		}
	})
	return m.closeErr
}

// closeStorage closes st when it can be closed, ignoring the error: used
// on error paths, where the first error is the one reported.
func closeStorage(st Storage) {
	if c, ok := st.(io.Closer); ok {
		_ = c.Close()
	}
}

// sharesStorage reports whether the Provider keeps its state in a storage
// other than the file layout (one shared by several instances, or the
// caller's own): the certificate files are then written separately, and
// the scheduler keeps the certificates served in step with the storage.
func (p *Provider) sharesStorage() bool {
	_, files := p.storage.(*FileStorage)
	return !files
}

// writesFiles reports whether p writes its certificate files itself: with
// a storage that is not the file layout, for the tools that read files.
// "local" certificates are never written: their files are another tool's.
func (p *Provider) writesFiles() bool {
	return p.sharesStorage() && p.cfg.Provider != ProviderLocal
}

// serveLocked serves the certificate sc, after writing its files when p
// writes them (whether or not that succeeds). The caller holds p.serveMu.
func (p *Provider) serveLocked(sc storedCert) {
	p.writeFilesLocked(sc)
	p.setCert(sc.cert)
}

// adoptLocked serves sc, read from storage, in place of the certificate
// served. When it is another certificate (another instance stored it), the
// scheduler forgets what it knew of the previous one (failures, renewal
// information: read again from storage) and plans anew, and the event for
// the notifiers is returned. The caller holds p.serveMu.
func (p *Provider) adoptLocked(sc storedCert) []Event {
	prev := p.cert.Load()
	p.serveLocked(sc)
	if prev != nil && prev.Leaf.Equal(sc.cert.Leaf) {
		return nil
	}
	now := p.clock.Now()
	s := p.scheduler()
	s.mu.Lock()
	if p.cfg.Provider != ProviderLocal {
		p.rs.fail, p.rs.failFresh, p.rs.loaded = failureRecord{}, false, false
	}
	s.planLocked(p, now)
	s.mu.Unlock()
	s.poke()

	l := sc.cert.Leaf
	ev := &CertReloaded{Provider: p.name, Domains: l.DNSNames, Serial: serialHex(l),
		NotBefore: l.NotBefore, NotAfter: l.NotAfter, Time: now}
	log := p.logger.Info().Strs("domains", l.DNSNames).Str("serial", serialHex(l)).Time("not_after", l.NotAfter)
	if prev != nil {
		ev.PreviousSerial = serialHex(prev.Leaf)
		log = log.Str("previous_serial", ev.PreviousSerial)
	}
	log.Msg("certificate reloaded from storage")
	return []Event{ev}
}

// writeFilesLocked writes the certificate files (cert_path 0644, key_path
// 0600, each crash-safely) when p writes them and they do not already hold
// sc. The key is written first. A failure is logged (at Error the first
// time, then at Debug until a write succeeds again) and never stops the
// certificate from being served; the files are written again at the next
// change and at every periodic re-read. The caller holds p.serveMu.
func (p *Provider) writeFilesLocked(sc storedCert) {
	if !p.writesFiles() || sc.certPEM == nil {
		return
	}
	err := writeFileIfChanged(p.cfg.KeyPath, sc.keyPEM, true)
	if err == nil {
		err = writeFileIfChanged(p.cfg.CertPath, sc.certPEM, false)
	}
	switch {
	case err != nil && !p.filesErr:
		p.filesErr = true
		p.logger.Error().Err(err).Str("cert_path", p.cfg.CertPath).Str("key_path", p.cfg.KeyPath).
			Msg("cannot write the certificate files; the certificate is served all the same, and writing is retried")
	case err != nil:
		p.logger.Debug().Err(err).Msg("cannot write the certificate files")
	case p.filesErr:
		p.filesErr = false
		p.logger.Info().Str("cert_path", p.cfg.CertPath).Msg("certificate files written again")
	}
}

// writeFileIfChanged replaces path with data, crash-safely and with the
// modes of FileStorage, unless it already holds exactly data.
func writeFileIfChanged(path string, data []byte, private bool) error {
	if cur, err := readFileLimited(path, maxFileSize); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return writeFileAtomic(path, data, private)
}

// syncStorage keeps the certificates of m's Provider in step with a shared
// storage until ctx ends: it runs Watcher.Watch when the storage has it,
// and reads every certificate again every storageRereadInterval. The
// events of the certificates swapped in are delivered from a goroutine of
// their own, so that a slow notifier does not hold back the next swap.
func (s *scheduler) syncStorage(ctx context.Context, m *Provider) {
	defer s.finishAux()
	deliver, stop := m.eventQueue(ctx)
	defer stop()

	var watcher sync.WaitGroup
	defer watcher.Wait()
	if w, ok := m.storage.(Watcher); ok {
		watcher.Go(func() { m.watchStorage(ctx, w, deliver) })
	}
	t := time.NewTimer(m.rereadEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.rereadAll(ctx, deliver)
			t.Reset(m.rereadEvery())
		}
	}
}

// eventQueue starts a goroutine that hands the events given to deliver to
// the notifiers, in order, so that a slow notifier does not hold back the
// caller. stop waits until every event given has been delivered.
func (p *Provider) eventQueue(ctx context.Context) (deliver func([]Event), stop func()) {
	queue := make(chan []Event, 64)
	var notifier sync.WaitGroup
	notifier.Go(func() {
		for events := range queue {
			p.notifyAll(ctx, events)
		}
	})
	deliver = func(events []Event) {
		if len(events) > 0 {
			queue <- events
		}
	}
	stop = func() {
		close(queue)
		notifier.Wait()
	}
	return deliver, stop
}

// rereadEvery is the interval of the periodic re-read.
func (p *Provider) rereadEvery() time.Duration {
	if p.reread > 0 {
		return p.reread
	}
	return storageRereadInterval
}

// watchStorage runs w.Watch until ctx ends, again after a failure (with a
// back-off; the periodic re-read goes on meanwhile), and reloads the
// certificates whose keys it reports.
func (p *Provider) watchStorage(ctx context.Context, w Watcher, deliver func([]Event)) {
	retry := watchRetryMin
	for {
		err := w.Watch(ctx, func(key string) { p.storageChanged(ctx, key, deliver) })
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the storage's Watch method returned without an error")
		}
		p.logger.Warn().Err(err).Dur("retry_in", retry).
			Msg("cannot watch the storage for changes; certificates are still read again periodically")
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		retry = min(2*retry, watchRetryMax)
		p.rereadAll(ctx, deliver) // what changed while not watching
	}
}

// storageChanged reacts to a change the storage reported: key is the key
// of a value stored or deleted, or "" when any value may have changed
// (after a lost connection).
func (p *Provider) storageChanged(ctx context.Context, key string, deliver func([]Event)) {
	if key == "" {
		p.logger.Info().Msg("storage connection regained: reading every certificate again")
		p.rereadAll(ctx, deliver)
		return
	}
	for _, q := range p.all() {
		if key == q.cfg.CertPath || key == q.cfg.KeyPath {
			q.reloadLogged(ctx, deliver)
		}
	}
}

// rereadAll reloads every certificate of the Provider from storage.
func (p *Provider) rereadAll(ctx context.Context, deliver func([]Event)) {
	for _, q := range p.all() {
		q.reloadLogged(ctx, deliver)
	}
}

// reloadLogged is reload, logging a failure (the certificate served stays)
// and handing the events to deliver.
func (p *Provider) reloadLogged(ctx context.Context, deliver func([]Event)) {
	if ctx.Err() != nil {
		return
	}
	events, err := p.reloadEvents(ctx)
	deliver(events)
	p.logReloadError(ctx, err)
}

// logReloadError logs the failure err (nil when none) of a reload from
// storage: the certificate served stays.
func (p *Provider) logReloadError(ctx context.Context, err error) {
	switch {
	case err == nil || ctx.Err() != nil:
	case p.cert.Load() == nil && errors.Is(err, ErrMissingCertificate):
		// Nothing stored yet, nothing served: the scheduler obtains it.
		p.logger.Debug().Err(err).Msg("no certificate in storage yet")
	default:
		p.logger.Warn().Err(err).Msg("cannot reload the certificate from storage; serving the previous one")
	}
}
