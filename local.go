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

// pollLocal looks at the files of a "local" certificate: when their size
// or modification time changed since the last look (or at the first look),
// it loads them and serves the certificate they hold. A pair that does not
// load (say, the certificate is written and the key not yet) is ignored
// until the files change again; the certificate served until then stays.
// A certificate inside its renewal window is warned about and notified,
// once per certificate.
func (p *Provider) pollLocal(ctx context.Context) {
	var now [2]statResult
	for i, key := range []string{p.cfg.CertPath, p.cfg.KeyPath} {
		info, err := p.storage.Stat(ctx, key)
		now[i] = statResult{info: info, ok: err == nil}
	}
	at := p.clock.Now()
	s := p.scheduler()
	s.mu.Lock()
	first := !p.rs.polled
	changed := first || !sameStat(now[0], p.rs.seen[0]) || !sameStat(now[1], p.rs.seen[1])
	p.rs.polled, p.rs.polledAt, p.rs.seen = true, at, now
	s.mu.Unlock()

	if changed {
		if _, err := p.reload(ctx); err != nil && (!first || p.cert.Load() == nil) {
			p.logger.Warn().Err(err).Msg("local certificate files changed but do not load; serving the previous certificate")
		}
	}
	p.warnLocalExpiry(ctx, at)
}

// warnLocalExpiry warns, once per certificate, about a "local" certificate
// that has entered the window in which an ACME certificate would have been
// renewed.
func (p *Provider) warnLocalExpiry(ctx context.Context, now time.Time) {
	c := p.cert.Load()
	if c == nil {
		return
	}
	l := c.Leaf
	if now.Before(l.NotAfter.Add(-renewBefore(l.NotAfter.Sub(l.NotBefore)))) {
		return
	}
	serial := serialHex(l)
	s := p.scheduler()
	s.mu.Lock()
	warned := p.rs.warned == serial
	p.rs.warned = serial
	s.mu.Unlock()
	if warned {
		return
	}
	reason := "The certificate files are maintained by another tool and have not been replaced yet."
	if !now.Before(l.NotAfter) {
		reason = "The certificate has expired; the files are maintained by another tool and have not been replaced."
	}
	p.logger.Warn().Strs("domains", l.DNSNames).Time("not_after", l.NotAfter).
		Str("remaining", l.NotAfter.Sub(now).Round(time.Minute).String()).Msg("local certificate nears expiry")
	p.notify(ctx, &CertExpiring{Provider: p.name, Domains: l.DNSNames, Serial: serial,
		NotAfter: l.NotAfter, Reason: reason, Time: now})
}
