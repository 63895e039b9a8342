// Package legodns turns a DNS provider package of lego
// (github.com/go-acme/lego/v4/providers/dns/...) into an autocert DNS
// provider configured from the options of a config block.
//
// New takes the package's NewDefaultConfig and NewDNSProviderConfig
// functions and returns a Factory to register with
// autocert.RegisterProvider. Nothing is written per provider: the option
// keys are found by reflection over the package's Config struct, and what
// reflection cannot see (which fields lego demands, which environment
// variables lego reads for each field) comes from a table generated from
// lego's source at the version in go.mod.
//
// # Option keys
//
// Each exported field of the Config struct is an option under the
// snake_case form of its name: AuthToken is auth_token, APIKey is api_key,
// TTL is ttl, PropagationTimeout is propagation_timeout. The environment
// variables lego reads for a field are accepted as aliases of its key
// (cloudflare's auth_token can be written CF_DNS_API_TOKEN or
// CLOUDFLARE_DNS_API_TOKEN).
//
// Values are strings in the config file and are converted to the field's
// type:
//
//   - strings as they are;
//   - booleans as accepted by strconv.ParseBool (true, false, 1, 0...);
//   - integers and floats in decimal;
//   - durations as Go durations ("2m", "90s") or as a whole number of
//     seconds ("120"), the form of lego's environment variables;
//   - URLs (a *url.URL field) as absolute URLs with a scheme and a host;
//   - lists of strings as comma-separated values ("a.example,b.example");
//   - maps of strings as comma-separated key:value pairs.
//
// A field holding an *http.Client is the key http_timeout: the client's
// overall timeout, a duration. A field holding a struct (or a pointer to
// one) contributes its own fields under the field's key and a dot: ovh's
// OAuth2Config.ClientID is oauth2_config.client_id. Fields of other types
// (SDK clients, functions) are not options.
//
// Defaults come from lego's NewDefaultConfig, which reads lego's
// environment variables of the provider (CLOUDFLARE_TTL...); options
// override them.
//
// # Validation
//
// ValidateOptions (called by autocert.Config.Validate) reports every
// problem at once: an unknown key (with the valid keys), a key given twice
// under two spellings, a value that does not convert (naming the key and
// the expected form), and missing required keys (naming them, with their
// aliases). It never contacts the network, never calls lego's constructor
// and never quotes a value.
package legodns
