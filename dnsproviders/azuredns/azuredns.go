// Package azuredns registers the Azure DNS provider with autocert under
// the name "azuredns". It links the Azure SDK (about 4 MB); import it only
// when a certificate uses Azure DNS:
//
//	import _ "github.com/autocert-dev/autocert/dnsproviders/azuredns"
//
// The options are the snake_case fields of lego's azuredns.Config
// (subscription_id, resource_group, zone_name, client_id, client_secret,
// tenant_id, auth_method, private_zone, ttl, ...) with lego's AZURE_*
// environment variable names as aliases, plus environment: the Azure
// cloud, one of public (the default), china or usgovernment. None is
// required: without client credentials the Azure SDK's default credential
// chain is used.
//
// lego's Azure provider lists the DNS zones of the subscription when it is
// built, so the provider is built on first use, when a challenge is
// presented, rather than when the config is loaded.
package azuredns

import (
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/dnsproviders/legodns"
	"github.com/go-acme/lego/v4/providers/dns/azuredns"
)

// Name is the provider name this package registers.
const Name = "azuredns"

// Option key of the Azure cloud.
const optEnvironment = "environment"

// clouds are the accepted values of the environment option.
var clouds = map[string]cloud.Configuration{
	"public":       cloud.AzurePublic,
	"china":        cloud.AzureChina,
	"usgovernment": cloud.AzureGovernment,
}

func init() {
	f := legodns.New(azuredns.NewDefaultConfig, azuredns.NewDNSProviderConfig,
		legodns.Lazy(),
		legodns.RequireOneOf(),
		legodns.ExtraKeys(autocert.OptionKey{Name: optEnvironment, Aliases: []string{"AZURE_ENVIRONMENT"}}))
	f.WithCheck(func(extra map[string]string) error {
		if v, ok := extra[optEnvironment]; ok {
			if _, known := clouds[v]; !known {
				return fmt.Errorf("option %q: expected public, china or usgovernment", optEnvironment)
			}
		}
		return nil
	})
	f.WithPrepare(func(cfg *azuredns.Config, extra map[string]string) error {
		if v, ok := extra[optEnvironment]; ok {
			cfg.Environment = clouds[v]
		}
		return nil
	})
	autocert.RegisterProvider(Name, f)
}
