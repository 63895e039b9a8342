package provider_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/rs/zerolog"
)

// TestLoadRenewalStatusFromStorage: a tool that only shows what is there
// (autocert status) learns the next renewal and the last failure of each
// certificate from storage, without the scheduler and without asking the
// CA anything.
func TestLoadRenewalStatusFromStorage(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "status.example.com")
	p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, p, "status.example.com")

	// Another process reads the files.
	viewer := newProvider(t, caConfig(ca, dir, "status.example.com"), autocert.WithLogger(zerolog.Nop()))
	if err := viewer.LoadCertsAll(); err != nil {
		t.Fatal(err)
	}
	if st := viewer.RenewalStatus()[0]; !st.NextRenewal.IsZero() {
		t.Fatalf("next renewal %v known before anything was read", st.NextRenewal)
	}
	orders := len(ca.Orders())
	viewer.LoadRenewalStatus(context.Background())
	st := viewer.RenewalStatus()[0]
	// 90 days: renewed 30 days before expiry, less at most 6 hours.
	due := leaf.NotAfter.Add(-30 * 24 * time.Hour)
	if st.Reason != "lifetime" || st.NextRenewal.After(due) || st.NextRenewal.Before(due.Add(-6*time.Hour)) {
		t.Errorf("next renewal %v (%s), want just before %v", st.NextRenewal, st.Reason, due)
	}
	if !st.LastFailure.IsZero() || st.Renewing {
		t.Errorf("status %+v", st)
	}

	// A failed forced renewal is recorded; a later viewer sees it.
	ca.FailOrders(1, acmetest.Problem{Type: "serverInternal", Detail: "maintenance"})
	if !p.ForceExpiryAll() || !p.WaitRenewalDone(context.Background()) {
		t.Fatal("forced renewal did not run")
	}
	later := newProvider(t, caConfig(ca, dir, "status.example.com"), autocert.WithLogger(zerolog.Nop()))
	if err := later.LoadCertsAll(); err != nil {
		t.Fatal(err)
	}
	later.LoadRenewalStatus(context.Background())
	st = later.RenewalStatus()[0]
	// The certificate is still good: its renewal stays where it was, and
	// a retry may come an hour after the failure.
	if st.LastFailure.IsZero() || st.Failures != 1 || !strings.Contains(st.LastError, "maintenance") ||
		!st.RetryAt.Equal(st.LastFailure.Add(time.Hour)) || st.Reason != "lifetime" || st.NextRenewal.Before(due.Add(-6*time.Hour)) {
		t.Errorf("status after a failure: %+v", st)
	}
	if n := len(ca.Orders()); n != orders+1 {
		t.Errorf("%d orders, want only the forced one", n-orders)
	}
}

// TestProgressString: each step reads as a line for a person.
func TestProgressString(t *testing.T) {
	for _, c := range []struct {
		p    autocert.Progress
		want string
	}{
		{autocert.Progress{Provider: "main", Step: autocert.StepAccount, Detail: "looking up the ACME account at https://ca/dir"}, "main: looking up the ACME account at https://ca/dir"},
		{autocert.Progress{Provider: "main", Step: autocert.StepOrder, Detail: "a.com, *.a.com"}, "main: ordering a certificate for a.com, *.a.com"},
		{autocert.Progress{Provider: "extra[1]", Step: autocert.StepPresent, Domain: "a.com"}, "extra[1]: DNS record presented for a.com"},
		{autocert.Progress{Provider: "main", Step: autocert.StepPropagation, Domain: "a.com", Elapsed: 2345 * time.Millisecond}, "main: waiting for the DNS record of a.com to propagate (2.3s)"},
		{autocert.Progress{Provider: "main", Step: autocert.StepValidation}, "main: the CA is validating the DNS record"},
		{autocert.Progress{Provider: "main", Step: autocert.StepFinalize}, "main: the CA is issuing the certificate"},
		{autocert.Progress{Provider: "main", Step: autocert.StepCleanUp, Domain: "a.com"}, "main: DNS record removed for a.com"},
		{autocert.Progress{Provider: "main", Step: autocert.StepSaved, Detail: "certs/a.crt"}, "main: certificate saved to certs/a.crt"},
		{autocert.Progress{Provider: "main", Step: "other", Domain: "a.com", Detail: "x"}, "main: other a.com: x"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p, got, c.want)
		}
	}
}
