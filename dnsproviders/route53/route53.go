// Package route53 registers the Amazon Route 53 DNS provider with autocert
// under the name "route53". It links the AWS SDK (about 2.5 MB); import it
// only when a certificate uses Route 53:
//
//	import _ "github.com/autocert-dev/autocert/dnsproviders/route53"
//
// The options are the snake_case fields of lego's route53.Config:
// access_key_id, secret_access_key, session_token, region,
// hosted_zone_id, max_retries, assume_role_arn, external_id,
// private_zone, wait_for_record_sets_changed, ttl, propagation_timeout,
// polling_interval. None is required: without access_key_id the AWS SDK's
// default credential chain is used (AWS_* environment variables, shared
// configuration files, an instance role).
package route53

import (
	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/dnsproviders/legodns"
	"github.com/go-acme/lego/v4/providers/dns/route53"
)

// Name is the provider name this package registers.
const Name = "route53"

func init() {
	autocert.RegisterProvider(Name, legodns.New(route53.NewDefaultConfig, route53.NewDNSProviderConfig,
		legodns.RequireOneOf(),
		legodns.Alias("access_key_id", "AWS_ACCESS_KEY_ID"),
		legodns.Alias("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
		legodns.Alias("session_token", "AWS_SESSION_TOKEN"),
		legodns.Alias("region", "AWS_REGION")))
}
