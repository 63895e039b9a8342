package provider_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/clocktest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

// TestLifetimeRuleDrivenClock: with no renewal information from a CA, a
// certificate is renewed when min(lifetime/3, 30 days) remains (half its
// lifetime under 10 days), minus a jitter of at most min(1/20 of that,
// 6 h). The scheduler sleeps on one timer until then, and at that time the
// new certificate is served. Days pass in milliseconds on a driven clock;
// the certificates are self-signed ("pseudo" provider).
func TestLifetimeRuleDrivenClock(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name      string
		lifetime  time.Duration
		before    time.Duration // renewed this long before expiry...
		maxJitter time.Duration // ...minus at most this
	}{
		{"1 year", 365 * day, 30 * day, 6 * time.Hour},
		{"90 days", 90 * day, 30 * day, 6 * time.Hour},
		{"45 days", 45 * day, 15 * day, 6 * time.Hour},
		{"6 days", 6 * day, 3 * day, 3*time.Hour + 36*time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			start := time.Now().Truncate(time.Second)
			clock := clocktest.New(start)
			certPEM, keyPEM, old := selfSigned(t, []string{"dev.test"}, start, start.Add(tt.lifetime))
			cfg := &autocert.Config{Provider: "pseudo", Domains: []string{"dev.test"},
				CertPath: filepath.Join(dir, "c.crt"), KeyPath: filepath.Join(dir, "c.key")}
			writeFile(t, cfg.CertPath, certPEM, 0o644)
			writeFile(t, cfg.KeyPath, keyPEM, 0o600)
			events := newRecorder()
			p := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithNotifier(events), autocert.WithLogger(zerolog.Nop()))
			if err := p.ObtainCertIfNotExistsAll(); err != nil {
				t.Fatal(err)
			}
			if !leafOf(t, p, "dev.test").Equal(old) {
				t.Fatal("the stored certificate was not loaded")
			}
			schedule(t, p)
			sum := events.next(t, autocert.KindExpirySummary).(*autocert.ExpirySummary)
			if len(sum.Certificates) != 1 || !sum.Certificates[0].NotAfter.Equal(old.NotAfter) {
				t.Errorf("expiry summary %+v", sum.Certificates)
			}

			due := idle(t, clock)
			latest := old.NotAfter.Add(-tt.before)
			if due.After(latest) || !due.After(latest.Add(-tt.maxJitter)) {
				t.Fatalf("scheduler sleeps until %v, want in (%v, %v]", due, latest.Add(-tt.maxJitter), latest)
			}
			st := p.RenewalStatus()[0]
			if !st.NextRenewal.Equal(due) || st.Reason != "lifetime" {
				t.Errorf("status: next %v (%s), want %v (lifetime)", st.NextRenewal, st.Reason, due)
			}

			clock.Set(due.Add(-time.Second))
			if !leafOf(t, p, "dev.test").Equal(old) {
				t.Fatal("renewed before the due time")
			}
			clock.Set(due)
			ev := events.next(t, autocert.KindRenewed).(*autocert.CertRenewed)
			if ev.PreviousSerial != old.SerialNumber.Text(16) || ev.Provider != "main" {
				t.Errorf("renewed event %+v", ev)
			}
			renewed := leafOf(t, p, "dev.test")
			if renewed.Equal(old) || renewed.SerialNumber.Text(16) != ev.Serial {
				t.Fatalf("served serial %x after the renewal event for %s", renewed.SerialNumber, ev.Serial)
			}
			next := idle(t, clock)
			if want := renewed.NotAfter.Add(-30 * day); next.After(want) || !next.After(want.Add(-6*time.Hour)) {
				t.Errorf("next renewal of the new 90-day certificate at %v, want about %v", next, want)
			}
		})
	}
}

// TestLocalFilesPickedUp: certificate files that another tool replaces
// are served without a restart; a half-written pair (new certificate, old
// key) is not, until the key follows; a certificate nearing expiry is
// warned about once.
func TestLocalFilesPickedUp(t *testing.T) {
	const day = 24 * time.Hour
	dir := t.TempDir()
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	names := []string{"files.test"}
	cfg := &autocert.Config{Provider: "local", Domains: names,
		CertPath: filepath.Join(dir, "c.crt"), KeyPath: filepath.Join(dir, "c.key")}
	write := func(certPEM, keyPEM []byte) {
		if certPEM != nil {
			writeFile(t, cfg.CertPath, certPEM, 0o644)
		}
		if keyPEM != nil {
			writeFile(t, cfg.KeyPath, keyPEM, 0o600)
		}
	}
	aCert, aKey, a := selfSigned(t, names, start.Add(-day), start.Add(89*day))
	bCert, bKey, b := selfSigned(t, names, start.Add(-day), start.Add(89*day))
	cCert, cKey, c := selfSigned(t, names, start.Add(-day), start.Add(89*day))
	dCert, dKey, d := selfSigned(t, names, start.Add(-85*day), start.Add(5*day)) // in its last third
	roots := pool(a, b, c, d)
	write(aCert, aKey)

	events := newRecorder()
	var logs syncbuf.Buffer
	p := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithNotifier(events),
		autocert.WithLogger(zerolog.New(&logs)))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	schedule(t, p)
	if !served(t, p, roots, "files.test").Equal(a) {
		t.Fatal("first certificate not served")
	}
	poll := func() {
		t.Helper()
		next := idle(t, clock)
		clock.Set(next)
		idle(t, clock)
	}

	write(bCert, bKey)
	poll()
	if !served(t, p, roots, "files.test").Equal(b) {
		t.Fatal("replaced files not picked up")
	}

	write(cCert, nil) // the other tool has written the certificate, not yet the key
	poll()
	if !served(t, p, roots, "files.test").Equal(b) {
		t.Fatal("a certificate without its key replaced the one served")
	}
	write(nil, cKey)
	poll()
	if !served(t, p, roots, "files.test").Equal(c) {
		t.Fatal("the completed pair was not picked up")
	}
	events.none(t, autocert.KindExpiring)

	write(dCert, dKey)
	poll()
	if !served(t, p, roots, "files.test").Equal(d) {
		t.Fatal("certificate near expiry not served")
	}
	ev := events.next(t, autocert.KindExpiring).(*autocert.CertExpiring)
	if ev.Serial != d.SerialNumber.Text(16) || !ev.NotAfter.Equal(d.NotAfter) {
		t.Errorf("expiring event %+v", ev)
	}
	poll()
	poll()
	events.none(t, autocert.KindExpiring)
	if st := p.RenewalStatus()[0]; !st.NextRenewal.IsZero() || st.Provider != "main" {
		t.Errorf("status of a local certificate: %+v", st)
	}
	if n := countLines(logs.String(), "local certificate nears expiry"); n != 1 {
		t.Errorf("%d expiry warnings in the log, want 1", n)
	}
}
