package acmetest_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/certificate"
)

// fakeNow is a clock for the CA's limits that moves when the test says.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeNow) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeNow) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// orderOutcome orders names with c and returns "" when the certificate
// was issued, else the Retry-After of the rateLimited answer; any other
// failure fails the test.
func orderOutcome(t *testing.T, c interface {
	Obtain(certificate.ObtainRequest) (*certificate.Resource, error)
}, names ...string) string {
	t.Helper()
	_, err := c.Obtain(certificate.ObtainRequest{Domains: names, Bundle: true})
	if err == nil {
		return ""
	}
	var rl *acme.RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("Obtain %v: %v; want a certificate or a rateLimited answer", names, err)
	}
	if rl.HTTPStatus != 429 || rl.RetryAfter == "" {
		t.Fatalf("Obtain %v: rateLimited with status %d and Retry-After %q; want 429 and a Retry-After", names, rl.HTTPStatus, rl.RetryAfter)
	}
	return rl.RetryAfter
}

// TestOrderRateLimit: with 3 new orders per 30 s per account, an account
// gets 3 certificates at once, its 4th order is answered rateLimited with
// a Retry-After of 10 s (one token every 30/3 s), and is accepted once
// the CA's clock has moved by that much; another account has its own
// bucket; refused orders are recorded with their problem.
func TestOrderRateLimit(t *testing.T) {
	clock := &fakeNow{t: time.Now()}
	s := acmetest.New(t, acmetest.WithOrderRateLimit(3, 30*time.Second), acmetest.WithClock(clock.Now))
	c := newAccount(t, s)
	steps := []struct {
		advance time.Duration
		name    string
		limited string // Retry-After of the answer; "" for a certificate
	}{
		{0, "o1.example.com", ""},
		{0, "o2.example.com", ""},
		{0, "o3.example.com", ""},
		{0, "o4.example.com", "10"},
		{5 * time.Second, "o4.example.com", "5"},
		{5 * time.Second, "o4.example.com", ""},
		{0, "o5.example.com", "10"},
		{time.Hour, "o5.example.com", ""}, // a full bucket holds 3, not more
		{0, "o6.example.com", ""},
		{0, "o7.example.com", ""},
		{0, "o8.example.com", "10"},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		if got := orderOutcome(t, c.Certificate, st.name); got != st.limited {
			t.Fatalf("step %d (%s after %v): Retry-After %q, want %q", i, st.name, st.advance, got, st.limited)
		}
	}
	if got := orderOutcome(t, newAccount(t, s).Certificate, "other.example.com"); got != "" {
		t.Errorf("another account: rateLimited (Retry-After %s), want its own bucket", got)
	}
	limited := 0
	for _, o := range s.Orders() {
		if o.Problem == "urn:ietf:params:acme:error:rateLimited" {
			limited++
		}
	}
	if limited != 4 {
		t.Errorf("%d orders recorded as rateLimited, want 4", limited)
	}
}

// TestDomainRateLimit: with 2 certificates per registered domain per
// minute, the names of one registered domain (under a public suffix such
// as co.uk too) share a bucket whatever the account, other registered
// domains have their own, and a renewal (exactly the names of an issued
// certificate) is not limited.
func TestDomainRateLimit(t *testing.T) {
	clock := &fakeNow{t: time.Now()}
	s := acmetest.New(t, acmetest.WithDomainRateLimit(2, time.Minute), acmetest.WithClock(clock.Now))
	a, b := newAccount(t, s), newAccount(t, s)
	steps := []struct {
		client  *certificate.Certifier
		names   []string
		limited bool
	}{
		{a.Certificate, []string{"www.example.com"}, false},
		{b.Certificate, []string{"api.example.com", "*.api.example.com"}, false},
		{a.Certificate, []string{"mail.example.com"}, true},
		{b.Certificate, []string{"*.api.example.com", "api.example.com"}, false}, // renewal
		{a.Certificate, []string{"www.example.com"}, false},                      // renewal
		{a.Certificate, []string{"www.example.com", "mail.example.com"}, true},   // not a renewal: names added
		{a.Certificate, []string{"a.shop.co.uk"}, false},
		{a.Certificate, []string{"b.shop.co.uk"}, false},
		{b.Certificate, []string{"shop.co.uk"}, true},
		{b.Certificate, []string{"other.co.uk"}, false},
		{a.Certificate, []string{"x.example.org", "mail.example.com"}, true}, // one of its domains is out
	}
	for i, st := range steps {
		got := orderOutcome(t, st.client, st.names...) != ""
		if got != st.limited {
			t.Fatalf("step %d %v: limited %v, want %v", i, st.names, got, st.limited)
		}
	}
	clock.Advance(30 * time.Second)
	if got := orderOutcome(t, a.Certificate, "mail.example.com"); got != "" {
		t.Errorf("after 30 s (one token back): rateLimited, Retry-After %s", got)
	}
}

func TestRateLimitOptionErrors(t *testing.T) {
	tests := []struct {
		opt  acmetest.Option
		want string
	}{
		{acmetest.WithOrderRateLimit(0, time.Hour), "WithOrderRateLimit"},
		{acmetest.WithOrderRateLimit(3, 0), "WithOrderRateLimit"},
		{acmetest.WithDomainRateLimit(-1, time.Hour), "WithDomainRateLimit"},
		{acmetest.WithClock(nil), "WithClock"},
	}
	for _, tt := range tests {
		s, err := acmetest.Start(tt.opt)
		if err == nil {
			s.Close()
			t.Errorf("Start accepted the option; want an error naming %s", tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Start: %v; want an error naming %s", err, tt.want)
		}
	}
}
