package autocert_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/clocktest"
	"github.com/autocert-dev/autocert/httpapi"
	"github.com/rs/zerolog"
)

// TestPacedStartOf1000Certificates: the first start of a config with
// 1,000 certificates on one account, at a CA that allows 300 new orders
// per account per 3 hours (Let's Encrypt's limit, simulated by the
// embedded CA on the test's clock). ObtainAll orders 300 and leaves 700
// waiting, each told its own turn, 36 s apart, which RenewalStatus and the
// HTTP API's JSON report with the limit waited for; the scheduler then
// orders each when its turn comes, as the clock moves an hour at a time.
// Every certificate is issued and the CA answers no order rateLimited.
func TestPacedStartOf1000Certificates(t *testing.T) {
	testPacedStart(t, 1000, 300, 3*time.Hour)
}

func testPacedStart(t *testing.T, n, perWindow int, window time.Duration) {
	turn := window / time.Duration(perWindow)
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	ca := acmetest.New(t, acmetest.WithOrderRateLimit(perWindow, window), acmetest.WithClock(clock.Now))
	dir := fastTempDir(t)
	host := func(i int) string { return fmt.Sprintf("host%d.pace.test", i) }
	cfg := ca.Config(host(0))
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "0", "cert.crt"), filepath.Join(dir, "0", "key.pem")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	for i := 1; i < n; i++ {
		sub := filepath.Join(dir, fmt.Sprint(i))
		cfg.Extra = append(cfg.Extra, autocert.ConfigExtra{Domains: []string{host(i)},
			CertPath: filepath.Join(sub, "cert.crt"), KeyPath: filepath.Join(sub, "key.pem")})
	}
	limits := autocert.RateLimits{OrdersPerAccount: autocert.RateLimit{Count: perWindow, Window: window}}
	obtained := &obtainedCounter{changed: make(chan struct{}, 1)}
	p, err := autocert.New(context.Background(), cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.Nop()),
		autocert.WithRateLimits(ca.DirectoryURL(), limits), autocert.WithNotifier(obtained))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	limitText := fmt.Sprintf("new orders per account: %d per %v", perWindow, window)

	// Start-up: what fits is ordered, the rest is told its turn. (The
	// bound turns a start-up that never ends into a failure.)
	octx, ocancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = p.ObtainAll(octx, false)
	ocancel()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("ObtainAll = %v; want the joined errors of the certificates waiting", err)
	}
	paced := 0
	for _, e := range joined.Unwrap() {
		if !errors.Is(e, autocert.ErrPaced) || !strings.Contains(e.Error(), limitText) {
			t.Fatalf("ObtainAll: %v; want errors wrapping ErrPaced naming %q", e, limitText)
		}
		paced++
	}
	if paced != n-perWindow || served(p) != perWindow {
		t.Fatalf("after ObtainAll: %d served, %d waiting; want %d and %d", served(p), paced, perWindow, n-perWindow)
	}
	turns := waiting(t, p, start, limitText)
	for k, at := range turns {
		if want := start.Add(time.Duration(k+1) * turn); !at.Equal(want) {
			t.Fatalf("turn %d at start+%v, want start+%v: each waiting certificate gets its own", k+1, at.Sub(start), want.Sub(start))
		}
	}
	checkJSON(t, p, limitText)

	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx)
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.SchedulerDone():
		case <-time.After(time.Minute):
			t.Error("the scheduler did not stop within a minute of its context's end")
		}
	})
	last := turns[len(turns)-1]
	for now := start; now.Before(last); {
		if now = now.Add(time.Hour); now.After(last) {
			now = last
		}
		clock.Set(now)
		want := perWindow
		for _, at := range turns {
			if !at.After(now) {
				want++
			}
		}
		deadline := time.After(60 * time.Second)
		for obtained.n.Load() < int64(want) {
			select {
			case <-obtained.changed:
			case <-deadline:
				t.Fatalf("at start+%v: %d obtained, want %d", now.Sub(start), obtained.n.Load(), want)
			}
		}
		if got := served(p); got != want {
			t.Fatalf("at start+%v: %d served, want %d: an order went before its turn", now.Sub(start), got, want)
		}
		if rest := waiting(t, p, now, limitText); len(rest) != n-want {
			t.Fatalf("at start+%v: %d waiting, want %d", now.Sub(start), len(rest), n-want)
		}
	}

	limited := 0
	for _, o := range ca.Orders() {
		if o.Problem != "" {
			limited++
			t.Errorf("order %v answered %s", o.Names, o.Problem)
		}
	}
	if orders := len(ca.Orders()); orders != n || limited > 0 {
		t.Fatalf("%d orders, %d refused; want %d, none refused", orders, limited, n)
	}
	for _, i := range []int{0, perWindow, n - 1} {
		c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: host(i)})
		if err == nil {
			err = c.Leaf.VerifyHostname(host(i))
		}
		if err != nil {
			t.Errorf("%s: %v", host(i), err)
		}
	}
}

// fastTempDir returns a temporary directory that the test removes, in
// memory (/dev/shm) where the system has one: the files are real, and the
// test's thousands of synced writes do not wait for a disk.
func fastTempDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "autocert-test-"); err == nil {
			t.Cleanup(func() {
				if err := os.RemoveAll(dir); err != nil {
					t.Error(err)
				}
			})
			return dir
		}
	}
	return t.TempDir()
}

// obtainedCounter is a Notifier counting CertObtained events.
type obtainedCounter struct {
	n       atomic.Int64
	changed chan struct{} // signalled after each
}

func (c *obtainedCounter) Notify(_ context.Context, e autocert.Event) error {
	if e.Kind() == autocert.KindObtained {
		c.n.Add(1)
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

// served counts the certificates p serves.
func served(p *autocert.Provider) int {
	infos, _ := p.GetCertInfos()
	return len(infos)
}

// waiting returns the turns that RenewalStatus gives the certificates
// waiting for the CA's rate limits, sorted; each must be after now and
// name limit. The others must be served.
func waiting(t *testing.T, p *autocert.Provider, now time.Time, limit string) []time.Time {
	t.Helper()
	infos, _ := p.GetCertInfos()
	isServed := make(map[string]bool, len(infos))
	for _, ci := range infos {
		isServed[ci.Provider] = true
	}
	var turns []time.Time
	for _, st := range p.RenewalStatus() {
		if isServed[st.Provider] {
			if st.Reason == "rate_limit" {
				t.Fatalf("%s: served and waiting for %s", st.Provider, st.RateLimit)
			}
			continue
		}
		if st.Reason != "rate_limit" || st.RateLimit != limit || !st.NextRenewal.After(now) {
			t.Fatalf("%s: not served; status %+v, want reason rate_limit, %q, a turn after %v", st.Provider, st, limit, now)
		}
		turns = append(turns, st.NextRenewal)
	}
	slices.SortFunc(turns, time.Time.Compare)
	return turns
}

// checkJSON checks what the HTTP API's JSON says of the first certificate
// waiting.
func checkJSON(t *testing.T, p *autocert.Provider, limit string) {
	t.Helper()
	for _, st := range httpapi.Statuses(p) {
		if st.Served() {
			continue
		}
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got["renewal_reason"] != "rate_limit" || got["rate_limit"] != limit || got["next_renewal"] == nil {
			t.Errorf("JSON of %s waiting: %s; want renewal_reason rate_limit, rate_limit %q, next_renewal", st.Provider, b, limit)
		}
		return
	}
	t.Error("no certificate waiting in the HTTP API's statuses")
}

// TestPacedDomainLimitAndForcedRenewals: under 2 certificates per
// registered domain per 2 hours (on the CA and the client), one of the
// three names of pace.test (whichever comes last) waits an hour at
// start-up while other.test is not held back; a forced renewal of every
// certificate renews the three served at once (a renewal of the same names
// does not count per registered domain, at the CA either), and waits in
// RenewAll for the turn of the one missing, which RenewalStatus shows
// meanwhile. No order is refused.
func TestPacedDomainLimitAndForcedRenewals(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	ca := acmetest.New(t, acmetest.WithDomainRateLimit(2, 2*time.Hour), acmetest.WithClock(clock.Now))
	dir := fastTempDir(t)
	names := []string{"a.pace.test", "b.pace.test", "c.pace.test", "d.other.test"}
	cfg := ca.Config(names[0])
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	for _, name := range names[1:] {
		cfg.Extra = append(cfg.Extra, autocert.ConfigExtra{Domains: []string{name},
			CertPath: filepath.Join(dir, name+".crt"), KeyPath: filepath.Join(dir, name+".key")})
	}
	limits := autocert.RateLimits{CertsPerDomain: autocert.RateLimit{Count: 2, Window: 2 * time.Hour}}
	p, err := autocert.New(context.Background(), cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.Nop()),
		autocert.WithRateLimits(ca.DirectoryURL(), limits))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	const limit = "certificates per registered domain: 2 per 2h0m0s (pace.test)"
	turn := start.Add(time.Hour)

	err = p.ObtainAll(context.Background(), false)
	if !errors.Is(err, autocert.ErrPaced) || !strings.Contains(err.Error(), limit) {
		t.Fatalf("ObtainAll = %v; want one certificate waiting for %q", err, limit)
	}
	late := -1 // the certificate of pace.test that waits
	for i, st := range p.RenewalStatus() {
		if st.Reason == "rate_limit" {
			if late >= 0 || i == 3 {
				t.Fatalf("%s waits too: %+v", names[i], st)
			}
			late = i
		}
	}
	if late < 0 || served(p) != 3 {
		t.Fatalf("after ObtainAll: %d served, waiting: %d; want 3 served and one waiting", served(p), late)
	}
	checkWaiting := func(when string) {
		t.Helper()
		st := p.RenewalStatus()[late]
		if st.Reason != "rate_limit" || st.RateLimit != limit || !st.NextRenewal.Equal(turn) {
			t.Fatalf("%s: status of %s %+v; want rate_limit, %q, %v", when, names[late], st, limit, turn)
		}
	}
	checkWaiting("after ObtainAll")

	renewed := make(chan error, 1)
	go func() { renewed <- p.RenewAll(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := clock.WaitForTimer(ctx, func(d time.Time) bool { return d.Equal(turn) }); err != nil {
		t.Fatalf("the forced renewal of %s never waited for its turn: %v", names[late], err)
	}
	for i, name := range names {
		if i == late {
			continue
		}
		for ca.OrderCount(name) < 2 {
			if ctx.Err() != nil {
				t.Fatalf("%s: %d orders, want its renewal too", name, ca.OrderCount(name))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	checkWaiting("during RenewAll")
	select {
	case err := <-renewed:
		t.Fatalf("RenewAll returned %v before the turn of %s", err, names[late])
	default:
	}
	clock.Set(turn)
	select {
	case err := <-renewed:
		if err != nil {
			t.Fatalf("RenewAll = %v", err)
		}
	case <-ctx.Done():
		t.Fatalf("RenewAll still waits after the turn of %s: status %+v", names[late], p.RenewalStatus()[late])
	}
	if n := ca.OrderCount(names[late]); n != 1 {
		t.Errorf("%s: %d orders, want 1", names[late], n)
	}
	for _, o := range ca.Orders() {
		if o.Problem != "" {
			t.Errorf("order %v answered %s", o.Names, o.Problem)
		}
	}
	for i, st := range p.RenewalStatus() {
		if st.Forced == nil || st.Forced.Finished.IsZero() || st.Forced.Error != "" || st.Reason == "rate_limit" {
			t.Errorf("%s: status %+v after RenewAll; want its forced renewal done", names[i], st)
		}
	}
}

// TestForcedRoundDoesNotWaitBehindPacedOrders: a forced renewal of many
// certificates (RenewAll after a mass revocation) runs on a few workers,
// and a certificate waiting hours for its turn under its account's limit
// holds none of them: the certificates of another account, configured
// after it, renew at once. Those that wait are renewed at their turns,
// and RenewAll returns once the last has been.
func TestForcedRoundDoesNotWaitBehindPacedOrders(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	ca := acmetest.New(t, acmetest.WithClock(clock.Now))
	dir := fastTempDir(t)
	const nA, nB = 8, 4 // certificates on account A (first in the config), then on B
	name := func(i int) string { return fmt.Sprintf("h%d.force.test", i) }
	cfg := ca.Config(name(0))
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "0.crt"), filepath.Join(dir, "0.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme-a.key")
	for i := 1; i < nA+nB; i++ {
		x := autocert.ConfigExtra{Domains: []string{name(i)},
			CertPath: filepath.Join(dir, fmt.Sprint(i)+".crt"), KeyPath: filepath.Join(dir, fmt.Sprint(i)+".key")}
		if i >= nA {
			x.ACMEKeyPath = filepath.Join(dir, "acme-b.key")
		}
		cfg.Extra = append(cfg.Extra, x)
	}
	// Room for nA orders at once per account, then one an hour.
	limits := autocert.RateLimits{OrdersPerAccount: autocert.RateLimit{Count: nA, Window: nA * time.Hour}}
	p, err := autocert.New(context.Background(), cfg, autocert.WithClock(clock), autocert.WithLogger(zerolog.Nop()),
		autocert.WithRateLimits(ca.DirectoryURL(), limits))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.ObtainAll(context.Background(), false); err != nil {
		t.Fatal(err)
	}

	renewed := make(chan error, 1)
	go func() { renewed <- p.RenewAll(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Account B had nB orders of nA: its certificates renew now, though
	// every certificate of A is before them and all of A wait.
	for i := nA; i < nA+nB; i++ {
		for ca.OrderCount(name(i)) < 2 {
			if ctx.Err() != nil {
				t.Fatalf("%s: %d orders without the clock moving; want its forced renewal, not a wait behind account A's turns (status %+v)",
					name(i), ca.OrderCount(name(i)), p.RenewalStatus()[i])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitingA := 0
	for i, st := range p.RenewalStatus()[:nA] {
		if st.Reason == "rate_limit" {
			waitingA++
		} else if ca.OrderCount(name(i)) != 1 {
			t.Errorf("%s renewed before its turn: status %+v", name(i), st)
		}
	}
	if waitingA != nA {
		t.Errorf("%d certificates of account A wait for their turn, want %d", waitingA, nA)
	}
	renewedA := func() int {
		n := 0
		for i := range nA {
			if ca.OrderCount(name(i)) >= 2 {
				n++
			}
		}
		return n
	}
	for hour := 1; ; hour++ {
		select {
		case err := <-renewed:
			if err != nil {
				t.Fatalf("RenewAll = %v", err)
			}
			if hour-1 != nA {
				t.Errorf("RenewAll returned after %d hours, want %d (one turn an hour)", hour-1, nA)
			}
			for i := range nA + nB {
				if n := ca.OrderCount(name(i)); n != 2 {
					t.Errorf("%s: %d orders, want 2", name(i), n)
				}
			}
			return
		default:
		}
		if hour > nA+1 {
			t.Fatalf("RenewAll still waits after %d hours: status %+v", hour-1, p.RenewalStatus())
		}
		turn := start.Add(time.Duration(hour) * time.Hour)
		if _, err := clock.WaitForTimer(ctx, func(d time.Time) bool { return !d.After(turn) }); err != nil {
			t.Fatalf("hour %d: no timer at the turn: %v", hour, err)
		}
		clock.Set(turn)
		for renewedA() < hour && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		if n := renewedA(); n != hour {
			t.Fatalf("at start+%dh: %d certificates of account A renewed, want %d: one a turn", hour, n, hour)
		}
		if hour == nA {
			select {
			case err := <-renewed:
				renewed <- err
			case <-ctx.Done():
				t.Fatal("RenewAll did not return after the last turn")
			}
		}
	}
}
