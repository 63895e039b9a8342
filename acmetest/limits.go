package acmetest

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// limiter is one simulated rate limit of the CA: a token bucket per key
// (an account, a registered domain) that holds n tokens and gains n per
// window, continuously. A full bucket is not kept.
type limiter struct {
	n       int
	window  time.Duration
	what    string // the limit, for problem details
	buckets map[string]tokens
}

// tokens is what a bucket held at a time.
type tokens struct {
	n  float64
	at time.Time
}

// tokenSlack absorbs the rounding of float64 refills: a bucket refilled to
// within it of one token has one.
const tokenSlack = 1e-9

func newLimiter(l rateLimit, what string) *limiter {
	if l.n < 1 {
		return nil
	}
	return &limiter{n: l.n, window: l.window, what: what, buckets: make(map[string]tokens)}
}

// level returns the tokens of key's bucket at now.
func (l *limiter) level(key string, now time.Time) float64 {
	b, ok := l.buckets[key]
	if !ok {
		return float64(l.n)
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.n += float64(elapsed) / float64(l.window) * float64(l.n)
	}
	return min(b.n, float64(l.n))
}

// wait returns how long until key's bucket has a token; zero when it has
// one at now.
func (l *limiter) wait(key string, now time.Time) time.Duration {
	missing := 1 - l.level(key, now)
	if missing <= tokenSlack {
		return 0
	}
	return time.Duration(missing * float64(l.window) / float64(l.n))
}

// take takes a token from key's bucket at now; the caller checked with
// wait that it has one.
func (l *limiter) take(key string, now time.Time) {
	n := max(l.level(key, now)-1, 0)
	l.buckets[key] = tokens{n: n, at: now}
}

// problem is the answer to a request that key's bucket has no token for,
// with wait until it has.
func (l *limiter) problem(key string, wait time.Duration) Problem {
	return Problem{
		Type:       "rateLimited",
		Detail:     fmt.Sprintf("acmetest: too many %s (%d per %v) for %s; retry after %v", l.what, l.n, l.window, key, wait.Round(time.Second)),
		RetryAfter: max(wait, time.Second),
	}
}

// registeredDomain returns the registered domain of an identifier, the
// identifier itself when it has none.
func registeredDomain(name string) string {
	name = strings.TrimPrefix(strings.ToLower(name), "*.")
	if d, err := publicsuffix.EffectiveTLDPlusOne(name); err == nil {
		return d
	}
	return name
}

// nameSetKey identifies a set of names, in lower case and sorted.
func nameSetKey(names []string) string { return strings.Join(lowerSorted(names), "\x00") }

// rateLimit answers the problem of the first simulated limit that an
// order of account for names exceeds; when none does, it counts the order
// and reports false. The caller holds the front's lock.
func (f *front) rateLimitLocked(account string, names []string) (Problem, bool) {
	now := f.now()
	type take struct {
		l   *limiter
		key string
	}
	var takes []take
	if l := f.orderLimit; l != nil && account != "" {
		key := "account " + account
		if d := l.wait(key, now); d > 0 {
			return l.problem(key, d), true
		}
		takes = append(takes, take{l, key})
	}
	if l := f.certLimit; l != nil && !f.issued[nameSetKey(names)] {
		seen := map[string]bool{}
		for _, n := range names {
			key := registeredDomain(n)
			if seen[key] {
				continue
			}
			seen[key] = true
			if d := l.wait(key, now); d > 0 {
				return l.problem(key, d), true
			}
			takes = append(takes, take{l, key})
		}
	}
	for _, t := range takes {
		t.l.take(t.key, now)
	}
	return Problem{}, false
}
