package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/clocktest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/autocert-dev/autocert/notify/webhook"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// caConfig is ca's config for domains with its files in dir.
func caConfig(ca *acmetest.Server, dir string, domains ...string) *autocert.Config {
	cfg := ca.Config(domains...)
	cfg.CertPath = filepath.Join(dir, "c.crt")
	cfg.KeyPath = filepath.Join(dir, "c.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	return cfg
}

// scheduleUntil starts p's scheduler under ctx; the test's cleanup cancels
// it and waits for the scheduler and its work to end.
func scheduleUntil(t *testing.T, p *autocert.Provider, ctx context.Context, cancel context.CancelFunc) {
	t.Helper()
	p.ScheduleRenewalAll(autocert.ContextParent(ctx))
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.SchedulerDone():
		case <-time.After(30 * time.Second):
			t.Error("scheduler did not stop")
		}
	})
}

// stopped waits for p's scheduler to end, failing the test after 20 s.
func stopped(t *testing.T, p *autocert.Provider) {
	t.Helper()
	select {
	case <-p.SchedulerDone():
	case <-time.After(20 * time.Second):
		t.Fatal("the scheduler did not stop")
	}
}

// waitRenewal is WaitRenewalDone with a 20 s limit.
func waitRenewal(t *testing.T, p *autocert.Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !p.WaitRenewalDone(ctx) {
		t.Fatal("WaitRenewalDone gave up")
	}
}

// receive waits for a value on ch, failing the test after 20 s.
func receive(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("timed out")
	}
}

// failureRecord reads the last-failure record in dir.
func failureRecord(t *testing.T, dir string) (firstLine string, fields map[string]string) {
	t.Helper()
	// The detail beside the last-failure file, which holds the time alone.
	m, _ := filepath.Glob(filepath.Join(dir, ".autocert_failure-*"))
	if len(m) != 1 {
		t.Fatalf("last-failure records: %v, want one", m)
	}
	data, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	fields = make(map[string]string)
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ": ")
		fields[k] = v
	}
	return lines[0], fields
}

func noFailureRecord(t *testing.T, dir string) {
	t.Helper()
	if m, _ := filepath.Glob(filepath.Join(dir, ".last_failure-*")); len(m) != 0 {
		t.Errorf("last-failure record left: %v", m)
	}
}

// TestShortLivedCertificateRenewedWhileServing: a 20-second certificate is
// renewed by the scheduler before it expires, on the real clock; a client
// doing handshakes all along never fails and ends up seeing the new
// certificate, which is also the one in the file.
func TestShortLivedCertificateRenewedWhileServing(t *testing.T) {
	ca := acmetest.New(t, acmetest.WithProfile("short", "20 seconds", 20*time.Second))
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "short.example.com")
	cfg.Profile = "short"
	events := newRecorder()
	p := newProvider(t, cfg, autocert.WithNotifier(events), autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	first := events.next(t, autocert.KindObtained).(*autocert.CertObtained)
	if life := first.NotAfter.Sub(first.NotBefore); life > 20*time.Second {
		t.Fatalf("certificate valid for %v, want the 20 s profile", life)
	}
	addr := tlsServer(t, p)
	loop := startHandshakes(addr, "short.example.com", ca.Roots())

	ctx, cancel := context.WithCancel(context.Background())
	scheduleUntil(t, p, ctx, cancel)
	renewed := events.next(t, autocert.KindRenewed).(*autocert.CertRenewed)
	if renewed.PreviousSerial != first.Serial {
		t.Errorf("renewed %s, want the first certificate %s", renewed.PreviousSerial, first.Serial)
	}
	if !time.Now().Before(first.NotAfter) {
		t.Errorf("renewed only after the certificate expired")
	}
	eventually(t, "handshakes see the renewed certificate", func() bool { return loop.saw(renewed.Serial) })
	cancel()
	stopped(t, p)
	n, fails := loop.end()
	if len(fails) > 0 {
		t.Fatalf("%d of %d handshakes failed during the renewal, first: %v", len(fails), n, fails[0])
	}
	if !loop.saw(first.Serial) || n < 10 {
		t.Errorf("%d handshakes, saw the first certificate: %v", n, loop.saw(first.Serial))
	}
	if leaf := readChain(t, cfg.CertPath)[0]; leaf.SerialNumber.Text(16) == first.Serial {
		t.Error("the file still holds the first certificate")
	}
	if ca.OrderCount("short.example.com") < 2 {
		t.Errorf("%d orders, want the renewal too", ca.OrderCount("short.example.com"))
	}
}

// TestRenewalWindowFromCA: the scheduler follows the CA's renewal
// information: it picks a point in the suggested window and keeps it
// across a restart, asks again as the CA's Retry-After says (at least
// twice a day), and when the CA moves the window into the past it renews
// at once (although the lifetime rule says weeks later), naming the old
// certificate in the order's "replaces".
func TestRenewalWindowFromCA(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "ari.example.com")
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	p := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	old := leafOf(t, p, "ari.example.com")
	winStart, winEnd := start.Add(10*24*time.Hour), start.Add(20*24*time.Hour)
	if err := ca.SetRenewalWindow(old, winStart, winEnd, 48*time.Hour); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	scheduleUntil(t, p, ctx, cancel)
	wake := idle(t, clock)
	st := p.RenewalStatus()[0]
	if st.Reason != "ari" || st.NextRenewal.Before(winStart) || !st.NextRenewal.Before(winEnd) {
		t.Fatalf("next renewal %v (%s), want a point in the CA's window [%v, %v)", st.NextRenewal, st.Reason, winStart, winEnd)
	}
	if !st.WindowStart.Equal(winStart) || !st.WindowEnd.Equal(winEnd) {
		t.Errorf("status window [%v, %v]", st.WindowStart, st.WindowEnd)
	}
	if want := start.Add(12 * time.Hour); !wake.Equal(want) {
		t.Errorf("scheduler wakes at %v, want 12 h later (Retry-After of 48 h capped to twice a day)", wake)
	}

	// A restart keeps the chosen point.
	cancel()
	stopped(t, p)
	clock2 := clocktest.New(start)
	p2 := newProvider(t, cfg, autocert.WithClock(clock2), autocert.WithLogger(zerolog.Nop()))
	if err := p2.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	scheduleUntil(t, p2, ctx2, cancel2)
	idle(t, clock2)
	if st2 := p2.RenewalStatus()[0]; !st2.NextRenewal.Equal(st.NextRenewal) || st2.Reason != "ari" {
		t.Fatalf("after a restart the renewal moved from %v to %v (%s)", st.NextRenewal, st2.NextRenewal, st2.Reason)
	}

	// Same window with a Retry-After of 2 h: the point is kept, the next
	// look is 2 h later.
	if err := ca.SetRenewalWindow(old, winStart, winEnd, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	clock2.Set(start.Add(12 * time.Hour))
	if wake := idle(t, clock2); !wake.Equal(start.Add(14 * time.Hour)) {
		t.Errorf("after a Retry-After of 2 h the scheduler wakes at %v, want %v", wake, start.Add(14*time.Hour))
	}
	if st3 := p2.RenewalStatus()[0]; !st3.NextRenewal.Equal(st.NextRenewal) {
		t.Errorf("an unchanged window moved the point from %v to %v", st.NextRenewal, st3.NextRenewal)
	}
	orders := len(ca.Orders())

	// The CA now wants the certificate replaced.
	if err := ca.SetRenewalWindow(old, start.Add(-2*time.Hour), start.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock2.Set(start.Add(14 * time.Hour))
	eventually(t, "renewal after the window moved into the past", func() bool {
		return !leafOf(t, p2, "ari.example.com").Equal(old)
	})
	all := ca.Orders()
	if len(all) != orders+1 {
		t.Fatalf("%d orders after the window moved, want 1", len(all)-orders)
	}
	want, err := certificate.MakeARICertID(old)
	if err != nil {
		t.Fatal(err)
	}
	if got := all[len(all)-1].Replaces; got != want {
		t.Errorf("renewal order replaces %q, want %q", got, want)
	}
}

// TestUnusableRenewalInfoIgnored: an HTTP 500 (which lego turns into a zero
// window without an error), an inverted window and a body that is not JSON
// are each logged and ignored: the lifetime rule applies, no order is
// sent, and the CA is asked again an hour later.
func TestUnusableRenewalInfoIgnored(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "broken-ari.example.com")
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	var logs syncbuf.Buffer
	p := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.New(&logs)))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, p, "broken-ari.example.com")
	orders := len(ca.Orders())
	ca.FailRenewalInfo(1, acmetest.Problem{Type: "serverInternal", Detail: "ARI is down"})
	ctx, cancel := context.WithCancel(context.Background())
	scheduleUntil(t, p, ctx, cancel)

	steps := []struct {
		name  string
		setup func() error
	}{
		{"HTTP 500", func() error { return nil }},
		{"inverted window", func() error {
			return ca.SetRenewalInfo(leaf, fmt.Sprintf(`{"suggestedWindow":{"start":%q,"end":%q}}`,
				start.Add(-time.Hour).UTC().Format(time.RFC3339), start.Add(-2*time.Hour).UTC().Format(time.RFC3339)))
		}},
		{"not JSON", func() error { return ca.SetRenewalInfo(leaf, "<html>oops</html>") }},
	}
	now := start
	for i, s := range steps {
		if err := s.setup(); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			clock.Set(now)
		}
		wake := idle(t, clock)
		if want := now.Add(time.Hour); !wake.Equal(want) {
			t.Errorf("%s: next look at %v, want an hour later", s.name, wake)
		}
		st := p.RenewalStatus()[0]
		if st.Reason != "lifetime" || !st.WindowStart.IsZero() {
			t.Errorf("%s: status %+v, want the lifetime rule and no window", s.name, st)
		}
		if n := countLines(logs.String(), "ignoring renewal information"); n != i+1 {
			t.Errorf("%s: %d log lines about ignored renewal information, want %d", s.name, n, i+1)
		}
		now = wake
	}
	if len(ca.Orders()) != orders {
		t.Errorf("an unusable window led to an order")
	}
}

// TestRenewalFailureWaitsAcrossRestart: with the CA offline a due renewal
// fails: the failure is recorded, notified and logged at Warn, the old
// certificate is still served, and retries come after 1 h, 2 h, 4 h. After
// a restart inside the wait no order is sent; ForceExpiryAll renews at
// once, and the success clears the record.
func TestRenewalFailureWaitsAcrossRestart(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "offline.example.com")
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	events := newRecorder()
	var logs syncbuf.Buffer
	p := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithNotifier(events), autocert.WithLogger(zerolog.New(&logs)))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	old := served(t, p, ca.Roots(), "offline.example.com")
	ctx, cancel := context.WithCancel(context.Background())
	scheduleUntil(t, p, ctx, cancel)
	idle(t, clock)
	due := p.RenewalStatus()[0].NextRenewal
	if due.Before(old.NotAfter.Add(-32*24*time.Hour)) || due.After(old.NotAfter.Add(-28*24*time.Hour)) {
		t.Fatalf("renewal due %v, want about 30 days before expiry %v", due, old.NotAfter)
	}

	ca.SetOffline(true)
	clock.Set(due)
	now := due
	for i, wait := range []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour} {
		retry := now.Add(wait)
		ev := events.next(t, autocert.KindRenewalFailed).(*autocert.RenewalFailed)
		if ev.Failures != i+1 || !ev.RetryAt.Equal(retry) || !errors.Is(ev.Err, autocert.ErrObtain) {
			t.Fatalf("failure %d: %d failures, retry at %v (want %v), err %v", i+1, ev.Failures, ev.RetryAt, retry, ev.Err)
		}
		if !ev.NotAfter.Equal(old.NotAfter) || ev.Error == "" {
			t.Errorf("failure event %+v, want the served certificate's expiry and the error", ev)
		}
		idle(t, clock)
		if st := p.RenewalStatus()[0]; !st.NextRenewal.Equal(retry) || st.Failures != i+1 {
			t.Fatalf("after failure %d: next renewal %v, %d failures; want %v", i+1, st.NextRenewal, st.Failures, retry)
		}
		first, fields := failureRecord(t, dir)
		if at, err := time.Parse(time.RFC3339, first); err != nil || !at.Equal(now.Truncate(time.Second)) {
			t.Errorf("record's first line %q, want the RFC 3339 time %v", first, now)
		}
		if fields["retry_at"] != retry.UTC().Format(time.RFC3339) || fields["attempts"] != fmt.Sprint(i+1) {
			t.Errorf("record %v", fields)
		}
		if !served(t, p, ca.Roots(), "offline.example.com").Equal(old) {
			t.Fatal("the old certificate is no longer served")
		}
		if i == 2 {
			break
		}
		// Go through the scheduler's wake-ups before the retry time (it
		// asks for renewal information again each hour): no attempt.
		for wake := idle(t, clock); wake.Before(retry); wake = idle(t, clock) {
			clock.Set(wake)
			idle(t, clock)
			events.none(t, autocert.KindRenewalFailed)
		}
		now = retry
		clock.Set(now)
	}
	if countLines(logs.String(), `"level":"warn"`) < 3 || !strings.Contains(logs.String(), "renewal failure") {
		t.Errorf("failures not logged at Warn:\n%s", logs.String())
	}

	// Restart inside the 4-hour wait, CA back online.
	cancel()
	stopped(t, p)
	ca.SetOffline(false)
	orders := len(ca.Orders())
	clock2 := clocktest.New(now.Add(time.Hour))
	events2 := newRecorder()
	ctx2, cancel2 := context.WithCancel(context.Background())
	// The driven clock is weeks ahead of the CA's, so a new certificate
	// would look due at once: stop the scheduler when it is renewed.
	stop := autocert.NotifierFunc(func(_ context.Context, e autocert.Event) error {
		if e.Kind() == autocert.KindRenewed {
			cancel2()
		}
		return nil
	})
	p2 := newProvider(t, cfg, autocert.WithClock(clock2), autocert.WithNotifier(events2), autocert.WithNotifier(stop),
		autocert.WithLogger(zerolog.Nop()))
	if err := p2.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	scheduleUntil(t, p2, ctx2, cancel2)
	idle(t, clock2)
	st := p2.RenewalStatus()[0]
	if !st.NextRenewal.Equal(now.Add(4*time.Hour).Truncate(time.Second)) || st.Failures != 3 || !st.RetryAt.Equal(st.NextRenewal) {
		t.Errorf("after the restart: %+v, want to wait until %v", st, now.Add(4*time.Hour))
	}
	if len(ca.Orders()) != orders {
		t.Fatal("a restart inside the wait sent an order")
	}

	// A forced renewal ignores the wait.
	p2.ScheduleRenewalAll(autocert.ContextParent(ctx2)) // a second call starts nothing
	if !p2.ForceExpiryAll() {
		t.Fatal("ForceExpiryAll refused")
	}
	waitRenewal(t, p2)
	stopped(t, p2)
	if n := len(ca.Orders()); n != orders+1 {
		t.Errorf("%d orders for the forced renewal, want 1", n-orders)
	}
	renewed := served(t, p2, ca.Roots(), "offline.example.com")
	if renewed.Equal(old) {
		t.Fatal("the forced renewal is not served")
	}
	ev := events2.next(t, autocert.KindRenewed).(*autocert.CertRenewed)
	if ev.Reason != "forced" || ev.Serial != renewed.SerialNumber.Text(16) {
		t.Errorf("renewed event %+v", ev)
	}
	st = p2.RenewalStatus()[0]
	if st.Forced == nil || st.Forced.Err != nil || st.Forced.Finished.IsZero() || st.Failures != 0 {
		t.Errorf("status after the forced renewal: %+v (forced %+v)", st, st.Forced)
	}
	noFailureRecord(t, dir)
}

// TestRateLimitRetryAfterHonoured: a rateLimited answer with a
// Retry-After longer than the back-off (30 h, beyond even its 24 h cap)
// holds every retry until then.
func TestRateLimitRetryAfterHonoured(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "limited.example.com")
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	events := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	// The driven clock runs weeks ahead of the CA: stop once renewed.
	stop := autocert.NotifierFunc(func(_ context.Context, e autocert.Event) error {
		if e.Kind() == autocert.KindRenewed {
			cancel()
		}
		return nil
	})
	p := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithNotifier(events), autocert.WithNotifier(stop),
		autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	scheduleUntil(t, p, ctx, cancel)
	idle(t, clock)
	due := p.RenewalStatus()[0].NextRenewal

	ca.FailOrders(1, acmetest.Problem{Type: "rateLimited", Detail: "too many certificates", RetryAfter: 30 * time.Hour})
	clock.Set(due)
	ev := events.next(t, autocert.KindRenewalFailed).(*autocert.RenewalFailed)
	retryAt := due.Add(30 * time.Hour)
	if !ev.RetryAt.Equal(retryAt) || !strings.Contains(ev.Error, "too many certificates") {
		t.Fatalf("failure %+v, want a retry at %v", ev, retryAt)
	}
	if _, fields := failureRecord(t, dir); fields["retry_at"] != retryAt.UTC().Format(time.RFC3339) {
		t.Errorf("record %v, want retry_at %v", fields, retryAt)
	}
	orders := len(ca.Orders())
	for {
		wake := idle(t, clock)
		if !wake.Before(retryAt) {
			if !wake.Equal(retryAt) {
				t.Fatalf("scheduler wakes at %v, want the Retry-After time %v", wake, retryAt)
			}
			break
		}
		clock.Set(wake) // renewal information is fetched again, no order
		if len(ca.Orders()) != orders {
			t.Fatalf("an order was sent at %v, before the Retry-After time %v", wake, retryAt)
		}
	}
	clock.Set(retryAt)
	events.next(t, autocert.KindRenewed)
	if len(ca.Orders()) != orders+1 {
		t.Errorf("%d orders at the Retry-After time, want 1", len(ca.Orders())-orders)
	}
}

// TestForceExpiryAllReportsEachProvider: ForceExpiryAll works without a
// scheduler, refuses a second call while its renewals run, and
// RenewalStatus tells which certificate's forced renewal failed and why;
// the one that failed keeps its old certificate.
func TestForceExpiryAllReportsEachProvider(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	var block, fail atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	slow := registerWrapped(t, ca, func(p challenge.Provider) challenge.Provider {
		return presentHook{p, func() {
			if block.Load() {
				entered <- struct{}{}
				<-release
			}
		}}
	})
	failing := registerWrapped(t, ca, func(p challenge.Provider) challenge.Provider {
		return failingPresent{p, &fail}
	})
	cfg := caConfig(ca, dir, "main.example.com")
	cfg.Provider, cfg.Options = slow, nil
	cfg.Extra = []autocert.ConfigExtra{{Provider: failing, Domains: []string{"extra.example.com"},
		CertPath: filepath.Join(dir, "e.crt"), KeyPath: filepath.Join(dir, "e.key")}}
	p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	if p.WaitRenewalDone(context.Background()) {
		t.Error("WaitRenewalDone reported a forced renewal that was never asked")
	}
	oldMain, oldExtra := leafOf(t, p, "main.example.com"), leafOf(t, p, "extra.example.com")

	block.Store(true)
	fail.Store(true)
	if !p.ForceExpiryAll() {
		t.Fatal("ForceExpiryAll refused")
	}
	receive(t, entered)
	if p.ForceExpiryAll() {
		t.Error("a second ForceExpiryAll while the first runs was accepted")
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if p.WaitRenewalDone(short) {
		t.Error("WaitRenewalDone returned true while a renewal is blocked")
	}
	if st := p.RenewalStatus()[0]; st.Forced == nil || !st.Forced.Finished.IsZero() || !st.Renewing {
		t.Errorf("status while running: %+v", st)
	}
	close(release)
	waitRenewal(t, p)
	if leafOf(t, p, "main.example.com").Equal(oldMain) {
		t.Error("main not renewed")
	}
	if !leafOf(t, p, "extra.example.com").Equal(oldExtra) {
		t.Error("extra's certificate changed although its renewal failed")
	}
	st := p.RenewalStatus()
	if len(st) != 2 || st[0].Provider != "main" || st[1].Provider != "extra[0]" {
		t.Fatalf("status %+v", st)
	}
	if f := st[0].Forced; f == nil || f.Err != nil || f.Finished.IsZero() {
		t.Errorf("main's forced renewal: %+v", f)
	}
	if f := st[1].Forced; f == nil || !errors.Is(f.Err, autocert.ErrObtain) || !strings.Contains(f.Error, "DNS API refused") {
		t.Errorf("extra's forced renewal: %+v, want the failure", f)
	}
	if st[1].Failures != 1 || st[1].LastError == "" {
		t.Errorf("extra's failures: %+v", st[1])
	}
	js, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(js), `"forced":{"requested"`) || !strings.Contains(string(js), "DNS API refused") {
		t.Errorf("status JSON %s, %v", js, err)
	}

	block.Store(false)
	fail.Store(false)
	if !p.ForceExpiryAll() {
		t.Fatal("a new forced renewal after the first ended was refused")
	}
	waitRenewal(t, p)
	if leafOf(t, p, "extra.example.com").Equal(oldExtra) {
		t.Error("extra not renewed the second time")
	}
}

// failingPresent refuses to present challenges while fail is set.
type failingPresent struct {
	challenge.Provider
	fail *atomic.Bool
}

func (f failingPresent) Present(domain, token, keyAuth string) error {
	if f.fail.Load() {
		return errors.New("DNS API refused the record")
	}
	return f.Provider.Present(domain, token, keyAuth)
}

func (f failingPresent) Timeout() (timeout, interval time.Duration) {
	return f.Provider.(challenge.ProviderTimeout).Timeout()
}

// TestSchedulerStopsWithRenewalInFlight: when the parent ends while an
// order is in flight, the order completes, its certificate is stored and
// served, SchedulerDone closes only then, and no goroutine is left.
func TestSchedulerStopsWithRenewalInFlight(t *testing.T) {
	ca := acmetest.New(t)
	before := goleak.IgnoreCurrent()
	dir := t.TempDir()
	var block atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	name := registerWrapped(t, ca, func(p challenge.Provider) challenge.Provider {
		return presentHook{p, func() {
			if block.Load() {
				entered <- struct{}{}
				<-release
			}
		}}
	})
	cfg := caConfig(ca, dir, "inflight.example.com")
	cfg.Provider, cfg.Options = name, nil
	p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	old := leafOf(t, p, "inflight.example.com")
	now := time.Now()
	if err := ca.SetRenewalWindow(old, now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	block.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	p.ScheduleRenewalAll(autocert.ContextParent(ctx))
	receive(t, entered)
	cancel()
	select {
	case <-p.SchedulerDone():
		t.Fatal("the scheduler reported done while an order was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-p.SchedulerDone():
	case <-time.After(20 * time.Second):
		t.Fatal("the scheduler did not stop")
	}
	renewed := leafOf(t, p, "inflight.example.com")
	if renewed.Equal(old) {
		t.Fatal("the certificate of the in-flight order is not served")
	}
	if stored := readChain(t, cfg.CertPath)[0]; !stored.Equal(renewed) {
		t.Error("the certificate of the in-flight order is not stored")
	}
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, append(acmetest.LeakOptions(), before)...)
}

// TestWebhookNotifications: the webhook notifier posts JSON for a
// certificate obtained, the expiry summary and a failure, to a real HTTP
// server; no DNS provider secret reaches it.
func TestWebhookNotifications(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	hook, err := webhook.New(srv.URL + "/hook?token=secret")
	if err != nil {
		t.Fatal(err)
	}
	cfg := caConfig(ca, dir, "hook.example.com")
	p := newProvider(t, cfg, autocert.WithNotifier(hook), autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	ca.FailOrders(1, acmetest.Problem{Type: "serverInternal", Detail: "try later"})
	if !p.ForceExpiryAll() {
		t.Fatal("forced renewal refused")
	}
	waitRenewal(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	scheduleUntil(t, p, ctx, cancel)
	eventually(t, "three notifications", func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) >= 3 })
	cancel()
	stopped(t, p)

	mu.Lock()
	defer mu.Unlock()
	kinds := map[string]map[string]any{}
	token := ca.ProviderOptions()[acmetest.OptionAPIToken].Value()
	for _, b := range bodies {
		var m map[string]any
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			t.Fatalf("body is not JSON: %s", b)
		}
		kinds[m["kind"].(string)] = m
		if strings.Contains(b, token) {
			t.Errorf("a notification holds the DNS API token: %s", b)
		}
	}
	if e, ok := kinds["obtained"]["event"].(map[string]any); !ok || fmt.Sprint(e["domains"]) != "[hook.example.com]" {
		t.Errorf("obtained: %v", kinds["obtained"])
	}
	if e, ok := kinds["renewal_failed"]["event"].(map[string]any); !ok || !strings.Contains(fmt.Sprint(e["error"]), "try later") {
		t.Errorf("renewal_failed: %v", kinds["renewal_failed"])
	}
	if _, ok := kinds["expiry_summary"]; !ok || !strings.Contains(kinds["expiry_summary"]["message"].(string), "hook.example.com") {
		t.Errorf("expiry_summary: %v", kinds["expiry_summary"])
	}
}

// TestExpiringBeforeRetryNotified: when the wait after a failure (here a
// rate limit's Retry-After of 40 days) ends after the certificate expires,
// the failure is followed by an expiry warning, logged at Error.
func TestExpiringBeforeRetryNotified(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := caConfig(ca, dir, "expiring.example.com")
	clock := clocktest.New(time.Now().Truncate(time.Second))
	events := newRecorder()
	var logs syncbuf.Buffer
	p := newProvider(t, cfg, autocert.WithClock(clock), autocert.WithNotifier(events), autocert.WithLogger(zerolog.New(&logs)))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, p, "expiring.example.com")
	ctx, cancel := context.WithCancel(context.Background())
	scheduleUntil(t, p, ctx, cancel)
	idle(t, clock)
	ca.FailOrders(1, acmetest.Problem{Type: "rateLimited", Detail: "come back next month", RetryAfter: 40 * 24 * time.Hour})
	clock.Set(p.RenewalStatus()[0].NextRenewal)
	failed := events.next(t, autocert.KindRenewalFailed).(*autocert.RenewalFailed)
	if !failed.RetryAt.After(leaf.NotAfter) {
		t.Fatalf("retry at %v, want after the expiry %v", failed.RetryAt, leaf.NotAfter)
	}
	ev := events.next(t, autocert.KindExpiring).(*autocert.CertExpiring)
	if ev.Serial != leaf.SerialNumber.Text(16) || !ev.NotAfter.Equal(leaf.NotAfter) || !strings.Contains(ev.Message(), "force a renewal") {
		t.Errorf("expiring event %+v", ev)
	}
	var found bool
	for _, l := range strings.Split(logs.String(), "\n") {
		found = found || strings.Contains(l, `"level":"error"`) && strings.Contains(l, "expire before the next renewal attempt")
	}
	if !found {
		t.Errorf("no Error log about the expiry:\n%s", logs.String())
	}
}
