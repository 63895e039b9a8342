package autocert

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/lego"
)

// Config is the autocert block of a configuration file: the main
// certificate and, in Extra, more certificates that inherit its settings.
// Keys are snake_case in YAML and JSON.
type Config struct {
	// Email is the ACME account contact.
	Email string `json:"email,omitempty" yaml:"email,omitempty"`
	// Domains are the names to certify; "*.example.com" is allowed.
	Domains []string `json:"domains,omitempty" yaml:"domains,omitempty"`
	// CertPath is where the PEM certificate chain is written (mode 0644).
	CertPath string `json:"cert_path,omitempty" yaml:"cert_path,omitempty"`
	// KeyPath is where the PEM private key is written (mode 0600).
	KeyPath string `json:"key_path,omitempty" yaml:"key_path,omitempty"`
	// BundlePath, when set, is a file written with the private key and
	// then the full chain, in PEM (mode 0600), in one atomic rename: a
	// server that reads it (HAProxy, Postfix) never sees a certificate
	// with another certificate's key. Never inherited by an extra.
	BundlePath string `json:"bundle_path,omitempty" yaml:"bundle_path,omitempty"`
	// Extra lists more certificates; each inherits every key it leaves
	// unset, except CertPath and KeyPath (its own, required), BundlePath
	// (its own, optional) and Extra (no nesting). See MergeExtraConfig.
	Extra []ConfigExtra `json:"extra,omitempty" yaml:"extra,omitempty"`
	// ACMEKeyPath is the ACME account key file (mode 0600).
	ACMEKeyPath string `json:"acme_key_path,omitempty" yaml:"acme_key_path,omitempty"`
	// Provider is "local", "pseudo" or a registered DNS provider name.
	Provider string `json:"provider,omitempty" yaml:"provider,omitempty"`
	// Options are the DNS provider's settings and credentials. Their
	// values are never printed.
	Options Options `json:"options,omitempty" yaml:"options,omitempty"`
	// Resolvers are the DNS servers, as host[:port], asked every DNS
	// question about the certificate's challenges: CNAME following, the
	// zone of the challenge record, the propagation check. When empty,
	// the system's resolvers (/etc/resolv.conf) are asked, and lego's own
	// propagation check runs. See the README, "DNS challenge delegation
	// and split horizon", for what lego asks with its process-wide list.
	Resolvers []string `json:"resolvers,omitempty" yaml:"resolvers,omitempty"`
	// DNSChallengeAlias, when set, is a domain under which the DNS-01 TXT
	// record of every name of the certificate is written:
	// _acme-challenge.<alias>, instead of _acme-challenge.<name>. Each
	// _acme-challenge.<name> must then be a CNAME to
	// _acme-challenge.<alias>, so that the DNS provider needs write access
	// to the alias's zone only. The propagation check looks there too.
	DNSChallengeAlias string `json:"dns_challenge_alias,omitempty" yaml:"dns_challenge_alias,omitempty"`
	// DNSFollowCNAME says whether a CNAME at the challenge record's name
	// (_acme-challenge.<name>, or of the alias) is followed, with the
	// certificate's resolvers, so that the record is written and checked
	// at the end of the chain (8 CNAMEs at most; a loop is an error).
	// Unset means true; false writes and checks the record at the name
	// itself, leaving any CNAME to the DNS provider and the resolvers.
	DNSFollowCNAME *bool `json:"dns_follow_cname,omitempty" yaml:"dns_follow_cname,omitempty"`
	// CA names a well-known ACME directory (see KnownCAs): letsencrypt,
	// letsencrypt-staging, zerossl, google or google-staging; an
	// alternative to ca_dir_url, which Validate fills in from it.
	CA string `json:"ca,omitempty" yaml:"ca,omitempty"`
	// CADirURL is the ACME directory URL; Let's Encrypt when empty.
	CADirURL string `json:"ca_dir_url,omitempty" yaml:"ca_dir_url,omitempty"`
	// CACerts are PEM files of roots trusted for the CA's HTTPS.
	CACerts []string `json:"ca_certs,omitempty" yaml:"ca_certs,omitempty"`
	// EABKid is the External Account Binding key ID.
	EABKid string `json:"eab_kid,omitempty" yaml:"eab_kid,omitempty"`
	// EABHmac is the External Account Binding HMAC key, base64url.
	EABHmac Redacted `json:"eab_hmac,omitempty" yaml:"eab_hmac,omitempty"`
	// CertificateKeyType is EC256 (default), EC384, RSA2048, RSA3072,
	// RSA4096 or RSA8192; Validate also accepts P256, P384, 2048, 3072,
	// 4096 and 8192 (lego's and GoDoxy's names) and normalises them.
	CertificateKeyType string `json:"certificate_key_type,omitempty" yaml:"certificate_key_type,omitempty"`
	// Profile is the ACME certificate profile to ask for (for example
	// "shortlived" at Let's Encrypt); the CA's default when empty.
	Profile string `json:"profile,omitempty" yaml:"profile,omitempty"`
	// Issuers, when set, are the CAs the certificate is ordered from, in
	// order: an attempt orders from the first, and from the next when one
	// fails on the CA's side (see Issuer). It replaces the single-CA keys
	// ca, ca_dir_url, ca_certs, eab_kid, eab_hmac, profile and
	// acme_key_path, which then must be unset; without it those keys are
	// a list of one issuer. An extra that sets it uses its own list, one
	// that sets ca or ca_dir_url uses that one CA, others inherit the main
	// block's list.
	Issuers []Issuer `json:"issuers,omitempty" yaml:"issuers,omitempty"`
	// Storage says where certificates, keys and records are kept: the
	// files named above when unset. Main block only.
	Storage *StorageConfig `json:"storage,omitempty" yaml:"storage,omitempty"`
}

// Issuer is one CA of Config.Issuers: where to order, with which account.
//
// An attempt to obtain a certificate orders from the first issuer. When
// the order fails there for a reason of that CA, the next issuer is asked
// in the same attempt; when it fails for a reason that any CA would share,
// the attempt ends. The next attempt (a retry, the next renewal) starts
// from the first issuer again. The classes:
//
//	failure                                              next issuer?
//	directory unreachable, connection refused, timeout   yes
//	directory answers an HTTP error or no JSON           yes
//	externalAccountRequired without eab_kid (directory)  yes, with the reason recorded
//	account lookup or registration refused (bad EAB      yes
//	  key, accountDoesNotExist twice, unauthorized or
//	  externalAccountRequired on newAccount)
//	rateLimited (the CA's answer, after its Retry-After) yes
//	serverInternal, any HTTP 5xx, badNonce (after       yes
//	  lego's own retries)
//	userActionRequired (new terms of service)            yes
//	invalidProfile (the profile is per issuer)           yes
//	network error in the middle of an order              yes
//	the pacing of a later issuer has no room now         skipped, reason recorded
//	validation: unauthorized, dns, caa, connection,      no: the names would fail anywhere
//	  incorrectResponse, tls on an authorization
//	rejectedIdentifier, unsupportedIdentifier, badCSR    no
//	the DNS provider or the propagation check fails      no
//	anything else (malformed, an unknown error)          no
//	the caller gave up (context ended)                   no
//
// Each issuer has its own ACME account, registered at its CA on first use,
// its key at acme_key_path; and its own pacing (the rate limits are per
// CA).
type Issuer struct {
	// CA names a well-known ACME directory (see KnownCAs); an
	// alternative to CADirURL, which Validate fills in from it.
	CA string `json:"ca,omitempty" yaml:"ca,omitempty"`
	// CADirURL is the ACME directory URL. One of CA and CADirURL is
	// required.
	CADirURL string `json:"ca_dir_url,omitempty" yaml:"ca_dir_url,omitempty"`
	// CACerts are PEM files of roots trusted for the CA's HTTPS.
	CACerts []string `json:"ca_certs,omitempty" yaml:"ca_certs,omitempty"`
	// EABKid is the External Account Binding key ID at this CA.
	EABKid string `json:"eab_kid,omitempty" yaml:"eab_kid,omitempty"`
	// EABHmac is the External Account Binding HMAC key, base64url; never
	// printed.
	EABHmac Redacted `json:"eab_hmac,omitempty" yaml:"eab_hmac,omitempty"`
	// Profile is the ACME certificate profile to ask of this CA.
	Profile string `json:"profile,omitempty" yaml:"profile,omitempty"`
	// ACMEKeyPath is the account key at this CA; Validate fills in the
	// same per-CA default as for Config.ACMEKeyPath.
	ACMEKeyPath string `json:"acme_key_path,omitempty" yaml:"acme_key_path,omitempty"`
}

// ConfigExtra is one entry of Config.Extra.
type ConfigExtra Config

// Version is the version of this library. It is sent to the CA in the
// User-Agent header of ACME requests, as "autocert/" + Version.
const Version = "0.1.0"

// Defaults that Validate fills in for the keys a Config leaves unset.
const (
	DefaultProvider    = ProviderLocal
	DefaultCertPath    = "certs/cert.crt"
	DefaultKeyPath     = "certs/priv.key"
	DefaultACMEKeyPath = "certs/acme.key" // for Let's Encrypt; see Validate for other CAs
	DefaultCADirURL    = lego.LEDirectoryProduction
	DefaultKeyType     = "EC256"
)

// keyTypeNames lists the accepted certificate_key_type values, for messages.
const keyTypeNames = "EC256, EC384, RSA2048, RSA3072, RSA4096 or RSA8192 (also written P256, P384, 2048, 3072, 4096, 8192)"

// canonicalKeyType returns the certificate_key_type name, in any case,
// as autocert writes it: EC256, EC384, RSA2048, RSA3072, RSA4096 or
// RSA8192. It also accepts lego's and GoDoxy's names for the same types:
// P256, P384, 2048, 3072, 4096 and 8192.
func canonicalKeyType(name string) (string, bool) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "EC256", "P256":
		return "EC256", true
	case "EC384", "P384":
		return "EC384", true
	case "RSA2048", "2048":
		return "RSA2048", true
	case "RSA3072", "3072":
		return "RSA3072", true
	case "RSA4096", "4096":
		return "RSA4096", true
	case "RSA8192", "8192":
		return "RSA8192", true
	}
	return "", false
}

// legoKeyType maps a certificate_key_type value, in any of the spellings
// canonicalKeyType accepts, to lego's key type.
func legoKeyType(name string) (certcrypto.KeyType, bool) {
	name, ok := canonicalKeyType(name)
	if !ok {
		return "", false
	}
	switch name {
	case "EC256":
		return certcrypto.EC256, true
	case "EC384":
		return certcrypto.EC384, true
	case "RSA2048":
		return certcrypto.RSA2048, true
	case "RSA3072":
		return certcrypto.RSA3072, true
	case "RSA4096":
		return certcrypto.RSA4096, true
	case "RSA8192":
		return certcrypto.RSA8192, true
	}
	return "", false
}

// defaultACMEKeyPath is the account key file of the CA at caDirURL: one
// file per CA, the seed's certs/acme.key for Let's Encrypt.
func defaultACMEKeyPath(caDirURL string) string {
	if caDirURL == "" || caDirURL == DefaultCADirURL {
		return DefaultACMEKeyPath
	}
	sum := sha256.Sum256([]byte(caDirURL))
	return "certs/acme_" + hex.EncodeToString(sum[:8]) + ".key"
}

// A FieldError is one problem found in a configuration: the key it concerns
// and what is wrong with it. Validate, LoadConfig and ParseConfig return
// every FieldError they find joined with errors.Join; each wraps
// ErrInvalidConfig, and Err when set. The message never holds the value of
// a secret (an option, eab_hmac).
type FieldError struct {
	File string // the configuration file, when known
	Line int    // 1-based line in the file, 0 when unknown
	Path string // the key, such as "extra[1].domains[0]"; "" for the whole document
	Msg  string // what is wrong
	Err  error  // a more specific cause, such as ErrUnknownProvider, or nil
}

// Error returns "file:line: path: message", leaving out what is unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns ErrInvalidConfig and, when set, Err.
func (e *FieldError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidConfig}
	}
	return []error{ErrInvalidConfig, e.Err}
}

// joinFieldErrors returns the problems as one error, nil when there are none.
func joinFieldErrors(problems []*FieldError) error {
	if len(problems) == 0 {
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// MergeExtraConfig returns the configuration of an extra certificate: the
// extra's own keys, and for every key it leaves unset (an empty string, a
// nil list or map, dns_follow_cname absent) the main block's value:
// dns_challenge_alias and dns_follow_cname are inherited like the others.
// The exceptions:
//
//   - cert_path, key_path and bundle_path are always the extra's own;
//   - extra is never inherited (extras do not nest);
//   - options: an extra that sets options uses its own map entirely,
//     never mixed with the main block's, so that the credentials of two
//     DNS accounts are not combined; an empty map (options: {}) counts as
//     unset and inherits the main block's options, as in GoDoxy, unless
//     the extra names another DNS provider than the main block's (whose
//     credentials are not for it): it then has no options;
//   - an extra that names another CA (a ca_dir_url that differs from the
//     main block's) does not inherit eab_kid and eab_hmac, which belong to
//     the main block's CA, nor the main block's default account key: its
//     acme_key_path defaults to that of its own CA (see Validate). An
//     acme_key_path the main block sets explicitly is inherited;
//   - issuers: an extra that sets issuers uses its own list and none of
//     the main block's single-CA keys (ca, ca_dir_url, ca_certs, eab_kid,
//     eab_hmac, profile, acme_key_path); one that sets ca or ca_dir_url
//     does not inherit the main block's issuers; others inherit them.
//
// Lists, maps and dns_follow_cname of the result are copies. Call it on a validated main
// block to get a complete, validated configuration.
func MergeExtraConfig(mainCfg *Config, extraCfg *ConfigExtra) ConfigExtra {
	merged := ConfigExtra(*mainCfg)
	merged.Extra = nil // never copied: an extra has no extras
	mv := reflect.ValueOf(&merged).Elem()
	ev := reflect.ValueOf(extraCfg).Elem()
	for i := range mv.NumField() {
		if f := ev.Field(i); !f.IsZero() {
			mv.Field(i).Set(f)
		}
		cloneField(mv.Field(i))
	}
	merged.Extra = nil
	merged.CertPath, merged.KeyPath, merged.BundlePath = extraCfg.CertPath, extraCfg.KeyPath, extraCfg.BundlePath
	merged.Options = maps.Clone(mainCfg.Options)
	otherProvider := extraCfg.Provider != "" && !strings.EqualFold(strings.TrimSpace(extraCfg.Provider), strings.TrimSpace(mainCfg.Provider))
	if len(extraCfg.Options) > 0 || extraCfg.Options != nil && otherProvider {
		merged.Options = maps.Clone(extraCfg.Options)
	}
	merged.Issuers = cloneIssuers(merged.Issuers)
	if extraCfg.CA != "" || extraCfg.CADirURL != "" {
		merged.CA = extraCfg.CA // the main block's name is for the main block's URL
	}
	switch {
	case extraCfg.Issuers != nil:
		merged.CA, merged.CADirURL, merged.CACerts = extraCfg.CA, extraCfg.CADirURL, slices.Clone(extraCfg.CACerts)
		merged.EABKid, merged.EABHmac = extraCfg.EABKid, extraCfg.EABHmac
		merged.Profile, merged.ACMEKeyPath = extraCfg.Profile, extraCfg.ACMEKeyPath
		return merged
	case mainCfg.Issuers != nil && (extraCfg.CA != "" || extraCfg.CADirURL != ""):
		merged.Issuers = nil
		if extraCfg.ACMEKeyPath == "" {
			merged.ACMEKeyPath = defaultACMEKeyPath(strings.TrimSpace(merged.CADirURL))
		}
		return merged
	}
	otherCA := extraCfg.CADirURL != "" && !sameCA(extraCfg.CADirURL, mainCfg.CADirURL)
	if otherCA {
		merged.EABKid, merged.EABHmac = extraCfg.EABKid, extraCfg.EABHmac
		if extraCfg.ACMEKeyPath == "" && (mainCfg.ACMEKeyPath == "" || mainCfg.ACMEKeyPath == defaultACMEKeyPath(mainCfg.CADirURL)) {
			merged.ACMEKeyPath = defaultACMEKeyPath(strings.TrimSpace(extraCfg.CADirURL))
		}
	}
	return merged
}

// sameCA reports whether two ca_dir_url values name the same CA, an empty
// one meaning the default.
func sameCA(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" {
		a = DefaultCADirURL
	}
	if b == "" {
		b = DefaultCADirURL
	}
	return a == b
}

// clone returns a deep copy of cfg: a Provider keeps its own, so that the
// caller may change or validate cfg again while it runs.
func (cfg *Config) clone() *Config {
	c := *cfg
	cv := reflect.ValueOf(&c).Elem()
	for i := range cv.NumField() {
		cloneField(cv.Field(i))
	}
	for i := range c.Extra {
		ev := reflect.ValueOf(&c.Extra[i]).Elem()
		for j := range ev.NumField() {
			cloneField(ev.Field(j))
		}
		c.Extra[i].Issuers = cloneIssuers(c.Extra[i].Issuers)
		if s := c.Extra[i].Storage; s != nil {
			sc := *s
			c.Extra[i].Storage = &sc
		}
	}
	c.Issuers = cloneIssuers(c.Issuers)
	if c.Storage != nil {
		sc := *c.Storage
		c.Storage = &sc
	}
	return &c
}

// cloneIssuers returns a deep copy of list (nil stays nil).
func cloneIssuers(list []Issuer) []Issuer {
	if list == nil {
		return nil
	}
	out := slices.Clone(list)
	for i := range out {
		out[i].CACerts = slices.Clone(out[i].CACerts)
	}
	return out
}

// cloneField replaces a slice or map held in v, or a *bool, by a copy.
func cloneField(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() && v.Elem().Kind() == reflect.Bool {
			c := reflect.New(v.Type().Elem())
			c.Elem().Set(v.Elem())
			v.Set(c)
		}
	case reflect.Slice:
		if !v.IsNil() {
			c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(c, v)
			v.Set(c)
		}
	case reflect.Map:
		if !v.IsNil() {
			c := reflect.MakeMapWithSize(v.Type(), v.Len())
			iter := v.MapRange()
			for iter.Next() {
				c.SetMapIndex(iter.Key(), iter.Value())
			}
			v.Set(c)
		}
	}
}

// secrets returns the secrets of the block: the DNS provider's option
// values, the EAB HMAC key, and the storage DSN with the password it
// holds, and the EAB HMAC key of every issuer. They are scrubbed from every message that could quote them.
func (cfg *Config) secrets() []string {
	out := append(optionValues(cfg.Options), cfg.EABHmac.Value())
	for _, is := range cfg.Issuers {
		out = append(out, is.EABHmac.Value())
	}
	if cfg.Storage != nil {
		out = append(out, redact.DSNSecrets(cfg.Storage.DSN.Value())...)
	}
	return out
}

// fingerprint sums up what decides how the certificate of cfg (a merged
// block) is ordered: where, for which names, with which key, through which
// DNS provider and credentials. A failure record keeps it, so that a start
// after the user changed any of it retries at once. Only a truncated hash
// is kept, in a 0600 file.
func (cfg *Config) fingerprint() string {
	h := sha256.New()
	field := func(name string, vals ...string) {
		fmt.Fprintf(h, "%s=%d", name, len(vals))
		for _, v := range vals {
			fmt.Fprintf(h, ":%d:%s", len(v), v)
		}
		h.Write([]byte{0})
	}
	names := make([]string, len(cfg.Domains))
	for i, d := range cfg.Domains {
		names[i] = strings.ToLower(d)
	}
	slices.Sort(names)
	field("domains", names...)
	field("provider", cfg.Provider)
	keys := make([]string, 0, len(cfg.Options))
	for k := range cfg.Options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field("option", k, cfg.Options[k].Value())
	}
	field("resolvers", cfg.Resolvers...)
	field("ca", cfg.CADirURL)
	field("ca_certs", cfg.CACerts...)
	field("account", cfg.Email, cfg.ACMEKeyPath, cfg.EABKid, cfg.EABHmac.Value())
	field("key_type", cfg.CertificateKeyType)
	field("profile", cfg.Profile)
	// Only when set, so that the fingerprints of configurations written
	// before these keys existed stay the same.
	if cfg.DNSChallengeAlias != "" {
		field("dns_challenge_alias", strings.ToLower(cfg.DNSChallengeAlias))
	}
	if !cfg.followCNAME() {
		field("dns_follow_cname", "false")
	}
	// The issuers as a set: reordering them changes where the next
	// attempt starts, not what a failure was about, so it neither retries
	// at once nor makes the certificate served unfit.
	var issuers []string
	for _, is := range cfg.Issuers {
		var b strings.Builder
		for _, v := range append([]string{is.CADirURL, is.EABKid, is.EABHmac.Value(), is.Profile, is.ACMEKeyPath}, is.CACerts...) {
			fmt.Fprintf(&b, "%d:%s", len(v), v)
		}
		issuers = append(issuers, b.String())
	}
	if len(issuers) > 0 {
		slices.Sort(issuers)
		field("issuers", issuers...)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// followCNAME reports whether CNAMEs at the challenge record's name are
// followed: dns_follow_cname, true when unset.
func (cfg *Config) followCNAME() bool {
	return cfg.DNSFollowCNAME == nil || *cfg.DNSFollowCNAME
}
