package autocert

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/autocert-dev/autocert/internal/suggest"
	"golang.org/x/net/idna"
)

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
// certificate_key_type is written as autocert names it (the names of lego
// and GoDoxy, P256, P384, 2048, 3072, 4096 and 8192, become EC256, EC384,
// RSA2048, RSA3072, RSA4096 and RSA8192; any case is accepted);
// surrounding spaces are removed.
//
// Rules: the provider is "local", "pseudo" or a registered DNS provider
// (an unknown name gets the nearest known one suggested); a DNS provider
// needs a valid email and at least one domain, "pseudo" needs domains;
// a wildcard is only allowed as the whole leftmost label ("*.example.com");
// no domain appears twice in one certificate; every cert_path and key_path
// is used once across the main block and the extras, and by no account
// key; every extra has its own cert_path and key_path and no extra of its
// own; eab_kid and eab_hmac go together, whatever the provider, eab_hmac
// in base64url; ca_certs files hold PEM certificates; resolvers are
// host[:port]; dns_challenge_alias is a domain name (no wildcard, not
// starting with _acme-challenge), normalised as domains are, and it and
// dns_follow_cname are only set where a DNS provider is used; ca_dir_url
// is an https URL; ca names a known CA (KnownCAs), filling in ca_dir_url,
// and is not set beside another ca_dir_url; a CA known to require External
// Account Binding has eab_kid and eab_hmac; issuers is not set beside the
// single-CA keys, and each issuer names its CA once, by ca or ca_dir_url,
// its acme_key_path defaulting as the single-CA key does;
// certificate_key_type is EC256,
// EC384, RSA2048, RSA3072, RSA4096 or RSA8192. When the DNS provider's
// factory implements OptionsValidator, its findings are reported under
// "options". Each extra is checked as merged with the main block, under
// its own path ("extra[N].").
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
	v.challengeKeys(cfg, cfg, "")
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
		v.challengeKeys(e, &merged, p)
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
	if len(cfg.Issuers) > 0 {
		// Each issuer has its own; the single-CA keys stay unset.
		if strings.TrimSpace(cfg.CertificateKeyType) == "" {
			cfg.CertificateKeyType = DefaultKeyType
		}
		return
	}
	if k, ok := knownCA(cfg.CA, ""); ok && cfg.CADirURL == "" {
		cfg.CADirURL = k.DirURL
	}
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
		return len(cfg.Options) > 0 || cfg.Provider != ""
	case "eab_kid", "eab_hmac":
		return cfg.EABKid != "" || cfg.EABHmac != ""
	}
	if strings.HasPrefix(key, "issuers") {
		return cfg.Issuers != nil
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
	c.CADirURL = strings.TrimSpace(c.CADirURL)
	c.CA, c.CADirURL = v.resolveCA(c.CA, c.CADirURL, p+"ca", p+"ca_dir_url")
	if c.CADirURL != "" {
		if err := checkHTTPSURL(c.CADirURL); err != nil {
			v.add(p+"ca_dir_url", nil, "%v", err)
		}
	}
	v.issuers(c, p)
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
		name, ok := canonicalKeyType(c.CertificateKeyType)
		if !ok {
			name = strings.TrimSpace(c.CertificateKeyType)
			v.add(p+"certificate_key_type", nil, "unknown key type %q: use %s", name, keyTypeNames)
		}
		c.CertificateKeyType = name
	}
	c.Profile = strings.TrimSpace(c.Profile)
	if c.DNSChallengeAlias != "" {
		c.DNSChallengeAlias = v.challengeAlias(c.DNSChallengeAlias, p+"dns_challenge_alias")
	}
}

// challengeAlias checks a dns_challenge_alias value and returns it
// normalised as a domain is: the name under which _acme-challenge is
// written, so neither a wildcard nor a name that already starts with
// _acme-challenge.
func (v *validator) challengeAlias(alias, path string) string {
	a := strings.TrimSuffix(strings.TrimSpace(alias), ".")
	if l := strings.ToLower(a); l == "_acme-challenge" || strings.HasPrefix(l, "_acme-challenge.") {
		v.add(path, nil, "%q starts with _acme-challenge: give the domain below it (%q), under which autocert writes _acme-challenge", a, strings.TrimPrefix(a[len("_acme-challenge"):], "."))
		return a
	}
	if strings.HasPrefix(a, "*") {
		v.add(path, nil, "invalid alias %q: a wildcard is not a DNS name a record can be written at", a)
		return a
	}
	n, err := normalizeDomain(a)
	if err != nil {
		v.add(path, nil, "invalid alias %q: %v", a, err)
		return a
	}
	return n
}

// challengeKeys reports the DNS challenge keys that a block sets (b, as
// written) while its provider (of merged, the block as merged with the
// main block) writes no DNS record.
func (v *validator) challengeKeys(b, merged *Config, p string) {
	if isACME(merged.Provider) {
		return
	}
	if b.DNSChallengeAlias != "" {
		v.add(p+"dns_challenge_alias", nil, "only used with a DNS provider, not provider %s", merged.Provider)
	}
	if b.DNSFollowCNAME != nil {
		v.add(p+"dns_follow_cname", nil, "only used with a DNS provider, not provider %s", merged.Provider)
	}
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
	// The binding belongs to the account, whatever the provider: a lone
	// half is a mistake even where no account is used yet.
	if m.EABKid != "" && m.EABHmac == "" {
		report("eab_hmac", nil, "required when eab_kid is set")
	}
	if m.EABKid == "" && m.EABHmac != "" {
		report("eab_kid", nil, "required when eab_hmac is set")
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
		issuerRequirements(m, report)
		if m.Email == "" {
			report("email", nil, "required by provider %s: the contact of the ACME account", m.Provider)
		}
		if len(m.Domains) == 0 {
			report("domains", nil, "required by provider %s: at least one name to certify", m.Provider)
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
		if b.BundlePath != "" {
			uses = append(uses, use{prefixes[i] + "bundle_path", b.BundlePath})
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
	for i, b := range blocks {
		for j, is := range b.Issuers {
			if is.ACMEKeyPath == "" {
				continue
			}
			if other, clash := owner[filepath.Clean(is.ACMEKeyPath)]; clash {
				v.add(fmt.Sprintf("%sissuers[%d].acme_key_path", prefixes[i], j), nil, "%q is also %s: the ACME account key needs a file of its own", is.ACMEKeyPath, other)
			}
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
