package reliability_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/clocktest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/go-acme/lego/v4/lego"
	"github.com/miekg/dns"
	"github.com/rs/zerolog"
)

const faultDomain = "fault.example.com"

// maxOrdersPerDay bounds the orders a certificate may cause in a day of
// persistent failure: the first attempt and the back-off of 1 h, 2 h, 4 h,
// 8 h, 16 h after it.
const maxOrdersPerDay = 6

// faultEnv is one certificate obtained from a CA before a fault is
// injected, with everything the user can observe.
type faultEnv struct {
	t        *testing.T
	ca       *acmetest.Server
	dir      string
	cfg      *autocert.Config
	legoCfg  *lego.Config
	dns      *dnsFaults
	relay    *dnsRelay // between the client (and the CA) and the DNS server
	clock    *clocktest.Clock
	p        *autocert.Provider
	events   *recorder
	logs     *syncbuf.Buffer
	progress *progressLog
	first    *x509.Certificate // served before the fault
	start    time.Time         // when the scheduler started
	ariFault bool              // the fault is in the renewal information

	dayOrders   int // orders tried in the day after the fault
	dayAttempts int // renewal attempts (failed or not) in that day
}

// progressLog keeps the progress reports of orders.
type progressLog struct {
	mu  sync.Mutex
	all []autocert.Progress
}

func (l *progressLog) add(p autocert.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, p)
}

func (l *progressLog) steps(step autocert.Step) []autocert.Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []autocert.Progress
	for _, p := range l.all {
		if p.Step == step {
			out = append(out, p)
		}
	}
	return out
}

// faultCase is one row of the fault matrix.
type faultCase struct {
	name string
	// relay puts a dnsRelay between the client and the DNS server
	// ("client"), between the CA and the DNS server ("ca"), or nowhere.
	relay string
	// httpTimeout, when set, bounds the wait for each answer of the CA.
	httpTimeout time.Duration
	// mount prepares the certificate directory (a tmpfs); the case is
	// skipped, with the reason, when it cannot.
	mount func(e *faultEnv) error
	// inject brings the fault, once the first certificate is served.
	inject func(e *faultEnv)

	// ari: the fault is in the CA's renewal information; no renewal is
	// forced: the scheduler must ignore the answer and keep to the
	// lifetime rule (errText is then what the log says).
	ari bool

	renewed  bool          // the forced renewal succeeds despite the fault
	errText  []string      // what the error, the event and the record say
	errCA    bool          // the error names the CA's address too
	orders   int           // new-order requests the forced renewal sends
	minRetry time.Duration // the wait the failure asks for, at least (default 1 h)
	noRecord bool          // the last-failure record cannot be written
	check    func(e *faultEnv)
}

// TestFaultMatrix injects one fault of the CA, the DNS or the disk per case
// into a Provider serving a certificate, forces a renewal, and checks what
// the user sees: the certificate served (the old one unless the renewal
// succeeded), the error, the notifier events, the last-failure record, the
// orders sent. Then a day of renewal scheduling on a driven clock, with the
// fault still there and the certificate due, must send at most
// maxOrdersPerDay orders, create no account and keep serving.
func TestFaultMatrix(t *testing.T) {
	cases := []faultCase{
		{
			name:    "bad nonce storm (50%)",
			inject:  func(e *faultEnv) { e.ca.SetNonceRejectRate(0.5) },
			renewed: true, orders: 1,
		},
		{
			name: "CA answers 500",
			inject: func(e *faultEnv) {
				e.ca.FailOrders(1000, acmetest.Problem{Type: "serverInternal", Detail: "the CA is having a bad day"})
			},
			errText: []string{"serverInternal", "the CA is having a bad day"}, orders: 1,
		},
		{
			name:   "CA unreachable",
			inject: func(e *faultEnv) { e.ca.SetOffline(true) },
			errCA:  true, orders: 0,
		},
		{
			name:        "CA slower than the HTTP timeout",
			httpTimeout: 300 * time.Millisecond,
			inject:      func(e *faultEnv) { e.ca.SetDelay(3 * time.Second) },
			errText:     []string{"timeout awaiting response headers"}, errCA: true, orders: 0,
		},
		{
			name: "rate limited with Retry-After",
			inject: func(e *faultEnv) {
				e.ca.FailOrders(1000, acmetest.Problem{Type: "rateLimited", Detail: "too many certificates", RetryAfter: 3 * time.Hour})
			},
			errText: []string{"rateLimited", "too many certificates"}, orders: 1, minRetry: 3 * time.Hour,
		},
		{
			name: "badCSR at finalization",
			inject: func(e *faultEnv) {
				e.ca.FailFinalizations(1000, acmetest.Problem{Type: "badCSR", Detail: "CSR refused by policy"})
			},
			errText: []string{"badCSR", "CSR refused by policy"}, orders: 1,
		},
		{
			name:    "unauthorized: the CA never sees the TXT record",
			relay:   "ca",
			inject:  func(e *faultEnv) { e.relay.empty.Store(true) },
			errText: []string{"unauthorized", "No TXT records found"}, orders: 1,
			check: func(e *faultEnv) {
				// The record was removed after the failed validation.
				if v := txtValues(e.t, e.ca.DNSAddr()); len(v) != 0 {
					e.t.Errorf("TXT records left behind: %q", v)
				}
			},
		},
		{
			name:    "TXT record never appears",
			inject:  func(e *faultEnv) { e.dns.set(func(f *dnsFaults) { f.hide = true }) },
			errText: []string{"propagation", "time limit exceeded"}, orders: 1,
		},
		{
			name:    "TXT record appears late",
			inject:  func(e *faultEnv) { e.dns.set(func(f *dnsFaults) { f.late = 300 * time.Millisecond }) },
			renewed: true, orders: 1,
			check: func(e *faultEnv) {
				checks := e.progress.steps(autocert.StepPropagation)
				var longest time.Duration
				for _, c := range checks {
					longest = max(longest, c.Elapsed)
				}
				if len(checks) < 3 || longest < 200*time.Millisecond {
					e.t.Errorf("%d propagation checks over %v: want the check to be retried until the record appears", len(checks), longest)
				}
			},
		},
		{
			name:    "DNS server down",
			relay:   "client",
			inject:  func(e *faultEnv) { e.relay.stop() },
			errText: []string{"propagation", "time limit exceeded", "connection refused"}, orders: 1,
		},
		{
			name: "DNS provider Present fails",
			inject: func(e *faultEnv) {
				e.dns.set(func(f *dnsFaults) { f.presentErr = errors.New("vendor API answered 503 Service Unavailable") })
			},
			errText: []string{"vendor API answered 503 Service Unavailable"}, orders: 1,
		},
		{
			name: "DNS provider CleanUp fails",
			inject: func(e *faultEnv) {
				e.dns.set(func(f *dnsFaults) { f.cleanUpErr = errors.New("vendor API answered 500") })
			},
			renewed: true, orders: 1,
			check: func(e *faultEnv) {
				// The record stays behind; it does not keep the next
				// renewal from validating with a record of its own.
				if v := txtValues(e.t, e.ca.DNSAddr()); len(v) != 1 {
					e.t.Errorf("after a failed clean-up: TXT records %q, want the one left behind", v)
				}
				e.force()
				if f := e.p.RenewalStatus()[0].Forced; f == nil || f.Err != nil {
					e.t.Fatalf("a renewal with a stale TXT record beside its own failed: %+v", f)
				}
				if v := txtValues(e.t, e.ca.DNSAddr()); len(v) != 2 {
					e.t.Errorf("TXT records %q, want one left behind per order", v)
				}
			},
		},
		{
			name: "ARI endpoint answers 500", ari: true,
			inject: func(e *faultEnv) {
				e.ca.FailRenewalInfo(1000, acmetest.Problem{Type: "serverInternal", Detail: "ARI down"})
			},
			errText: []string{"ignoring renewal information", "unusable window [0001-01-01T00:00:00Z, 0001-01-01T00:00:00Z]"},
		},
		{
			name: "ARI answers a zero window", ari: true,
			inject: func(e *faultEnv) {
				e.setRenewalInfo(`{"suggestedWindow": {"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T00:00:00Z"}}`)
			},
			errText: []string{"ignoring renewal information", "unusable window"},
		},
		{
			name: "ARI answers an inverted window in the past", ari: true,
			inject: func(e *faultEnv) {
				now := time.Now().UTC()
				e.setRenewalInfo(fmt.Sprintf(`{"suggestedWindow": {"start": %q, "end": %q}}`,
					now.Add(-time.Hour).Format(time.RFC3339), now.Add(-2*time.Hour).Format(time.RFC3339)))
			},
			errText: []string{"ignoring renewal information", "unusable window"},
		},
		{
			name: "ARI answers garbage", ari: true,
			inject:  func(e *faultEnv) { e.setRenewalInfo(`{"suggestedWindow": "soon"`) },
			errText: []string{"ignoring renewal information", "renewal information:"},
		},
		{
			name:  "read-only certificate directory",
			mount: func(e *faultEnv) error { return mountTmpfs(e.t, e.dir, 1<<20) },
			inject: func(e *faultEnv) {
				if err := remountReadOnly(e.dir); err != nil {
					e.t.Fatal(err)
				}
			},
			errText: []string{"read-only file system"}, orders: 0, noRecord: true,
		},
		{
			name:  "disk full",
			mount: func(e *faultEnv) error { return mountTmpfs(e.t, e.dir, 1<<20) },
			inject: func(e *faultEnv) {
				fill(e.t, filepath.Join(e.dir, "filler"))
			},
			errText: []string{"no space left on device"}, orders: 1, noRecord: true,
			check: func(e *faultEnv) {
				if m, _ := filepath.Glob(filepath.Join(e.dir, ".autocert-*")); len(m) != 0 {
					for _, f := range m {
						if !strings.HasSuffix(f, ".lock") {
							e.t.Errorf("temporary file left by a failed write: %s", f)
						}
					}
				}
			},
		},
		{
			name: "certificate files deleted while serving",
			inject: func(e *faultEnv) {
				for _, f := range []string{e.cfg.CertPath, e.cfg.KeyPath} {
					if err := os.Remove(f); err != nil {
						e.t.Fatal(err)
					}
				}
				// Serving goes on from memory; a reload from storage
				// fails and keeps what is served.
				if err := e.p.LoadCertsAll(); err == nil {
					e.t.Error("LoadCertsAll succeeded without files")
				}
				e.expectServed(e.first)
			},
			renewed: true, orders: 1,
			check: func(e *faultEnv) {
				for f, mode := range map[string]os.FileMode{e.cfg.CertPath: 0o644, e.cfg.KeyPath: 0o600} {
					if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != mode {
						e.t.Errorf("%s after the renewal: %v %v", f, fi, err)
					}
				}
			},
		},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| fault | forced renewal | orders | what the user reads | attempts / orders in the next day |\n|---|---|---|---|---|\n")
	for _, c := range cases {
		var res faultResult
		t.Run(c.name, func(t *testing.T) { res = runFaultCase(t, c) })
		if res.outcome == "" {
			continue // not run, or stopped early
		}
		fmt.Fprintf(&table, "| %s | %s | %d | %s | %d / %d |\n", c.name, res.outcome, res.orders, res.text, res.dayAttempts, res.dayOrders)
	}
	t.Logf("fault matrix:\n%s", table.String())
}

// faultResult is what a case showed, for the table of the matrix.
type faultResult struct {
	outcome                string
	orders                 int
	text                   string
	dayAttempts, dayOrders int
}

// newFaultEnv obtains the first certificate for a case.
func newFaultEnv(t *testing.T, c faultCase) *faultEnv {
	e := &faultEnv{t: t, events: &recorder{}, logs: &syncbuf.Buffer{}, progress: &progressLog{}}
	var caOpts []acmetest.Option
	if c.relay != "" {
		e.relay = newDNSRelay(t)
		if c.relay == "ca" {
			caOpts = append(caOpts, acmetest.WithValidationResolver(e.relay.addr))
		}
	}
	e.ca = acmetest.New(t, caOpts...)
	if e.relay != nil {
		e.relay.setUpstream(e.ca.DNSAddr())
	}
	e.dir = filepath.Join(t.TempDir(), "certs")
	if err := os.Mkdir(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if c.mount != nil {
		if err := c.mount(e); err != nil {
			if inCI() && os.Geteuid() == 0 {
				t.Fatalf("cannot prepare the directory as root in CI: %v", err)
			}
			t.Skipf("needs a tmpfs mount, which this machine refuses: %v", err)
		}
	}
	e.cfg = caConfig(e.ca, e.dir, faultDomain)
	e.cfg.ACMEKeyPath = filepath.Join(filepath.Dir(e.dir), "acme.key")
	if c.relay == "client" {
		e.cfg.Resolvers = []string{e.relay.addr}
	}
	e.dns = faultyConfig(e.cfg)
	user, legoCfg, err := e.cfg.GetLegoConfig()
	if err != nil {
		t.Fatal(err)
	}
	tr := legoCfg.HTTPClient.Transport.(*http.Transport)
	t.Cleanup(tr.CloseIdleConnections)
	if c.httpTimeout > 0 {
		tr.ResponseHeaderTimeout = c.httpTimeout
	}
	e.legoCfg = legoCfg
	e.clock = clocktest.New(time.Now())
	e.p, err = autocert.NewProvider(e.cfg, user, legoCfg,
		autocert.WithClock(e.clock),
		autocert.WithNotifier(e.events),
		autocert.WithProgress(e.progress.add),
		autocert.WithLogger(zerolog.New(e.logs).Level(zerolog.DebugLevel)))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	e.first = e.served()
	e.events.take()
	return e
}

// served returns the certificate a real TLS handshake for faultDomain
// gets, verified against the CA.
func (e *faultEnv) served() *x509.Certificate {
	e.t.Helper()
	leaf, err := handshake(e.p.GetCert, faultDomain, e.ca.Roots())
	if err != nil {
		e.t.Fatalf("handshake: %v", err)
	}
	return leaf
}

func (e *faultEnv) expectServed(want *x509.Certificate) {
	e.t.Helper()
	if got := e.served(); !got.Equal(want) {
		e.t.Errorf("serving serial %x, want %x", got.SerialNumber, want.SerialNumber)
	}
}

// force runs a forced renewal to its end.
func (e *faultEnv) force() {
	e.t.Helper()
	if !e.p.ForceExpiryAll() {
		e.t.Fatal("ForceExpiryAll refused")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !e.p.WaitRenewalDone(ctx) {
		e.t.Fatal("the forced renewal did not end within a minute")
	}
}

func runFaultCase(t *testing.T, c faultCase) (res faultResult) {
	e := newFaultEnv(t, c)
	if c.ari {
		e.ariFault = true
		return runARICase(t, e, c)
	}
	if c.errCA {
		u, err := url.Parse(e.ca.DirectoryURL())
		if err != nil {
			t.Fatal(err)
		}
		c.errText = append(c.errText, u.Host)
	}
	stop := e.schedule()
	defer stop()
	c.inject(e)

	orders := attempts(e.ca.Orders())
	failedAt := e.clock.Now()
	e.force()
	st := e.p.RenewalStatus()[0]
	events := e.events.take()
	res.orders = attempts(e.ca.Orders()) - orders
	if got := res.orders; got != c.orders {
		t.Errorf("the renewal sent %d new-order requests, want %d", got, c.orders)
	}
	if n := e.ca.Accounts(); n != 1 {
		t.Errorf("the CA has %d accounts, want 1", n)
	}
	records, _ := filepath.Glob(filepath.Join(e.dir, ".autocert_failure-*")) // the detail of the record

	if c.renewed {
		if st.Forced.Err != nil {
			t.Fatalf("renewal failed: %v\n%s", st.Forced.Err, e.logs.String())
		}
		now := e.served()
		if now.Equal(e.first) {
			t.Error("still serving the first certificate after the renewal")
		}
		if len(events) != 1 || events[0].Kind() != autocert.KindRenewed {
			t.Errorf("events %s, want renewed", kinds(events))
		}
		if len(records) != 0 {
			t.Errorf("last-failure record left after a success: %v", records)
		}
		res.outcome, res.text = "renewed", "certificate renewed (log, event)"
	} else {
		err := st.Forced.Err
		if err == nil {
			t.Fatalf("the renewal succeeded despite the fault; status %+v, orders %+v, presents %d\n%s", st, e.ca.Orders(), e.dns.presents.Load(), e.logs.String())
		}
		t.Logf("error: %v", err)
		res.outcome, res.text = "failed, old certificate served", excerpt(err.Error(), c.errText)
		e.expectServed(e.first)
		if !errors.Is(err, autocert.ErrObtain) {
			t.Errorf("error %v does not wrap ErrObtain", err)
		}
		for _, want := range c.errText {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		minRetry := c.minRetry
		if minRetry == 0 {
			minRetry = time.Hour
		}
		var failed *autocert.RenewalFailed
		for _, ev := range events {
			if f, ok := ev.(*autocert.RenewalFailed); ok {
				failed = f
			}
		}
		switch {
		case failed == nil || len(events) != 1:
			t.Errorf("events %s, want one renewal_failed", kinds(events))
		default:
			if failed.Failures != 1 || !failed.NotAfter.Equal(e.first.NotAfter) || failed.RetryAt.Before(failedAt.Add(minRetry)) {
				t.Errorf("renewal_failed event: failures %d, not_after %v (want %v), retry_at %v (want %v or later)",
					failed.Failures, failed.NotAfter, e.first.NotAfter, failed.RetryAt, failedAt.Add(minRetry))
			}
			for _, want := range c.errText {
				if !strings.Contains(failed.Error, want) {
					t.Errorf("event error %q does not say %q", failed.Error, want)
				}
			}
		}
		if st.RetryAt.Before(failedAt.Add(minRetry)) {
			t.Errorf("status retry_at %v, want %v or later", st.RetryAt, failedAt.Add(minRetry))
		}
		if !strings.Contains(e.logs.String(), `"message":"renewal failure"`) {
			t.Errorf("the log does not report the renewal failure")
		}
		if c.noRecord {
			if len(records) != 0 {
				t.Errorf("last-failure records %v on a disk that refuses writes", records)
			}
		} else {
			checkRecord(t, records, c.errText, failedAt.Add(minRetry))
		}
	}
	if c.check != nil {
		c.check(e)
	}
	e.events.take() // those of the check
	e.day(c.renewed)
	res.dayAttempts, res.dayOrders = e.dayAttempts, e.dayOrders
	return res
}

// excerpt returns the part of an error message from the first of the
// expected texts, cut to a table cell.
func excerpt(msg string, want []string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	for _, w := range want {
		if i := strings.Index(msg, w); i >= 0 {
			msg = msg[max(0, i-20):]
			break
		}
	}
	if len(msg) > 110 {
		msg = msg[:110] + "…"
	}
	return "`" + strings.ReplaceAll(msg, "|", "/") + "`"
}

// setRenewalInfo makes the CA answer body to renewal information requests
// about the first certificate.
func (e *faultEnv) setRenewalInfo(body string) {
	e.t.Helper()
	if err := e.ca.SetRenewalInfo(e.first, body); err != nil {
		e.t.Fatal(err)
	}
}

// runARICase: with the CA's renewal information broken, the scheduler
// logs and ignores it, plans the renewal by the certificate's lifetime,
// asks the CA again no more than once an hour, and orders nothing in a day.
func runARICase(t *testing.T, e *faultEnv, c faultCase) (res faultResult) {
	c.inject(e)
	e.start = e.clock.Now()
	requests, orders := e.ca.RenewalInfoRequests(), attempts(e.ca.Orders())
	ctx, cancel := context.WithCancel(context.Background())
	e.p.ScheduleRenewalAll(autocert.ContextParent(ctx))
	defer func() {
		cancel()
		select {
		case <-e.p.SchedulerDone():
		case <-time.After(time.Minute):
			t.Error("the scheduler did not stop")
		}
	}()
	e.idle()
	st := e.p.RenewalStatus()[0]
	lifetime := e.first.NotAfter.Add(-30 * 24 * time.Hour)
	if st.Reason != "lifetime" || st.NextRenewal.After(lifetime) || st.NextRenewal.Before(lifetime.Add(-6*time.Hour)) {
		t.Errorf("next renewal %v (%s), want the lifetime rule's %v (less a jitter)", st.NextRenewal, st.Reason, lifetime)
	}
	for _, want := range c.errText {
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, e.logs.String())
		}
	}
	res.outcome = "not renewed (scheduled: lifetime rule)"
	res.text = excerpt(lastLine(e.logs.String(), "ignoring renewal information"), c.errText[1:])
	e.day(false)
	res.dayAttempts, res.dayOrders = e.dayAttempts, e.dayOrders
	if sent := attempts(e.ca.Orders()) - orders; sent != 0 {
		t.Errorf("%d orders because of a broken renewal window", sent)
	}
	if n := e.ca.RenewalInfoRequests() - requests; n < 2 || n > 26 {
		t.Errorf("%d renewal information requests in a day, want one at start and then at most one an hour", n)
	}
	e.expectServed(e.first)
	return res
}

// lastLine returns the last line of log holding s.
func lastLine(log, s string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}

// checkRecord checks the last-failure record of a failed renewal.
func checkRecord(t *testing.T, records []string, errText []string, retryAt time.Time) {
	t.Helper()
	if len(records) != 1 {
		t.Errorf("last-failure records %v, want one", records)
		return
	}
	data, err := os.ReadFile(records[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if _, err := time.Parse(time.RFC3339, lines[0]); err != nil {
		t.Errorf("record's first line %q is not an RFC 3339 time", lines[0])
	}
	fields := map[string]string{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ": ")
		fields[k] = v
	}
	if fields["attempts"] != "1" {
		t.Errorf("record attempts %q, want 1", fields["attempts"])
	}
	if at, err := time.Parse(time.RFC3339, fields["retry_at"]); err != nil || at.Before(retryAt.Truncate(time.Second)) {
		t.Errorf("record retry_at %q, want %v or later", fields["retry_at"], retryAt)
	}
	for _, want := range errText {
		if !strings.Contains(fields["error"], want) {
			t.Errorf("record error %q does not say %q", fields["error"], want)
		}
	}
}

// schedule starts the renewal scheduler, before the fault, with a
// renewal window from the CA (ACME Renewal Information) that makes the
// certificate due in an hour; it returns what stops the scheduler.
func (e *faultEnv) schedule() func() {
	t := e.t
	e.start = e.clock.Now()
	due := e.start.Add(time.Hour)
	if err := e.ca.SetRenewalWindow(e.first, due, due.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.p.ScheduleRenewalAll(autocert.ContextParent(ctx))
	e.idle()
	if st := e.p.RenewalStatus()[0]; st.Reason != "ari" || st.NextRenewal.After(due.Add(time.Second)) {
		t.Fatalf("before the fault: next renewal %v (%s), want the CA's window at %v", st.NextRenewal, st.Reason, due)
	}
	e.events.take() // the expiry summary
	return func() {
		cancel()
		select {
		case <-e.p.SchedulerDone():
		case <-time.After(time.Minute):
			t.Error("the scheduler did not stop")
		}
	}
}

// day drives the scheduler through the day after the certificate fell due,
// with the fault still there, and counts the orders.
func (e *faultEnv) day(renewed bool) {
	t := e.t
	until := e.start.Add(25 * time.Hour)
	orders := attempts(e.ca.Orders())
	for {
		at := e.idle()
		if at.After(until) {
			break
		}
		e.clock.Set(at)
	}
	sent := attempts(e.ca.Orders()) - orders
	tries := 0
	for _, ev := range e.events.take() {
		if k := ev.Kind(); k == autocert.KindRenewalFailed || k == autocert.KindRenewed {
			tries++
		}
	}
	e.dayOrders, e.dayAttempts = sent, tries
	t.Logf("the day after the certificate fell due, with the fault: %d attempts, %d orders tried", tries, sent)
	if sent > maxOrdersPerDay || tries > maxOrdersPerDay {
		t.Errorf("%d attempts and %d orders in a day, want at most %d", tries, sent, maxOrdersPerDay)
	}
	if !renewed && !e.ariFault && tries == 0 {
		t.Errorf("no attempt in the day after the certificate fell due")
	}
	if renewed && sent > 0 {
		t.Errorf("%d new-order requests in the day after a successful renewal, want none", sent)
	}
	if n := e.ca.Accounts(); n != 1 {
		t.Errorf("the CA has %d accounts after a day, want 1", n)
	}
	if !renewed {
		// Still serving: the first certificate, or a renewal that got
		// through the fault (verified by the handshake).
		e.served()
	}
}

// idle waits until the scheduler has armed its timer beyond the driven
// clock's present, and returns that deadline.
func (e *faultEnv) idle() time.Time {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := e.clock.Now()
	at, err := e.clock.WaitForTimer(ctx, func(d time.Time) bool { return d.After(now) })
	if err != nil {
		e.t.Fatalf("the scheduler never went idle: %v", err)
	}
	return at
}

// attempts counts the orders a client tried to place: the new-order
// requests, but for those refused as "alreadyReplaced", which lego sends
// again at once without "replaces" (a renewal whose certificate was issued
// but not stored names the same old certificate the next time).
func attempts(orders []acmetest.Order) int {
	n := 0
	for _, o := range orders {
		if o.Problem != "urn:ietf:params:acme:error:alreadyReplaced" {
			n++
		}
	}
	return n
}

// txtValues returns the TXT values of faultDomain's challenge record at
// the DNS server addr.
func txtValues(t *testing.T, addr string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn("_acme-challenge."+faultDomain), dns.TypeTXT)
	in, _, err := (&dns.Client{Net: "udp", Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, rr := range in.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			values = append(values, strings.Join(txt.Txt, ""))
		}
	}
	return values
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0}, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// One more byte must not fit either.
	if _, err := f.Write([]byte{0}); err == nil {
		t.Fatalf("the file system of %s is not full", path)
	}
}
