package autocert

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-acme/lego/v4/acme/api"
	legocert "github.com/go-acme/lego/v4/certificate"
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

// ariID returns the ARI identifier of leaf, "" when it has none (no
// authority key identifier).
func ariID(leaf *x509.Certificate) string {
	if leaf == nil || len(leaf.AuthorityKeyId) == 0 {
		return ""
	}
	id, err := legocert.MakeARICertID(leaf)
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
func (c *certificate) fetchARI(ctx context.Context, leaf *x509.Certificate, prev ariRecord, now time.Time) (ariRecord, error) {
	id := ariID(leaf)
	if id == "" {
		return ariRecord{}, errNoARI
	}
	client, err := c.client(ctx, c.issuerOf(c.issuedBy(ctx)))
	if err != nil {
		return ariRecord{}, err
	}
	info, err := client.Certificate.GetRenewalInfo(legocert.RenewalInfoRequest{Cert: leaf})
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

// refreshARI fetches the renewal information of leaf and returns the
// record to keep, persisting it when the window is usable. A failed fetch
// or an unusable window is logged and ignored: the previous window, if
// any, still counts (fetched again in an hour), and the lifetime rule
// applies anyway.
func (c *certificate) refreshARI(ctx context.Context, leaf *x509.Certificate, prev ariRecord, now time.Time) ariRecord {
	id := ariID(leaf)
	rec, err := c.fetchARI(ctx, leaf, prev, now)
	switch {
	case err == errNoARI:
		rec = ariRecord{CertID: id, NextFetch: now.Add(ariMaxRefresh)}
	case err != nil:
		c.logger.Warn().Str("error", c.scrub(err.Error())).Msg("ignoring renewal information")
		if prev.CertID != id {
			prev = ariRecord{CertID: id}
		}
		rec = prev
		rec.NextFetch = now.Add(ariErrorRefresh)
	default:
		if !rec.RenewAt.Equal(prev.RenewAt) {
			c.logger.Info().Time("window_start", rec.Start).Time("window_end", rec.End).
				Time("renew_at", rec.RenewAt).Msg("renewal window from the CA")
		}
		if serr := c.storage.Store(context.WithoutCancel(ctx), Entry{Key: c.ariKey, Value: rec.marshal()}); serr != nil {
			c.logger.Warn().Err(serr).Str("file", c.ariKey).Msg("cannot write renewal record")
		}
	}
	return rec
}
