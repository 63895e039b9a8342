package autocert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/acme"
	legocert "github.com/go-acme/lego/v4/certificate"
)

// outcomeKind says what an obtain or a reload did.
type outcomeKind int

const (
	// outNone: nothing changed (the certificate served fits, or a reload
	// found the one served); err may tell why nothing could be done.
	outNone outcomeKind = iota
	// outLoaded: the stored certificate was served at start-up.
	outLoaded
	// outAdopted: a certificate another process stored is now served.
	outAdopted
	// outStored: a new certificate was obtained, stored and is served.
	outStored
	// outFailed: the attempt failed; rec is its failure record (stored
	// unless unrecorded).
	outFailed
	// outRefused: no attempt, as a recorded failure asks to wait (err is
	// ErrCoolingDown); with adopt, rec is another instance's failure that
	// the scheduler takes over.
	outRefused
	// outNotStarted: the attempt could not start (the storage lock), or
	// its caller gave up (ctx ended); nothing was recorded.
	outNotStarted
)

// outcome is what an obtain or a reload of a certificate did, for the
// scheduler to apply to the certificate's renewal state and to turn into
// events: obtaining never changes renewal state itself.
type outcome struct {
	kind       outcomeKind
	cert, prev *tls.Certificate // outAdopted, outStored, outLoaded: served now and before (nil when none)
	rec        failureRecord    // outFailed, outRefused with adopt
	adopt      bool
	reason     string    // why it was obtained, in words
	err        error     // outFailed, outRefused, outNotStarted; or why outNone
	ca         string    // outStored: the directory URL of the CA that issued ("" for pseudo)
	caErrors   []CAError // outStored, outFailed: the issuers that failed in the attempt
	last       int       // outFailed: the index of the last issuer asked
}

// obtainRequest asks for a certificate to be obtained.
type obtainRequest struct {
	who    attempt
	reason string            // why, in words
	old    *x509.Certificate // the certificate being renewed; nil when none
	// replaces sends old's ARI identifier with the order, so the CA can
	// exempt it from rate limits (a renewal on the CA's advice).
	replaces bool
	known    failureRecord // the failure the scheduler knows of; zero when none
	// issuedBy is the directory URL of the CA that issued old; "" when
	// unknown. Only that CA is told what the order replaces.
	issuedBy string
	// paces, when set, are the rate limits of the orders at each issuer
	// of the certificate: an order to issuer i > 0 goes only when they
	// leave it room (the first issuer's turn is the scheduler's).
	paces *issuerPaces
}

// issuerPaces are the rate limits of a certificate's orders at each of
// its issuers (keys[i], nil when that CA has none), counted in pacer.
type issuerPaces struct {
	pacer   *pacer
	keys    []*paceKeys
	renewal bool // the order is for exactly the names of the certificate served
}

// send lets the order go to issuer i at now, counting it, and returns the
// zero time; or returns when it could go and the limit it waits for.
func (ip *issuerPaces) send(i int, now time.Time) (at time.Time, limit string) {
	if ip == nil || i >= len(ip.keys) || ip.keys[i] == nil {
		return time.Time{}, ""
	}
	return ip.pacer.send(ip.keys[i], ip.renewal, now)
}

// loadAtStart reads the stored certificate at start-up and serves it when
// it loads. It returns the outcome (outLoaded when something was served)
// and why a new certificate is needed ("" when none is).
func (c *certificate) loadAtStart(ctx context.Context, l recordListing) (outcome, string) {
	c.serveMu.Lock()
	sc, why, err := c.load(ctx)
	var out outcome
	if sc.cert != nil {
		out = outcome{kind: outLoaded, cert: sc.cert, prev: c.serveLocked(sc)}
	}
	c.serveMu.Unlock()
	if err == nil && why == "" {
		if c.acme() {
			c.clearOutdatedFailure(ctx, sc, l)
		}
		return out, ""
	}
	switch {
	case c.local():
		if err != nil {
			out.err = err
			return out, ""
		}
		c.logger.Warn().Str("reason", why).Msg("local certificate does not match the config")
		return out, ""
	case errors.Is(err, fs.ErrNotExist):
		c.logger.Info().Err(err).Msg("no stored certificate, obtaining one")
		why = err.Error()
	case err != nil:
		c.logger.Warn().Err(err).Msg("stored certificate unusable, obtaining a new one")
		why = err.Error()
	}
	return out, why
}

// obtain obtains a new certificate (from the CA, or self-signed for
// "pseudo"), stores it and serves it, and returns what happened.
//
// The certificate's storage lock is held throughout, so that instances
// sharing the storage send one order: once it holds the lock, obtain reads
// the storage again and serves, without ordering, a certificate another
// instance stored meanwhile; then it reads the failure record again (see
// mayAttempt). The record of the attempt is written before the order, so
// that a crash in the middle still counts as a failure.
func (c *certificate) obtain(ctx context.Context, req obtainRequest) outcome {
	c.obtainMu.Lock()
	defer c.obtainMu.Unlock()
	unlock, err := c.storage.Lock(ctx, c.cfg.CertPath)
	if err != nil {
		return outcome{kind: outNotStarted, err: fmt.Errorf("%w: lock %s: %w", ErrObtain, c.cfg.CertPath, err)}
	}
	defer unlock()

	// Another instance sharing the storage may have just done the work.
	c.serveMu.Lock()
	sc, why, err := c.load(ctx)
	if err == nil && why == "" && (req.old == nil || !sc.cert.Leaf.Equal(req.old)) {
		prev := c.serveLocked(sc)
		c.serveMu.Unlock()
		c.clearOutdatedFailure(ctx, sc, nil)
		if prev != nil && prev.Leaf.Equal(sc.cert.Leaf) {
			return outcome{kind: outNone}
		}
		return outcome{kind: outAdopted, cert: sc.cert, prev: prev}
	}
	c.serveMu.Unlock()

	rec, _ := c.loadFailure(ctx)
	if rec.outdatedBy(sc, time.Time{}) {
		// About a certificate older than the one stored: this attempt
		// is the first since that one was obtained.
		rec = failureRecord{}
	}
	if adopt, err := c.mayAttempt(rec, req.who, req.known); err != nil {
		return outcome{kind: outRefused, rec: rec, adopt: adopt, err: err}
	}
	before := rec // put back should the caller give up
	if rec.configChanged(c.fp) {
		rec = failureRecord{} // the failures of another configuration
	}
	known := req.known.Attempts
	if req.known.configChanged(c.fp) {
		known = 0
	}
	// From here on, what is written is written whole even if ctx ends: a
	// certificate issued is never lost, and the records stay true.
	wctx := context.WithoutCancel(ctx)
	rec = c.attemptRecord(rec, sc, known)
	c.storeFailure(wctx, rec)

	c.logger.Info().Strs("domains", c.cfg.Domains).Str("reason", req.reason).Msg("obtaining certificate")
	res, err := c.issue(ctx, req)
	if err == nil {
		var cert, prev *tls.Certificate
		if cert, prev, err = c.store(wctx, res.certPEM, res.keyPEM); err == nil {
			c.report(StepSaved, "", c.cfg.CertPath, 0)
			c.storeIssuer(wctx, res.ca)
			c.clearFailure(wctx)
			return outcome{kind: outStored, cert: cert, prev: prev, reason: req.reason, ca: res.ca, caErrors: res.failed}
		}
	}
	err = fmt.Errorf("%w: %w", ErrObtain, err)
	if ctx.Err() != nil {
		// The caller gave up: no failure of the CA or the DNS, nothing
		// to wait for. The record is put back as it was.
		if before.Time.IsZero() {
			c.clearFailure(wctx)
		} else {
			c.storeFailure(wctx, before)
		}
		c.logger.Info().Err(ctx.Err()).Msg("obtaining the certificate was given up")
		return outcome{kind: outNotStarted, err: c.scrubber.Error(err)}
	}
	rec = c.failed(rec, err)
	rec.CAErrors = res.failed
	c.storeFailure(wctx, rec)
	return outcome{kind: outFailed, rec: rec, err: c.scrubber.Error(err), caErrors: res.failed, last: res.last}
}

// issue makes the new certificate: a self-signed one for "pseudo", else
// through an ACME order at the first of the issuers that issues it (see
// orderIssuers).
func (c *certificate) issue(ctx context.Context, req obtainRequest) (issued, error) {
	if c.cfg.Provider == ProviderPseudo {
		certPEM, keyPEM, err := selfSigned(c.cfg.Domains, c.cfg.CertificateKeyType, c.clock.Now())
		return issued{certPEM: certPEM, keyPEM: keyPEM}, err
	}
	return c.orderIssuers(ctx, req)
}

// order runs one ACME order through lego at the CA of is, under ctx.
func (c *certificate) order(ctx context.Context, is *issuerSlot, replaces *x509.Certificate) (*legocert.Resource, error) {
	client, err := c.client(ctx, is)
	if err != nil {
		return nil, err
	}
	c.report(StepOrder, "", strings.Join(c.cfg.Domains, ", "), 0)
	req := legocert.ObtainRequest{
		Domains: c.cfg.Domains,
		Bundle:  true,
		Profile: is.cfg.Profile,
	}
	if replaces != nil {
		if id, err := legocert.MakeARICertID(replaces); err == nil {
			req.ReplacesCertID = id
		}
	}
	res, err := client.Certificate.Obtain(req)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	if !accountGone(err) {
		return res, err
	}
	// The CA no longer knows the account (its database was reset, the
	// account was deactivated): find or register it again, once, rather
	// than fail every renewal until the process restarts.
	c.logger.Warn().Str("ca", is.url()).
		Msg("the CA does not know the ACME account any more; looking it up or registering it again")
	is.acct.forget()
	if client, err = c.client(ctx, is); err != nil {
		return nil, err
	}
	return client.Certificate.Obtain(req)
}

// retryAfterOf returns the wait a rate-limit answer of the CA asks for.
func retryAfterOf(err error, now time.Time) time.Duration {
	var rl *acme.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter == "" {
		return 0
	}
	if d, perr := time.ParseDuration(rl.RetryAfter + "s"); perr == nil {
		return d
	}
	if t, perr := http.ParseTime(rl.RetryAfter); perr == nil {
		return t.Sub(now)
	}
	return 0
}

// attemptRecord is the record written before an attempt to obtain c,
// after the failures of prev (zero when none) and the known failures the
// scheduler counted (which keep the back-off growing when the record
// cannot be stored: a read-only or full disk, a storage that is down):
// should the process die during the attempt, it stays and counts as a
// failure. stored is what the storage holds for it (zero when nothing
// usable).
func (c *certificate) attemptRecord(prev failureRecord, stored storedCert, known int) failureRecord {
	serial := noSerial
	if stored.cert != nil {
		serial = serialHex(stored.cert.Leaf)
	}
	return failureRecord{
		Time:     c.clock.Now(),
		Attempts: max(prev.Attempts, known) + 1,
		Message:  attemptUnfinished,
		Serial:   serial,
		Config:   c.fp,
	}
}

// failed turns the record of an attempt into the record of its failure
// with err: when it failed, why, and when to try again (the back-off of
// its attempts, bounded by what the certificate served has left, or the
// CA's Retry-After when longer).
func (c *certificate) failed(rec failureRecord, err error) failureRecord {
	now := c.clock.Now()
	rec.Time, rec.Message = now, c.scrub(err.Error())
	var remaining time.Duration
	if cur := c.current(); cur != nil {
		remaining = cur.Leaf.NotAfter.Sub(now)
	}
	rec.RetryAt = now.Add(retryDelay(rec.Attempts, remaining, retryAfterOf(err, now)))
	return rec
}

// clearOutdatedFailure removes the failure record of c when the stored
// certificate sc, which fits the config and is served, was stored after
// the attempt the record describes (a process that stored the certificate
// died before removing the record, or another instance succeeded). It
// reports whether it removed one. l, when not nil, is the listing of the
// records of a start (see recordListing).
func (c *certificate) clearOutdatedFailure(ctx context.Context, sc storedCert, l recordListing) bool {
	rec, ok := c.loadFailureListed(ctx, l)
	if !ok {
		return false
	}
	var modified time.Time
	if rec.Serial == "" {
		if ki, err := c.storage.Stat(ctx, c.cfg.CertPath); err == nil {
			modified = ki.Modified
		}
	}
	if !rec.outdatedBy(sc, modified) {
		return false
	}
	c.logger.Info().Time("failed_at", rec.Time).Str("error", rec.Message).
		Msg("the stored certificate is newer than the last failure recorded; clearing the record")
	c.clearFailure(ctx)
	return true
}
