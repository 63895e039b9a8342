package autocert

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"time"
)

// The lifetime rule: a certificate is renewed when one third of its
// lifetime remains (one half when it is valid for less than ten days), but
// not earlier than thirty days before it expires, minus a jitter of at
// most a twentieth of that, capped at six hours.
const (
	maxRenewBefore = 30 * 24 * time.Hour
	shortLifetime  = 10 * 24 * time.Hour
	maxJitter      = 6 * time.Hour
)

// Reasons a renewal is due, as RenewalStatus.Reason reports them.
const (
	reasonMissing  = "missing"  // no certificate is served
	reasonExpired  = "expired"  // the certificate served has expired
	reasonMismatch = "mismatch" // the domains or key type changed in the config
	reasonLifetime = "lifetime" // the lifetime rule
	reasonARI      = "ari"      // the point chosen in the CA's renewal window
	reasonForced   = "forced"   // ForceExpiryAll
	// reasonRateLimit: the order waits for its turn under the CA's rate
	// limits (pacing.go); it is not a rule of renewalDue.
	reasonRateLimit = "rate_limit"
)

// renewBefore is how long before its expiry a certificate valid for
// lifetime is renewed by the lifetime rule.
func renewBefore(lifetime time.Duration) time.Duration {
	if lifetime < shortLifetime {
		return lifetime / 2
	}
	return min(lifetime/3, maxRenewBefore)
}

// jitterMax is the largest jitter taken off a renewal due renewBefore
// ahead of expiry.
func jitterMax(renewBefore time.Duration) time.Duration {
	return min(renewBefore/20, maxJitter)
}

// jitter returns the jitter of leaf: a fraction of jitterMax drawn from
// the certificate's own bytes, so it differs between certificates (a fleet
// does not renew in one burst) yet is the same at every start.
func jitter(leaf *x509.Certificate, renewBefore time.Duration) time.Duration {
	src := leaf.Raw
	if len(src) == 0 && leaf.SerialNumber != nil {
		src = leaf.SerialNumber.Bytes()
	}
	sum := sha256.Sum256(src)
	frac := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53) // in [0, 1)
	return time.Duration(frac * float64(jitterMax(renewBefore)))
}

// due is when a certificate should be renewed, and why.
type due struct {
	at     time.Time
	reason string // one of the reason constants
	retry  bool   // at was pushed back to wait after a failure
}

// renewalDue applies the renewal rules at now to the certificate leaf (nil
// when none is served), which no longer fits the config when mismatch is
// not empty, with the CA's renewal information ari (used when it is about
// leaf) and the last failure fail (zero Time when none). obtained, when
// after leaf's NotBefore, is when this process obtained leaf: the lifetime
// rule then counts the lifetime from it, since a CA that backdates
// NotBefore (step-ca, by a minute) would otherwise make a short-lived
// certificate due before it was even issued, and renewed again and again.
func renewalDue(now time.Time, leaf *x509.Certificate, obtained time.Time, mismatch string, ari ariRecord, fail failureRecord) due {
	var d due
	var notAfter time.Time
	switch {
	case leaf == nil:
		d = due{at: now, reason: reasonMissing}
	case !now.Before(leaf.NotAfter):
		d, notAfter = due{at: now, reason: reasonExpired}, leaf.NotAfter
	case mismatch != "":
		d, notAfter = due{at: now, reason: reasonMismatch}, leaf.NotAfter
	default:
		notAfter = leaf.NotAfter
		from := leaf.NotBefore
		if obtained.After(from) && obtained.Before(leaf.NotAfter) {
			from = obtained
		}
		rb := renewBefore(leaf.NotAfter.Sub(from))
		d = due{at: leaf.NotAfter.Add(-rb - jitter(leaf, rb)), reason: reasonLifetime}
		if !ari.RenewAt.IsZero() && ari.RenewAt.Before(d.at) && ari.about(ariID(leaf)) {
			d = due{at: ari.RenewAt, reason: reasonARI}
		}
	}
	if !fail.Time.IsZero() {
		if r := fail.retryAt(notAfter); r.After(d.at) {
			d.at, d.retry = r, true
		}
	}
	return d
}

// describeReason turns a reason into the words of logs and events.
func describeReason(reason, mismatch string) string {
	switch reason {
	case reasonMissing:
		return "no certificate"
	case reasonExpired:
		return "certificate expired"
	case reasonMismatch:
		return mismatch
	case reasonLifetime:
		return "renewal due by the certificate's lifetime"
	case reasonARI:
		return "renewal window suggested by the CA"
	case reasonForced:
		return "forced"
	}
	return reason
}

// startupCooldown is how long after a failure an obtain at start-up is
// refused, so a crash or restart loop cannot hammer the CA.
const startupCooldown = 15 * time.Second

// Back-off after failures: the seed's one hour after the first failure,
// doubling up to a day.
const (
	firstRetryDelay = time.Hour
	maxRetryDelay   = 24 * time.Hour
	// minRetryDelay keeps the quarter-of-what-remains rule from retrying
	// ever faster as a certificate nears its end.
	minRetryDelay = 10 * time.Second
)

// retryDelay is how long to wait after the attempts-th consecutive failure
// while the current certificate still has remaining validity (zero or less
// when there is none): 1 h, 2 h, 4 h... up to 24 h, never more than a
// quarter of remaining (but at least 10 s), except that a CA's Retry-After
// is honoured when longer.
func retryDelay(attempts int, remaining, retryAfter time.Duration) time.Duration {
	d := firstRetryDelay
	for i := 1; i < attempts && d < maxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, maxRetryDelay)
	if remaining > 0 {
		d = max(min(d, remaining/4), minRetryDelay)
	}
	return max(d, retryAfter)
}

// attempt says who asks for a certificate to be obtained, which decides
// how a failure recorded in storage (by this instance or another) is
// honoured.
type attempt int

const (
	// attemptStartup: ObtainAll. Refused within startupCooldown of a
	// failure, and before the failure's retry time, so a restart loop
	// cannot hammer the CA.
	attemptStartup attempt = iota
	// attemptScheduled: the scheduler, when the renewal rules say so. A
	// failure another instance recorded meanwhile is waited for, as if it
	// were this instance's.
	attemptScheduled
	// attemptForced: ObtainAll with force, ForceExpiry, RenewAll: recorded
	// failures are ignored.
	attemptForced
)

// mayAttempt decides, under the certificate's storage lock, whether the
// failure record rec (zero when there is none) lets who order now; known
// is the failure the scheduler knows of (zero when none). It returns nil,
// or the ErrCoolingDown error to return; adopt then says that rec is
// another instance's failure, newer than known, that the scheduler takes
// over with its retry time, so the fleet backs off together instead of
// each instance retrying in turn.
//
// A record of an attempt that did not finish, read while holding the
// lock, was left by a holder that died in the middle of its order (a
// crash, a kill, a lost host): another instance takes over at once, except
// at start-up after a second such crash in a row within startupCooldown,
// which looks like a crash loop. A finished failure refuses a start-up
// until its retry time, and at least within startupCooldown. A failure of
// another configuration of the certificate is not waited for.
func (c *certificate) mayAttempt(rec failureRecord, who attempt, known failureRecord) (adopt bool, err error) {
	if rec.Time.IsZero() || who == attemptForced {
		return false, nil
	}
	if rec.configChanged(c.fp) {
		c.logger.Info().Time("failed_at", rec.Time).Time("retry_at", rec.RetryAt).
			Msg("the configuration changed since the last failure; not waiting for its retry time")
		return false, nil
	}
	now := c.clock.Now()
	switch who {
	case attemptStartup:
		until := rec.Time.Add(startupCooldown)
		if rec.unfinished() {
			if !now.Before(until) || rec.Attempts < 2 {
				return false, nil
			}
			return false, fmt.Errorf("%w: %d attempts in a row did not finish (the last began at %s), as in a crash loop; not retrying before %s; a forced renewal retries now",
				ErrCoolingDown, rec.Attempts, rec.Time.Format(time.RFC3339), until.Format(time.RFC3339))
		}
		// A start waits as long as a process that kept running would.
		var notAfter time.Time
		if cur := c.current(); cur != nil {
			notAfter = cur.Leaf.NotAfter
		}
		if r := rec.retryAt(notAfter); r.After(until) {
			until = r
		}
		if !now.Before(until) {
			return false, nil
		}
		why := ""
		if rec.Message != "" {
			why = " (" + rec.Message + ")"
		}
		return false, fmt.Errorf("%w: last attempt failed at %s%s; not retrying before %s; a forced renewal (autocert obtain --force or renew --force, Provider.ForceExpiryAll) retries now",
			ErrCoolingDown, rec.Time.Format(time.RFC3339), why, until.Format(time.RFC3339))
	case attemptScheduled:
		if rec.unfinished() || !now.Before(rec.RetryAt) || !rec.Time.After(known.Time) {
			return false, nil
		}
		c.logger.Info().Time("failed_at", rec.Time).Time("retry_at", rec.RetryAt).Str("error", rec.Message).
			Msg("another instance failed to renew this certificate; waiting as it does")
		return true, fmt.Errorf("%w: another instance's attempt failed at %s; not retrying before %s",
			ErrCoolingDown, rec.Time.Format(time.RFC3339), rec.RetryAt.Format(time.RFC3339))
	}
	return false, nil
}
