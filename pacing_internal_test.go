package autocert

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/lego"
)

// pacedCert is a certificate of the DNS provider "acmetest" on acct, at
// the CA caDirURL, for names; enough for the pacer.
func pacedCert(caDirURL string, acct *account, names ...string) *certificate {
	return &certificate{cfg: &Config{Provider: "acmetest", CADirURL: caDirURL, Domains: names}, acct: acct}
}

// TestPacerLetsEncryptLimits walks the published limits of Let's Encrypt
// through the pacer: what fits at once, when the next turn comes, and what
// does not count.
func TestPacerLetsEncryptLimits(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	week := 7 * 24 * time.Hour
	tests := []struct {
		name   string
		ca     string
		burst  int           // orders that fit at t0, each for another name
		sameRD bool          // all names under one registered domain (else one each)
		accts  int           // accounts the orders are spread over (round robin)
		next   time.Duration // the turn of the next one, after t0
		limit  string
	}{
		{name: "production: 300 orders per account per 3 h", ca: lego.LEDirectoryProduction,
			burst: 300, accts: 1, next: 36 * time.Second, limit: "new orders per account: 300 per 3h0m0s"},
		{name: "production: 50 certificates per registered domain per week", ca: lego.LEDirectoryProduction,
			burst: 50, sameRD: true, accts: 50, next: week / 50,
			limit: "certificates per registered domain: 50 per 168h0m0s (example.com)"},
		{name: "staging: 1,500 orders per account per 3 h", ca: lego.LEDirectoryStaging,
			burst: 1500, accts: 1, next: 3 * time.Hour / 1500, limit: "new orders per account: 1500 per 3h0m0s"},
		{name: "empty URL is Let's Encrypt's production", ca: "",
			burst: 300, accts: 1, next: 36 * time.Second, limit: "new orders per account: 300 per 3h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(nil)
			accts := make([]*account, tt.accts)
			for i := range accts {
				accts[i] = &account{}
			}
			name := func(i int) string {
				if tt.sameRD {
					return fmt.Sprintf("h%d.example.com", i)
				}
				return fmt.Sprintf("h%d.example%d.com", i, i)
			}
			for i := range tt.burst {
				k := p.keys(pacedCert(tt.ca, accts[i%len(accts)], name(i)))
				if at, limit := p.reserve(k, false, t0); !at.Equal(t0) {
					t.Fatalf("order %d: turn at %v (%s), want now", i+1, at, limit)
				}
				if wait, limit := p.send(k, false, t0); !wait.IsZero() {
					t.Fatalf("order %d: not sent, waits until %v (%s)", i+1, wait, limit)
				}
			}
			k := p.keys(pacedCert(tt.ca, accts[tt.burst%len(accts)], name(tt.burst)))
			at, limit := p.reserve(k, false, t0)
			if !at.Equal(t0.Add(tt.next)) || limit != tt.limit {
				t.Errorf("next order: turn at t0+%v (%s), want t0+%v (%s)", at.Sub(t0), limit, tt.next, tt.limit)
			}
			// The one after it gets the turn after.
			k2 := p.keys(pacedCert(tt.ca, accts[(tt.burst+1)%len(accts)], name(tt.burst+1)))
			if at2, _ := p.reserve(k2, false, t0); !at2.Equal(t0.Add(2 * tt.next)) {
				t.Errorf("order after: turn at t0+%v, want t0+%v", at2.Sub(t0), 2*tt.next)
			}
			// Sent at its turn, the order fits what was sent.
			if wait, limit := p.send(k, false, at); !wait.IsZero() {
				t.Errorf("at its turn: waits until t0+%v (%s)", wait.Sub(t0), limit)
			}
		})
	}
}

// TestPacerRenewalAndFailures: a renewal of the same names does not count
// per registered domain, and five failed validations of a name hold its
// next order back twelve minutes (one failure back), at Let's Encrypt.
func TestPacerRenewalAndFailures(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := newPacer(nil)
	var keys []*paceKeys
	for i := range 50 {
		keys = append(keys, p.keys(pacedCert("", &account{}, fmt.Sprintf("r%d.example.net", i))))
	}
	for _, k := range keys {
		p.reserve(k, false, t0)
		p.send(k, false, t0)
	}
	renewal := p.keys(pacedCert("", &account{}, "r0.example.net"))
	if at, limit := p.reserve(renewal, true, t0); !at.Equal(t0) {
		t.Errorf("renewal: turn at t0+%v (%s), want now", at.Sub(t0), limit)
	}
	if wait, limit := p.send(renewal, true, t0); !wait.IsZero() {
		t.Errorf("renewal: waits until t0+%v (%s)", wait.Sub(t0), limit)
	}
	if at, _ := p.reserve(p.keys(pacedCert("", &account{}, "new.example.net")), false, t0); !at.After(t0) {
		t.Error("a new name of the registered domain after 50: fits now, want a wait")
	}

	acct := &account{}
	k := p.keys(pacedCert("", acct, "flaky.example.org", "www.flaky.example.org"))
	for range 5 {
		p.failed(k, t0)
	}
	at, limit := p.reserve(k, false, t0)
	if want := t0.Add(12 * time.Minute); !at.Equal(want) || !strings.HasPrefix(limit, "failed validations per name: 5 per 1h0m0s (") {
		t.Errorf("after 5 failures: turn at t0+%v (%s), want t0+12m0s, failed validations", at.Sub(t0), limit)
	}
	// The same name on another account has its own count.
	if at, limit := p.reserve(p.keys(pacedCert("", &account{}, "flaky.example.org")), false, t0); !at.Equal(t0) {
		t.Errorf("another account: turn at t0+%v (%s), want now", at.Sub(t0), limit)
	}
}

// TestPacerConfiguredLimits: WithRateLimits replaces the defaults of a CA
// (a zero RateLimits turning pacing off), other CAs have none unless
// configured, and certificates that order from no CA are never paced.
func TestPacerConfiguredLimits(t *testing.T) {
	const other = "https://ca.example/acme/directory"
	var s settings
	WithRateLimits(lego.LEDirectoryProduction, RateLimits{})(&s)
	WithRateLimits(" "+other+" ", RateLimits{OrdersPerAccount: RateLimit{2, time.Minute}, CertsPerDomain: RateLimit{0, time.Hour}})(&s)
	p := newPacer(s.rateLimits)
	acct := &account{}
	tests := []struct {
		name  string
		c     *certificate
		paced bool
	}{
		{"Let's Encrypt, turned off", pacedCert("", acct, "a.example.com"), false},
		{"Let's Encrypt staging, default", pacedCert(lego.LEDirectoryStaging, acct, "a.example.com"), true},
		{"configured CA", pacedCert(other, acct, "a.example.com"), true},
		{"unknown CA", pacedCert("https://ca2.example/dir", acct, "a.example.com"), false},
		{"pseudo", &certificate{cfg: &Config{Provider: ProviderPseudo, Domains: []string{"a.example.com"}}}, false},
	}
	for _, tt := range tests {
		if k := p.keys(tt.c); (k != nil) != tt.paced {
			t.Errorf("%s: paced %v, want %v", tt.name, k != nil, tt.paced)
		}
	}
	k := p.keys(pacedCert(other, acct, "b.example.com"))
	if k.account == nil || len(k.domains) != 0 || len(k.names) != 0 {
		t.Fatalf("configured CA: buckets %+v; want the account's only", k)
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i, want := range []time.Duration{0, 0, 30 * time.Second, time.Minute} {
		if at, _ := p.reserve(k, false, t0); at.Sub(t0) != want {
			t.Errorf("order %d: turn at t0+%v, want t0+%v", i+1, at.Sub(t0), want)
		}
	}
}

// TestPacerLateTurns: orders sent after their turn, all at once (their
// workers were busy, the clock jumped), are let go as far as what was
// sent leaves room, as the CA counts them; the rest wait for the record
// rather than for a new turn.
func TestPacerLateTurns(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var s settings
	WithRateLimits("https://ca.example/dir", RateLimits{OrdersPerAccount: RateLimit{10, 100 * time.Second}})(&s)
	p := newPacer(s.rateLimits)
	acct := &account{}
	var ks []*paceKeys
	var turns []time.Time
	for i := range 30 {
		k := p.keys(pacedCert("https://ca.example/dir", acct, fmt.Sprintf("l%d.example.com", i)))
		at, _ := p.reserve(k, false, t0)
		ks, turns = append(ks, k), append(turns, at)
	}
	for i, at := range turns {
		want := t0
		if i >= 10 {
			want = t0.Add(time.Duration(i-9) * 10 * time.Second)
		}
		if !at.Equal(want) {
			t.Fatalf("order %d: turn at t0+%v, want t0+%v", i+1, at.Sub(t0), want.Sub(t0))
		}
	}
	// The first ten are sent 50 s late, with the five whose turn came
	// meanwhile: the CA's bucket, full until then, takes ten of them.
	late := t0.Add(50 * time.Second)
	sent := 0
	for _, k := range ks[:15] {
		if wait, _ := p.send(k, false, late); wait.IsZero() {
			sent++
		} else if want := late.Add(10 * time.Second); !wait.Equal(want) {
			t.Errorf("held back until t0+%v, want t0+%v", wait.Sub(t0), want.Sub(t0))
		}
	}
	if sent != 10 {
		t.Errorf("%d of 15 sent at t0+50s, want 10", sent)
	}
}

// BenchmarkPacerDecision measures one decision of the pacer for an order
// under Let's Encrypt's limits (orders per account, certificates per
// registered domain, failures per name): "fits" when the order goes at
// once (the clock moves one turn per order), "waits" when it is given a
// later turn, "unpaced" for a CA without limits.
func BenchmarkPacerDecision(b *testing.B) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, n := range []int{100, 10000} {
		for _, mode := range []string{"fits", "waits", "unpaced"} {
			b.Run(fmt.Sprintf("%s/n=%d", mode, n), func(b *testing.B) {
				ca := lego.LEDirectoryProduction
				if mode == "unpaced" {
					ca = "https://ca.example/dir"
				}
				p := newPacer(nil)
				acct := &account{}
				keys := make([]*paceKeys, n)
				for i := range keys {
					keys[i] = p.keys(pacedCert(ca, acct, fmt.Sprintf("www.host%d.example", i), fmt.Sprintf("host%d.example", i)))
				}
				now := t0
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					k := keys[i%n]
					i++
					if k == nil {
						continue
					}
					if mode == "fits" {
						now = now.Add(7 * 24 * time.Hour / 50) // a turn of every limit
					}
					if at, _ := p.reserve(k, false, now); !at.After(now) {
						p.send(k, false, now)
					}
				}
			})
		}
	}
}
