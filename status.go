package autocert

import "context"

// LoadRenewalStatus reads from storage what the scheduler keeps about the
// main certificate and every extra (the last failure, the renewal window
// the CA suggested) and works out when each is next due, so that
// RenewalStatus reports NextRenewal and the last failure without the
// scheduler having run: for tools that only show what is there, after
// LoadCertsAll. It contacts no CA and starts nothing; ScheduleRenewalAll
// may still be called afterwards.
func (p *Provider) LoadRenewalStatus(ctx context.Context) {
	s := p.scheduler()
	now := s.clock.Now()
	for _, q := range p.main.all() {
		s.load(ctx, q)
		if q.cfg.Provider == ProviderLocal {
			continue
		}
		s.mu.Lock()
		q.dueLocked(now)
		s.mu.Unlock()
	}
}
