package provider_test

import (
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/clocktest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

// TestFleetBacksOffTogether: two instances share certs/ (the file storage,
// as two processes on one host do) and their renewal falls due at the same
// moment, when the CA fails orders. One order is sent: the instance that
// gets the lock second adopts the failure and its wait instead of ordering
// in turn. Once the wait is over, one instance renews and the other serves
// the renewed certificate without ordering.
func TestFleetBacksOffTogether(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	clock := clocktest.New(time.Now())
	var logs [2]syncbuf.Buffer
	fleet := make([]*autocert.Provider, 2)
	for i := range fleet {
		fleet[i] = newProvider(t, caConfig(ca, dir, "fleet.example"), autocert.WithClock(clock),
			autocert.WithLogger(zerolog.New(&logs[i])))
		if err := fleet[i].ObtainCertIfNotExistsAll(); err != nil {
			t.Fatal(err)
		}
	}
	if n := ca.OrderCount("fleet.example"); n != 1 {
		t.Fatalf("%d orders at start, want 1", n)
	}
	old := leafOf(t, fleet[0], "fleet.example")
	for _, p := range fleet {
		schedule(t, p)
	}
	armed := func() bool {
		n := 0
		for _, d := range clock.Timers() {
			if d.After(clock.Now()) {
				n++
			}
		}
		return n == len(fleet)
	}
	eventually(t, "both schedulers idle", armed)

	// The CA asks for a renewal 12 hours from now; the schedulers look at
	// its renewal information again before 13 hours have passed.
	base := clock.Now()
	if err := ca.SetRenewalWindow(old, base.Add(12*time.Hour), base.Add(12*time.Hour+time.Minute)); err != nil {
		t.Fatal(err)
	}
	ca.FailOrders(1, acmetest.Problem{Type: "serverInternal", Detail: "the CA is having a bad day"})
	clock.Set(base.Add(13 * time.Hour))
	eventually(t, "both instances know of the failure", func() bool {
		return fleet[0].RenewalStatus()[0].Failures == 1 && fleet[1].RenewalStatus()[0].Failures == 1
	})
	if n := len(ca.Orders()); n != 2 {
		t.Fatalf("%d orders, want 2: the start and one failed renewal", n)
	}
	retry := fleet[0].RenewalStatus()[0].RetryAt.Truncate(time.Second)
	if r := fleet[1].RenewalStatus()[0].RetryAt.Truncate(time.Second); !r.Equal(retry) || !retry.After(clock.Now()) {
		t.Errorf("retry times %v and %v, want the same, after now", retry, r)
	}
	adopted := 0
	for i := range logs {
		adopted += strings.Count(logs[i].String(), "another instance failed to renew this certificate")
	}
	if adopted != 1 {
		t.Errorf("%d instances adopted the other's failure, want 1", adopted)
	}

	eventually(t, "both schedulers idle", armed)
	clock.Set(retry.Add(time.Second))
	for _, p := range fleet {
		eventually(t, "the renewed certificate served", func() bool {
			return !leafOf(t, p, "fleet.example").Equal(old)
		})
	}
	if !leafOf(t, fleet[0], "fleet.example").Equal(leafOf(t, fleet[1], "fleet.example")) {
		t.Error("the instances serve different certificates")
	}
	if n := ca.OrderCount("fleet.example"); n != 2 {
		t.Errorf("%d certificates issued, want 2: one renewal for both instances", n)
	}
}
