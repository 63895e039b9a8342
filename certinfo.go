package autocert

import (
	"time"
)

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
	for _, q := range p.all() {
		c := q.cert.Load()
		if c == nil {
			continue
		}
		l := c.Leaf
		infos = append(infos, CertInfo{
			Provider:       q.name,
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
	now := p.clock.Now()
	for _, q := range p.all() {
		c := q.cert.Load()
		if c == nil {
			q.logger.Warn().Msg("no certificate loaded")
			continue
		}
		q.logger.Info().Strs("domains", c.Leaf.DNSNames).
			Time("expires", c.Leaf.NotAfter).
			Str("remaining", c.Leaf.NotAfter.Sub(now).Round(time.Minute).String()).
			Msg("certificate expiry")
	}
}
