package acmetest_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/registration"
)

func TestIssuedChainVerifiesAgainstRoot(t *testing.T) {
	s := acmetest.New(t)
	c := newAccount(t, s)

	chain := obtain(t, c, certificate.ObtainRequest{Domains: []string{"example.com", "*.example.com"}})

	leaf := chain[0]
	if len(chain) != 2 || !bytes.Equal(chain[1].Raw, s.Intermediate().Raw) {
		t.Fatalf("chain has %d certificates; want leaf + Intermediate()", len(chain))
	}
	inter := x509.NewCertPool()
	inter.AddCert(chain[1])
	for _, name := range []string{"example.com", "www.example.com"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: s.Roots(), Intermediates: inter}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if err := chain[1].CheckSignatureFrom(s.Root()); err != nil {
		t.Errorf("intermediate not signed by Root(): %v", err)
	}
	if got, want := leaf.NotAfter.Sub(leaf.NotBefore), 90*24*time.Hour-time.Second; got != want {
		t.Errorf("validity %v; want %v (default profile)", got, want)
	}
	if got := s.Accounts(); got != 1 {
		t.Errorf("Accounts() = %d; want 1", got)
	}
	if got := s.OrderCount("*.EXAMPLE.com", "example.com"); got != 1 {
		t.Errorf("OrderCount = %d; want 1", got)
	}
	want := []acmetest.Order{{Names: []string{"*.example.com", "example.com"}}}
	if got := s.Orders(); !slices.EqualFunc(got, want, orderEqual) {
		t.Errorf("Orders() = %+v; want %+v", got, want)
	}
	// The provider cleaned up after itself.
	values, err := lookupTXT(s.DNSAddr(), "_acme-challenge.example.com")
	if err != nil || len(values) != 0 {
		t.Errorf("TXT records left: %q, %v", values, err)
	}
}

func orderEqual(a, b acmetest.Order) bool {
	return slices.Equal(a.Names, b.Names) && a.Profile == b.Profile && a.Replaces == b.Replaces && a.Problem == b.Problem
}

func TestTwentySequentialIssuancesAreFast(t *testing.T) {
	s := acmetest.New(t)
	c := newAccount(t, s)
	start := time.Now()
	for i := range 20 {
		obtain(t, c, certificate.ObtainRequest{Domains: []string{fmt.Sprintf("seq%d.example.com", i)}})
	}
	elapsed := time.Since(start)
	t.Logf("20 sequential issuances: %v", elapsed)
	// Without the front's waiting, lego polls each authorization after a
	// 5 s back-off: a minute or more.
	if elapsed > 10*time.Second {
		t.Errorf("20 issuances took %v; want well under 10s", elapsed)
	}
}

func TestConcurrentServersShareDNS(t *testing.T) {
	s1, s2 := acmetest.New(t), acmetest.New(t)
	if s1.DNSAddr() != s2.DNSAddr() {
		t.Errorf("DNS addresses differ: %s, %s", s1.DNSAddr(), s2.DNSAddr())
	}
	c1, c2 := newAccount(t, s1), newAccount(t, s2)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		for _, c := range []interface {
			Obtain(certificate.ObtainRequest) (*certificate.Resource, error)
		}{c1.Certificate, c2.Certificate} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The same name on both CAs at once: each provider must
				// remove only its own value.
				_, err := c.Obtain(certificate.ObtainRequest{Domains: []string{fmt.Sprintf("same%d.example.com", i)}})
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if a, b := s1.OrderCount("same0.example.com"), s2.OrderCount("same0.example.com"); a != 1 || b != 1 {
		t.Errorf("order counts %d, %d; want 1, 1", a, b)
	}
}

func TestProfiles(t *testing.T) {
	s := acmetest.New(t,
		acmetest.WithProfile("short", "six seconds", 6*time.Second),
		acmetest.WithProfile("long", "one hour", time.Hour))
	if got := s.Profiles(); !slices.Equal(got, []string{"long", "short"}) {
		t.Errorf("Profiles() = %q", got)
	}
	c := newAccount(t, s)

	_, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"p.example.com"}})
	var prob *acme.ProblemDetails
	if !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:malformed" ||
		!strings.Contains(prob.Detail, `"long", "short"`) {
		t.Fatalf("order without profile: %v; want a malformed problem naming the profiles", err)
	}

	leaf := obtain(t, c, certificate.ObtainRequest{Domains: []string{"p.example.com"}, Profile: "short"})[0]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 5*time.Second {
		t.Errorf("validity %v; want 5s (6s profile)", got)
	}
	want := []acmetest.Order{
		{Names: []string{"p.example.com"}, Problem: "urn:ietf:params:acme:error:malformed"},
		{Names: []string{"p.example.com"}, Profile: "short"},
	}
	if got := s.Orders(); !slices.EqualFunc(got, want, orderEqual) {
		t.Errorf("Orders() = %+v; want %+v", got, want)
	}
	if got := s.OrderCount("p.example.com"); got != 1 {
		t.Errorf("OrderCount = %d; want 1 (refused orders do not count)", got)
	}
}

// TestWithoutProfiles: the directory of a CA without profiles has none in
// its meta object, an order naming no profile gets 90 days, and an order
// naming one is refused.
func TestWithoutProfiles(t *testing.T) {
	s := acmetest.New(t, acmetest.WithoutProfiles())
	if got := s.Profiles(); got != nil {
		t.Errorf("Profiles() = %q; want none", got)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trustPool(t, s.CACertFile())}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(s.DirectoryURL())
	if err != nil {
		t.Fatal(err)
	}
	var dir struct {
		NewOrder string                     `json:"newOrder"`
		Meta     map[string]json.RawMessage `json:"meta"`
	}
	err = json.NewDecoder(resp.Body).Decode(&dir)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("directory: %d %q %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	if _, ok := dir.Meta["profiles"]; ok || dir.NewOrder == "" || dir.Meta["termsOfService"] == nil {
		t.Errorf("directory newOrder %q, meta %s; want the endpoints and a meta object without profiles", dir.NewOrder, dir.Meta)
	}

	c := newAccount(t, s)
	leaf := obtain(t, c, certificate.ObtainRequest{Domains: []string{"np.example.com"}})[0]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 90*24*time.Hour-time.Second {
		t.Errorf("validity %v; want 90 days less a second", got)
	}
	_, err = c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"np.example.com"}, Profile: "default"})
	var prob *acme.ProblemDetails
	if !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:invalidProfile" {
		t.Errorf("order naming a profile: %v; want an invalidProfile problem", err)
	}
}

func TestEAB(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	hmac := base64.RawURLEncoding.EncodeToString(key)
	s := acmetest.New(t, acmetest.WithEAB("kid-2", hmac), acmetest.WithEAB("kid-1", hmac))

	cfg := s.Config("eab.example.com")
	if cfg.EABKid != "kid-1" || cfg.EABHmac.Value() != hmac {
		t.Errorf("Config EAB = %q/%v; want kid-1 and its key", cfg.EABKid, cfg.EABHmac)
	}

	c, _ := newClient(t, s, clientOptions{})
	if _, err := c.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true}); err == nil {
		t.Error("registration without EAB succeeded")
	}
	other := make([]byte, 32)
	rand.Read(other)
	c, _ = newClient(t, s, clientOptions{})
	if _, err := c.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: "kid-1", HmacEncoded: base64.RawURLEncoding.EncodeToString(other),
	}); err == nil {
		t.Error("registration with a wrong HMAC key succeeded")
	}
	if got := s.Accounts(); got != 0 {
		t.Errorf("Accounts() = %d after refused registrations", got)
	}

	c, u := newClient(t, s, clientOptions{})
	reg, err := c.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: cfg.EABKid, HmacEncoded: cfg.EABHmac.Value(),
	})
	if err != nil {
		t.Fatalf("registration with EAB: %v", err)
	}
	u.reg = reg
	obtain(t, c, certificate.ObtainRequest{Domains: []string{"eab.example.com"}})
	if got := s.Accounts(); got != 1 {
		t.Errorf("Accounts() = %d; want 1", got)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	const secret = "not*base64url"
	profile := acmetest.WithProfile("p", "", time.Hour)
	for _, tc := range []struct {
		name string
		opts []acmetest.Option
	}{
		{"EAB key", []acmetest.Option{acmetest.WithEAB("kid", secret)}},
		{"empty EAB kid", []acmetest.Option{acmetest.WithEAB("", "AAAA")}},
		{"same EAB kid twice", []acmetest.Option{acmetest.WithEAB("kid", "AAAA"), acmetest.WithEAB("kid", "BBBB")}},
		{"short validity", []acmetest.Option{acmetest.WithProfile("p", "", 500*time.Millisecond)}},
		{"partial second", []acmetest.Option{acmetest.WithProfile("p", "", 1500*time.Millisecond)}},
		{"unnamed profile", []acmetest.Option{acmetest.WithProfile("", "", time.Hour)}},
		{"same profile twice", []acmetest.Option{profile, profile}},
		{"empty resolver", []acmetest.Option{acmetest.WithValidationResolver("")}},
		{"profile on a CA without profiles", []acmetest.Option{acmetest.WithoutProfiles(), profile}},
	} {
		s, err := acmetest.Start(tc.opts...)
		if err == nil {
			s.Close()
			t.Errorf("%s: Start succeeded", tc.name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error shows the secret: %v", tc.name, err)
		}
	}
}

func TestRenewalWindowAndReplaces(t *testing.T) {
	s := acmetest.New(t)
	c := newAccount(t, s)
	leaf := obtain(t, c, certificate.ObtainRequest{Domains: []string{"ari.example.com"}})[0]

	start := time.Now().Add(time.Hour).Truncate(time.Second)
	end := start.Add(time.Hour)
	if err := s.SetRenewalWindow(leaf, start, end, 42*time.Second); err != nil {
		t.Fatal(err)
	}
	info, err := c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
	if err != nil {
		t.Fatal(err)
	}
	if !info.SuggestedWindow.Start.Equal(start) || !info.SuggestedWindow.End.Equal(end) || info.RetryAfter != 42*time.Second {
		t.Errorf("renewal info = %v..%v retry %v; want %v..%v retry 42s",
			info.SuggestedWindow.Start, info.SuggestedWindow.End, info.RetryAfter, start, end)
	}

	if err := s.SetRenewalWindow(leaf, start, end); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf}); err != nil || info.RetryAfter != 6*time.Hour {
		t.Errorf("without retryAfter: %+v, %v; want the CA's 6h", info, err)
	}

	// A failing renewalInfo endpoint: lego reads the problem document as
	// a zero window and no error.
	s.FailRenewalInfo(1, acmetest.Problem{Type: "serverInternal", Detail: "down for a moment"})
	if info, err := c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf}); err != nil || !info.SuggestedWindow.Start.IsZero() {
		t.Errorf("during the failure: %+v, %v; want lego's zero window", info, err)
	}
	if info, err := c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf}); err != nil || !info.SuggestedWindow.Start.Equal(start) {
		t.Errorf("after the failure: %+v, %v; want the window again", info, err)
	}

	if err := s.SetRenewalInfo(leaf, "{broken"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf}); err == nil {
		t.Error("broken renewal info decoded without error")
	}

	id, err := certificate.MakeARICertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	obtain(t, c, certificate.ObtainRequest{Domains: []string{"ari.example.com"}, ReplacesCertID: id})
	orders := s.Orders()
	if len(orders) != 2 || orders[0].Replaces != "" || orders[1].Replaces != id {
		t.Errorf("Orders() = %+v; want the second to replace %s", orders, id)
	}
}

func TestSetRenewalWindowUnknownCertificate(t *testing.T) {
	s1, s2 := acmetest.New(t), acmetest.New(t)
	leaf := obtain(t, newAccount(t, s1), certificate.ObtainRequest{Domains: []string{"x.example.com"}})[0]
	now := time.Now()
	if err := s2.SetRenewalWindow(leaf, now, now.Add(time.Hour)); err == nil {
		t.Error("another CA's certificate accepted")
	}
}

func TestFailOrders(t *testing.T) {
	s := acmetest.New(t)
	c := newAccount(t, s)
	req := certificate.ObtainRequest{Domains: []string{"fail.example.com"}}

	s.FailOrders(1, acmetest.Problem{Type: "rateLimited", Detail: "too many certificates", RetryAfter: 90 * time.Second})
	_, err := c.Certificate.Obtain(req)
	var rl *acme.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != "90" || rl.Detail != "too many certificates" {
		t.Fatalf("Obtain = %v; want rate limited, retry after 90", err)
	}
	obtain(t, c, req)

	s.FailOrders(2, acmetest.Problem{Type: "serverInternal"})
	for range 2 {
		_, err = c.Certificate.Obtain(req)
		var prob *acme.ProblemDetails
		if !errors.As(err, &prob) || prob.HTTPStatus != http.StatusInternalServerError ||
			prob.Type != "urn:ietf:params:acme:error:serverInternal" {
			t.Fatalf("Obtain = %v; want serverInternal, 500", err)
		}
	}
	s.FailOrders(5, acmetest.Problem{Type: "unauthorized"})
	s.FailOrders(0, acmetest.Problem{})
	obtain(t, c, req)

	if got := s.OrderCount("fail.example.com"); got != 2 {
		t.Errorf("OrderCount = %d; want 2", got)
	}
	var problems []string
	for _, o := range s.Orders() {
		problems = append(problems, strings.TrimPrefix(o.Problem, "urn:ietf:params:acme:error:"))
	}
	if want := []string{"rateLimited", "", "serverInternal", "serverInternal", ""}; !slices.Equal(problems, want) {
		t.Errorf("order problems %q; want %q", problems, want)
	}
}

func TestNonceRejection(t *testing.T) {
	s := acmetest.New(t)
	counter := &problemCounter{problem: "urn:ietf:params:acme:error:badNonce"}
	c, u := newClient(t, s, clientOptions{transport: func(rt http.RoundTripper) http.RoundTripper {
		counter.next = rt
		return counter
	}})
	register(t, c, u)

	s.SetNonceRejectRate(1)
	done := make(chan error, 1)
	go func() {
		_, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"nonce.example.com"}})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for counter.n.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.SetNonceRejectRate(0)
	if err := <-done; err != nil {
		t.Fatalf("Obtain after nonce rejections: %v", err)
	}
	if counter.n.Load() == 0 {
		t.Error("no badNonce answered at rate 1")
	}
	if counter.noNonces.Load() != 0 {
		t.Error("badNonce answered without a fresh Replay-Nonce")
	}
	if got := s.OrderCount("nonce.example.com"); got != 1 {
		t.Errorf("OrderCount = %d; want 1", got)
	}
}

func TestOffline(t *testing.T) {
	s := acmetest.New(t)
	c := newAccount(t, s)
	req := certificate.ObtainRequest{Domains: []string{"offline.example.com"}}
	obtain(t, c, req) // leaves a kept-alive connection open

	s.SetOffline(true)
	start := time.Now()
	_, err := c.Certificate.Obtain(req)
	var prob *acme.ProblemDetails
	if err == nil || errors.As(err, &prob) {
		t.Fatalf("Obtain while offline = %v; want a network error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v", d)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trustPool(t, s.CACertFile())}}}
	if resp, err := hc.Get(s.DirectoryURL()); err == nil {
		resp.Body.Close()
		t.Error("directory reachable while offline")
	}

	s.SetOffline(false)
	obtain(t, c, req)
	if got := s.OrderCount("offline.example.com"); got != 2 {
		t.Errorf("OrderCount = %d; want 2", got)
	}
}

func TestValidationResolver(t *testing.T) {
	// A port with nothing behind it: the CA cannot look records up.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	s := acmetest.New(t, acmetest.WithValidationResolver(dead))
	c := newAccount(t, s)
	_, err = c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"elsewhere.example.com"}})
	var prob *acme.ProblemDetails
	if !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:unauthorized" || !strings.Contains(prob.Detail, dead) {
		t.Fatalf("Obtain = %v; want a validation error naming %s", err, dead)
	}
}

func TestFailedValidationIsReportedAtOnce(t *testing.T) {
	// A resolver that takes a while and then hangs up: the validation
	// ends well after the CA answered the challenge request.
	const delay = 200 * time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(delay)
				conn.Close()
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })

	s := acmetest.New(t, acmetest.WithValidationResolver(l.Addr().String()))
	c := newAccount(t, s)
	start := time.Now()
	_, err = c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"slow.example.com"}})
	elapsed := time.Since(start)
	var prob *acme.ProblemDetails
	if !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:unauthorized" {
		t.Fatalf("Obtain = %v; want unauthorized", err)
	}
	// lego would otherwise poll the authorization after 5 s.
	if elapsed < delay || elapsed > 2*time.Second {
		t.Errorf("failure reported after %v; want soon after %v", elapsed, delay)
	}
}

func TestConfig(t *testing.T) {
	s := acmetest.New(t)
	domains := []string{"a.example.com", "b.example.com"}
	cfg := s.Config(domains...)
	domains[0] = "changed.example.com"

	if cfg.Provider != "acmetest" || cfg.Email != acmetest.Email || cfg.CADirURL != s.DirectoryURL() ||
		!slices.Equal(cfg.Domains, []string{"a.example.com", "b.example.com"}) ||
		!slices.Equal(cfg.Resolvers, []string{s.DNSAddr()}) ||
		!slices.Equal(cfg.CACerts, []string{s.CACertFile()}) ||
		cfg.EABKid != "" || cfg.Profile != "" {
		t.Errorf("Config = %+v", cfg)
	}
	if cfg.Options["api_url"].Value() == "" || cfg.Options["api_token"].Value() == "" {
		t.Errorf("options incomplete: %v", cfg.Options)
	}
	// The trust file is all a client needs to reach the CA.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trustPool(t, cfg.CACerts[0])}}}
	resp, err := hc.Get(cfg.CADirURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("directory: %s", resp.Status)
	}
}
