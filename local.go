package autocert

import (
	"context"
	"time"
)

// localPollInterval is how often the files of a "local" certificate are
// looked at for changes made by another tool.
const localPollInterval = time.Minute

// statResult is what a look at one file found.
type statResult struct {
	info KeyInfo
	ok   bool
}

func sameStat(a, b statResult) bool {
	return a.ok == b.ok && a.info.Size == b.info.Size && a.info.Modified.Equal(b.info.Modified)
}

// pollLocal looks at the files of e, a "local" certificate: when their
// size or modification time changed since the last look (or at the first
// look), it loads them and serves the certificate they hold. A pair that
// does not load (say, the certificate is written and the key not yet) is
// ignored until the files change again; the certificate served until then
// stays. A certificate inside its renewal window is warned about and
// notified, once per certificate.
func (s *scheduler) pollLocal(ctx context.Context, e *entry) {
	c := e.c
	var now [2]statResult
	for i, key := range []string{c.cfg.CertPath, c.cfg.KeyPath} {
		info, err := c.storage.Stat(ctx, key)
		now[i] = statResult{info: info, ok: err == nil}
	}
	at := s.clock.Now()
	s.mu.Lock()
	first := !e.rs.polled
	changed := first || !sameStat(now[0], e.rs.seen[0]) || !sameStat(now[1], e.rs.seen[1])
	e.rs.polled, e.rs.polledAt, e.rs.seen = true, at, now
	s.mu.Unlock()

	if changed {
		events, err := s.reload(ctx, e)
		s.notifier.notifyAll(ctx, events)
		if err != nil && (!first || c.current() == nil) {
			c.logger.Warn().Err(err).Msg("local certificate files changed but do not load; serving the previous certificate")
		}
	}
	s.warnLocalExpiry(ctx, e, at)
}

// warnLocalExpiry warns, once per certificate, about a "local" certificate
// that has entered the window in which an ACME certificate would have been
// renewed.
func (s *scheduler) warnLocalExpiry(ctx context.Context, e *entry, now time.Time) {
	c := e.c
	cur := c.current()
	if cur == nil {
		return
	}
	l := cur.Leaf
	if now.Before(l.NotAfter.Add(-renewBefore(l.NotAfter.Sub(l.NotBefore)))) {
		return
	}
	serial := serialHex(l)
	s.mu.Lock()
	warned := e.rs.warned == serial
	e.rs.warned = serial
	s.mu.Unlock()
	if warned {
		return
	}
	reason := "The certificate files are maintained by another tool and have not been replaced yet."
	if !now.Before(l.NotAfter) {
		reason = "The certificate has expired; the files are maintained by another tool and have not been replaced."
	}
	c.logger.Warn().Strs("domains", l.DNSNames).Time("not_after", l.NotAfter).
		Str("remaining", l.NotAfter.Sub(now).Round(time.Minute).String()).Msg("local certificate nears expiry")
	s.notifier.notify(ctx, &CertExpiring{Provider: c.name, Domains: l.DNSNames, Serial: serial,
		NotAfter: l.NotAfter, Reason: reason, Time: now})
}
