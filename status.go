package autocert

import (
	"context"
	"slices"
	"time"
)

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
	// changed), "expired" or "missing"; or "rate_limit" when the order
	// is due and waits for its turn under the CA's rate limits (see
	// WithRateLimits), NextRenewal being when that turn comes.
	Reason string `json:"reason,omitempty"`
	// RateLimit names the limit the order waits for when Reason is
	// "rate_limit", such as "new orders per account: 300 per 3h0m0s".
	RateLimit string `json:"rate_limit,omitempty"`
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
	// CA is the ACME directory URL of the CA that issued the certificate
	// served, when known: obtained by this process, or recorded for a
	// certificate with several issuers.
	CA string `json:"ca,omitempty"`
	// CAErrors are, after a failed attempt of a certificate with several
	// issuers, what failed at each CA asked, in order.
	CAErrors []CAError `json:"ca_errors,omitempty"`
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

// RenewalStatus returns the renewal state of the main certificate and of
// every extra, in that order.
func (p *Provider) RenewalStatus() []RenewalStatus {
	s := p.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RenewalStatus, 0, len(s.entries))
	for _, e := range s.entries {
		c, rs := e.c, &e.rs
		st := RenewalStatus{Provider: c.name, Renewing: rs.renewing, LastRenewal: rs.lastRenewal}
		if rs.loaded && !c.local() && !rs.due.at.IsZero() {
			st.NextRenewal, st.Reason = rs.due.at, rs.due.reason
		}
		// A turn later than the renewal planned, or that of a forced
		// renewal (due now, whatever was planned).
		forcing := rs.forced != nil && rs.forced.Finished.IsZero()
		if p := rs.pace; !p.at.IsZero() && (forcing || !p.at.Before(st.NextRenewal)) {
			st.NextRenewal, st.Reason, st.RateLimit = p.at, reasonRateLimit, p.limit
		}
		cur := c.current()
		if cur != nil && rs.issuer.Serial == serialHex(cur.Leaf) {
			st.CA = rs.issuer.CA
		}
		if cur != nil && rs.ari.about(ariID(cur.Leaf)) {
			st.WindowStart, st.WindowEnd = rs.ari.Start, rs.ari.End
		}
		if f := rs.fail; !f.Time.IsZero() {
			var notAfter time.Time
			if cur != nil {
				notAfter = cur.Leaf.NotAfter
			}
			st.LastFailure, st.LastError, st.Failures, st.RetryAt = f.Time, f.Message, f.Attempts, f.retryAt(notAfter)
			st.CAErrors = slices.Clone(f.CAErrors)
		}
		if rs.forced != nil {
			f := *rs.forced
			st.Forced = &f
		}
		out = append(out, st)
	}
	return out
}

// LoadRenewalStatus reads from storage what the scheduler keeps about the
// main certificate and every extra (the last failure, the renewal window
// the CA suggested) and works out when each is next due, so that
// RenewalStatus reports NextRenewal and the last failure without the
// scheduler having run: for tools that only show what is there, after
// Load. It contacts no CA and starts nothing; the scheduler may still be
// started afterwards.
func (p *Provider) LoadRenewalStatus(ctx context.Context) {
	s := p.sched
	now := s.clock.Now()
	for _, e := range s.entries {
		s.load(ctx, e)
		if e.c.local() {
			continue
		}
		s.mu.Lock()
		e.dueLocked(now)
		s.mu.Unlock()
	}
}

// expirySummary lists when each certificate served expires.
func (s *scheduler) expirySummary(now time.Time) *ExpirySummary {
	e := &ExpirySummary{Time: now}
	for _, en := range s.entries {
		c := en.c
		ce := CertExpiry{Provider: c.name, Domains: c.cfg.Domains}
		if cur := c.current(); cur != nil {
			ce.Domains, ce.Serial, ce.NotAfter = cur.Leaf.DNSNames, serialHex(cur.Leaf), cur.Leaf.NotAfter
		}
		e.Certificates = append(e.Certificates, ce)
	}
	return e
}

// CertInfo describes a certificate being served, for status pages and the
// HTTP API. Times are Unix seconds.
type CertInfo struct {
	Provider       string   `json:"provider"`
	Subject        string   `json:"subject"`
	Issuer         string   `json:"issuer"`
	Serial         string   `json:"serial"`
	NotBefore      int64    `json:"not_before"`
	NotAfter       int64    `json:"not_after"`
	DNSNames       []string `json:"dns_names"`
	EmailAddresses []string `json:"email_addresses"`
}

// GetCertInfos returns the information of every certificate being served,
// main first, then the extras in configured order. A provider without a
// certificate is left out; the error is ErrNoCertificate when none has one.
func (p *Provider) GetCertInfos() ([]CertInfo, error) {
	var infos []CertInfo
	for _, c := range p.certs {
		cur := c.current()
		if cur == nil {
			continue
		}
		l := cur.Leaf
		infos = append(infos, CertInfo{
			Provider:       c.name,
			Subject:        l.Subject.CommonName,
			Issuer:         l.Issuer.CommonName,
			Serial:         l.SerialNumber.Text(16),
			NotBefore:      l.NotBefore.Unix(),
			NotAfter:       l.NotAfter.Unix(),
			DNSNames:       l.DNSNames,
			EmailAddresses: l.EmailAddresses,
		})
	}
	if len(infos) == 0 {
		return nil, ErrNoCertificate
	}
	return infos, nil
}

// PrintCertExpiriesAll logs, at Info level, when each certificate being
// served expires.
func (p *Provider) PrintCertExpiriesAll() {
	now := p.sched.clock.Now()
	for _, c := range p.certs {
		cur := c.current()
		if cur == nil {
			c.logger.Warn().Msg("no certificate loaded")
			continue
		}
		c.logger.Info().Strs("domains", cur.Leaf.DNSNames).
			Time("expires", cur.Leaf.NotAfter).
			Str("remaining", cur.Leaf.NotAfter.Sub(now).Round(time.Minute).String()).
			Msg("certificate expiry")
	}
}
