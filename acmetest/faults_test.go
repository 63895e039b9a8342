package acmetest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
)

func TestFailFinalizations(t *testing.T) {
	s := acmetest.New(t)
	c := newAccount(t, s)
	req := certificate.ObtainRequest{Domains: []string{"csr.example.com"}}

	s.FailFinalizations(1, acmetest.Problem{Type: "badCSR", Detail: "acmetest refuses this CSR"})
	_, err := c.Certificate.Obtain(req)
	var prob *acme.ProblemDetails
	if !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:badCSR" ||
		prob.HTTPStatus != http.StatusBadRequest || prob.Detail != "acmetest refuses this CSR" {
		t.Fatalf("Obtain = %v; want badCSR, 400", err)
	}
	// The order itself was created: the refusal came at finalization.
	if got := s.OrderCount("csr.example.com"); got != 1 {
		t.Errorf("OrderCount = %d; want 1", got)
	}
	obtain(t, c, req)

	s.FailFinalizations(3, acmetest.Problem{Type: "badCSR"})
	s.FailFinalizations(0, acmetest.Problem{})
	obtain(t, c, req)
}

func TestSetDelay(t *testing.T) {
	s := acmetest.New(t)
	c := newAccount(t, s)
	req := certificate.ObtainRequest{Domains: []string{"slow.example.com"}}

	const delay = 50 * time.Millisecond
	s.SetDelay(delay)
	start := time.Now()
	obtain(t, c, req)
	// An issuance takes well over five requests, each held back.
	if d := time.Since(start); d < 5*delay {
		t.Errorf("issuance with a delay of %v per request took %v", delay, d)
	}

	// A client that does not wait that long gets a timeout, and the CA
	// drops the request.
	s.SetDelay(time.Hour)
	hc := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: trustPool(t, s.CACertFile())},
	}}
	defer hc.CloseIdleConnections()
	start = time.Now()
	if resp, err := hc.Get(s.DirectoryURL()); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("directory answered %s after %v despite a delay of an hour", resp.Status, time.Since(start))
		}
	}

	s.SetDelay(0)
	start = time.Now()
	obtain(t, c, req)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("issuance after the delay was removed took %v", d)
	}
}

func TestRenewalInfoRequests(t *testing.T) {
	s := acmetest.New(t)
	c := newAccount(t, s)
	leaf := obtain(t, c, certificate.ObtainRequest{Domains: []string{"ari-count.example.com"}})[0]
	if n := s.RenewalInfoRequests(); n != 0 {
		t.Fatalf("RenewalInfoRequests = %d before any; want 0", n)
	}
	if _, err := c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf}); err != nil {
		t.Fatal(err)
	}
	s.FailRenewalInfo(1, acmetest.Problem{Type: "serverInternal"})
	// lego reports no error for a 500 here (it returns a zero window).
	_, _ = c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
	if n := s.RenewalInfoRequests(); n != 2 {
		t.Errorf("RenewalInfoRequests = %d; want 2, the failed one included", n)
	}
}

func TestPendingRequests(t *testing.T) {
	s := acmetest.New(t)
	if n := s.PendingRequests(); n != 0 {
		t.Fatalf("PendingRequests = %d before any request", n)
	}
	s.SetDelay(time.Hour)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trustPool(t, s.CACertFile())}}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.DirectoryURL(), nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.PendingRequests() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the held request is not pending")
		}
		time.Sleep(time.Millisecond)
	}
	cancel() // the client gives up: the CA drops the request
	<-done
	for s.PendingRequests() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped request is still pending")
		}
		time.Sleep(time.Millisecond)
	}
}

// countingDNS counts the records a DNS provider publishes.
type countingDNS struct {
	challenge.Provider
	n atomic.Int64
}

func (c *countingDNS) Present(domain, token, keyAuth string) error {
	c.n.Add(1)
	return c.Provider.Present(domain, token, keyAuth)
}

// Timeout keeps the provider's short propagation timing.
func (c *countingDNS) Timeout() (timeout, interval time.Duration) {
	return c.Provider.(challenge.ProviderTimeout).Timeout()
}

// TestEveryOrderIsValidated: however many orders an account places for
// one name, each one validates the name again (Pebble alone would reuse a
// valid authorization about once in a hundred orders).
func TestEveryOrderIsValidated(t *testing.T) {
	orders := 100
	if testing.Short() {
		orders = 30
	}
	s := acmetest.New(t)
	c := newAccount(t, s)
	dns := &countingDNS{Provider: s.DNSProvider()}
	addr := s.DNSAddr()
	check := func(_, fqdn, value string, _ dns01.PreCheckFunc) (bool, error) {
		values, err := lookupTXT(addr, fqdn)
		return slices.Contains(values, value), err
	}
	if err := c.Challenge.SetDNS01Provider(dns, dns01.WrapPreCheck(check)); err != nil {
		t.Fatal(err)
	}
	req := certificate.ObtainRequest{Domains: []string{"again.example.com", "*.again.example.com"}}
	for range orders {
		obtain(t, c, req)
	}
	if got, want := dns.n.Load(), int64(2*orders); got != want {
		t.Errorf("%d records published for %d orders of 2 names, want %d: an authorization was reused", got, orders, want)
	}
}
