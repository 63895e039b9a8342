package dnsproviders

import (
	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/dnsproviders/legodns"
	"github.com/go-acme/lego/v4/providers/dns/acmedns"
	"github.com/go-acme/lego/v4/providers/dns/bunny"
	"github.com/go-acme/lego/v4/providers/dns/cloudflare"
	"github.com/go-acme/lego/v4/providers/dns/cloudns"
	"github.com/go-acme/lego/v4/providers/dns/desec"
	"github.com/go-acme/lego/v4/providers/dns/digitalocean"
	"github.com/go-acme/lego/v4/providers/dns/dnsimple"
	"github.com/go-acme/lego/v4/providers/dns/duckdns"
	"github.com/go-acme/lego/v4/providers/dns/dynu"
	"github.com/go-acme/lego/v4/providers/dns/exec"
	"github.com/go-acme/lego/v4/providers/dns/gandiv5"
	"github.com/go-acme/lego/v4/providers/dns/gcore"
	"github.com/go-acme/lego/v4/providers/dns/godaddy"
	"github.com/go-acme/lego/v4/providers/dns/hetzner"
	"github.com/go-acme/lego/v4/providers/dns/httpreq"
	"github.com/go-acme/lego/v4/providers/dns/hurricane"
	"github.com/go-acme/lego/v4/providers/dns/infomaniak"
	"github.com/go-acme/lego/v4/providers/dns/inwx"
	"github.com/go-acme/lego/v4/providers/dns/ionos"
	"github.com/go-acme/lego/v4/providers/dns/linode"
	"github.com/go-acme/lego/v4/providers/dns/luadns"
	"github.com/go-acme/lego/v4/providers/dns/namecheap"
	"github.com/go-acme/lego/v4/providers/dns/namesilo"
	"github.com/go-acme/lego/v4/providers/dns/netcup"
	"github.com/go-acme/lego/v4/providers/dns/netlify"
	"github.com/go-acme/lego/v4/providers/dns/njalla"
	"github.com/go-acme/lego/v4/providers/dns/ovh"
	"github.com/go-acme/lego/v4/providers/dns/pdns"
	"github.com/go-acme/lego/v4/providers/dns/porkbun"
	"github.com/go-acme/lego/v4/providers/dns/rfc2136"
	"github.com/go-acme/lego/v4/providers/dns/transip"
	"github.com/go-acme/lego/v4/providers/dns/vercel"
	"github.com/go-acme/lego/v4/providers/dns/vultr"
)

// One line per provider: lego's constructors, then what lego's source
// does not show (alternative credentials, the names the seed documented,
// constructors that call the API).
func init() {
	register(legodns.New(acmedns.NewDefaultConfig, acmedns.NewDNSProviderConfig, legodns.RequireOneOf("api_base storage_path", "api_base storage_base_url")), "acme-dns", "acmedns")
	register(legodns.New(bunny.NewDefaultConfig, bunny.NewDNSProviderConfig), "bunny")
	register(legodns.New(cloudflare.NewDefaultConfig, cloudflare.NewDNSProviderConfig, legodns.RequireOneOf("auth_token", "auth_email auth_key"), legodns.Alias("auth_token", "CF_API_TOKEN")), "cloudflare")
	register(legodns.New(cloudns.NewDefaultConfig, cloudns.NewDNSProviderConfig, legodns.RequireOneOf("auth_id auth_password", "sub_auth_id auth_password")), "cloudns")
	register(legodns.New(desec.NewDefaultConfig, desec.NewDNSProviderConfig), "desec")
	register(legodns.New(digitalocean.NewDefaultConfig, digitalocean.NewDNSProviderConfig, legodns.Alias("auth_token", "DO_API_TOKEN")), "digitalocean")
	register(legodns.New(dnsimple.NewDefaultConfig, dnsimple.NewDNSProviderConfig, legodns.RequireOneOf("access_token")), "dnsimple")
	register(legodns.New(duckdns.NewDefaultConfig, duckdns.NewDNSProviderConfig), "duckdns")
	register(legodns.New(dynu.NewDefaultConfig, dynu.NewDNSProviderConfig), "dynu")
	register(legodns.New(exec.NewDefaultConfig, exec.NewDNSProviderConfig), "exec")
	register(legodns.New(gandiv5.NewDefaultConfig, gandiv5.NewDNSProviderConfig, legodns.RequireOneOf("personal_access_token", "api_key")), "gandiv5")
	register(legodns.New(gcore.NewDefaultConfig, gcore.NewDNSProviderConfig), "gcore")
	register(legodns.New(godaddy.NewDefaultConfig, godaddy.NewDNSProviderConfig, legodns.Alias("api_key", "GD_API_KEY"), legodns.Alias("api_secret", "GD_API_SECRET")), "godaddy")
	register(legodns.New(hetzner.NewDefaultConfig, hetzner.NewDNSProviderConfig, legodns.RequireOneOf("api_token", "api_key")), "hetzner")
	register(legodns.New(httpreq.NewDefaultConfig, httpreq.NewDNSProviderConfig), "httpreq")
	register(legodns.New(hurricane.NewDefaultConfig, hurricane.NewDNSProviderConfig), "hurricane")
	register(legodns.New(infomaniak.NewDefaultConfig, infomaniak.NewDNSProviderConfig), "infomaniak")
	register(legodns.New(inwx.NewDefaultConfig, inwx.NewDNSProviderConfig, legodns.Lazy()), "inwx")
	register(legodns.New(ionos.NewDefaultConfig, ionos.NewDNSProviderConfig), "ionos")
	register(legodns.New(linode.NewDefaultConfig, linode.NewDNSProviderConfig), "linode", "linodev4")
	register(legodns.New(luadns.NewDefaultConfig, luadns.NewDNSProviderConfig), "luadns")
	register(legodns.New(namecheap.NewDefaultConfig, namecheap.NewDNSProviderConfig, legodns.Lazy()), "namecheap")
	register(legodns.New(namesilo.NewDefaultConfig, namesilo.NewDNSProviderConfig), "namesilo")
	register(legodns.New(netcup.NewDefaultConfig, netcup.NewDNSProviderConfig), "netcup")
	register(legodns.New(netlify.NewDefaultConfig, netlify.NewDNSProviderConfig), "netlify")
	register(legodns.New(njalla.NewDefaultConfig, njalla.NewDNSProviderConfig), "njalla")
	register(legodns.New(ovh.NewDefaultConfig, ovh.NewDNSProviderConfig, legodns.RequireOneOf("api_endpoint application_key application_secret consumer_key", "api_endpoint oauth2_config.client_id oauth2_config.client_secret", "api_endpoint access_token"), legodns.Alias("application_key", "OVH_APP_KEY"), legodns.Alias("application_secret", "OVH_APP_SECRET")), "ovh")
	register(legodns.New(pdns.NewDefaultConfig, pdns.NewDNSProviderConfig), "pdns")
	register(legodns.New(porkbun.NewDefaultConfig, porkbun.NewDNSProviderConfig), "porkbun")
	register(legodns.New(rfc2136.NewDefaultConfig, rfc2136.NewDNSProviderConfig), "rfc2136", "dnsupdate")
	register(legodns.New(transip.NewDefaultConfig, transip.NewDNSProviderConfig), "transip")
	register(legodns.New(vercel.NewDefaultConfig, vercel.NewDNSProviderConfig), "vercel")
	register(legodns.New(vultr.NewDefaultConfig, vultr.NewDNSProviderConfig), "vultr")
}

// register makes f available under each of names.
func register(f autocert.DNSProviderFactory, names ...string) {
	for _, n := range names {
		autocert.RegisterProvider(n, f)
	}
}
