package autocert

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
)

// Step names a stage of obtaining a certificate, as reported to the
// function given to WithProgress.
type Step string

// The steps of an order, in the order they happen. Present, Propagation
// and Validation repeat for each name of the certificate.
const (
	StepAccount     Step = "account"     // finding or registering the ACME account
	StepOrder       Step = "order"       // placing the order
	StepPresent     Step = "present"     // the DNS-01 TXT record was published
	StepPropagation Step = "propagation" // waiting until the resolvers see the record
	StepValidation  Step = "validation"  // the CA is checking the record
	StepFinalize    Step = "finalize"    // the CSR was sent; the CA is issuing
	StepCleanUp     Step = "cleanup"     // the TXT record was removed
	StepSaved       Step = "saved"       // the certificate and key were stored
)

// Progress is one report of an order's progress. It holds no secret.
type Progress struct {
	Provider string        // "main" or "extra[N]"
	Step     Step          // what is happening
	Domain   string        // the name concerned, for per-name steps
	Elapsed  time.Duration // for StepPropagation: time since the first check
	Detail   string        // a short human-readable addition, may be empty
}

// WithProgress makes the Provider report each step of its orders to f,
// for a command's progress display. f is called from the goroutine doing
// the work and must return quickly.
func WithProgress(f func(Progress)) Option { return func(s *settings) { s.progress = f } }

// report sends a progress report, when someone listens.
func (c *certificate) report(step Step, domain, detail string, elapsed time.Duration) {
	if c.progress != nil {
		c.progress(Progress{Provider: c.name, Step: step, Domain: domain, Detail: detail, Elapsed: elapsed})
	}
}

// progressDNS reports Present and CleanUp of a DNS provider. It keeps the
// provider's propagation timing.
type progressDNS struct {
	challenge.Provider
	c *certificate
}

func (d progressDNS) Present(domain, token, keyAuth string) error {
	err := d.Provider.Present(domain, token, keyAuth)
	if err == nil {
		d.c.report(StepPresent, domain, "", 0)
	}
	return err
}

func (d progressDNS) CleanUp(domain, token, keyAuth string) error {
	err := d.Provider.CleanUp(domain, token, keyAuth)
	if err == nil {
		d.c.report(StepCleanUp, domain, "", 0)
	}
	return err
}

func (d progressDNS) Timeout() (timeout, interval time.Duration) {
	if t, ok := d.Provider.(challenge.ProviderTimeout); ok {
		return t.Timeout()
	}
	return dns01.DefaultPropagationTimeout, dns01.DefaultPollingInterval
}

// sequentialProgressDNS is progressDNS for providers that solve one name
// at a time (lego asks through a Sequential method, so only such
// providers may have one).
type sequentialProgressDNS struct{ progressDNS }

func (d sequentialProgressDNS) Sequential() time.Duration {
	return d.Provider.(interface{ Sequential() time.Duration }).Sequential()
}

// withProgress wraps the DNS provider when progress is reported.
func (c *certificate) withProgress(dns challenge.Provider) challenge.Provider {
	if c.progress == nil {
		return dns
	}
	w := progressDNS{dns, c}
	if _, ok := dns.(interface{ Sequential() time.Duration }); ok {
		return sequentialProgressDNS{w}
	}
	return w
}

// propagationClock remembers when the propagation check of each record
// started, for the elapsed time of StepPropagation.
type propagationClock struct {
	mu    sync.Mutex
	start map[string]time.Time
}

func (c *propagationClock) elapsed(fqdn string, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.start == nil {
		c.start = make(map[string]time.Time)
	}
	t, ok := c.start[fqdn]
	if !ok {
		c.start[fqdn] = now
		return 0
	}
	return now.Sub(t)
}

func (c *propagationClock) done(fqdn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.start, fqdn)
}

// progressTransport reports the requests of an order that no lego hook
// shows: the challenge response (validation) and the finalization. It
// recognises them by their signed payload: "{}" answers a challenge, and
// a payload with a "csr" finalizes an order.
type progressTransport struct {
	base http.RoundTripper
	c    *certificate
}

func (t progressTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.Body != nil && r.GetBody != nil {
		if body, err := r.GetBody(); err == nil {
			data, _ := io.ReadAll(io.LimitReader(body, 64<<10))
			body.Close()
			t.inspect(data)
		}
	}
	return t.base.RoundTrip(r)
}

func (t progressTransport) inspect(jws []byte) {
	var msg struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(jws, &msg) != nil {
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(msg.Payload)
	if err != nil {
		return
	}
	switch {
	case bytes.Equal(payload, []byte("{}")):
		t.c.report(StepValidation, "", "", 0)
	case bytes.Contains(payload, []byte(`"csr"`)):
		t.c.report(StepFinalize, "", "", 0)
	}
}

// String describes the report in a few words for a person, such as
// "main: DNS record presented for example.com" or "main: waiting for the
// DNS record of example.com to propagate (2.5s)".
func (pr Progress) String() string {
	var what string
	switch pr.Step {
	case StepAccount:
		what = "looking up the ACME account"
		if pr.Detail != "" {
			what = pr.Detail
		}
	case StepOrder:
		what = "ordering a certificate for " + pr.Detail
	case StepPresent:
		what = "DNS record presented for " + pr.Domain
	case StepPropagation:
		what = fmt.Sprintf("waiting for the DNS record of %s to propagate (%s)", pr.Domain, pr.Elapsed.Round(100*time.Millisecond))
	case StepValidation:
		what = "the CA is validating the DNS record"
	case StepFinalize:
		what = "the CA is issuing the certificate"
	case StepCleanUp:
		what = "DNS record removed for " + pr.Domain
	case StepSaved:
		what = "certificate saved to " + pr.Detail
	default:
		what = string(pr.Step)
		if pr.Domain != "" {
			what += " " + pr.Domain
		}
		if pr.Detail != "" {
			what += ": " + pr.Detail
		}
	}
	return pr.Provider + ": " + what
}

// dnsOptions makes lego check propagation with c's own resolvers (never
// lego's process-wide list, which two Providers would fight over), at the
// name where d, the order's DNS provider, wrote the record (the end of
// its CNAME chain, or under dns_challenge_alias), and stop waiting once
// ctx ends: the check then reports the record visible, and the request
// to the CA that follows fails with ctx's error. Without resolvers, lego's
// own check runs, at that same name.
func (c *certificate) dnsOptions(ctx context.Context, d *challengeDNS) []dns01.ChallengeOption {
	resolvers := c.cfg.Resolvers
	var started propagationClock
	return []dns01.ChallengeOption{
		dns01.WrapPreCheck(func(domain, fqdn, value string, check dns01.PreCheckFunc) (ok bool, err error) {
			if ctx.Err() != nil {
				return true, nil
			}
			fqdn = d.recordName(domain, fqdn)
			c.report(StepPropagation, domain, "waiting for "+fqdn, started.elapsed(fqdn, time.Now()))
			if len(resolvers) == 0 {
				ok, err = check(fqdn, value)
			} else {
				ok, err = txtVisible(ctx, resolvers, fqdn, value)
			}
			if ok {
				started.done(fqdn)
			}
			return ok, markDNS(err)
		}),
	}
}
