package autocert

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certificate"
)

// How often the ACME Renewal Information (RFC 9773) of a certificate is
// fetched: as the CA's Retry-After says, but at least twice a day and at
// most once a minute; an hour after a failed or unusable answer; twice a
// day from a CA without ARI, in case it gains it.
const (
	ariDefaultRefresh = 6 * time.Hour
	ariMaxRefresh     = 12 * time.Hour
	ariMinRefresh     = time.Minute
	ariErrorRefresh   = time.Hour
)

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

// loadARI reads the persisted ARI record; ok is false when there is none
// or it does not parse (logged).
func (p *Provider) loadARI(ctx context.Context) (ariRecord, bool) {
	return loadRecord(ctx, p, p.ariKey, "renewal record", parseARIRecord)
}

// ariID returns the ARI identifier of leaf, "" when it has none (no
// authority key identifier).
func ariID(leaf *x509.Certificate) string {
	if leaf == nil || len(leaf.AuthorityKeyId) == 0 {
		return ""
	}
	id, err := certificate.MakeARICertID(leaf)
	if err != nil {
		return ""
	}
	return id
}

// errNoARI means the CA does not offer renewal information.
var errNoARI = errors.New("the CA offers no renewal information")

// fetchARI asks the CA for the renewal window of leaf and returns the
// record to keep: prev's chosen point when the window is unchanged, else a
// new uniformly random point in the window. A zero or inverted window (lego
// returns a zero window without an error on an HTTP 500) is an error.
func (p *Provider) fetchARI(leaf *x509.Certificate, prev ariRecord, now time.Time) (ariRecord, error) {
	id := ariID(leaf)
	if id == "" {
		return ariRecord{}, errNoARI
	}
	client, err := p.legoClient()
	if err != nil {
		return ariRecord{}, err
	}
	info, err := client.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
	if errors.Is(err, api.ErrNoARI) {
		return ariRecord{}, errNoARI
	}
	if err != nil {
		return ariRecord{}, fmt.Errorf("renewal information: %w", err)
	}
	w := info.SuggestedWindow
	if w.Start.IsZero() || w.End.IsZero() || !w.End.After(w.Start) {
		return ariRecord{}, fmt.Errorf("renewal information: unusable window [%s, %s]",
			w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339))
	}
	r := ariRecord{CertID: id, Start: w.Start, End: w.End}
	if prev.CertID == id && prev.Start.Equal(w.Start) && prev.End.Equal(w.End) && !prev.RenewAt.IsZero() {
		r.RenewAt = prev.RenewAt
	} else {
		r.RenewAt = w.Start.Add(rand.N(w.End.Sub(w.Start)))
	}
	refresh := ariDefaultRefresh
	if info.RetryAfter > 0 {
		refresh = min(max(info.RetryAfter, ariMinRefresh), ariMaxRefresh)
	}
	r.NextFetch = now.Add(refresh)
	return r, nil
}
