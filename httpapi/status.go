package httpapi

import (
	"time"

	"github.com/autocert-dev/autocert"
)

// CertStatus is one certificate as GET /api/v1/cert/info lists it (and
// "autocert status --json" prints it): the fields of autocert.CertInfo,
// the seed's certificate information, with the configured domains and the
// renewal state of autocert.RenewalStatus. Times are Unix seconds. The
// certificate's fields are always present, empty for a certificate that
// is not being served (never obtained, or its files are missing); the
// renewal fields are left out when unknown or zero.
type CertStatus struct {
	// CertInfo is the certificate served; its fields are empty while none
	// is. Its Provider is "main" or "extra[N]".
	autocert.CertInfo
	// Domains are the names configured for the certificate.
	Domains []string `json:"domains"`

	// NextRenewal is when the certificate is next due for renewal, and
	// RenewalReason the rule that says so ("ari", "lifetime", "mismatch",
	// "expired", "missing"), or "rate_limit" while its order waits for
	// its turn under the CA's rate limits (then RateLimit names the
	// limit, and NextRenewal is when the turn comes); unknown for "local"
	// certificates.
	NextRenewal   int64  `json:"next_renewal,omitempty"`
	RenewalReason string `json:"renewal_reason,omitempty"`
	RateLimit     string `json:"rate_limit,omitempty"`
	// WindowStart and WindowEnd are the renewal window the CA suggested
	// (ACME Renewal Information), when known.
	WindowStart int64 `json:"window_start,omitempty"`
	WindowEnd   int64 `json:"window_end,omitempty"`
	// LastFailure, LastError and Failures describe the failed attempts
	// since the last success; RetryAt is when the next one may start.
	LastFailure int64  `json:"last_failure,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	Failures    int    `json:"failures,omitempty"`
	RetryAt     int64  `json:"retry_at,omitempty"`
	// Renewing is true while an order is in progress.
	Renewing bool `json:"renewing,omitempty"`
	// CA is the ACME directory URL of the CA that issued the certificate
	// served, when known, and CAErrors what failed at each CA of the
	// certificate's issuers in the last failed attempt.
	CA       string             `json:"ca,omitempty"`
	CAErrors []autocert.CAError `json:"ca_errors,omitempty"`
}

// Served reports whether the certificate is being served.
func (s CertStatus) Served() bool { return s.Serial != "" }

// Statuses returns the status of the main certificate and of every extra,
// in that order, from p.GetCertInfos and p.RenewalStatus. It holds no
// secret: errors are those of RenewalStatus, with credentials removed.
func Statuses(p *autocert.Provider) []CertStatus {
	infos, _ := p.GetCertInfos() // ErrNoCertificate: none served, shown as such
	byName := make(map[string]autocert.CertInfo, len(infos))
	for _, ci := range infos {
		byName[ci.Provider] = ci
	}
	cfg := p.Config()
	renewal := p.RenewalStatus()
	out := make([]CertStatus, 0, len(renewal))
	for i, rs := range renewal {
		st := CertStatus{
			CertInfo:      autocert.CertInfo{Provider: rs.Provider},
			Domains:       configuredDomains(cfg, i),
			NextRenewal:   unix(rs.NextRenewal),
			RenewalReason: rs.Reason,
			RateLimit:     rs.RateLimit,
			WindowStart:   unix(rs.WindowStart),
			WindowEnd:     unix(rs.WindowEnd),
			LastFailure:   unix(rs.LastFailure),
			LastError:     rs.LastError,
			Failures:      rs.Failures,
			RetryAt:       unix(rs.RetryAt),
			Renewing:      rs.Renewing,
			CA:            rs.CA,
			CAErrors:      rs.CAErrors,
		}
		if ci, ok := byName[rs.Provider]; ok {
			st.CertInfo = ci
		}
		out = append(out, st)
	}
	return out
}

// configuredDomains returns the domains of the i-th certificate of cfg:
// the main block for 0, then the extras.
func configuredDomains(cfg *autocert.Config, i int) []string {
	if i == 0 {
		return cfg.Domains
	}
	if i-1 < len(cfg.Extra) {
		merged := autocert.MergeExtraConfig(cfg, &cfg.Extra[i-1])
		return merged.Domains
	}
	return nil
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
