package autocert

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// startupCooldown is how long after a failure an obtain at start-up is
// refused, so a crash or restart loop cannot hammer the CA.
const startupCooldown = 15 * time.Second

// failureRecord is the persisted last failure of one certificate.
//
// Its file starts with the RFC 3339 time of the last failure on a line of
// its own, as the seed writes it (a file holding only that line loads);
// "key: value" lines follow.
type failureRecord struct {
	Time     time.Time // when the last attempt failed (or started, if it never ended)
	Attempts int       // consecutive failures, 1 or more
	RetryAt  time.Time // not before this time, unless forced; zero when unknown
	Message  string    // the error, on one line
	// Serial is the serial of the certificate stored when the attempt
	// began ("none" when there was none); empty in records written by
	// earlier versions. A stored certificate with another serial was
	// stored after the attempt began: the record is then out of date.
	Serial string
	// Config is the fingerprint of the certificate's configuration at the
	// attempt (see Config.fingerprint); empty in older records. A start
	// with another configuration does not wait for the record's retry
	// time: the user changed something.
	Config string
}

// noSerial is the Serial of a record written when no certificate was
// stored.
const noSerial = "none"

// attemptUnfinished is the message of the record written before an order:
// it stays only if the attempt never finished (its process died).
const attemptUnfinished = "attempt did not finish"

// unfinished reports whether r was written before an attempt that never
// finished, rather than after a failure.
func (r failureRecord) unfinished() bool {
	return r.RetryAt.IsZero() && r.Message == attemptUnfinished
}

// failureKey is the storage key of the failure record of a certificate:
// <dir of cert_path>/.last_failure-<hex of sha256(cert_path|key_path)[:6]>.
func failureKey(certPath, keyPath string) string {
	return recordKey(".last_failure-", certPath, keyPath)
}

// recordKey names a record kept beside a certificate: in the directory of
// certPath, prefix followed by the hex of the first 6 bytes of
// sha256(certPath|keyPath), as the seed names its last-failure file.
func recordKey(prefix, certPath, keyPath string) string {
	sum := sha256.Sum256([]byte(certPath + "|" + keyPath))
	return filepath.Join(filepath.Dir(certPath), prefix+hex.EncodeToString(sum[:6]))
}

func (r failureRecord) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(r.Time.UTC().Format(time.RFC3339))
	b.WriteByte('\n')
	fmt.Fprintf(&b, "attempts: %d\n", r.Attempts)
	if !r.RetryAt.IsZero() {
		fmt.Fprintf(&b, "retry_at: %s\n", r.RetryAt.UTC().Format(time.RFC3339))
	}
	if r.Serial != "" {
		fmt.Fprintf(&b, "serial: %s\n", r.Serial)
	}
	if r.Config != "" {
		fmt.Fprintf(&b, "config: %s\n", r.Config)
	}
	if r.Message != "" {
		fmt.Fprintf(&b, "error: %s\n", oneLine(r.Message))
	}
	return b.Bytes()
}

func parseFailureRecord(data []byte) (failureRecord, error) {
	var r failureRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	if !sc.Scan() {
		return r, errors.New("empty failure record")
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(sc.Text()))
	if err != nil {
		return r, fmt.Errorf("failure record: first line is not an RFC 3339 time: %w", err)
	}
	r.Time, r.Attempts = t, 1
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "attempts":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				r.Attempts = n
			}
		case "retry_at":
			if t, err := time.Parse(time.RFC3339, v); err == nil {
				r.RetryAt = t
			}
		case "error":
			r.Message = v
		case "serial":
			r.Serial = v
		case "config":
			r.Config = v
		}
	}
	return r, nil
}

// loadFailure reads the failure record of p's certificate; ok is false
// when there is none (or it does not parse, which is logged).
func (p *Provider) loadFailure(ctx context.Context) (failureRecord, bool) {
	return loadRecord(ctx, p, p.failureKey, "last-failure record", parseFailureRecord)
}

// loadRecord reads the record stored under key and parses it; ok is false
// when there is none or it cannot be read or parsed, which is logged
// naming what it is.
func loadRecord[R any](ctx context.Context, p *Provider, key, what string, parse func([]byte) (R, error)) (r R, ok bool) {
	data, err := p.storage.Load(ctx, key)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			p.logger.Warn().Err(err).Str("file", key).Msg("cannot read " + what)
		}
		return r, false
	}
	r, err = parse(data)
	if err != nil {
		p.logger.Warn().Err(err).Str("file", key).Msg("ignoring unreadable " + what)
		return r, false
	}
	return r, true
}

func (p *Provider) storeFailure(ctx context.Context, r failureRecord) {
	// Private: the error text may name hosts, accounts or paths.
	if err := p.storage.Store(ctx, Entry{Key: p.failureKey, Value: r.marshal(), Private: true}); err != nil {
		p.logger.Error().Err(err).Str("file", p.failureKey).Msg("cannot write last-failure record")
	}
}

func (p *Provider) clearFailure(ctx context.Context) {
	if err := p.storage.Delete(ctx, p.failureKey); err != nil {
		p.logger.Warn().Err(err).Str("file", p.failureKey).Msg("cannot remove last-failure record")
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

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

// retryAt is when the certificate may be tried again after the failure r
// (outside a forced renewal). A record without retry_at (written by the
// seed, or before an attempt that never finished) waits the back-off of its
// attempts from its time; notAfter is the expiry of the certificate served
// (zero when there is none).
func (r failureRecord) retryAt(notAfter time.Time) time.Time {
	if !r.RetryAt.IsZero() {
		return r.RetryAt
	}
	var remaining time.Duration
	if !notAfter.IsZero() {
		remaining = notAfter.Sub(r.Time)
	}
	return r.Time.Add(retryDelay(r.Attempts, remaining, 0))
}

// failuresKnown is the number of consecutive failures this process knows
// of for p's certificate. It keeps the back-off growing when the failure
// record cannot be stored (a read-only or full disk, a storage that is
// down): the record read back then holds fewer attempts, or none.
func (p *Provider) failuresKnown() int {
	s := p.scheduler()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.rs.fail.configChanged(p.fp) {
		return 0 // failures of another configuration
	}
	return p.rs.fail.Attempts
}

// fingerprint sums up what decides how the certificate of cfg (a merged
// block) is ordered: where, for which names, with which key, through which
// DNS provider and credentials. A failure record keeps it, so that a start
// after the user changed any of it retries at once. Only a truncated hash
// is kept, in a 0600 file.
func (cfg *Config) fingerprint() string {
	h := sha256.New()
	field := func(name string, vals ...string) {
		fmt.Fprintf(h, "%s=%d", name, len(vals))
		for _, v := range vals {
			fmt.Fprintf(h, ":%d:%s", len(v), v)
		}
		h.Write([]byte{0})
	}
	names := make([]string, len(cfg.Domains))
	for i, d := range cfg.Domains {
		names[i] = strings.ToLower(d)
	}
	slices.Sort(names)
	field("domains", names...)
	field("provider", cfg.Provider)
	keys := make([]string, 0, len(cfg.Options))
	for k := range cfg.Options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field("option", k, cfg.Options[k].Value())
	}
	field("resolvers", cfg.Resolvers...)
	field("ca", cfg.CADirURL)
	field("ca_certs", cfg.CACerts...)
	field("account", cfg.Email, cfg.ACMEKeyPath, cfg.EABKid, cfg.EABHmac.Value())
	field("key_type", cfg.CertificateKeyType)
	field("profile", cfg.Profile)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// configChanged reports whether r was written for another configuration
// than the one whose fingerprint is fp.
func (r failureRecord) configChanged(fp string) bool {
	return r.Config != "" && r.Config != fp
}

// outdatedBy reports whether r is older than the stored certificate sc,
// modified at modified (zero when unknown): the certificate was stored
// after the attempt r records began, so that attempt (or another one)
// succeeded, and r must not count any more. Records without a serial
// (earlier versions) are compared by time.
func (r failureRecord) outdatedBy(sc storedCert, modified time.Time) bool {
	if r.Time.IsZero() || sc.cert == nil {
		return false
	}
	if r.Serial != "" {
		return r.Serial != serialHex(sc.cert.Leaf)
	}
	return !modified.IsZero() && modified.After(r.Time)
}

// clearOutdatedFailure removes the failure record of p's certificate when
// the stored certificate sc, which fits the config and is served, was
// stored after the attempt the record describes (a process that stored
// the certificate died before removing the record, or another instance
// succeeded). It reports whether it removed one.
func (p *Provider) clearOutdatedFailure(ctx context.Context, sc storedCert) bool {
	rec, ok := p.loadFailure(ctx)
	if !ok {
		return false
	}
	var modified time.Time
	if rec.Serial == "" {
		if ki, err := p.storage.Stat(ctx, p.cfg.CertPath); err == nil {
			modified = ki.Modified
		}
	}
	if !rec.outdatedBy(sc, modified) {
		return false
	}
	p.logger.Info().Time("failed_at", rec.Time).Str("error", rec.Message).
		Msg("the stored certificate is newer than the last failure recorded; clearing the record")
	p.clearFailure(ctx)
	return true
}

// attemptRecord is the record written before an attempt to obtain p's
// certificate, after the failures of prev (zero when none): should the
// process die during the attempt, it stays and counts as a failure.
// stored is what the storage holds for it (zero when nothing usable).
func (p *Provider) attemptRecord(prev failureRecord, stored storedCert) failureRecord {
	serial := noSerial
	if stored.cert != nil {
		serial = serialHex(stored.cert.Leaf)
	}
	return failureRecord{
		Time:     p.clock.Now(),
		Attempts: max(prev.Attempts, p.failuresKnown()) + 1,
		Message:  attemptUnfinished,
		Serial:   serial,
		Config:   p.fp,
	}
}

// failed turns the record of an attempt into the record of its failure
// with err: when it failed, why, and when to try again (the back-off of
// its attempts, bounded by what the certificate served has left, or the
// CA's Retry-After when longer).
func (p *Provider) failed(rec failureRecord, err error) failureRecord {
	now := p.clock.Now()
	rec.Time, rec.Message = now, p.scrub(err.Error())
	var remaining time.Duration
	if cur := p.cert.Load(); cur != nil {
		remaining = cur.Leaf.NotAfter.Sub(now)
	}
	rec.RetryAt = now.Add(retryDelay(rec.Attempts, remaining, retryAfterOf(err, now)))
	return rec
}
