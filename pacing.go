package autocert

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/lego"
	"golang.org/x/net/publicsuffix"
)

// ErrPaced means an order was not sent yet because the rate limits of its
// CA (see WithRateLimits) leave it no room before the time the message
// gives; the scheduler sends it then.
var ErrPaced = errors.New("waiting for the CA's rate limits")

// RateLimit is one limit a CA puts on orders: at most Count within any
// Window, counted as a token bucket that holds Count and is refilled
// evenly over Window, as Let's Encrypt counts: Count at once, then one
// every Window/Count. A RateLimit with a Count or Window of zero or less
// is no limit.
type RateLimit struct {
	Count  int
	Window time.Duration
}

// RateLimits are the limits of one CA that the scheduler paces its orders
// under (see WithRateLimits). A zero field is no limit.
type RateLimits struct {
	// OrdersPerAccount limits the new orders of one ACME account.
	OrdersPerAccount RateLimit
	// CertsPerDomain limits the certificates that name a registered
	// domain (the name one label under its public suffix: example.com
	// for www.example.com, example.co.uk for a.b.example.co.uk), on any
	// account. A renewal, an order for exactly the names of the
	// certificate served, does not count, as at Let's Encrypt.
	CertsPerDomain RateLimit
	// FailuresPerName limits the failed validations of one name on one
	// account: a failed order counts once for each of its names, and an
	// order is held back while one of its names has no failure left.
	FailuresPerName RateLimit
}

// defaultRateLimits returns the limits that Let's Encrypt publishes for
// its production and staging directories; ok is false for other CAs.
func defaultRateLimits(caDirURL string) (l RateLimits, ok bool) {
	const week = 7 * 24 * time.Hour
	switch caDirURL {
	case lego.LEDirectoryProduction:
		// https://letsencrypt.org/docs/rate-limits/ (2025): 300 new
		// orders per account per 3 hours (one back every 36 seconds); 50
		// certificates per registered domain per 7 days (one back every
		// 202 minutes), renewals of the same set of names exempt; 5
		// failed authorizations per identifier per account per hour.
		return RateLimits{
			OrdersPerAccount: RateLimit{300, 3 * time.Hour},
			CertsPerDomain:   RateLimit{50, week},
			FailuresPerName:  RateLimit{5, time.Hour},
		}, true
	case lego.LEDirectoryStaging:
		// https://letsencrypt.org/docs/staging-environment/: 1,500 new
		// orders per account per 3 hours, 30,000 certificates per
		// registered domain per week, 60 failed validations per hour.
		return RateLimits{
			OrdersPerAccount: RateLimit{1500, 3 * time.Hour},
			CertsPerDomain:   RateLimit{30000, week},
			FailuresPerName:  RateLimit{60, time.Hour},
		}, true
	}
	return RateLimits{}, false
}

// caKey is the key of a CA's limits: its directory URL, trimmed, Let's
// Encrypt's when empty (as Validate fills it in).
func caKey(caDirURL string) string {
	if u := strings.TrimSpace(caDirURL); u != "" {
		return u
	}
	return DefaultCADirURL
}

// pacer keeps the orders of one Provider under the rate limits of their
// CAs. Each limit is a token bucket per account, registered domain or
// name, kept as the theoretical arrival time of the generic cell rate
// algorithm (one time per bucket: the bucket is full once the time is
// past, and each order pushes it on by Window/Count; an order fits while
// the time is less than Window ahead).
//
// Every bucket is counted twice. The plan gives each order that cannot be
// sent now its own slot, one interval after the previous one, so that the
// certificates waiting are told distinct times and do not all wake at once.
// The record counts the orders as they are sent, as the CA counts them,
// and is what lets an order go: an order sent after its slot (its worker
// was busy, the clock jumped) may find that the CA's bucket has not
// refilled as the plan assumed, and then waits again for the record. What
// the record does not see, and the answer of the CA covers instead (a
// rateLimited problem, honoured through its Retry-After): orders of other
// processes or of an earlier run on the same account, and the delay
// between sending an order and the CA counting it.
type pacer struct {
	limits map[string]RateLimits // the configured limits, by caKey; fixed

	mu  sync.Mutex          // guards every bucket
	cas map[string]*caPaces // by caKey, made as the certificates need them; fixed after newScheduler
}

// caPaces are the limits of one CA and their buckets.
type caPaces struct {
	orders, certs, failures gcra
	accounts                map[*account]*bucket
	domains                 map[string]*bucket
	names                   map[nameKey]*bucket
}

type nameKey struct {
	acct *account
	name string
}

// bucket is one token bucket: the time of the plan and of the record, in
// Unix nanoseconds (full while in the past: zero is always). key names its
// domain or name, for messages; text is the limit and key in words, made
// when first needed.
type bucket struct {
	plan, sent int64
	key, text  string
}

// gcra is one limit as the generic cell rate algorithm counts it, in
// nanoseconds.
type gcra struct {
	interval  int64  // Window/Count, rounded up; zero: no limit
	tolerance int64  // (Count-1)*interval: Count fit at once
	text      string // the limit in words
}

func newGCRA(what string, l RateLimit) gcra {
	if l.Count <= 0 || l.Window <= 0 {
		return gcra{}
	}
	n := int64(l.Count)
	interval := (int64(l.Window) + n - 1) / n
	return gcra{interval: interval, tolerance: interval * (n - 1),
		text: fmt.Sprintf("%s: %d per %v", what, l.Count, l.Window)}
}

// earliest returns when, at now or later, one more fits in the bucket
// whose time is tat.
func (g *gcra) earliest(tat, now int64) int64 {
	return max(tat-g.tolerance, now)
}

// next returns the time of the bucket whose time is tat once one is
// taken from it at at.
func (g *gcra) next(tat, at int64) int64 {
	return max(tat, at) + g.interval
}

// paceKeys are the buckets an order of one certificate counts against;
// nil when its CA has no limits.
type paceKeys struct {
	ca      *caPaces
	account *bucket   // nil without an orders limit
	domains []*bucket // its registered domains; none without a certificates limit
	names   []*bucket // its names; none without a failures limit
}

func newPacer(limits map[string]RateLimits) *pacer {
	return &pacer{limits: limits, cas: make(map[string]*caPaces)}
}

// keys returns the buckets of c's orders at its first issuer.
func (p *pacer) keys(c *certificate) *paceKeys {
	if len(c.issuers) > 0 {
		return p.keysAt(c, c.issuers[0])
	}
	return p.keysAt(c, &issuerSlot{cfg: c.cfg, acct: c.acct})
}

// keysAt returns the buckets of c's orders at its issuer is, made as
// needed; nil when that CA has no limits or c orders from none. It is
// called while the scheduler is built, before any order.
func (p *pacer) keysAt(c *certificate, is *issuerSlot) *paceKeys {
	if is == nil || is.acct == nil || !c.acme() {
		return nil
	}
	acct := is.acct
	url := is.url()
	ca, ok := p.cas[url]
	if !ok {
		l, set := p.limits[url]
		if !set {
			l, set = defaultRateLimits(url)
		}
		if set {
			ca = &caPaces{
				orders:   newGCRA("new orders per account", l.OrdersPerAccount),
				certs:    newGCRA("certificates per registered domain", l.CertsPerDomain),
				failures: newGCRA("failed validations per name", l.FailuresPerName),
				accounts: make(map[*account]*bucket),
				domains:  make(map[string]*bucket),
				names:    make(map[nameKey]*bucket),
			}
			if ca.orders.interval == 0 && ca.certs.interval == 0 && ca.failures.interval == 0 {
				ca = nil
			}
		}
		p.cas[url] = ca
	}
	if ca == nil {
		return nil
	}
	k := &paceKeys{ca: ca}
	if ca.orders.interval > 0 {
		if k.account = ca.accounts[acct]; k.account == nil {
			k.account = &bucket{}
			ca.accounts[acct] = k.account
		}
	}
	seen := make(map[string]bool)
	for _, d := range c.cfg.Domains {
		name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if ca.failures.interval > 0 && !seen[name] {
			nk := nameKey{acct, name}
			b := ca.names[nk]
			if b == nil {
				b = &bucket{key: name}
				ca.names[nk] = b
			}
			k.names = append(k.names, b)
		}
		seen[name] = true
		if ca.certs.interval > 0 {
			rd := registeredDomain(name)
			if seen["\x00"+rd] {
				continue
			}
			seen["\x00"+rd] = true
			b := ca.domains[rd]
			if b == nil {
				b = &bucket{key: rd}
				ca.domains[rd] = b
			}
			k.domains = append(k.domains, b)
		}
	}
	return k
}

// registeredDomain returns the registered domain of a name (lower case,
// without a wildcard label): the name itself when it has none, such as a
// public suffix or a single label.
func registeredDomain(name string) string {
	name = strings.TrimPrefix(name, "*.")
	if d, err := publicsuffix.EffectiveTLDPlusOne(name); err == nil {
		return d
	}
	return name
}

// reserve plans an order of the certificate of k at now: it returns now
// when the order fits now, else the slot it is given, and the limit it
// waits for. renewal says the order is for exactly the names of the
// certificate served (not counted per registered domain).
func (p *pacer) reserve(k *paceKeys, renewal bool, now time.Time) (at time.Time, limit string) {
	t := now.UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	slot, which, by := k.earliest(renewal, true, t)
	k.count(renewal, true, slot)
	if slot == t {
		return now, ""
	}
	return now.Add(time.Duration(slot - t)), by.describe(which)
}

// send lets the order of the certificate of k go at now, counting it,
// and returns the zero time; or, when the orders already sent leave no
// room, counts nothing and returns when there is room and the limit it
// waits for.
func (p *pacer) send(k *paceKeys, renewal bool, now time.Time) (wait time.Time, limit string) {
	t := now.UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	until, which, by := k.earliest(renewal, false, t)
	if until > t {
		return now.Add(time.Duration(until - t)), by.describe(which)
	}
	k.count(renewal, false, t)
	return time.Time{}, ""
}

// earliest returns the earliest time, at t or after, at which every limit
// of k has room for an order, by the plan (planned) or by the orders sent,
// and the limit and bucket that set it (nil when t). The failed
// validations are always those recorded. The caller holds the pacer's
// lock.
func (k *paceKeys) earliest(renewal, planned bool, t int64) (at int64, which *gcra, by *bucket) {
	ca := k.ca
	at = t
	look := func(g *gcra, b *bucket, tat int64) {
		if e := g.earliest(tat, t); e > at {
			at, which, by = e, g, b
		}
	}
	if b := k.account; b != nil {
		look(&ca.orders, b, b.tat(planned))
	}
	if !renewal {
		for _, b := range k.domains {
			look(&ca.certs, b, b.tat(planned))
		}
	}
	for _, b := range k.names {
		look(&ca.failures, b, b.sent)
	}
	return at, which, by
}

// count counts an order of the certificate of k at t, in the plan
// (planned) or in the record of orders sent. The caller holds the pacer's
// lock.
func (k *paceKeys) count(renewal, planned bool, t int64) {
	ca := k.ca
	if b := k.account; b != nil {
		b.add(&ca.orders, planned, t)
	}
	if !renewal {
		for _, b := range k.domains {
			b.add(&ca.certs, planned, t)
		}
	}
}

// tat is b's time of the plan (planned) or of the record.
func (b *bucket) tat(planned bool) int64 {
	if planned {
		return b.plan
	}
	return b.sent
}

// add counts one order at t against g in b's plan (planned) or record.
func (b *bucket) add(g *gcra, planned bool, t int64) {
	if planned {
		b.plan = g.next(b.plan, t)
	} else {
		b.sent = g.next(b.sent, t)
	}
}

// failed counts a failed order of the certificate of k, at now, against
// the failures limit of each of its names.
func (p *pacer) failed(k *paceKeys, now time.Time) {
	if k == nil || len(k.names) == 0 {
		return
	}
	t := now.UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range k.names {
		b.sent = k.ca.failures.next(b.sent, t)
	}
}

// describe names the limit g of b, with b's domain or name; the caller
// holds the pacer's lock.
func (b *bucket) describe(g *gcra) string {
	if b.key == "" {
		return g.text
	}
	if b.text == "" {
		b.text = g.text + " (" + b.key + ")"
	}
	return b.text
}
