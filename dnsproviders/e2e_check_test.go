package dnsproviders_test

import (
	"context"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

// TestCheckWithBIND runs the pre-flight check (autocert.Check) of a
// certificate whose challenge is delegated, through the rfc2136 provider
// and a real BIND server: the test record is written at the end of the
// CNAME chain of zone a.test, or at the alias, in zone b.test (the only
// one the TSIG key may change), seen there and removed; with CNAMEs not
// followed, the write into a.test is refused and the check fails with the
// fix to try. No order is sent.
func TestCheckWithBIND(t *testing.T) {
	tests := []struct {
		name    string
		zoneA   string
		keys    string
		verdict autocert.CheckVerdict
		detail  string // in the dns_record step
		fix     string // in its fix, for a failure
		record  string // where the record went, checked empty afterwards
		updates uint32 // of zone b.test at least
	}{
		{
			name:    "CNAME followed",
			zoneA:   "_acme-challenge.www CNAME www.delegated.b.test.",
			verdict: autocert.CheckOK,
			detail:  "written at www.delegated.b.test. (CNAME chain _acme-challenge.www.a.test. -> www.delegated.b.test.), seen by resolvers ",
			record:  "www.delegated.b.test.",
			updates: 2,
		},
		{
			name:    "explicit alias",
			zoneA:   "_acme-challenge.www CNAME _acme-challenge.acme.b.test.",
			keys:    "dns_challenge_alias: acme.b.test",
			verdict: autocert.CheckOK,
			detail:  "written at _acme-challenge.acme.b.test., seen by resolvers ",
			record:  "_acme-challenge.acme.b.test.",
			updates: 2,
		},
		{
			name:    "following turned off",
			zoneA:   "_acme-challenge.www CNAME www.delegated.b.test.",
			keys:    "dns_follow_cname: false",
			verdict: autocert.CheckFail,
			detail:  "REFUSED",
			fix:     "check the credentials in options (they must allow editing TXT records in the zone of _acme-challenge.www.a.test.)",
			record:  "_acme-challenge.www.a.test.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keepLegoResolvers(t)
			bind := startBIND(t, bindZone{name: "a.test", records: tt.zoneA}, bindZone{name: "b.test", update: true})
			ca := acmetest.New(t, acmetest.WithValidationResolver(bind.addr))
			cfg := delegationConfig(t, ca, bind, bind, []string{"www.a.test"}, tt.keys)
			serialA, serialB := bind.serial(t, "a.test"), bind.serial(t, "b.test")
			logs := &syncbuf.Buffer{}
			report, err := autocert.Check(context.Background(), cfg, autocert.WithLogger(zerolog.New(logs)))
			if report == nil {
				t.Fatalf("Check: %v", err)
			}
			var rec *autocert.CheckStep
			for i, s := range report.Steps {
				if s.Step == autocert.CheckStepDNSRecord {
					rec = &report.Steps[i]
				}
			}
			if rec == nil {
				t.Fatalf("no dns_record step: %v (%v)\nlog:\n%s", report.Steps, err, logs)
			}
			if rec.Verdict != tt.verdict || !strings.Contains(rec.Detail, tt.detail) || !strings.Contains(rec.Fix, tt.fix) {
				t.Errorf("dns_record step %+v\nwant %s, %q in the detail, %q in the fix", *rec, tt.verdict, tt.detail, tt.fix)
			}
			if (tt.verdict == autocert.CheckOK) != (err == nil) {
				t.Errorf("Check error %v with verdict %s", err, rec.Verdict)
			}
			if left := lookupTXT(t, bind.addr, tt.record); len(left) != 0 {
				t.Errorf("TXT records left at %s: %q", tt.record, left)
			}
			if got := bind.serial(t, "a.test"); got != serialA {
				t.Errorf("zone a.test changed: serial %d -> %d", serialA, got)
			}
			if got := bind.serial(t, "b.test"); got < serialB+tt.updates {
				t.Errorf("zone b.test serial %d -> %d: want %d updates at least", serialB, got, tt.updates)
			}
			if n := len(ca.Orders()); n != 0 || ca.Accounts() != 0 {
				t.Errorf("the check sent %d orders and created %d accounts", n, ca.Accounts())
			}
			for _, s := range report.Steps {
				if strings.Contains(s.String(), bind.secret) {
					t.Errorf("the TSIG secret in step %v", s)
				}
			}
			if strings.Contains(logs.String(), bind.secret) {
				t.Error("the TSIG secret appears in the log")
			}
		})
	}
}
