package autocert

import (
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

// testLeaf is a certificate valid for lifetime from notBefore, with an
// authority key identifier so that it has an ARI identifier.
func testLeaf(serial int64, notBefore time.Time, lifetime time.Duration) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:   big.NewInt(serial),
		NotBefore:      notBefore,
		NotAfter:       notBefore.Add(lifetime),
		Raw:            big.NewInt(serial * 7919).Bytes(),
		AuthorityKeyId: []byte{1, 2, 3, 4},
	}
}

func TestRenewBefore(t *testing.T) {
	tests := []struct {
		lifetime time.Duration
		want     time.Duration
	}{
		{365 * day, 30 * day}, // a year: 30 days, as the seed says
		{90 * day, 30 * day},  // today's Let's Encrypt certificates
		{45 * day, 15 * day},  // one third
		{10 * day, 10 * day / 3},
		{6 * day, 3 * day}, // short-lived: one half
		{20 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := renewBefore(tt.lifetime); got != tt.want {
			t.Errorf("renewBefore(%v) = %v, want %v", tt.lifetime, got, tt.want)
		}
	}
}

func TestRenewalDue(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf90 := testLeaf(1, start, 90*day)
	id90 := ariID(leaf90)
	if id90 == "" {
		t.Fatal("test certificate has no ARI identifier")
	}
	window := func(from, to time.Time, at time.Time) ariRecord {
		return ariRecord{CertID: id90, Start: from, End: to, RenewAt: at}
	}
	failed := func(at time.Time, attempts int, retryAt time.Time) failureRecord {
		return failureRecord{Time: at, Attempts: attempts, RetryAt: retryAt}
	}
	tests := []struct {
		name     string
		now      time.Time
		leaf     *x509.Certificate
		obtained time.Time // when this process obtained leaf
		mismatch string
		ari      ariRecord
		fail     failureRecord
		// want is the due time before jitter; the jitter taken off it must
		// lie in [0, jitterMax(renewBefore)) when jittered is set.
		want     time.Time
		jittered bool
		reason   string
		retry    bool
	}{
		{name: "90 days: 30 days before expiry", now: start, leaf: leaf90,
			want: start.Add(60 * day), jittered: true, reason: reasonLifetime},
		{name: "1 year: 30 days before expiry", now: start, leaf: testLeaf(2, start, 365*day),
			want: start.Add(335 * day), jittered: true, reason: reasonLifetime},
		{name: "45 days: 15 days before expiry", now: start, leaf: testLeaf(3, start, 45*day),
			want: start.Add(30 * day), jittered: true, reason: reasonLifetime},
		{name: "6 days: half the lifetime", now: start, leaf: testLeaf(4, start, 6*day),
			want: start.Add(3 * day), jittered: true, reason: reasonLifetime},
		{name: "20 seconds: half the lifetime", now: start, leaf: testLeaf(5, start, 20*time.Second),
			want: start.Add(10 * time.Second), jittered: true, reason: reasonLifetime},
		{name: "backdated 20 seconds, obtained here: half of what it had when obtained", now: start,
			leaf: testLeaf(6, start.Add(-time.Minute), 80*time.Second), obtained: start,
			want: start.Add(10 * time.Second), jittered: true, reason: reasonLifetime},
		{name: "backdated 90 days, obtained here: 30 days before expiry as ever", now: start,
			leaf: testLeaf(7, start.Add(-time.Hour), 90*day), obtained: start,
			want: start.Add(60*day - time.Hour), jittered: true, reason: reasonLifetime},
		{name: "ARI point before the lifetime rule wins", now: start, leaf: leaf90,
			ari:  window(start.Add(40*day), start.Add(42*day), start.Add(41*day)),
			want: start.Add(41 * day), reason: reasonARI},
		{name: "ARI point in the past: due now", now: start.Add(10 * day), leaf: leaf90,
			ari:  window(start.Add(-2*time.Hour), start.Add(-time.Hour), start.Add(-90*time.Minute)),
			want: start.Add(-90 * time.Minute), reason: reasonARI},
		{name: "ARI point after the lifetime rule: lifetime wins", now: start, leaf: leaf90,
			ari:  window(start.Add(70*day), start.Add(72*day), start.Add(71*day)),
			want: start.Add(60 * day), jittered: true, reason: reasonLifetime},
		{name: "ARI of another certificate is ignored", now: start, leaf: leaf90,
			ari:  ariRecord{CertID: "other.id", Start: start, End: start.Add(time.Hour), RenewAt: start},
			want: start.Add(60 * day), jittered: true, reason: reasonLifetime},
		{name: "ARI without a window (CA without ARI) is ignored", now: start, leaf: leaf90,
			ari:  ariRecord{CertID: id90, NextFetch: start.Add(12 * time.Hour)},
			want: start.Add(60 * day), jittered: true, reason: reasonLifetime},
		{name: "no certificate: now", now: start, want: start, reason: reasonMissing},
		{name: "domains changed: now", now: start.Add(day), leaf: leaf90, mismatch: "names differ",
			want: start.Add(day), reason: reasonMismatch},
		{name: "expired: now", now: start.Add(91 * day), leaf: leaf90,
			want: start.Add(91 * day), reason: reasonExpired},
		{name: "failure: wait until retry_at", now: start.Add(61 * day), leaf: leaf90,
			fail: failed(start.Add(61*day), 1, start.Add(61*day+time.Hour)),
			want: start.Add(61*day + time.Hour), reason: reasonLifetime, retry: true},
		{name: "seed record (time only): an hour after it", now: start.Add(61 * day), leaf: leaf90,
			fail: failed(start.Add(61*day-10*time.Minute), 1, time.Time{}),
			want: start.Add(61*day + 50*time.Minute), reason: reasonLifetime, retry: true},
		{name: "record of a third attempt that never finished: 4 h after it", now: start.Add(61 * day), leaf: leaf90,
			fail: failed(start.Add(61*day), 3, time.Time{}),
			want: start.Add(61*day + 4*time.Hour), reason: reasonLifetime, retry: true},
		{name: "failure with the retry time passed: due (in the past)", now: start.Add(62 * day), leaf: leaf90,
			fail: failed(start.Add(61*day), 1, start.Add(61*day+time.Hour)),
			want: start.Add(61*day + time.Hour), reason: reasonLifetime, retry: true},
		{name: "failure long before the due time: no effect", now: start.Add(2 * day), leaf: leaf90,
			fail: failed(start.Add(day), 1, start.Add(day+time.Hour)),
			want: start.Add(60 * day), jittered: true, reason: reasonLifetime},
		{name: "no certificate after a failure: at the retry time", now: start,
			fail: failed(start, 2, start.Add(2*time.Hour)),
			want: start.Add(2 * time.Hour), reason: reasonMissing, retry: true},
		{name: "ARI point and a failure: the wait wins", now: start.Add(41 * day), leaf: leaf90,
			ari:  window(start.Add(40*day), start.Add(42*day), start.Add(41*day)),
			fail: failed(start.Add(41*day), 1, start.Add(41*day+time.Hour)),
			want: start.Add(41*day + time.Hour), reason: reasonARI, retry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := renewalDue(tt.now, tt.leaf, tt.obtained, tt.mismatch, tt.ari, tt.fail)
			if d.reason != tt.reason || d.retry != tt.retry {
				t.Errorf("reason %q retry %v, want %q %v", d.reason, d.retry, tt.reason, tt.retry)
			}
			if !tt.jittered {
				if !d.at.Equal(tt.want) {
					t.Errorf("due %v, want %v", d.at, tt.want)
				}
				return
			}
			j := tt.want.Sub(d.at)
			from := tt.leaf.NotBefore
			if tt.obtained.After(from) {
				from = tt.obtained
			}
			limit := jitterMax(renewBefore(tt.leaf.NotAfter.Sub(from)))
			if j < 0 || j >= limit || limit <= 0 {
				t.Errorf("due %v: %v before %v, want a jitter in [0, %v)", d.at, j, tt.want, limit)
			}
		})
	}
}

// TestJitterBounds: the jitter stays within a twentieth of the renewal
// lead (at most 6 h), spreads over that range across certificates, and is
// the same each time for one certificate.
func TestJitterBounds(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, lifetime := range []time.Duration{365 * day, 90 * day, 45 * day, 6 * day, 30 * time.Second} {
		rb := renewBefore(lifetime)
		limit := jitterMax(rb)
		if limit > maxJitter || limit > rb/20 {
			t.Errorf("lifetime %v: jitter limit %v exceeds min(%v, 6h)", lifetime, limit, rb/20)
		}
		lo, hi := limit, time.Duration(0)
		for i := range 2000 {
			leaf := testLeaf(int64(i+1), start, lifetime)
			j := jitter(leaf, rb)
			if j < 0 || j >= limit {
				t.Fatalf("lifetime %v: jitter %v outside [0, %v)", lifetime, j, limit)
			}
			if again := jitter(leaf, rb); again != j {
				t.Fatalf("jitter of one certificate changed: %v then %v", j, again)
			}
			lo, hi = min(lo, j), max(hi, j)
		}
		if lo > limit/50 || hi < limit*49/50 {
			t.Errorf("lifetime %v: jitters span [%v, %v] of [0, %v): not spread", lifetime, lo, hi, limit)
		}
	}
}

func TestARIRecordFormat(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	r := ariRecord{CertID: "aki.serial", Start: at, End: at.Add(2 * day), RenewAt: at.Add(day), NextFetch: at.Add(6 * time.Hour)}
	got, err := parseARIRecord(r.marshal())
	if err != nil || got != r {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, r)
	}
	noWindow := ariRecord{CertID: "aki.serial", NextFetch: at}
	if got, err := parseARIRecord(noWindow.marshal()); err != nil || got != noWindow {
		t.Fatalf("record without a window: %+v, %v", got, err)
	}
	for name, data := range map[string]string{
		"empty":             "",
		"no certificate":    "renew_at: 2026-03-04T05:06:07Z\n",
		"bad time":          "cert: x\nrenew_at: yesterday\n",
		"point out of span": "cert: x\nwindow_start: 2026-03-04T05:06:07Z\nwindow_end: 2026-03-05T05:06:07Z\nrenew_at: 2026-03-06T05:06:07Z\n",
	} {
		if _, err := parseARIRecord([]byte(data)); err == nil {
			t.Errorf("%s: parsed, want an error", name)
		}
	}
	if k := ariKey("certs/cert.crt", "certs/priv.key"); k != "certs/.renewal-68435196b59a" {
		t.Errorf("ariKey = %q, want it beside the last-failure record", k)
	}
	if !strings.HasSuffix(failureKey("certs/cert.crt", "certs/priv.key"), "68435196b59a") {
		t.Error("failure and renewal records do not share their hash")
	}
}
