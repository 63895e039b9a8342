package acmetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/go-acme/lego/v4/challenge"
)

// ProviderName is the name under which this package registers its DNS
// provider with autocert.RegisterProvider.
const ProviderName = "acmetest"

// Option keys of the "acmetest" DNS provider.
const (
	// OptionAPIURL is the base URL of a Server's TXT record API.
	OptionAPIURL = "api_url"
	// OptionAPIToken is the bearer token of that API.
	OptionAPIToken = "api_token"
)

// Propagation timing the provider reports to lego: the record is in the
// DNS server before Present returns, so checks can be frequent.
const (
	propagationTimeout = 10 * time.Second
	pollingInterval    = 20 * time.Millisecond
)

func init() {
	autocert.RegisterProvider(ProviderName, providerFactory{})
}

// providerFactory builds "acmetest" DNS providers from options. It holds
// nothing: everything a provider needs is in its options.
type providerFactory struct{}

var (
	_ autocert.DNSProviderFactory = providerFactory{}
	_ autocert.OptionsValidator   = providerFactory{}
	_ autocert.OptionsDescriber   = providerFactory{}
)

// OptionKeys lists the provider's options.
func (providerFactory) OptionKeys() []autocert.OptionKey {
	return []autocert.OptionKey{
		{Name: OptionAPIURL, Required: true},
		{Name: OptionAPIToken, Required: true},
	}
}

// ValidateOptions reports every missing, unknown or malformed option by its
// key. Values are secrets and never appear in the error.
func (f providerFactory) ValidateOptions(opts autocert.Options) error {
	var errs []error
	for _, k := range f.OptionKeys() {
		if opts[k.Name].Value() == "" {
			errs = append(errs, fmt.Errorf("acmetest: missing option %q", k.Name))
		}
	}
	var unknown []string
	for k := range opts {
		if k != OptionAPIURL && k != OptionAPIToken {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("acmetest: unknown option %q (known: %s, %s)", k, OptionAPIURL, OptionAPIToken))
	}
	if raw := opts[OptionAPIURL].Value(); raw != "" {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("acmetest: option %q is not an http or https URL", OptionAPIURL))
		}
	}
	return errors.Join(errs...)
}

// NewDNSProvider returns a provider that writes TXT records through the
// API that opts point at. It does not contact the network.
func (f providerFactory) NewDNSProvider(opts autocert.Options) (challenge.Provider, error) {
	if err := f.ValidateOptions(opts); err != nil {
		return nil, err
	}
	return &dnsProvider{
		apiURL: strings.TrimSuffix(opts[OptionAPIURL].Value(), "/"),
		token:  opts[OptionAPIToken].Value(),
		client: &http.Client{
			Timeout: 10 * time.Second,
			// One short request per record: no idle connections left
			// behind when the server goes away.
			Transport: &http.Transport{DisableKeepAlives: true},
		},
	}, nil
}

// dnsProvider is the DNS-01 provider of this package. It is stateless, like
// a client of a real DNS vendor's API.
type dnsProvider struct {
	apiURL string
	token  string
	client *http.Client
}

var _ challenge.ProviderTimeout = (*dnsProvider)(nil)

// Present adds the challenge's TXT record at _acme-challenge.<domain>.
func (p *dnsProvider) Present(domain, _, keyAuth string) error {
	return p.call(apiAddTXTPath, challengeRecord(domain, keyAuth))
}

// CleanUp removes the challenge's value and keeps any other value of the
// name (another order may be validating the same domain).
func (p *dnsProvider) CleanUp(domain, _, keyAuth string) error {
	return p.call(apiRemoveTXTPath, challengeRecord(domain, keyAuth))
}

// Timeout returns how long lego waits for the record to be visible and how
// often it looks.
func (p *dnsProvider) Timeout() (timeout, interval time.Duration) {
	return propagationTimeout, pollingInterval
}

// challengeRecord returns the DNS-01 TXT record for domain (RFC 8555,
// section 8.4). The name is not resolved through CNAMEs: the test DNS
// server holds the records itself.
func challengeRecord(domain, keyAuth string) txtRecord {
	sum := sha256.Sum256([]byte(keyAuth))
	domain = strings.TrimSuffix(strings.TrimPrefix(domain, "*."), ".")
	return txtRecord{
		FQDN:  canonicalName("_acme-challenge." + domain),
		Value: base64.RawURLEncoding.EncodeToString(sum[:]),
	}
}

func (p *dnsProvider) call(path string, rec txtRecord) error {
	body, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("acmetest: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, p.apiURL+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("acmetest: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		// Name the operation, not the URL: options are not printed.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("acmetest: TXT record API %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("acmetest: TXT record API: %s %s: %s: %s",
			req.Method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
