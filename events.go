package autocert

import (
	"fmt"
	"strings"
	"time"
)

// EventKind names a kind of Event, for receivers that do not switch on the
// Go type (JSON, templates).
type EventKind string

// The kinds of Event.
const (
	KindObtained      EventKind = "obtained"
	KindRenewed       EventKind = "renewed"
	KindRenewalFailed EventKind = "renewal_failed"
	KindExpiring      EventKind = "expiring"
	KindExpirySummary EventKind = "expiry_summary"
	KindReloaded      EventKind = "reloaded"
)

// Event is what a Notifier receives: one of *CertObtained, *CertRenewed,
// *CertReloaded, *RenewalFailed, *CertExpiring and *ExpirySummary. Each marshals to JSON
// with snake_case keys.
type Event interface {
	// Kind names the event.
	Kind() EventKind
	// Title is a one-line summary, such as "certificate renewed: main".
	Title() string
	// Message describes the event in a few lines of plain text.
	Message() string
}

// CertObtained is sent when a certificate is obtained where none was
// served before (first start, or the previous one could not be loaded).
type CertObtained struct {
	Provider  string    `json:"provider"`
	Domains   []string  `json:"domains"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// CA is the ACME directory URL of the CA that issued it; "" for
	// "pseudo".
	CA string `json:"ca,omitempty"`
	// CAErrors are the issuers that failed before CA issued it, in order.
	CAErrors []CAError `json:"ca_errors,omitempty"`
	Time     time.Time `json:"time"`
}

// CertRenewed is sent when a served certificate has been replaced by a new
// one, which is now served.
type CertRenewed struct {
	Provider string   `json:"provider"`
	Domains  []string `json:"domains"`
	// Reason says why it was renewed, such as "renewal window suggested by
	// the CA" or "forced".
	Reason           string    `json:"reason"`
	Serial           string    `json:"serial"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	PreviousSerial   string    `json:"previous_serial"`
	PreviousNotAfter time.Time `json:"previous_not_after"`
	// CA is the ACME directory URL of the CA that issued it; "" for
	// "pseudo".
	CA string `json:"ca,omitempty"`
	// CAErrors are the issuers that failed before CA issued it, in order.
	CAErrors []CAError `json:"ca_errors,omitempty"`
	Time     time.Time `json:"time"`
}

// CertReloaded is sent when a certificate read from storage replaces the
// one served (or is the first served) without this Provider having
// obtained it: with a storage shared by several instances, the instances
// that did not order a certificate send it when they swap in the one
// another instance obtained, after writing its files; with "local"
// certificates, when another tool replaced the files. A program that
// reloads a server reading the certificate files does so on this event as
// on CertObtained and CertRenewed.
type CertReloaded struct {
	Provider  string    `json:"provider"`
	Domains   []string  `json:"domains"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// PreviousSerial is the serial of the certificate served before; ""
	// when none was.
	PreviousSerial string    `json:"previous_serial,omitempty"`
	Time           time.Time `json:"time"`
}

// RenewalFailed is sent when an attempt to obtain or renew a certificate
// failed. The certificate served before, if any, is still served.
type RenewalFailed struct {
	Provider string   `json:"provider"`
	Domains  []string `json:"domains"`
	// Err is the failure; it wraps ErrObtain and the cause, so errors.Is
	// and errors.As work, while its message hides secrets.
	Err error `json:"-"`
	// Error is the message of Err.
	Error string `json:"error"`
	// Failures counts the consecutive failed attempts, this one included.
	Failures int `json:"failures"`
	// RetryAt is when the next attempt is due, unless one is forced.
	RetryAt time.Time `json:"retry_at"`
	// NotAfter is the expiry of the certificate still served; zero when
	// there is none.
	NotAfter time.Time `json:"not_after,omitzero"`
	// CAErrors are, for a certificate with several issuers, what failed
	// at each CA asked, in order, with secrets removed.
	CAErrors []CAError `json:"ca_errors,omitempty"`
	Time     time.Time `json:"time"`
}

// CertExpiring is sent when a certificate nears its expiry without a
// replacement: an ACME certificate that will expire before its next
// renewal attempt, or a "local" certificate that is inside its renewal
// window (another tool should have replaced it by now).
type CertExpiring struct {
	Provider string    `json:"provider"`
	Domains  []string  `json:"domains"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	// Reason explains the warning.
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// ExpirySummary lists when each certificate expires; it is sent when
// ScheduleRenewalAll starts.
type ExpirySummary struct {
	Certificates []CertExpiry `json:"certificates"`
	Time         time.Time    `json:"time"`
}

// CertExpiry is one line of an ExpirySummary.
type CertExpiry struct {
	Provider string    `json:"provider"`
	Domains  []string  `json:"domains"`
	Serial   string    `json:"serial,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"` // zero when no certificate is served
}

// Kind returns KindObtained.
func (*CertObtained) Kind() EventKind { return KindObtained }

// Title returns a one-line summary.
func (e *CertObtained) Title() string { return "certificate obtained: " + e.Provider }

// Message describes the event.
func (e *CertObtained) Message() string {
	return fmt.Sprintf("Domains: %s\nSerial: %s\nExpires: %s",
		strings.Join(e.Domains, ", "), e.Serial, e.NotAfter.UTC().Format(time.RFC3339)) + caLines(e.CA, e.CAErrors)
}

// caLines describes the CA that issued and those that failed, for
// messages; "" when neither is known.
func caLines(ca string, failed []CAError) string {
	var b strings.Builder
	if ca != "" {
		b.WriteString("\nCA: " + ca)
	}
	for _, f := range failed {
		fmt.Fprintf(&b, "\nFailed at %s: %s", f.CA, f.Error)
	}
	return b.String()
}

// Kind returns KindRenewed.
func (*CertRenewed) Kind() EventKind { return KindRenewed }

// Title returns a one-line summary.
func (e *CertRenewed) Title() string { return "certificate renewed: " + e.Provider }

// Message describes the event.
func (e *CertRenewed) Message() string {
	return fmt.Sprintf("Domains: %s\nReason: %s\nSerial: %s\nExpires: %s\nPrevious serial: %s (expiring %s)",
		strings.Join(e.Domains, ", "), e.Reason, e.Serial, e.NotAfter.UTC().Format(time.RFC3339),
		e.PreviousSerial, e.PreviousNotAfter.UTC().Format(time.RFC3339)) + caLines(e.CA, e.CAErrors)
}

// Kind returns KindReloaded.
func (*CertReloaded) Kind() EventKind { return KindReloaded }

// Title returns a one-line summary.
func (e *CertReloaded) Title() string { return "certificate reloaded from storage: " + e.Provider }

// Message describes the event.
func (e *CertReloaded) Message() string {
	msg := fmt.Sprintf("Domains: %s\nSerial: %s\nExpires: %s",
		strings.Join(e.Domains, ", "), e.Serial, e.NotAfter.UTC().Format(time.RFC3339))
	if e.PreviousSerial != "" {
		msg += "\nPrevious serial: " + e.PreviousSerial
	}
	return msg
}

// Kind returns KindRenewalFailed.
func (*RenewalFailed) Kind() EventKind { return KindRenewalFailed }

// Title returns a one-line summary.
func (e *RenewalFailed) Title() string { return "certificate renewal failed: " + e.Provider }

// Message describes the event.
func (e *RenewalFailed) Message() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Domains: %s\nError: %s\nConsecutive failures: %d\nNext attempt: %s",
		strings.Join(e.Domains, ", "), e.Error, e.Failures, e.RetryAt.UTC().Format(time.RFC3339))
	if e.NotAfter.IsZero() {
		b.WriteString("\nNo certificate is being served.")
	} else {
		fmt.Fprintf(&b, "\nThe current certificate is still served; it expires %s.", e.NotAfter.UTC().Format(time.RFC3339))
	}
	b.WriteString(caLines("", e.CAErrors))
	return b.String()
}

// Kind returns KindExpiring.
func (*CertExpiring) Kind() EventKind { return KindExpiring }

// Title returns a one-line summary.
func (e *CertExpiring) Title() string { return "certificate expiring: " + e.Provider }

// Message describes the event.
func (e *CertExpiring) Message() string {
	return fmt.Sprintf("Domains: %s\nSerial: %s\nExpires: %s\n%s",
		strings.Join(e.Domains, ", "), e.Serial, e.NotAfter.UTC().Format(time.RFC3339), e.Reason)
}

// Kind returns KindExpirySummary.
func (*ExpirySummary) Kind() EventKind { return KindExpirySummary }

// Title returns a one-line summary.
func (e *ExpirySummary) Title() string {
	if len(e.Certificates) == 1 {
		return "certificate expiries: 1 certificate"
	}
	return fmt.Sprintf("certificate expiries: %d certificates", len(e.Certificates))
}

// Message lists the certificates, one a line.
func (e *ExpirySummary) Message() string {
	lines := make([]string, len(e.Certificates))
	for i, c := range e.Certificates {
		when := "no certificate"
		if !c.NotAfter.IsZero() {
			when = "expires " + c.NotAfter.UTC().Format(time.RFC3339)
		}
		lines[i] = fmt.Sprintf("%s (%s): %s", c.Provider, strings.Join(c.Domains, ", "), when)
	}
	return strings.Join(lines, "\n")
}

// obtainedEvents logs that the certificate of out was obtained and stored,
// and returns the event for the notifiers: CertObtained when none was
// served before, else CertRenewed.
func (c *certificate) obtainedEvents(out outcome, now time.Time) []Event {
	l := out.cert.Leaf
	if out.prev == nil {
		c.logger.Info().Strs("domains", l.DNSNames).Str("serial", serialHex(l)).
			Time("not_after", l.NotAfter).Msg("certificate obtained")
		return []Event{&CertObtained{Provider: c.name, Domains: l.DNSNames, Serial: serialHex(l),
			NotBefore: l.NotBefore, NotAfter: l.NotAfter, CA: out.ca, CAErrors: out.caErrors, Time: now}}
	}
	c.logger.Info().Strs("domains", l.DNSNames).Str("serial", serialHex(l)).Str("reason", out.reason).
		Time("not_after", l.NotAfter).Msg("certificate renewed")
	return []Event{&CertRenewed{Provider: c.name, Domains: l.DNSNames, Reason: out.reason,
		Serial: serialHex(l), NotBefore: l.NotBefore, NotAfter: l.NotAfter,
		PreviousSerial: serialHex(out.prev.Leaf), PreviousNotAfter: out.prev.Leaf.NotAfter,
		CA: out.ca, CAErrors: out.caErrors, Time: now}}
}

// reloadedEvents logs that the certificate of out, read from storage,
// replaced the one served, and returns the CertReloaded event.
func (c *certificate) reloadedEvents(out outcome, now time.Time) []Event {
	l := out.cert.Leaf
	ev := &CertReloaded{Provider: c.name, Domains: l.DNSNames, Serial: serialHex(l),
		NotBefore: l.NotBefore, NotAfter: l.NotAfter, Time: now}
	log := c.logger.Info().Strs("domains", l.DNSNames).Str("serial", serialHex(l)).Time("not_after", l.NotAfter)
	if out.prev != nil {
		ev.PreviousSerial = serialHex(out.prev.Leaf)
		log = log.Str("previous_serial", ev.PreviousSerial)
	}
	log.Msg("certificate reloaded from storage")
	return []Event{ev}
}

// failedEvents logs that an attempt failed with err, recorded as rec (at
// Warn while a valid certificate is still served, else at Error), and a
// certificate that will expire before the next attempt; it returns the
// events for the notifiers.
func (c *certificate) failedEvents(rec failureRecord, err error, now time.Time) []Event {
	err = c.scrubber.Error(err)
	msg := err.Error()
	cur := c.current()
	ev := &RenewalFailed{Provider: c.name, Domains: c.cfg.Domains, Err: err, Error: msg,
		Failures: rec.Attempts, RetryAt: rec.RetryAt, CAErrors: scrubCAErrors(c, rec.CAErrors), Time: now}
	if cur != nil && now.Before(cur.Leaf.NotAfter) {
		ev.NotAfter = cur.Leaf.NotAfter
		c.logger.Warn().Str("error", msg).Int("failures", rec.Attempts).Time("retry_at", rec.RetryAt).
			Time("not_after", cur.Leaf.NotAfter).Msg("renewal failure")
	} else {
		c.logger.Error().Str("error", msg).Int("failures", rec.Attempts).Time("retry_at", rec.RetryAt).
			Msg("certificate retrieval failure")
	}
	if ev.NotAfter.IsZero() || ev.NotAfter.After(rec.RetryAt) {
		return []Event{ev}
	}
	l := cur.Leaf
	c.logger.Error().Time("not_after", l.NotAfter).Time("retry_at", rec.RetryAt).
		Msg("certificate will expire before the next renewal attempt")
	return []Event{ev, &CertExpiring{Provider: c.name, Domains: l.DNSNames, Serial: serialHex(l), NotAfter: l.NotAfter,
		Reason: "The certificate expires before the next renewal attempt, at " +
			rec.RetryAt.UTC().Format(time.RFC3339) + "; force a renewal once the cause is fixed.",
		Time: now}}
}

// scrubCAErrors returns a copy of errs with c's secrets removed.
func scrubCAErrors(c *certificate, errs []CAError) []CAError {
	if len(errs) == 0 {
		return nil
	}
	out := make([]CAError, len(errs))
	for i, e := range errs {
		out[i] = CAError{CA: e.CA, Error: c.scrub(e.Error)}
	}
	return out
}
