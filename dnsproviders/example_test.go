package dnsproviders_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/dnsproviders/legodns"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/providers/dns/hurricane"
)

// internalDNS is a program's own DNS-01 provider: any type with Present
// and CleanUp (and optionally Timeout) will do.
type internalDNS struct{ endpoint, token string }

func (d *internalDNS) Present(domain, token, keyAuth string) error { return nil }
func (d *internalDNS) CleanUp(domain, token, keyAuth string) error { return nil }
func (d *internalDNS) Timeout() (time.Duration, time.Duration) {
	return 2 * time.Minute, 2 * time.Second
}

// A program registers its own DNS provider under a name; config blocks then
// select it with "provider: internal-dns" and pass its options.
func Example_registerOwnProvider() {
	autocert.RegisterProvider("internal-dns", autocert.DNSProviderFunc(
		func(opts autocert.Options) (challenge.Provider, error) {
			endpoint, token := opts["endpoint"].Value(), opts["token"].Value()
			if endpoint == "" || token == "" {
				return nil, errors.New(`options "endpoint" and "token" are required`)
			}
			return &internalDNS{endpoint: endpoint, token: token}, nil
		}))

	cfg := &autocert.Config{
		Provider: "internal-dns",
		Email:    "admin@example.com",
		Domains:  []string{"example.com"},
		Options:  autocert.Options{"endpoint": "https://dns.internal/api", "token": "secret"},
	}
	fmt.Println(cfg.Validate())
	// Output: <nil>
}

// A lego DNS provider that no package of dnsproviders registers is one
// line: its Config constructors, and the name to register it under.
func Example_registerLegoProvider() {
	autocert.RegisterProvider("he", legodns.New(hurricane.NewDefaultConfig, hurricane.NewDNSProviderConfig))

	f, _ := autocert.LookupProvider("he")
	err := f.(autocert.OptionsValidator).ValidateOptions(autocert.Options{})
	fmt.Println(err)
	// Output: missing required option credentials (or HURRICANE_TOKENS)
}
