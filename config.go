package autocert

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/autocert-dev/autocert/internal/suggest"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/lego"
	"golang.org/x/net/idna"
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
	// Extra lists more certificates; each inherits every key it leaves
	// unset, except CertPath and KeyPath (its own, required) and Extra (no
	// nesting). See MergeExtraConfig.
	Extra []ConfigExtra `json:"extra,omitempty" yaml:"extra,omitempty"`
	// ACMEKeyPath is the ACME account key file (mode 0600).
	ACMEKeyPath string `json:"acme_key_path,omitempty" yaml:"acme_key_path,omitempty"`
	// Provider is "local", "pseudo" or a registered DNS provider name.
	Provider string `json:"provider,omitempty" yaml:"provider,omitempty"`
	// Options are the DNS provider's settings and credentials. Their
	// values are never printed.
	Options Options `json:"options,omitempty" yaml:"options,omitempty"`
	// Resolvers are the recursive DNS servers asked during the propagation
	// check, as host[:port].
	Resolvers []string `json:"resolvers,omitempty" yaml:"resolvers,omitempty"`
	// CADirURL is the ACME directory URL; Let's Encrypt when empty.
	CADirURL string `json:"ca_dir_url,omitempty" yaml:"ca_dir_url,omitempty"`
	// CACerts are PEM files of roots trusted for the CA's HTTPS.
	CACerts []string `json:"ca_certs,omitempty" yaml:"ca_certs,omitempty"`
	// EABKid is the External Account Binding key ID.
	EABKid string `json:"eab_kid,omitempty" yaml:"eab_kid,omitempty"`
	// EABHmac is the External Account Binding HMAC key, base64url.
	EABHmac Redacted `json:"eab_hmac,omitempty" yaml:"eab_hmac,omitempty"`
	// CertificateKeyType is EC256 (default), EC384, RSA2048, RSA3072 or RSA4096.
	CertificateKeyType string `json:"certificate_key_type,omitempty" yaml:"certificate_key_type,omitempty"`
	// Profile is the ACME certificate profile to ask for (for example
	// "shortlived" at Let's Encrypt); the CA's default when empty.
	Profile string `json:"profile,omitempty" yaml:"profile,omitempty"`
	// Storage says where certificates, keys and records are kept: the
	// files named above when unset. Main block only.
	Storage *StorageConfig `json:"storage,omitempty" yaml:"storage,omitempty"`
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
const keyTypeNames = "EC256, EC384, RSA2048, RSA3072 or RSA4096"

// legoKeyType maps a certificate_key_type value to lego's key type.
func legoKeyType(name string) (certcrypto.KeyType, bool) {
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

// Validate checks the configuration, fills in defaults and normalises
// values in place. It reports every problem at once: the returned error
// joins one *FieldError per problem, each naming its key
// ("extra[1].domains[0]: invalid domain ..."), and wraps ErrInvalidConfig
// (and ErrUnknownProvider for a provider name that is not known).
// Validate is idempotent: calling it again changes nothing. As it modifies
// cfg, it must not run concurrently with other uses of cfg.
//
// Defaults: provider "local"; cert_path "certs/cert.crt"; key_path
// "certs/priv.key"; ca_dir_url Let's Encrypt production; acme_key_path
// "certs/acme.key" for Let's Encrypt production, else
// "certs/acme_<16 hex digits of the SHA-256 of ca_dir_url>.key", so that
// every CA has its own account key; certificate_key_type "EC256".
// Defaults are filled in the main block only: an extra keeps the keys it
// leaves unset empty, and inherits them through MergeExtraConfig.
//
// Normalisation: domains are lowercased, lose a trailing dot and are
// converted to punycode ("bücher.example" becomes
// "xn--bcher-kva.example"); resolvers get port 53 when they have none;
// certificate_key_type is upper-cased; surrounding spaces are removed.
//
// Rules: the provider is "local", "pseudo" or a registered DNS provider
// (an unknown name gets the nearest known one suggested); a DNS provider
// needs a valid email and at least one domain, "pseudo" needs domains;
// a wildcard is only allowed as the whole leftmost label ("*.example.com");
// no domain appears twice in one certificate; every cert_path and key_path
// is used once across the main block and the extras, and by no account
// key; every extra has its own cert_path and key_path and no extra of its
// own; eab_kid and eab_hmac go together, eab_hmac in base64url; ca_certs
// files hold PEM certificates; resolvers are host[:port]; ca_dir_url is an
// https URL; certificate_key_type is EC256, EC384, RSA2048, RSA3072 or
// RSA4096. When the DNS provider's factory implements OptionsValidator,
// its findings are reported under "options". Each extra is checked as
// merged with the main block, under its own path ("extra[N].").
func (cfg *Config) Validate() error {
	if cfg == nil {
		return &FieldError{Msg: "no configuration"}
	}
	return joinFieldErrors(cfg.validate())
}

// validate is Validate returning the problems one by one.
func (cfg *Config) validate() []*FieldError {
	var v validator
	cfg.setDefaults()
	v.normalize(cfg, "")
	mainReported := v.requirements(cfg, "", nil)
	for i := range cfg.Extra {
		e := (*Config)(&cfg.Extra[i])
		p := fmt.Sprintf("extra[%d].", i)
		if len(e.Extra) > 0 {
			v.add(p+"extra", nil, "extras cannot be nested: list every certificate in the main block's extra")
		}
		if e.CertPath == "" {
			v.add(p+"cert_path", nil, "required: every extra certificate needs a cert_path of its own")
		}
		if e.KeyPath == "" {
			v.add(p+"key_path", nil, "required: every extra certificate needs a key_path of its own")
		}
		if e.Storage != nil {
			v.add(p+"storage", nil, "storage is set on the main block only: all certificates share it")
		}
		v.normalize(e, p)
		merged := Config(MergeExtraConfig(cfg, &cfg.Extra[i]))
		v.requirements(&merged, p, func(key string) bool {
			// A problem of a value the extra inherits is reported once,
			// for the main block.
			return mainReported[key] && !e.sets(key)
		})
	}
	v.checkFiles(cfg)
	v.storage(cfg.Storage)
	return v.problems
}

// storage checks the storage block: a type whenever a DSN is given (a
// DSN alone would silently mean the file storage), a known type, and a
// DSN for any type but the file storage, which takes none.
func (v *validator) storage(sc *StorageConfig) {
	if sc == nil {
		return
	}
	sc.Type = strings.ToLower(strings.TrimSpace(sc.Type))
	if sc.Type == "" {
		if sc.DSN != "" {
			v.add("storage.type", nil, "required when storage.dsn is set: the type of the store it points to, such as postgres")
			return
		}
		sc.Type = StorageTypeFile
	}
	if !slices.Contains(storageTypes(), sc.Type) {
		v.add("storage.type", nil, "%s", unknownStorageType(sc.Type))
		return
	}
	switch {
	case sc.Type == StorageTypeFile && sc.DSN != "":
		v.add("storage.dsn", nil, "not used by storage type file, which keeps everything in the files of the configuration (remove it, or set the storage.type it is for)")
	case sc.Type != StorageTypeFile && sc.DSN == "":
		v.add("storage.dsn", nil, "required for storage type %s", sc.Type)
	}
}

// setDefaults fills in the defaults of the main block.
func (cfg *Config) setDefaults() {
	if strings.TrimSpace(cfg.Provider) == "" {
		cfg.Provider = DefaultProvider
	}
	if cfg.CertPath == "" {
		cfg.CertPath = DefaultCertPath
	}
	if cfg.KeyPath == "" {
		cfg.KeyPath = DefaultKeyPath
	}
	cfg.CADirURL = strings.TrimSpace(cfg.CADirURL)
	if cfg.ACMEKeyPath == "" {
		cfg.ACMEKeyPath = defaultACMEKeyPath(cfg.CADirURL)
	}
	if cfg.CADirURL == "" {
		cfg.CADirURL = DefaultCADirURL
	}
	if strings.TrimSpace(cfg.CertificateKeyType) == "" {
		cfg.CertificateKeyType = DefaultKeyType
	}
}

// sets reports whether the block itself sets the key named in a
// requirement problem (rather than inheriting it).
func (cfg *Config) sets(key string) bool {
	switch key {
	case "email":
		return cfg.Email != ""
	case "domains":
		return cfg.Domains != nil
	case "options":
		return cfg.Options != nil || cfg.Provider != ""
	case "eab_kid", "eab_hmac":
		return cfg.EABKid != "" || cfg.EABHmac != ""
	}
	return false
}

// validator collects the problems of a configuration.
type validator struct {
	problems []*FieldError
}

func (v *validator) add(path string, cause error, format string, args ...any) {
	v.problems = append(v.problems, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Err: cause})
}

// normalize checks and normalises the values a block sets itself; p is
// the block's path prefix ("" or "extra[N].").
func (v *validator) normalize(c *Config, p string) {
	if c.Provider != "" {
		c.Provider = v.provider(c.Provider, p+"provider")
	}
	if c.Email != "" {
		c.Email = strings.TrimSpace(c.Email)
		if err := checkEmail(c.Email); err != nil {
			v.add(p+"email", nil, "%v", err)
		}
	}
	seen := make(map[string]int, len(c.Domains))
	for i, d := range c.Domains {
		path := fmt.Sprintf("%sdomains[%d]", p, i)
		n, err := normalizeDomain(d)
		if err != nil {
			v.add(path, nil, "invalid domain %q: %v", d, err)
			continue
		}
		c.Domains[i] = n
		if first, dup := seen[n]; dup {
			v.add(path, nil, "duplicate domain %q (also %sdomains[%d])", n, p, first)
			continue
		}
		seen[n] = i
	}
	for i, r := range c.Resolvers {
		n, err := normalizeResolver(r)
		if err != nil {
			v.add(fmt.Sprintf("%sresolvers[%d]", p, i), nil, "invalid resolver %q: %v", r, err)
			continue
		}
		c.Resolvers[i] = n
	}
	if c.CADirURL != "" {
		c.CADirURL = strings.TrimSpace(c.CADirURL)
		if err := checkHTTPSURL(c.CADirURL); err != nil {
			v.add(p+"ca_dir_url", nil, "%v", err)
		}
	}
	for i, f := range c.CACerts {
		if _, err := readCACertFile(f); err != nil {
			v.add(fmt.Sprintf("%sca_certs[%d]", p, i), nil, "%v", err)
		}
	}
	c.EABKid = strings.TrimSpace(c.EABKid)
	if c.EABHmac != "" {
		c.EABHmac = Redacted(strings.TrimSpace(c.EABHmac.Value()))
		if !validBase64URL(c.EABHmac.Value()) {
			v.add(p+"eab_hmac", nil, "not a base64url key (the value is not shown)")
		}
	}
	if c.CertificateKeyType != "" {
		c.CertificateKeyType = strings.ToUpper(strings.TrimSpace(c.CertificateKeyType))
		if _, ok := legoKeyType(c.CertificateKeyType); !ok {
			v.add(p+"certificate_key_type", nil, "unknown key type %q: use %s", c.CertificateKeyType, keyTypeNames)
		}
	}
	c.Profile = strings.TrimSpace(c.Profile)
}

// provider checks a provider name and returns it normalised.
func (v *validator) provider(name, path string) string {
	name = strings.TrimSpace(name)
	if knownProvider(name) {
		return name
	}
	if lower := strings.ToLower(name); knownProvider(lower) {
		return lower
	}
	registered := Providers()
	msg := fmt.Sprintf("unknown provider %q", name)
	if s := suggest.Nearest(name, append([]string{ProviderLocal, ProviderPseudo}, registered...)); s != "" {
		msg += " (did you mean " + s + "?)"
	} else if len(registered) == 0 {
		msg += ": use local, pseudo or a DNS provider (none is registered: import a DNS provider package or call RegisterProvider)"
	} else {
		const shown = 10
		list := registered
		more := ""
		if len(list) > shown {
			list, more = list[:shown], fmt.Sprintf(" and %d more", len(registered)-shown)
		}
		msg += fmt.Sprintf(": use local, pseudo or a registered DNS provider (%s%s)", strings.Join(list, ", "), more)
	}
	v.add(path, ErrUnknownProvider, "%s", msg)
	return name
}

func knownProvider(name string) bool {
	if name == ProviderLocal || name == ProviderPseudo {
		return true
	}
	_, ok := LookupProvider(name)
	return ok
}

// requirements checks what the block's provider needs, on the block as
// merged with the main one. A problem whose key skip accepts is not
// reported. It returns the keys that have a problem.
func (v *validator) requirements(m *Config, p string, skip func(key string) bool) map[string]bool {
	found := make(map[string]bool)
	report := func(key string, cause error, format string, args ...any) {
		found[key] = true
		if skip == nil || !skip(key) {
			v.add(p+key, cause, format, args...)
		}
	}
	switch m.Provider {
	case ProviderLocal:
		// Existing files are served; cert_path and key_path are always set
		// (defaults for the main block, required for an extra).
	case ProviderPseudo:
		if len(m.Domains) == 0 {
			report("domains", nil, "required by provider pseudo: the names of the self-signed certificate")
		}
	default:
		if m.Email == "" {
			report("email", nil, "required by provider %s: the contact of the ACME account", m.Provider)
		}
		if len(m.Domains) == 0 {
			report("domains", nil, "required by provider %s: at least one name to certify", m.Provider)
		}
		if m.EABKid != "" && m.EABHmac == "" {
			report("eab_hmac", nil, "required when eab_kid is set")
		}
		if m.EABKid == "" && m.EABHmac != "" {
			report("eab_kid", nil, "required when eab_hmac is set")
		}
		if err := validateOptions(m.Provider, m.Options); err != nil {
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			for _, e := range errs {
				report("options", e, "%s", scrubSecrets(e.Error(), m.Options))
			}
		}
	}
	return found
}

// validateOptions runs the OptionsValidator of the provider's factory,
// when it has one.
func validateOptions(provider string, opts Options) error {
	f, ok := LookupProvider(provider)
	if !ok {
		return nil
	}
	ov, ok := f.(OptionsValidator)
	if !ok {
		return nil
	}
	return ov.ValidateOptions(opts)
}

// scrubSecrets removes option values from a message, should a provider's
// validator quote one despite its contract, in the forms an API reflects
// too (base64, HTTP Basic, hex, URL-escaped, JSON; see package
// internal/redact). Values shorter than four bytes (a TTL, a flag) are
// left alone: they are no secret and replacing them would garble the
// message.
func scrubSecrets(msg string, opts Options) string {
	return redact.New(optionValues(opts)...).Scrub(msg)
}

// optionValues returns the values of opts.
func optionValues(opts Options) []string {
	vals := make([]string, 0, len(opts))
	for _, val := range opts {
		vals = append(vals, val.Value())
	}
	return vals
}

// checkFiles checks that every certificate and key has a file of its own,
// and that no account key shares a file with them.
func (v *validator) checkFiles(cfg *Config) {
	type use struct{ path, file string }
	var uses []use
	blocks := []*Config{cfg}
	prefixes := []string{""}
	for i := range cfg.Extra {
		blocks = append(blocks, (*Config)(&cfg.Extra[i]))
		prefixes = append(prefixes, fmt.Sprintf("extra[%d].", i))
	}
	for i, b := range blocks {
		if b.CertPath != "" {
			uses = append(uses, use{prefixes[i] + "cert_path", b.CertPath})
		}
		if b.KeyPath != "" {
			uses = append(uses, use{prefixes[i] + "key_path", b.KeyPath})
		}
	}
	owner := make(map[string]string, len(uses))
	for _, u := range uses {
		f := filepath.Clean(u.file)
		if first, dup := owner[f]; dup {
			v.add(u.path, nil, "%q is also %s: every certificate and key needs a file of its own", u.file, first)
			continue
		}
		owner[f] = u.path
	}
	checked := make(map[string]bool)
	for i, b := range blocks {
		m := b
		path := "acme_key_path"
		if i > 0 {
			merged := Config(MergeExtraConfig(cfg, &cfg.Extra[i-1]))
			m = &merged
			if b.ACMEKeyPath != "" || m.ACMEKeyPath != cfg.ACMEKeyPath {
				path = prefixes[i] + "acme_key_path"
			}
		}
		if !isACME(m.Provider) || m.ACMEKeyPath == "" || checked[path] {
			continue
		}
		checked[path] = true
		if other, clash := owner[filepath.Clean(m.ACMEKeyPath)]; clash {
			v.add(path, nil, "%q is also %s: the ACME account key needs a file of its own", m.ACMEKeyPath, other)
		}
	}
}

// checkEmail accepts a bare address such as admin@example.com.
func checkEmail(s string) error {
	addr, err := mail.ParseAddress(s)
	if err != nil {
		return fmt.Errorf("invalid address %q: %s", s, strings.TrimPrefix(err.Error(), "mail: "))
	}
	if addr.Name != "" || addr.Address != s {
		return fmt.Errorf("invalid address %q: write the address alone, such as admin@example.com", s)
	}
	return nil
}

// normalizeDomain returns the name in the form certificates hold: ASCII
// (punycode), lowercase, without a trailing dot; "*." only as the whole
// leftmost label.
func normalizeDomain(s string) (string, error) {
	name := strings.TrimSuffix(strings.TrimSpace(s), ".")
	if name == "" {
		return "", errors.New("empty name")
	}
	wildcard := strings.HasPrefix(name, "*.")
	if wildcard {
		name = name[2:]
	}
	if strings.Contains(name, "*") {
		return "", errors.New("a wildcard is only allowed as the whole leftmost label, as in *.example.com")
	}
	if !isASCII(name) {
		converted, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("not a valid internationalised name (%s)", strings.TrimPrefix(err.Error(), "idna: "))
		}
		name = converted
	}
	name = strings.ToLower(name)
	if err := checkHostname(name); err != nil {
		return "", err
	}
	if wildcard {
		name = "*." + name
	}
	return name, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// checkHostname checks an ASCII host name: letters, digits and hyphens,
// labels of 1 to 63 bytes not starting or ending with a hyphen, "--" in
// third and fourth place only for valid punycode ("xn--"), 253 bytes at
// most, and not an IP address.
func checkHostname(name string) error {
	if len(name) > 253 {
		return fmt.Errorf("longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return errors.New("empty label")
		}
		if len(l) > 63 {
			return fmt.Errorf("label %q is longer than 63 characters", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not allowed in a DNS name", rune(c))
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", l)
		}
		if len(l) >= 4 && l[2:4] == "--" {
			if !strings.EqualFold(l[:2], "xn") {
				return fmt.Errorf(`label %q has "--" in third and fourth place, which is reserved for internationalised names`, l)
			}
			u, err := idna.Lookup.ToUnicode(l)
			if back, err2 := idna.Lookup.ToASCII(u); err != nil || err2 != nil || !strings.EqualFold(back, l) {
				return fmt.Errorf("label %q is not valid punycode", l)
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return errors.New("an IP address or numeric name cannot be certified through DNS-01")
	}
	return nil
}

// normalizeResolver returns a resolver as host:port, port 53 by default.
func normalizeResolver(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty address")
	}
	if strings.ContainsAny(s, "/@ ") {
		return "", errHostPort
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a host name, an IPv4 address or a bare IPv6 address.
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), "53"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		if !validResolverHost(host) {
			return "", errHostPort
		}
	}
	return net.JoinHostPort(host, port), nil
}

var errHostPort = errors.New("expected host[:port], such as 1.1.1.1, dns.example.net:5353 or [2606:4700::1111]:53")

// validResolverHost reports whether host is a usable host name.
func validResolverHost(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for _, l := range strings.Split(host, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkHTTPSURL accepts an absolute https URL with a host.
func checkHTTPSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an https URL (ACME requires HTTPS)", s)
	}
	return nil
}

// validBase64URL reports whether s is base64url, padded or not, and not
// empty once decoded. Lego accepts both forms.
func validBase64URL(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return err == nil && len(b) > 0
}

// readCACertFile returns the certificates of a PEM file. The error names
// the file.
func readCACertFile(path string) ([]*x509.Certificate, error) {
	data, err := readFileLimited(path, maxCACertSize)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d does not parse: %v", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return certs, nil
}

// MergeExtraConfig returns the configuration of an extra certificate: the
// extra's own keys, and for every key it leaves unset (an empty string, a
// nil list or map) the main block's value. The exceptions:
//
//   - cert_path and key_path are always the extra's own;
//   - extra is never inherited (extras do not nest);
//   - options: an extra that sets options (even an empty map) uses its own
//     map entirely, never mixed with the main block's, so that the
//     credentials of two DNS accounts are not combined;
//   - an extra that names another CA (a ca_dir_url that differs from the
//     main block's) does not inherit eab_kid and eab_hmac, which belong to
//     the main block's CA, nor the main block's default account key: its
//     acme_key_path defaults to that of its own CA (see Validate). An
//     acme_key_path the main block sets explicitly is inherited.
//
// Lists and maps of the result are copies. Call it on a validated main
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
	merged.CertPath, merged.KeyPath = extraCfg.CertPath, extraCfg.KeyPath
	merged.Options = maps.Clone(mainCfg.Options)
	if extraCfg.Options != nil {
		merged.Options = maps.Clone(extraCfg.Options)
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

// cloneField replaces a slice or map held in v by a copy.
func cloneField(v reflect.Value) {
	switch v.Kind() {
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

// GetLegoConfig validates the configuration and returns what a lego client
// needs: the ACME account user, with its key loaded from acme_key_path or,
// when that file does not exist, created (ECDSA P-256, stored as PEM with
// mode 0600), and the lego configuration: CA directory, user agent,
// certificate key type, and an HTTP client that trusts the system roots
// plus ca_certs. Each call returns a new HTTP client.
//
// For the "local" and "pseudo" providers, which do not use ACME, it
// returns (nil, nil, nil) once the configuration is valid.
//
// An account key file that exists but cannot be used is an error wrapping
// ErrAccountKey; the file is left untouched.
//
// When the config has a storage block naming a shared store (such as
// postgres), the account key is kept there under acme_key_path instead of
// in a file: GetLegoConfig opens the storage (giving up after 30 seconds),
// and creates the key under the storage's lock after reading it again, so
// that instances starting together end up with one key, hence one ACME
// account. The returned User keeps that open storage
// for NewProvider, which takes it over instead of opening a second one;
// Provider.Close closes it. (A User from which no Provider is built keeps
// its storage open until the program ends.)
func (cfg *Config) GetLegoConfig() (*User, *lego.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if !isACME(cfg.Provider) {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storageOpenTimeout)
	defer cancel()
	st, err := cfg.OpenStorage(ctx)
	if err != nil {
		return nil, nil, err
	}
	user, lc, err := cfg.legoConfig(ctx, st)
	if err != nil {
		closeStorage(st)
		return nil, nil, err
	}
	if cfg.sharedStorage() {
		user.opened = st
	}
	return user, lc, nil
}

// legoConfig is GetLegoConfig with the account key kept in st.
func (cfg *Config) legoConfig(ctx context.Context, st Storage) (*User, *lego.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if !isACME(cfg.Provider) {
		return nil, nil, nil
	}
	roots, err := caCertPool(cfg.CACerts)
	if err != nil {
		return nil, nil, err
	}
	key, err := loadOrCreateAccountKey(ctx, st, cfg.ACMEKeyPath)
	if err != nil {
		return nil, nil, err
	}
	keyType, _ := legoKeyType(cfg.CertificateKeyType)
	user := &User{Email: cfg.Email, Key: key}
	return user, &lego.Config{
		CADirURL:   cfg.CADirURL,
		User:       user,
		UserAgent:  "autocert/" + Version,
		HTTPClient: newACMEHTTPClient(roots),
		Certificate: lego.CertificateConfig{
			KeyType: keyType,
			Timeout: 30 * time.Second,
		},
	}, nil
}

// caCertPool returns the system roots plus the certificates of files, or
// nil (the system roots) when files is empty.
func caCertPool(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for i, f := range files {
		certs, err := readCACertFile(f)
		if err != nil {
			return nil, &FieldError{Path: fmt.Sprintf("ca_certs[%d]", i), Msg: err.Error()}
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// newACMEHTTPClient returns a new HTTP client for talking to the CA. Lego
// wraps the client's transport, so every lego configuration gets its own
// client. The timeouts are the transport's, not http.Client.Timeout: lego
// leaves some response bodies unclosed, and with a client timeout each of
// those would keep a goroutine alive.
func newACMEHTTPClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   30 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          10,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ExpectContinueTimeout: 1 * time.Second,
			TLSClientConfig: &tls.Config{
				RootCAs:    roots,
				MinVersion: tls.VersionTLS12,
			},
		},
	}
}
