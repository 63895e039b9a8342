// Package dnsproviders registers DNS-01 providers with autocert, by name,
// for the provider key of an autocert.Config. Import it for its side
// effect:
//
//	import _ "github.com/autocert-dev/autocert/dnsproviders"
//
// This package holds the providers that talk to a DNS host's HTTP API with
// a token or a key, and the generic ones (rfc2136 for any DNS server that
// accepts dynamic updates, exec for a program or script, httpreq for an
// HTTP endpoint of your own, acme-dns). Each adds little to a program's
// size. The providers built on a cloud vendor's SDK are in packages of
// their own, so that a program only links the SDK it uses:
//
//   - dnsproviders/route53: Amazon Route 53 ("route53");
//   - dnsproviders/clouddns: Google Cloud DNS ("clouddns", also "gcloud");
//   - dnsproviders/azuredns: Azure DNS ("azuredns");
//   - dnsproviders/all: all of the above and every other DNS provider of
//     lego, under lego's names.
//
// Every provider is a lego DNS provider configured through package
// legodns: the options of a config block are the snake_case names of the
// fields of the lego package's Config struct (auth_token, api_key, ttl,
// propagation_timeout...), and lego's environment variable names for
// them are accepted too (CF_DNS_API_TOKEN). docs/providers.md in the
// repository lists every name with its keys. Each config block (the main
// certificate and each extra) has its own provider and options, so
// certificates can use different providers or accounts.
//
// A program adds a provider of its own, any challenge.Provider, with
// autocert.RegisterProvider and autocert.DNSProviderFunc; a lego provider
// that no package here registers, with legodns.New.
package dnsproviders

//go:generate go run ./internal/gen
