package autocert

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

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

// closeStorage closes st when it can be closed, ignoring the error: used
// on error paths, where the first error is the one reported.
func closeStorage(st Storage) {
	if c, ok := st.(io.Closer); ok {
		_ = c.Close()
	}
}

// syncStorage keeps the certificates served in step with a shared storage
// until ctx ends: it runs Watcher.Watch when the storage has it, and reads
// every certificate again every storageRereadInterval. The events of the
// certificates swapped in are delivered from a goroutine of their own, so
// that a slow notifier does not hold back the next swap.
func (s *scheduler) syncStorage(ctx context.Context) {
	defer s.finishAux()
	deliver, stop := s.eventQueue(ctx)
	defer stop()

	var watcher sync.WaitGroup
	defer watcher.Wait()
	if w, ok := s.storage.(Watcher); ok {
		watcher.Go(func() { s.watchStorage(ctx, w, deliver) })
	}
	t := time.NewTimer(s.rereadEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.rereadAll(ctx, deliver)
			t.Reset(s.rereadEvery())
		}
	}
}

// eventQueue starts a goroutine that hands the events given to deliver to
// the notifiers, in order, so that a slow notifier does not hold back the
// caller. stop waits until every event given has been delivered.
func (s *scheduler) eventQueue(ctx context.Context) (deliver func([]Event), stop func()) {
	queue := make(chan []Event, 64)
	var delivering sync.WaitGroup
	delivering.Go(func() {
		for events := range queue {
			s.notifier.notifyAll(ctx, events)
		}
	})
	deliver = func(events []Event) {
		if len(events) > 0 {
			queue <- events
		}
	}
	stop = func() {
		close(queue)
		delivering.Wait()
	}
	return deliver, stop
}

// rereadEvery is the interval of the periodic re-read.
func (s *scheduler) rereadEvery() time.Duration {
	if s.reread > 0 {
		return s.reread
	}
	return storageRereadInterval
}

// watchStorage runs w.Watch until ctx ends, again after a failure (with a
// back-off; the periodic re-read goes on meanwhile), and reloads the
// certificates whose keys it reports.
func (s *scheduler) watchStorage(ctx context.Context, w Watcher, deliver func([]Event)) {
	retry := watchRetryMin
	for {
		err := w.Watch(ctx, func(key string) { s.storageChanged(ctx, key, deliver) })
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the storage's Watch method returned without an error")
		}
		s.logger.Warn().Err(err).Dur("retry_in", retry).
			Msg("cannot watch the storage for changes; certificates are still read again periodically")
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		retry = min(2*retry, watchRetryMax)
		s.rereadAll(ctx, deliver) // what changed while not watching
	}
}

// storageChanged reacts to a change the storage reported: key is the key
// of a value stored or deleted, or "" when any value may have changed
// (after a lost connection).
func (s *scheduler) storageChanged(ctx context.Context, key string, deliver func([]Event)) {
	if key == "" {
		s.logger.Info().Msg("storage connection regained: reading every certificate again")
		s.rereadAll(ctx, deliver)
		return
	}
	for _, e := range s.entries {
		if key == e.c.cfg.CertPath || key == e.c.cfg.KeyPath {
			s.reloadLogged(ctx, e, deliver)
		}
	}
}

// rereadAll reloads every certificate from storage.
func (s *scheduler) rereadAll(ctx context.Context, deliver func([]Event)) {
	for _, e := range s.entries {
		s.reloadLogged(ctx, e, deliver)
	}
}

// reloadLogged is reload, logging a failure (the certificate served stays)
// and handing the events to deliver.
func (s *scheduler) reloadLogged(ctx context.Context, e *entry, deliver func([]Event)) {
	if ctx.Err() != nil {
		return
	}
	events, err := s.reload(ctx, e)
	deliver(events)
	e.c.logReloadError(ctx, err)
}

// logReloadError logs the failure err (nil when none) of a reload from
// storage: the certificate served stays.
func (c *certificate) logReloadError(ctx context.Context, err error) {
	switch {
	case err == nil || ctx.Err() != nil:
	case c.current() == nil && errors.Is(err, ErrMissingCertificate):
		// Nothing stored yet, nothing served: the scheduler obtains it.
		c.logger.Debug().Err(err).Msg("no certificate in storage yet")
	default:
		c.logger.Warn().Err(err).Msg("cannot reload the certificate from storage; serving the previous one")
	}
}
