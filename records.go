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
	"strconv"
	"strings"
	"time"
)

// failureRecord is the persisted last failure of one certificate.
//
// It is kept in two files, written together in one Store. The
// last-failure file (failureKey) holds the RFC 3339 time of the last
// failure and nothing else, as the seed and GoDoxy write it and read it
// whole, so that an installation can go back to them and keep its
// cool-down. The detail file (failureDetailKey) beside it starts with the
// same time on a line of its own, then "key: value" lines: attempts,
// retry time, serial, config, error. A last-failure file written by an
// earlier version of autocert, with the detail lines in it, still loads.
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
	// CAErrors are the failures at each issuer the attempt asked, when
	// the certificate has several; none otherwise.
	CAErrors []CAError
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

// failureDetailKey is the storage key of the detail of the failure record
// of a certificate, beside its last-failure file:
// <dir of cert_path>/.autocert_failure-<hex of sha256(cert_path|key_path)[:6]>.
func failureDetailKey(certPath, keyPath string) string {
	return recordKey(".autocert_failure-", certPath, keyPath)
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
	for _, e := range r.CAErrors {
		fmt.Fprintf(&b, "ca_error: %s %s\n", strings.ReplaceAll(e.CA, " ", "%20"), oneLine(e.Error))
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
		case "ca_error":
			ca, msg, _ := strings.Cut(v, " ")
			r.CAErrors = append(r.CAErrors, CAError{CA: strings.ReplaceAll(ca, "%20", " "), Error: msg})
		}
	}
	return r, nil
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

// ariRecord is the renewal information of one certificate and the point
// chosen in its window. It is persisted beside the last-failure record, so
// the random point is chosen once per certificate and window, not at every
// start.
type ariRecord struct {
	CertID    string    // ARI identifier of the certificate it is about
	Start     time.Time // the suggested window; zero when the CA has no ARI
	End       time.Time
	RenewAt   time.Time // the point chosen in [Start, End)
	NextFetch time.Time // when to ask again
}

// ariKey is the storage key of the ARI record of a certificate.
func ariKey(certPath, keyPath string) string {
	return recordKey(".renewal-", certPath, keyPath)
}

// about reports whether r holds a window for the certificate with ARI
// identifier id.
func (r ariRecord) about(id string) bool { return id != "" && r.CertID == id && !r.RenewAt.IsZero() }

func (r ariRecord) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "cert: %s\n", r.CertID)
	for _, kv := range []struct {
		k string
		t time.Time
	}{{"window_start", r.Start}, {"window_end", r.End}, {"renew_at", r.RenewAt}, {"next_fetch", r.NextFetch}} {
		if !kv.t.IsZero() {
			fmt.Fprintf(&b, "%s: %s\n", kv.k, kv.t.UTC().Format(time.RFC3339Nano))
		}
	}
	return b.Bytes()
}

func parseARIRecord(data []byte) (ariRecord, error) {
	var r ariRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "cert" {
			r.CertID = v
			continue
		}
		var dst *time.Time
		switch k {
		case "window_start":
			dst = &r.Start
		case "window_end":
			dst = &r.End
		case "renew_at":
			dst = &r.RenewAt
		case "next_fetch":
			dst = &r.NextFetch
		default:
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return ariRecord{}, fmt.Errorf("renewal record: %s: %w", k, err)
		}
		*dst = t
	}
	if r.CertID == "" {
		return ariRecord{}, errors.New("renewal record names no certificate")
	}
	if !r.RenewAt.IsZero() && (r.RenewAt.Before(r.Start) || !r.RenewAt.Before(r.End)) {
		return ariRecord{}, errors.New("renewal record: renew_at outside its window")
	}
	return r, nil
}

// loadFailure reads the failure record of c; ok is false when there is
// none (or it does not parse, which is logged). The detail is used unless
// the last-failure file holds a later time (another program sharing the
// files, the seed or GoDoxy, failed since): that failure then counts, as
// a first one.
func (c *certificate) loadFailure(ctx context.Context) (failureRecord, bool) {
	return c.loadFailureListed(ctx, nil)
}

// loadFailureListed is loadFailure, reading no file that l says is not
// there.
func (c *certificate) loadFailureListed(ctx context.Context, l recordListing) (failureRecord, bool) {
	last, lok := loadRecord(ctx, c, l, c.failureKey, "last-failure record", parseFailureRecord)
	detail, dok := loadRecord(ctx, c, l, c.detailKey, "last-failure detail", parseFailureRecord)
	switch {
	case dok && (!lok || !last.Time.After(detail.Time)):
		return detail, true
	case lok:
		return last, true
	}
	return failureRecord{}, false
}

// loadRecord reads the record stored under key and parses it; ok is false
// when there is none (l says it is not there, or it is not found) or it
// cannot be read or parsed, which is logged naming what it is.
func loadRecord[R any](ctx context.Context, c *certificate, l recordListing, key, what string, parse func([]byte) (R, error)) (r R, ok bool) {
	if l.absent(key) {
		return r, false
	}
	data, err := c.storage.Load(ctx, key)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.logger.Warn().Err(err).Str("file", key).Msg("cannot read " + what)
		}
		return r, false
	}
	r, err = parse(data)
	if err != nil {
		c.logger.Warn().Err(err).Str("file", key).Msg("ignoring unreadable " + what)
		return r, false
	}
	return r, true
}

// storeFailure writes the failure record r: the last-failure file and its
// detail, in one Store.
func (c *certificate) storeFailure(ctx context.Context, r failureRecord) {
	// Private: the error text may name hosts, accounts or paths.
	err := c.storage.Store(ctx,
		Entry{Key: c.failureKey, Value: r.Time.UTC().AppendFormat(nil, time.RFC3339), Private: true},
		Entry{Key: c.detailKey, Value: r.marshal(), Private: true},
	)
	if err != nil {
		c.logger.Error().Err(err).Str("file", c.failureKey).Msg("cannot write last-failure record")
	}
}

// clearFailure removes the failure record: the last-failure file and its
// detail.
func (c *certificate) clearFailure(ctx context.Context) {
	for _, key := range []string{c.failureKey, c.detailKey} {
		if err := c.storage.Delete(ctx, key); err != nil {
			c.logger.Warn().Err(err).Str("file", key).Msg("cannot remove last-failure record")
		}
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// loadARI reads the persisted ARI record; ok is false when there is none
// or it does not parse (logged).
func (c *certificate) loadARI(ctx context.Context, l recordListing) (ariRecord, bool) {
	return loadRecord(ctx, c, l, c.ariKey, "renewal record", parseARIRecord)
}

// recordListing tells which files are in the directories that hold the
// records (failure, renewal information) of many certificates, such as
// one directory of every certificate: a pass over all certificates (the
// start, the scheduler's first look) lists each such directory once
// instead of trying to read each record every certificate may have,
// which most do not. It holds the names of the files whose names start
// with a dot, as the records' do, by directory; a directory not listed
// (or a nil listing) tells nothing, and its records are read.
//
// A listing is what the directory held when it was taken, as a read then
// would have been; it is used for the one pass that took it.
type recordListing map[string]map[string]bool

// minListed is the number of certificates whose records a directory must
// hold to be listed: for fewer, reading their records costs no more.
const minListed = 4

// listRecords returns the listing of the directories holding the records
// of at least minListed of certs, when st is a FileStorage (nil otherwise).
func listRecords(st Storage, certs []*certificate) recordListing {
	fst, ok := st.(*FileStorage)
	if !ok {
		return nil
	}
	count := make(map[string]int)
	for _, c := range certs {
		count[filepath.Dir(c.failureKey)]++
	}
	var l recordListing
	for dir, n := range count {
		if n < minListed {
			continue
		}
		names, ok := fst.dotNames(dir)
		if !ok {
			continue
		}
		if l == nil {
			l = make(recordListing)
		}
		l[dir] = names
	}
	return l
}

// absent reports whether l says there is no file at key.
func (l recordListing) absent(key string) bool {
	if l == nil {
		return false
	}
	names, ok := l[filepath.Dir(key)]
	return ok && !names[filepath.Base(key)]
}

// issuerRecord names the CA that issued a stored certificate, for the
// status and for the renewal information, which only that CA has. It is
// kept beside the certificate's other records.
type issuerRecord struct {
	Serial string // the certificate's serial, in hex
	CA     string // the ACME directory URL of the CA that issued it
}

// issuerKey is the storage key of the issuer record of a certificate.
func issuerKey(certPath, keyPath string) string {
	return recordKey(".issuer-", certPath, keyPath)
}

func (r issuerRecord) marshal() []byte {
	return fmt.Appendf(nil, "serial: %s\nca: %s\n", r.Serial, r.CA)
}

func parseIssuerRecord(data []byte) (issuerRecord, error) {
	var r issuerRecord
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "serial":
			r.Serial = strings.TrimSpace(v)
		case "ca":
			r.CA = strings.TrimSpace(v)
		}
	}
	if r.Serial == "" || r.CA == "" {
		return issuerRecord{}, errors.New("issuer record without serial or ca")
	}
	return r, nil
}

// loadIssuer reads the issuer record of the certificate stored; ok is
// false when there is none (a certificate stored by an earlier version,
// or by another program) or it does not parse.
func (c *certificate) loadIssuer(ctx context.Context, l recordListing) (issuerRecord, bool) {
	return loadRecord(ctx, c, l, c.issuerKey, "issuer record", parseIssuerRecord)
}

// storeIssuer records that ca issued the certificate served, when c has
// several issuers; a failure is logged (the CA is then unknown, and the
// first issuer is asked for the renewal information).
func (c *certificate) storeIssuer(ctx context.Context, ca string) {
	cur := c.current()
	if ca == "" || cur == nil || len(c.issuers) < 2 {
		return
	}
	rec := issuerRecord{Serial: serialHex(cur.Leaf), CA: ca}
	if err := c.storage.Store(ctx, Entry{Key: c.issuerKey, Value: rec.marshal()}); err != nil {
		c.logger.Warn().Err(err).Str("file", c.issuerKey).Msg("cannot write the issuer record")
	}
}

// issuedBy returns the directory URL of the CA that issued the
// certificate served, "" when unknown or when c has one issuer.
func (c *certificate) issuedBy(ctx context.Context) string {
	cur := c.current()
	if cur == nil || len(c.issuers) < 2 {
		return "" // with one issuer, that one
	}
	if r, ok := c.loadIssuer(ctx, nil); ok && r.Serial == serialHex(cur.Leaf) {
		return r.CA
	}
	return ""
}

// issuerOf returns the issuer of c whose CA is at url, or the first.
func (c *certificate) issuerOf(url string) *issuerSlot {
	for _, is := range c.issuers {
		if is.url() == url {
			return is
		}
	}
	return c.issuers[0]
}
