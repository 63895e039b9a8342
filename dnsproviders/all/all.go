// Package all registers every DNS provider autocert knows: the providers
// of package dnsproviders, Route 53, Google Cloud DNS and Azure DNS, and
// every other DNS provider of lego under lego's names for it. Importing
// it adds all their SDKs to a program (about 60 MB); a program that knows
// which providers it needs imports those packages instead.
//
//	import _ "github.com/autocert-dev/autocert/dnsproviders/all"
package all

import (
	_ "github.com/autocert-dev/autocert/dnsproviders"          // the light providers
	_ "github.com/autocert-dev/autocert/dnsproviders/azuredns" // Azure DNS
	_ "github.com/autocert-dev/autocert/dnsproviders/clouddns" // Google Cloud DNS
	_ "github.com/autocert-dev/autocert/dnsproviders/route53"  // Amazon Route 53
)

func init() { registerLego() }
