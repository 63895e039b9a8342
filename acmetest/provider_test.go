package acmetest_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/miekg/dns"
)

func factory(t *testing.T) autocert.DNSProviderFactory {
	t.Helper()
	f, ok := autocert.LookupProvider("acmetest")
	if !ok {
		t.Fatal(`provider "acmetest" not registered`)
	}
	return f
}

func TestProviderOptionKeys(t *testing.T) {
	d, ok := factory(t).(autocert.OptionsDescriber)
	if !ok {
		t.Fatal("factory does not describe its options")
	}
	want := []autocert.OptionKey{{Name: "api_url", Required: true}, {Name: "api_token", Required: true}}
	if got := d.OptionKeys(); !slices.EqualFunc(got, want, func(a, b autocert.OptionKey) bool {
		return a.Name == b.Name && a.Required == b.Required
	}) {
		t.Errorf("OptionKeys() = %+v; want %+v", got, want)
	}
}

func TestProviderValidateOptions(t *testing.T) {
	s := acmetest.New(t)
	v, ok := factory(t).(autocert.OptionsValidator)
	if !ok {
		t.Fatal("factory does not validate options")
	}
	if err := v.ValidateOptions(s.ProviderOptions()); err != nil {
		t.Errorf("the server's own options: %v", err)
	}

	err := v.ValidateOptions(autocert.Options{})
	if err == nil || !strings.Contains(err.Error(), `"api_url"`) || !strings.Contains(err.Error(), `"api_token"`) {
		t.Errorf("no options: %v; want both keys named", err)
	}

	secrets := []string{"secret-host.example", "s3cret-token", "hidden-zone"}
	err = v.ValidateOptions(autocert.Options{
		"api_url":   autocert.Redacted("ftp://" + secrets[0]),
		"api_token": autocert.Redacted(secrets[1]),
		"zone":      autocert.Redacted(secrets[2]),
	})
	if err == nil || !strings.Contains(err.Error(), `"zone"`) || !strings.Contains(err.Error(), `"api_url"`) {
		t.Fatalf("bad options: %v; want the unknown and the malformed key named", err)
	}
	for _, secret := range secrets {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows a value: %v", err)
		}
	}
	if _, err := factory(t).NewDNSProvider(autocert.Options{"api_url": "http://127.0.0.1:1"}); err == nil {
		t.Error("NewDNSProvider without api_token succeeded")
	}
}

func TestProviderRemovesOnlyItsValue(t *testing.T) {
	s := acmetest.New(t)
	p, err := factory(t).NewDNSProvider(s.ProviderOptions())
	if err != nil {
		t.Fatal(err)
	}
	pt, ok := p.(challenge.ProviderTimeout)
	if !ok {
		t.Fatal("provider has no Timeout")
	}
	if timeout, interval := pt.Timeout(); timeout != 10*time.Second || interval != 20*time.Millisecond {
		t.Errorf("Timeout() = %v, %v; want 10s, 20ms", timeout, interval)
	}

	// Two orders validating the same name at once, through two providers.
	other := s.DNSProvider()
	const name = "_acme-challenge.shared.example.com."
	a := txtValue("token-a.thumbprint")
	b := txtValue("token-b.thumbprint")
	if err := p.Present("shared.example.com", "token-a", "token-a.thumbprint"); err != nil {
		t.Fatal(err)
	}
	if err := other.Present("Shared.Example.com", "token-b", "token-b.thumbprint"); err != nil {
		t.Fatal(err)
	}
	expectTXT(t, s.DNSAddr(), name, a, b)
	if err := p.CleanUp("shared.example.com", "token-a", "token-a.thumbprint"); err != nil {
		t.Fatal(err)
	}
	expectTXT(t, s.DNSAddr(), name, b)
	// Cleaning up twice, or what was never presented, is harmless.
	if err := p.CleanUp("shared.example.com", "token-a", "token-a.thumbprint"); err != nil {
		t.Fatal(err)
	}
	expectTXT(t, s.DNSAddr(), name, b)
	if err := other.CleanUp("shared.example.com", "token-b", "token-b.thumbprint"); err != nil {
		t.Fatal(err)
	}
	expectTXT(t, s.DNSAddr(), name)
}

func expectTXT(t *testing.T, addr, name string, want ...string) {
	t.Helper()
	got, err := lookupTXT(addr, name)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("TXT %s = %q; want %q", name, got, want)
	}
}

func TestProviderWrongToken(t *testing.T) {
	s := acmetest.New(t)
	opts := s.ProviderOptions()
	opts["api_token"] = "wrong-token-value"
	p, err := factory(t).NewDNSProvider(opts)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Present("t.example.com", "tok", "tok.thumb")
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-token-value") {
		t.Errorf("Present with a wrong token: %v; want a 401 that hides the token", err)
	}
	expectTXT(t, s.DNSAddr(), "_acme-challenge.t.example.com.")
}

func TestCloseRemovesLeftoverRecords(t *testing.T) {
	keep := acmetest.New(t) // keeps the shared DNS server up
	s, err := acmetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	p := s.DNSProvider()
	if err := p.Present("left.example.com", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	value := txtValue("tok.thumb")
	expectTXT(t, keep.DNSAddr(), "_acme-challenge.left.example.com.", value)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	expectTXT(t, keep.DNSAddr(), "_acme-challenge.left.example.com.")
	if err := p.Present("left.example.com", "tok", "tok.thumb"); err == nil {
		t.Error("Present through a closed server succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestDNSServerStopsWithLastServer must not run in parallel with tests
// that hold a Server.
func TestDNSServerStopsWithLastServer(t *testing.T) {
	for round := range 2 {
		s, err := acmetest.Start()
		if err != nil {
			t.Fatal(err)
		}
		addr := s.DNSAddr()
		if err := s.DNSProvider().Present("stop.example.com", "tok", "tok.thumb"); err != nil {
			t.Fatal(err)
		}
		value := txtValue("tok.thumb")
		for _, network := range []string{"udp", "tcp"} {
			m := new(dns.Msg)
			m.SetQuestion("_acme-challenge.stop.example.com.", dns.TypeTXT)
			in, _, err := (&dns.Client{Net: network, Timeout: time.Second}).Exchange(m, addr)
			if err != nil || len(in.Answer) != 1 || in.Answer[0].(*dns.TXT).Txt[0] != value {
				t.Fatalf("round %d, %s: answer %v, %v", round, network, in, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		m.SetQuestion("_acme-challenge.stop.example.com.", dns.TypeTXT)
		if _, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).Exchange(m, addr); err == nil {
			t.Fatalf("round %d: DNS server still answers after the last Close", round)
		}
	}
}
