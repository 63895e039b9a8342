package autocert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/lego"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// Fake DNS providers, registered under names no other test uses.
const (
	cfgTestDNS        = "cfgtest-dns"        // validates options: api_token is required
	cfgTestCloudflare = "cfgtest-cloudflare" // a typo target without an options validator
)

func init() {
	RegisterProvider(cfgTestDNS, cfgTestFactory{required: []string{"api_token"}})
	RegisterProvider(cfgTestCloudflare, DNSProviderFunc(func(Options) (challenge.Provider, error) {
		return nil, errors.New("test provider: not for use")
	}))
}

// cfgTestFactory is a DNS provider factory with an OptionsValidator. It
// misbehaves on purpose for the "leaky" option, quoting its value.
type cfgTestFactory struct{ required []string }

func (cfgTestFactory) NewDNSProvider(Options) (challenge.Provider, error) {
	return nil, errors.New("test provider: not for use")
}

func (f cfgTestFactory) ValidateOptions(opts Options) error {
	var errs []error
	for _, k := range f.required {
		if opts[k] == "" {
			errs = append(errs, fmt.Errorf("missing required option %s", k))
		}
	}
	if v, ok := opts["leaky"]; ok {
		errs = append(errs, fmt.Errorf("option leaky: %q is not accepted", v.Value()))
	}
	return errors.Join(errs...)
}

// acmeConfig returns a valid configuration for the test DNS provider. Its
// paths are relative: Validate does not touch them.
func cfgACMEConfig() *Config {
	return &Config{
		Provider:    cfgTestDNS,
		Email:       "admin@example.com",
		Domains:     []string{"example.com", "*.example.com"},
		CertPath:    "certs/main.crt",
		KeyPath:     "certs/main.key",
		ACMEKeyPath: "certs/acme.key",
		Options:     Options{"api_token": "tok-0123456789"},
	}
}

// problemTexts returns the text of every problem an error joins.
func cfgProblemTexts(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe.Error())
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		out = append(out, e.Error())
	}
	if err != nil {
		walk(err)
	}
	return out
}

// checkProblems asserts that err holds exactly one problem containing each
// of want, and nothing else.
func cfgCheckProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	got := cfgProblemTexts(err)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error:\n%v", err)
		}
		return
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("error does not wrap ErrInvalidConfig: %v", err)
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
			t.Errorf("no problem contains %q; got:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

func cfgWriteFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCAFile writes the certificate of a TLS test server as PEM.
func cfgCAFile(t *testing.T, dir string, srv *httptest.Server) string {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return cfgWriteFile(t, dir, "ca.pem", string(b))
}

func TestConfigValidateDefaults(t *testing.T) {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "certs/acme_" + hex.EncodeToString(sum[:])[:16] + ".key"
	}
	tests := []struct {
		name     string
		cfg      Config
		provider string
		acmeKey  string
		caDir    string
	}{
		{name: "empty", cfg: Config{}, provider: "local", acmeKey: "certs/acme.key", caDir: lego.LEDirectoryProduction},
		{name: "lets encrypt production", cfg: Config{CADirURL: lego.LEDirectoryProduction}, provider: "local",
			acmeKey: "certs/acme.key", caDir: lego.LEDirectoryProduction},
		{name: "staging", cfg: Config{CADirURL: lego.LEDirectoryStaging}, provider: "local",
			acmeKey: hash(lego.LEDirectoryStaging), caDir: lego.LEDirectoryStaging},
		{name: "other CA", cfg: Config{Provider: "pseudo", Domains: []string{"a.test"}, CADirURL: "https://ca.internal/dir"},
			provider: "pseudo", acmeKey: hash("https://ca.internal/dir"), caDir: "https://ca.internal/dir"},
		{name: "explicit key path kept", cfg: Config{ACMEKeyPath: "keys/acct.pem", CADirURL: "https://ca.internal/dir"},
			provider: "local", acmeKey: "keys/acct.pem", caDir: "https://ca.internal/dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if cfg.Provider != tt.provider || cfg.CertPath != "certs/cert.crt" || cfg.KeyPath != "certs/priv.key" ||
				cfg.ACMEKeyPath != tt.acmeKey || cfg.CADirURL != tt.caDir || cfg.CertificateKeyType != "EC256" {
				t.Errorf("defaults: %+v", cfg)
			}
			if len(tt.acmeKey) == len("certs/acme_.key")+16 && !strings.HasPrefix(tt.acmeKey, "keys/") {
				if len(strings.TrimSuffix(strings.TrimPrefix(cfg.ACMEKeyPath, "certs/acme_"), ".key")) != 16 {
					t.Errorf("account key %q: want 16 hex digits", cfg.ACMEKeyPath)
				}
			}
		})
	}
}

func TestConfigValidateExtrasKeepUnsetKeys(t *testing.T) {
	cfg := cfgACMEConfig()
	cfg.Extra = []ConfigExtra{{CertPath: "certs/x.crt", KeyPath: "certs/x.key"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := ConfigExtra{CertPath: "certs/x.crt", KeyPath: "certs/x.key"}
	if !reflect.DeepEqual(cfg.Extra[0], want) {
		t.Errorf("extra changed by Validate: %+v", cfg.Extra[0])
	}
}

func TestConfigValidateIdempotent(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	caFile := cfgCAFile(t, dir, srv)

	build := func() *Config {
		cfg := cfgACMEConfig()
		cfg.Provider = "CFGTEST-DNS"
		cfg.Email = " admin@example.com "
		cfg.Domains = []string{"Bücher.Example.", "*.EXAMPLE.com"}
		cfg.Resolvers = []string{"1.1.1.1", "[2606:4700::1111]", "dns.example.net:5353"}
		cfg.CACerts = []string{caFile}
		cfg.CADirURL = "https://ca.internal/dir"
		cfg.EABKid = "kid"
		cfg.EABHmac = "c2VjcmV0LWhtYWMta2V5"
		cfg.CertificateKeyType = "rsa2048"
		cfg.Extra = []ConfigExtra{{Domains: []string{"API.example.com."}, CertPath: "certs/api.crt", KeyPath: "certs/api.key",
			Resolvers: []string{"8.8.8.8"}, CertificateKeyType: "ec384"}}
		return cfg
	}
	cfg := build()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	once := build()
	_ = once.Validate()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("second Validate: %v", err)
	}
	if !reflect.DeepEqual(cfg, once) {
		t.Errorf("second Validate changed the config:\n%+v\n%+v", cfg, once)
	}
	if cfg.Provider != cfgTestDNS || cfg.Email != "admin@example.com" || cfg.CertificateKeyType != "RSA2048" ||
		!slices.Equal(cfg.Domains, []string{"xn--bcher-kva.example", "*.example.com"}) ||
		!slices.Equal(cfg.Resolvers, []string{"1.1.1.1:53", "[2606:4700::1111]:53", "dns.example.net:5353"}) ||
		!slices.Equal(cfg.Extra[0].Domains, []string{"api.example.com"}) || cfg.Extra[0].Resolvers[0] != "8.8.8.8:53" ||
		cfg.Extra[0].CertificateKeyType != "EC384" {
		t.Errorf("not normalised: %+v", cfg)
	}

	// An invalid config reports the same problems every time.
	bad := cfgACMEConfig()
	bad.Domains = []string{"exa mple.com"}
	bad.Email = ""
	first, second := bad.Validate(), bad.Validate()
	if first == nil || first.Error() != second.Error() {
		t.Errorf("not idempotent:\n%v\n%v", first, second)
	}
}

func TestConfigValidateNilConfig(t *testing.T) {
	var cfg *Config
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil config: %v", err)
	}
}

func TestConfigValidateRules(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	caFile := cfgCAFile(t, dir, srv)
	notPEM := cfgWriteFile(t, dir, "notpem.pem", "hello\n")
	badCert := cfgWriteFile(t, dir, "badcert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})))
	missing := filepath.Join(dir, "missing.pem")
	long63 := strings.Repeat("a", 63)

	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // one problem containing each; nothing else
		is     []error
	}{
		{name: "valid ACME config", mutate: func(c *Config) {}},
		{name: "provider case is normalised", mutate: func(c *Config) { c.Provider = " CFGTEST-DNS " }},
		{name: "unknown provider, typo", mutate: func(c *Config) { c.Provider = "cfgtest-cloudfare" },
			want: []string{`provider: unknown provider "cfgtest-cloudfare" (did you mean cfgtest-cloudflare?)`},
			is:   []error{ErrUnknownProvider}},
		{name: "unknown provider, typo of local", mutate: func(c *Config) { c.Provider = "locl" },
			want: []string{`provider: unknown provider "locl" (did you mean local?)`}, is: []error{ErrUnknownProvider}},
		{name: "unknown provider, far from any", mutate: func(c *Config) { c.Provider = "qqqqqqqqqqqq" },
			want: []string{`provider: unknown provider "qqqqqqqqqqqq": use local, pseudo or a registered DNS provider (`},
			is:   []error{ErrUnknownProvider}},
		{name: "ACME needs email", mutate: func(c *Config) { c.Email = "" },
			want: []string{"email: required by provider cfgtest-dns"}},
		{name: "invalid email", mutate: func(c *Config) { c.Email = "not-an-email" },
			want: []string{`email: invalid address "not-an-email"`}},
		{name: "email with a display name", mutate: func(c *Config) { c.Email = "Admin <admin@example.com>" },
			want: []string{`email: invalid address "Admin <admin@example.com>": write the address alone`}},
		{name: "ACME needs domains", mutate: func(c *Config) { c.Domains = nil },
			want: []string{"domains: required by provider cfgtest-dns"}},
		{name: "ACME needs domains, empty list", mutate: func(c *Config) { c.Domains = []string{} },
			want: []string{"domains: required by provider cfgtest-dns"}},
		{name: "pseudo needs domains", mutate: func(c *Config) { c.Provider, c.Domains = "pseudo", nil },
			want: []string{"domains: required by provider pseudo"}},
		{name: "pseudo needs no email", mutate: func(c *Config) { c.Provider, c.Email = "pseudo", "" }},
		{name: "local needs neither email nor domains", mutate: func(c *Config) {
			c.Provider, c.Email, c.Domains, c.Options = "local", "", nil, nil
		}},
		{name: "local gets default paths", mutate: func(c *Config) { c.Provider, c.CertPath, c.KeyPath = "local", "", "" }},
		{name: "invalid email with local is still reported", mutate: func(c *Config) { c.Provider, c.Email = "local", "x@" },
			want: []string{`email: invalid address "x@"`}},
		{name: "space in domain", mutate: func(c *Config) { c.Domains = []string{"exa mple.com"} },
			want: []string{`domains[0]: invalid domain "exa mple.com": character ' ' is not allowed`}},
		{name: "wildcard in the middle", mutate: func(c *Config) { c.Domains = []string{"a.*.example.com"} },
			want: []string{`domains[0]: invalid domain "a.*.example.com": a wildcard is only allowed as the whole leftmost label`}},
		{name: "partial wildcard label", mutate: func(c *Config) { c.Domains = []string{"*a.example.com"} },
			want: []string{`domains[0]: invalid domain "*a.example.com": a wildcard is only allowed`}},
		{name: "double wildcard", mutate: func(c *Config) { c.Domains = []string{"*.*.example.com"} },
			want: []string{`domains[0]: invalid domain "*.*.example.com": a wildcard is only allowed`}},
		{name: "bare wildcard", mutate: func(c *Config) { c.Domains = []string{"*"} },
			want: []string{`domains[0]: invalid domain "*": a wildcard is only allowed`}},
		{name: "empty domain", mutate: func(c *Config) { c.Domains = []string{""} },
			want: []string{`domains[0]: invalid domain "": empty name`}},
		{name: "empty label", mutate: func(c *Config) { c.Domains = []string{"a..example.com"} },
			want: []string{`domains[0]: invalid domain "a..example.com": empty label`}},
		{name: "label too long", mutate: func(c *Config) { c.Domains = []string{long63 + "a.example.com"} },
			want: []string{"domains[0]: invalid domain", "is longer than 63 characters"}[:1]},
		{name: "label of 63 is fine", mutate: func(c *Config) { c.Domains = []string{long63 + ".example.com"} }},
		{name: "name too long", mutate: func(c *Config) {
			c.Domains = []string{strings.Repeat(long63+".", 4) + "com"}
		}, want: []string{"domains[0]: invalid domain", "longer than 253 characters"}[:1]},
		{name: "leading hyphen", mutate: func(c *Config) { c.Domains = []string{"-a.example.com"} },
			want: []string{`domains[0]: invalid domain "-a.example.com": label "-a" starts or ends with a hyphen`}},
		{name: "underscore", mutate: func(c *Config) { c.Domains = []string{"_acme.example.com"} },
			want: []string{`domains[0]: invalid domain "_acme.example.com": character '_' is not allowed`}},
		{name: "reserved hyphens", mutate: func(c *Config) { c.Domains = []string{"ab--cd.example.com"} },
			want: []string{`domains[0]: invalid domain "ab--cd.example.com": label "ab--cd" has "--"`}},
		{name: "bad punycode", mutate: func(c *Config) { c.Domains = []string{"xn--zz.example.com"} },
			want: []string{`domains[0]: invalid domain "xn--zz.example.com": label "xn--zz" is not valid punycode`}},
		{name: "IP address", mutate: func(c *Config) { c.Domains = []string{"192.0.2.1"} },
			want: []string{`domains[0]: invalid domain "192.0.2.1": an IP address`}},
		{name: "invalid IDN", mutate: func(c *Config) { c.Domains = []string{"bü cher.example"} },
			want: []string{`domains[0]: invalid domain "bü cher.example": not a valid internationalised name`}},
		{name: "duplicate after normalisation", mutate: func(c *Config) { c.Domains = []string{"Example.com", "example.com."} },
			want: []string{`domains[1]: duplicate domain "example.com" (also domains[0])`}},
		{name: "duplicate IDN and punycode", mutate: func(c *Config) {
			c.Domains = []string{"bücher.example", "xn--bcher-kva.example"}
		}, want: []string{`domains[1]: duplicate domain "xn--bcher-kva.example" (also domains[0])`}},
		{name: "several bad domains all reported", mutate: func(c *Config) { c.Domains = []string{"a b", "ok.example", "c_d.example"} },
			want: []string{`domains[0]: invalid domain "a b"`, `domains[2]: invalid domain "c_d.example"`}},
		{name: "cert and key the same file", mutate: func(c *Config) { c.CertPath, c.KeyPath = "certs/a.pem", "certs/./a.pem" },
			want: []string{`key_path: "certs/./a.pem" is also cert_path`}},
		{name: "extra needs its own paths", mutate: func(c *Config) { c.Extra = []ConfigExtra{{Domains: []string{"a.example.com"}}} },
			want: []string{"extra[0].cert_path: required", "extra[0].key_path: required"}},
		{name: "extra reuses main cert path", mutate: func(c *Config) {
			c.Extra = []ConfigExtra{{CertPath: "certs/main.crt", KeyPath: "certs/x.key"}}
		}, want: []string{`extra[0].cert_path: "certs/main.crt" is also cert_path`}},
		{name: "two extras share a key", mutate: func(c *Config) {
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/x.key"}, {CertPath: "certs/b.crt", KeyPath: "certs/x.key"}}
		}, want: []string{`extra[1].key_path: "certs/x.key" is also extra[0].key_path`}},
		{name: "account key is a certificate key", mutate: func(c *Config) { c.ACMEKeyPath = "certs/main.key" },
			want: []string{`acme_key_path: "certs/main.key" is also key_path`}},
		{name: "extra account key is a certificate key", mutate: func(c *Config) {
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", ACMEKeyPath: "certs/main.crt"}}
		}, want: []string{`extra[0].acme_key_path: "certs/main.crt" is also cert_path`}},
		{name: "nested extra", mutate: func(c *Config) {
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key",
				Extra: []ConfigExtra{{CertPath: "certs/b.crt", KeyPath: "certs/b.key"}}}}
		}, want: []string{"extra[0].extra: extras cannot be nested"}},
		{name: "path of an extra's problem", mutate: func(c *Config) {
			c.Extra = []ConfigExtra{
				{CertPath: "certs/a.crt", KeyPath: "certs/a.key"},
				{CertPath: "certs/b.crt", KeyPath: "certs/b.key", Domains: []string{"exa mple.com"}},
			}
		}, want: []string{`extra[1].domains[0]: invalid domain "exa mple.com"`}},
		{name: "extra typo in provider", mutate: func(c *Config) {
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", Provider: "cfgtest-dsn"}}
		}, want: []string{`extra[0].provider: unknown provider "cfgtest-dsn" (did you mean cfgtest-dns?)`},
			is: []error{ErrUnknownProvider}},
		{name: "inherited problem reported once", mutate: func(c *Config) {
			c.Email = ""
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key"}}
		}, want: []string{"email: required by provider cfgtest-dns"}},
		{name: "inherited options problem reported once", mutate: func(c *Config) {
			c.Options = Options{"token": "x"}
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key"}}
		}, want: []string{"options: missing required option api_token"}},
		{name: "inherited EAB problem reported once", mutate: func(c *Config) {
			c.EABKid = "kid"
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", Domains: []string{"a.example.com"}}}
		}, want: []string{"eab_hmac: required when eab_kid is set"}},
		{name: "extra on another CA does not inherit EAB", mutate: func(c *Config) {
			c.EABKid, c.EABHmac = "kid", "c2VjcmV0"
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", CADirURL: "https://other.example/dir", EABKid: "kid2"}}
		}, want: []string{"extra[0].eab_hmac: required when eab_kid is set"}},
		{name: "extra turns ACME on a local main", mutate: func(c *Config) {
			c.Provider, c.Email = "local", ""
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", Provider: cfgTestDNS}}
		}, want: []string{"extra[0].email: required by provider cfgtest-dns"}},
		{name: "extra fixes what main lacks", mutate: func(c *Config) {
			c.Provider, c.Email, c.Domains = "local", "", nil
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", Provider: cfgTestDNS,
				Email: "ops@example.com", Domains: []string{"a.example.com"}}}
		}},
		{name: "eab_kid without eab_hmac", mutate: func(c *Config) { c.EABKid = "kid-1" },
			want: []string{"eab_hmac: required when eab_kid is set"}},
		{name: "eab_hmac without eab_kid", mutate: func(c *Config) { c.EABHmac = "c2VjcmV0" },
			want: []string{"eab_kid: required when eab_hmac is set"}},
		{name: "eab raw base64url", mutate: func(c *Config) { c.EABKid, c.EABHmac = "kid", "c2VjcmV0LWtleQ_-" }},
		{name: "eab padded base64url", mutate: func(c *Config) { c.EABKid, c.EABHmac = "kid", "c2VjcmV0LWtleQ==" }},
		{name: "eab standard base64 is refused", mutate: func(c *Config) { c.EABKid, c.EABHmac = "kid", "c2Vj+mV0/2tleQ==" },
			want: []string{"eab_hmac: not a base64url key"}},
		{name: "eab not base64", mutate: func(c *Config) { c.EABKid, c.EABHmac = "kid", "not base64 at all!" },
			want: []string{"eab_hmac: not a base64url key"}},
		{name: "ca_certs valid", mutate: func(c *Config) { c.CACerts = []string{caFile} }},
		{name: "ca_certs missing file", mutate: func(c *Config) { c.CACerts = []string{caFile, missing} },
			want: []string{"ca_certs[1]: open " + missing}},
		{name: "ca_certs not PEM", mutate: func(c *Config) { c.CACerts = []string{notPEM} },
			want: []string{"ca_certs[0]: " + notPEM + ": no PEM certificate found"}},
		{name: "ca_certs bad certificate", mutate: func(c *Config) { c.CACerts = []string{badCert} },
			want: []string{"ca_certs[0]: " + badCert + ": certificate 1 does not parse"}},
		{name: "resolvers valid", mutate: func(c *Config) {
			c.Resolvers = []string{"1.1.1.1", "1.1.1.1:5353", "2606:4700::1111", "[2606:4700::1111]:53", "dns.example.net"}
		}},
		{name: "resolver port 0", mutate: func(c *Config) { c.Resolvers = []string{"1.1.1.1:0"} },
			want: []string{`resolvers[0]: invalid resolver "1.1.1.1:0": port "0" is not a number from 1 to 65535`}},
		{name: "resolver port too big", mutate: func(c *Config) { c.Resolvers = []string{"1.1.1.1:65536"} },
			want: []string{`resolvers[0]: invalid resolver "1.1.1.1:65536": port`}},
		{name: "resolver URL", mutate: func(c *Config) { c.Resolvers = []string{"https://1.1.1.1/dns-query"} },
			want: []string{`resolvers[0]: invalid resolver "https://1.1.1.1/dns-query": expected host[:port]`}},
		{name: "resolver empty", mutate: func(c *Config) { c.Resolvers = []string{"8.8.8.8", " "} },
			want: []string{`resolvers[1]: invalid resolver " ": empty address`}},
		{name: "resolver bad host", mutate: func(c *Config) { c.Resolvers = []string{"bad!host"} },
			want: []string{`resolvers[0]: invalid resolver "bad!host": expected host[:port]`}},
		{name: "ca_dir_url http", mutate: func(c *Config) { c.CADirURL = "http://ca.example/dir" },
			want: []string{`ca_dir_url: "http://ca.example/dir" is not an https URL`}},
		{name: "ca_dir_url without host", mutate: func(c *Config) { c.CADirURL = "https:///dir" },
			want: []string{`ca_dir_url: "https:///dir" is not an https URL`}},
		{name: "ca_dir_url not a URL", mutate: func(c *Config) { c.CADirURL = "ca.example" },
			want: []string{`ca_dir_url: "ca.example" is not an https URL`}},
		{name: "key types", mutate: func(c *Config) {
			for i, kt := range []string{"EC256", "ec384", "RSA2048", "Rsa3072", "RSA4096"} {
				c.Extra = append(c.Extra, ConfigExtra{CertPath: fmt.Sprintf("c%d", i), KeyPath: fmt.Sprintf("k%d", i), CertificateKeyType: kt})
			}
		}},
		{name: "unknown key type", mutate: func(c *Config) { c.CertificateKeyType = "rsa1024" },
			want: []string{`certificate_key_type: unknown key type "rsa1024": use EC256, EC384, RSA2048, RSA3072, RSA4096 or RSA8192 (also written P256, P384, 2048, 3072, 4096, 8192)`}},
		{name: "unknown key type of an extra", mutate: func(c *Config) {
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", CertificateKeyType: "ed25519"}}
		}, want: []string{`extra[0].certificate_key_type: unknown key type "ed25519": use EC256`}},
		{name: "options validator", mutate: func(c *Config) { c.Options = Options{"token": "x"} },
			want: []string{"options: missing required option api_token"}},
		{name: "options validator of an extra", mutate: func(c *Config) {
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", Options: Options{"other": "y"}}}
		}, want: []string{"extra[0].options: missing required option api_token"}},
		{name: "extra with another provider checks inherited options", mutate: func(c *Config) {
			c.Provider, c.Options = cfgTestCloudflare, Options{"zone": "z"}
			c.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", Provider: cfgTestDNS}}
		}, want: []string{"extra[0].options: missing required option api_token"}},
		{name: "provider without validator accepts any options", mutate: func(c *Config) {
			c.Provider, c.Options = cfgTestCloudflare, Options{"anything": "goes"}
		}},
		{name: "all problems at once", mutate: func(c *Config) {
			c.Provider = "cfgtest-cloudfare"
			c.Email = "nope"
			c.Domains = []string{"exa mple.com"}
			c.CADirURL = "http://x"
			c.CertificateKeyType = "DSA"
			c.Extra = []ConfigExtra{{Domains: []string{"*.*.x.com"}}}
		}, want: []string{
			"provider: unknown provider", "email: invalid address", "domains[0]: invalid domain",
			"ca_dir_url:", "certificate_key_type:", "extra[0].cert_path: required", "extra[0].key_path: required",
			"extra[0].domains[0]: invalid domain",
		}, is: []error{ErrUnknownProvider}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfgACMEConfig()
			tt.mutate(cfg)
			err := cfg.Validate()
			cfgCheckProblems(t, err, tt.want...)
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("error does not wrap %v", target)
				}
			}
			if err == nil && errors.Is(err, ErrUnknownProvider) {
				t.Error("unexpected ErrUnknownProvider")
			}
		})
	}
}

func TestConfigValidateUnknownProviderIsOnlyWhereItApplies(t *testing.T) {
	cfg := cfgACMEConfig()
	cfg.Email = ""
	if err := cfg.Validate(); errors.Is(err, ErrUnknownProvider) {
		t.Errorf("missing email reported as unknown provider: %v", err)
	}
	var fe *FieldError
	cfg = cfgACMEConfig()
	cfg.Provider = "nope-nope"
	if err := cfg.Validate(); !errors.As(err, &fe) || fe.Path != "provider" || !errors.Is(fe, ErrUnknownProvider) {
		t.Errorf("FieldError: %#v", fe)
	}
}

func TestConfigNormalizeDomains(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Example.COM", "example.com"},
		{"example.com.", "example.com"},
		{" example.com ", "example.com"},
		{"*.Example.com.", "*.example.com"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"*.Bücher.Example.", "*.xn--bcher-kva.example"},
		{"BÜCHER.example", "xn--bcher-kva.example"},
		{"例え.テスト", "xn--r8jz45g.xn--zckzah"},
		{"straße.de", "xn--strae-oqa.de"},
		{"example。com", "example.com"}, // ideographic full stop
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"XN--BCHER-KVA.example", "xn--bcher-kva.example"},
		{"localhost", "localhost"},
		{"a-b.c-d.example", "a-b.c-d.example"},
		{"1.example.com", "1.example.com"},
	}
	for _, tt := range tests {
		got, err := normalizeDomain(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("normalizeDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if again, err := normalizeDomain(got); err != nil || again != got {
			t.Errorf("normalizeDomain(%q) not stable: %q, %v", got, again, err)
		}
	}
}

func TestMergeExtraConfig(t *testing.T) {
	main := cfgACMEConfig()
	main.Resolvers = []string{"1.1.1.1:53"}
	main.CACerts = []string{"ca.pem"}
	main.CADirURL = "https://ca.example/dir"
	main.ACMEKeyPath = defaultACMEKeyPath(main.CADirURL)
	main.EABKid, main.EABHmac = "kid", "c2VjcmV0"
	main.CertificateKeyType = "EC384"
	main.Profile = "shortlived"
	main.DNSChallengeAlias = "acme.example.net"
	main.DNSFollowCNAME = new(bool)
	main.Storage = &StorageConfig{Type: StorageTypeFile}
	main.Extra = []ConfigExtra{{CertPath: "x", KeyPath: "y"}}

	t.Run("inherits every unset key", func(t *testing.T) {
		main := main.clone()
		// Not valid beside the single-CA keys, but merged all the same.
		main.CA = "example"
		main.Issuers = []Issuer{{CADirURL: "https://other.example/dir", CACerts: []string{"other.pem"}}}
		extra := &ConfigExtra{CertPath: "certs/a.crt", KeyPath: "certs/a.key"}
		got := MergeExtraConfig(main, extra)
		want := ConfigExtra(*main)
		want.CertPath, want.KeyPath, want.BundlePath, want.Extra = "certs/a.crt", "certs/a.key", "", nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("merged:\n%+v\nwant\n%+v", got, want)
		}
		// Every field of Config is covered, including ones added later.
		gv, mv := reflect.ValueOf(got), reflect.ValueOf(*main)
		for i := range gv.NumField() {
			name := gv.Type().Field(i).Name
			switch name {
			case "CertPath", "KeyPath", "Extra":
				continue
			case "BundlePath": // the extra's own, never inherited
				if got.BundlePath != "" {
					t.Errorf("bundle_path %q inherited", got.BundlePath)
				}
				continue
			}
			if mv.Field(i).IsZero() {
				t.Errorf("test setup: main.%s is unset", name)
			}
			if !reflect.DeepEqual(gv.Field(i).Interface(), mv.Field(i).Interface()) {
				t.Errorf("%s not inherited", name)
			}
		}
	})

	t.Run("own keys win", func(t *testing.T) {
		extra := &ConfigExtra{
			CertPath: "certs/a.crt", KeyPath: "certs/a.key",
			Email: "other@example.com", Domains: []string{"a.example.com"}, Provider: cfgTestCloudflare,
			Resolvers: []string{"9.9.9.9:53"}, CertificateKeyType: "RSA2048", Profile: "classic",
		}
		got := MergeExtraConfig(main, extra)
		if got.Email != "other@example.com" || !slices.Equal(got.Domains, []string{"a.example.com"}) ||
			got.Provider != cfgTestCloudflare || got.Resolvers[0] != "9.9.9.9:53" || got.CertificateKeyType != "RSA2048" ||
			got.Profile != "classic" || got.CADirURL != main.CADirURL || got.EABKid != "kid" {
			t.Errorf("merged: %+v", got)
		}
	})

	t.Run("options are the extra's own, entirely", func(t *testing.T) {
		extra := &ConfigExtra{CertPath: "a", KeyPath: "b", Options: Options{"other_token": "t2"}}
		got := MergeExtraConfig(main, extra)
		if !reflect.DeepEqual(got.Options, Options{"other_token": "t2"}) {
			t.Errorf("options mixed: %v", slices.Sorted(func(yield func(string) bool) {
				for k := range got.Options {
					if !yield(k) {
						return
					}
				}
			}))
		}
		// options: {} is unset, as in GoDoxy: the main block's options.
		empty := MergeExtraConfig(main, &ConfigExtra{CertPath: "a", KeyPath: "b", Options: Options{}})
		if !reflect.DeepEqual(empty.Options, main.Options) {
			t.Error("an empty options map set by the extra must inherit the main block's")
		}
		empty.Options["api_token"] = "changed"
		if main.Options["api_token"] == "changed" {
			t.Error("inherited options share memory with the main block's")
		}
	})

	t.Run("copies, not aliases", func(t *testing.T) {
		extra := &ConfigExtra{CertPath: "a", KeyPath: "b", Resolvers: []string{"9.9.9.9:53"}}
		got := MergeExtraConfig(main, extra)
		got.Domains[0] = "changed"
		got.Options["api_token"] = "changed"
		got.Resolvers[0] = "changed"
		if main.Domains[0] == "changed" || main.Options["api_token"] == "changed" || extra.Resolvers[0] == "changed" {
			t.Error("merged config shares memory with its inputs")
		}
	})

	t.Run("no nesting", func(t *testing.T) {
		extra := &ConfigExtra{CertPath: "a", KeyPath: "b", Extra: []ConfigExtra{{CertPath: "c"}}}
		if got := MergeExtraConfig(main, extra); got.Extra != nil {
			t.Error("extra inherited or kept")
		}
	})

	t.Run("another CA", func(t *testing.T) {
		extra := &ConfigExtra{CertPath: "a", KeyPath: "b", CADirURL: lego.LEDirectoryProduction}
		got := MergeExtraConfig(main, extra)
		if got.EABKid != "" || got.EABHmac != "" {
			t.Error("EAB credentials of the main CA sent to another CA")
		}
		if got.ACMEKeyPath != DefaultACMEKeyPath {
			t.Errorf("account key %q, want the default of its own CA", got.ACMEKeyPath)
		}
		// Explicit choices are inherited.
		m2 := *main
		m2.ACMEKeyPath = "keys/shared.key"
		if got := MergeExtraConfig(&m2, extra); got.ACMEKeyPath != "keys/shared.key" {
			t.Errorf("explicit account key not inherited: %q", got.ACMEKeyPath)
		}
		own := &ConfigExtra{CertPath: "a", KeyPath: "b", CADirURL: "https://other/dir", EABKid: "k2", EABHmac: "aG1hYw"}
		if got := MergeExtraConfig(main, own); got.EABKid != "k2" || got.EABHmac != "aG1hYw" {
			t.Error("extra's own EAB lost")
		}
		same := &ConfigExtra{CertPath: "a", KeyPath: "b", CADirURL: main.CADirURL}
		if got := MergeExtraConfig(main, same); got.EABKid != "kid" || got.ACMEKeyPath != main.ACMEKeyPath {
			t.Error("same CA: EAB and account key must be inherited")
		}
	})

	t.Run("merged validated config is complete", func(t *testing.T) {
		cfg := cfgACMEConfig()
		cfg.Extra = []ConfigExtra{{CertPath: "certs/a.crt", KeyPath: "certs/a.key", Domains: []string{"API.Example.com"}}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		merged := Config(MergeExtraConfig(cfg, &cfg.Extra[0]))
		before := merged
		if err := merged.Validate(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(before, merged) || merged.Domains[0] != "api.example.com" {
			t.Errorf("merged config changed by Validate: %+v", merged)
		}
	})
}

// ---- loading ----

func TestParseConfigFormats(t *testing.T) {
	want := &Config{
		Provider:    cfgTestDNS,
		Email:       "admin@example.com",
		Domains:     []string{"example.com", "*.example.com"},
		CertPath:    "certs/main.crt",
		KeyPath:     "certs/main.key",
		ACMEKeyPath: "certs/acme.key",
		Options:     Options{"api_token": "tok-0123456789"},
		Extra:       []ConfigExtra{{Domains: []string{"api.example.com"}, CertPath: "certs/api.crt", KeyPath: "certs/api.key"}},
	}
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	yamlBlock := `provider: cfgtest-dns
email: admin@example.com
domains:
  - example.com
  - "*.example.com"
cert_path: certs/main.crt
key_path: certs/main.key
acme_key_path: certs/acme.key
options:
  api_token: tok-0123456789
extra:
  - domains: [api.example.com]
    cert_path: certs/api.crt
    key_path: certs/api.key
`
	jsonBlock := `{
	"provider": "cfgtest-dns",
	"email": "admin@example.com",
	"domains": ["example.com", "*.example.com"],
	"cert_path": "certs/main.crt",
	"key_path": "certs/main.key",
	"acme_key_path": "certs/acme.key",
	"options": {"api_token": "tok-0123456789"},
	"extra": [{"domains": ["api.example.com"], "cert_path": "certs/api.crt", "key_path": "certs/api.key"}]
}`
	indent := func(s string) string {
		return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
	}
	tests := []struct{ name, doc string }{
		{"yaml top level", yamlBlock},
		{"yaml under autocert", "server:\n  listen: :443\n  unknown_to_us: 1\nautocert:\n" + indent(yamlBlock) + "logging: debug\n"},
		{"json top level", jsonBlock},
		{"json under autocert", `{"server": {"listen": ":443"}, "autocert": ` + jsonBlock + `}`},
		{"json with tabs and CRLF", strings.ReplaceAll(jsonBlock, "\n", "\r\n")},
		{"yaml with BOM", "\ufeff" + yamlBlock},
		{"yaml anchors and merge keys", `provider: cfgtest-dns
email: admin@example.com
domains: [example.com, "*.example.com"]
cert_path: certs/main.crt
key_path: certs/main.key
acme_key_path: certs/acme.key
options: &opts
  api_token: tok-0123456789
extra:
  - &api
    domains: [api.example.com]
    cert_path: certs/api.crt
    key_path: certs/api.key
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}

	t.Run("merge key", func(t *testing.T) {
		doc := `provider: local
extra:
  - &base
    cert_path: certs/a.crt
    key_path: certs/a.key
    domains: [a.example.com]
  - <<: *base
    cert_path: certs/b.crt
    key_path: certs/b.key
`
		got, err := ParseConfig([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if e := got.Extra[1]; e.CertPath != "certs/b.crt" || e.KeyPath != "certs/b.key" || !slices.Equal(e.Domains, []string{"a.example.com"}) {
			t.Errorf("merge key: %+v", e)
		}
	})
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"autocert.yaml", "autocert.json"} {
		doc := "provider: pseudo\ndomains: [dev.example.com]\n"
		if strings.HasSuffix(name, ".json") {
			doc = `{"autocert": {"provider": "pseudo", "domains": ["dev.example.com"]}}`
		}
		cfg, err := LoadConfig(cfgWriteFile(t, dir, name, doc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Provider != "pseudo" || cfg.Domains[0] != "dev.example.com" || cfg.CertPath != DefaultCertPath {
			t.Errorf("%s: %+v", name, cfg)
		}
	}
	_, err := LoadConfig(filepath.Join(dir, "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseConfigEnv(t *testing.T) {
	t.Setenv("CFGTEST_TOKEN", "tok: [not, yaml] # really")
	t.Setenv("CFGTEST_EMAIL", "ops@example.com")
	t.Setenv("CFGTEST_EMPTY", "")
	t.Setenv("CFGTEST_DOMAIN", "Example.COM")
	doc := `autocert:
  provider: cfgtest-dns
  email: ${CFGTEST_EMAIL}
  domains:
    - ${CFGTEST_DOMAIN}
    - "*.${CFGTEST_DOMAIN}"
    - ${CFGTEST_UNSET_1:-default.example.com}
    - ${CFGTEST_EMPTY:-empty.example.com}
    - pre${CFGTEST_EMPTY-x}post.example.com
  options:
    api_token: ${CFGTEST_TOKEN}
    literal: $${NOT_A_VAR} and $HOME
`
	cfg, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	wantDomains := []string{"example.com", "*.example.com", "default.example.com", "empty.example.com", "prepost.example.com"}
	if cfg.Email != "ops@example.com" || !slices.Equal(cfg.Domains, wantDomains) {
		t.Errorf("expanded: %q %q", cfg.Email, cfg.Domains)
	}
	if got := cfg.Options["api_token"].Value(); got != "tok: [not, yaml] # really" {
		t.Errorf("value with YAML characters: %q", got)
	}
	if got := cfg.Options["literal"].Value(); got != "${NOT_A_VAR} and $HOME" {
		t.Errorf("literal: %q", got)
	}
}

func TestParseConfigEnvErrors(t *testing.T) {
	t.Setenv("CFGTEST_SECRET_DOMAINS", "super-secret-value-1")
	tests := []struct {
		name string
		doc  string
		want []string
		is   error
	}{
		{name: "unset variable", doc: "provider: pseudo\ndomains: [a.example.com]\ncert_path: ${CFGTEST_UNSET_A}\nkey_path: x/${CFGTEST_UNSET_B}${CFGTEST_UNSET_C}\n",
			want: []string{
				"line 3: cert_path: environment variable CFGTEST_UNSET_A is not set",
				"line 4: key_path: environment variable CFGTEST_UNSET_B is not set",
				"line 4: key_path: environment variable CFGTEST_UNSET_C is not set",
			}, is: ErrUnsetVariable},
		{name: "unset in an extra", doc: "provider: pseudo\ndomains: [a.example.com]\nextra:\n  - cert_path: a\n    key_path: b\n    domains:\n      - ${CFGTEST_UNSET_D}\n",
			want: []string{"line 7: extra[0].domains[0]: environment variable CFGTEST_UNSET_D is not set"}, is: ErrUnsetVariable},
		{name: "unterminated", doc: "provider: pseudo\ndomains: [a.example.com]\nemail: ${CFGTEST_X\n",
			want: []string{`line 3: email: unterminated "${"`}},
		{name: "no name", doc: "provider: pseudo\ndomains: [a.example.com]\nemail: ${:-x}\n",
			want: []string{`line 3: email: "${" must be followed by a variable name`}},
		{name: "unsupported form", doc: "provider: pseudo\ndomains: [a.example.com]\nemail: ${CFGTEST_X:?oops}\n",
			want: []string{"line 3: email: unsupported reference to CFGTEST_X"}},
		{name: "secret in a type error", doc: "provider: pseudo\ndomains: [a.example.com]\nca_certs: ${CFGTEST_SECRET_DOMAINS}\n",
			want: []string{"line 3: ca_certs: expected a list of strings, got a single value"}},
		{name: "secret in a comma-separated list", doc: "provider: pseudo\ndomains: ${CFGTEST_SECRET_DOMAINS},,\n",
			want: []string{"line 2: domains[1]: empty item in the comma-separated list", "line 2: domains[2]: empty item"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tt.doc))
			if cfg != nil {
				t.Error("config returned with an error")
			}
			cfgCheckProblems(t, err, tt.want...)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v", tt.is)
			}
			if err != nil && strings.Contains(err.Error(), "super-secret-value-1") {
				t.Errorf("secret in error: %v", err)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		doc  string
		want []string
		is   error
	}{
		{name: "syntax error", doc: "provider: pseudo\ndomains:\n  - a.example.com\n bad: indentation\n",
			want: []string{"cfg.yaml:3: syntax error: did not find expected key (check the indentation"}},
		{name: "syntax error on the first line", doc: "provider: pseudo: x\n",
			want: []string{"cfg.yaml:1: syntax error: mapping values are not allowed in this context"}},
		{name: "unquoted wildcard", doc: "provider: pseudo\ndomains:\n  - example.com\n  - *.example.com\n",
			want: []string{`cfg.yaml:4: syntax error: did not find expected alphabetic or numeric character (a value starting with "*" is an alias in YAML: quote wildcard domains, as in "*.example.com")`}},
		{name: "unquoted wildcard naming an anchor", doc: "provider: pseudo\ndomains:\n  - *example\n",
			want: []string{`cfg.yaml:3: syntax error: unknown anchor 'example' referenced (a value starting with "*"`}},
		{name: "tab indentation", doc: "provider: pseudo\ndomains:\n\t- a.example.com\n",
			want: []string{"cfg.yaml:3: syntax error: found character that cannot start any token (indent with spaces, not tabs)"}},
		{name: "unterminated JSON", doc: "{\n  \"provider\": \"pseudo\",\n  \"domains\": [\"a.example.com\"\n}\n",
			want: []string{"cfg.yaml:2: syntax error: did not find expected ',' or ']'"}},
		{name: "empty file", doc: "", want: []string{"cfg.yaml: the configuration is empty"}},
		{name: "only comments", doc: "# nothing\n", want: []string{"cfg.yaml: the configuration is empty"}},
		{name: "empty autocert block", doc: "other: 1\nautocert:\n", want: []string{"cfg.yaml:2: autocert: the block is empty"}},
		{name: "autocert not a mapping", doc: "autocert: [a]\n", want: []string{"cfg.yaml:1: autocert: expected a mapping of autocert keys, got a list"}},
		{name: "top level list", doc: "- a\n- b\n", want: []string{"cfg.yaml:1: expected a mapping of autocert keys"}},
		{name: "two documents", doc: "provider: local\n---\nprovider: pseudo\n", want: []string{"cfg.yaml:2: a second YAML document (after ---) is not supported"}},
		{name: "unknown key", doc: "provider: pseudo\nemial: a@example.com\ndomains: [a.example.com]\n",
			want: []string{"cfg.yaml:2: emial: unknown key (did you mean email?)"}},
		{name: "unknown key in an extra", doc: "provider: pseudo\ndomains: [a.example.com]\nextra:\n  - cert_pth: a\n    key_path: b\n",
			want: []string{"cfg.yaml:4: extra[0].cert_pth: unknown key (did you mean cert_path?)"}},
		{name: "unknown key far from all", doc: "provider: pseudo\ndomains: [a.example.com]\nzzzzzzzz: 1\n",
			want: []string{"cfg.yaml:3: zzzzzzzz: unknown key (known keys: email, domains, cert_path"}},
		{name: "unknown key among few lists them all", doc: "provider: pseudo\ndomains: [a.example.com]\nstorage:\n  typ: file\n",
			want: []string{"cfg.yaml:4: storage.typ: unknown key (known: type, dsn)"}},
		{name: "camelCase key", doc: "provider: pseudo\ndomains: [a.example.com]\ncertPath: a\n",
			want: []string{"cfg.yaml:3: certPath: unknown key (did you mean cert_path?)"}},
		{name: "duplicate key", doc: "provider: pseudo\ndomains: [a.example.com]\nprovider: local\n",
			want: []string{"cfg.yaml:3: provider: duplicate key (first at line 1)"}},
		{name: "duplicate option", doc: "provider: cfgtest-dns\nemail: a@example.com\ndomains: [a.example.com]\noptions:\n  api_token: a\n  api_token: b\n",
			want: []string{"cfg.yaml:6: options.api_token: duplicate key (first at line 5)"}},
		{name: "string instead of list", doc: "provider: pseudo\ndomains: example.com\nca_certs: ca.pem\n",
			want: []string{`cfg.yaml:3: ca_certs: expected a list of strings, got a single value (write one "- value" line per entry, or [a, b])`}},
		{name: "mapping instead of list", doc: "provider: pseudo\ndomains: {a: b}\n",
			want: []string{`cfg.yaml:2: domains: expected a list of strings, got a mapping (write one "- value" line per entry, [a, b], or "a, b")`}},
		{name: "list instead of string", doc: "provider: pseudo\ndomains: [a.example.com]\nemail:\n  - a@example.com\n",
			want: []string{"cfg.yaml:4: email: expected a string, got a list"}},
		{name: "optional flag not true or false", doc: "provider: pseudo\ndomains: [a.example.com]\ndns_follow_cname: maybe\n",
			want: []string{"cfg.yaml:3: dns_follow_cname: expected true or false"}},
		{name: "mapping in a list", doc: "provider: pseudo\ndomains:\n  - a.example.com\n  - name: b.example.com\n",
			want: []string{"cfg.yaml:4: domains[1]: expected a string, got a mapping"}},
		{name: "extra not a list", doc: "provider: pseudo\ndomains: [a.example.com]\nextra:\n  cert_path: a\n",
			want: []string{`cfg.yaml:4: extra: expected a list, got a mapping (start each entry with "- ")`}},
		{name: "options not a mapping", doc: "provider: cfgtest-dns\nemail: a@example.com\ndomains: [a.example.com]\noptions: [a]\n",
			want: []string{"cfg.yaml:4: options: expected a mapping of names to values, got a list"}},
		{name: "validation errors have lines", doc: "provider: cfgtest-dns\nemail: a@example.com\ndomains: [a.example.com]\noptions:\n  api_token: t\nextra:\n  - cert_path: a\n    key_path: b\n  - cert_path: c\n    key_path: d\n    domains:\n      - ok.example.com\n      - exa mple.com\n",
			want: []string{`cfg.yaml:13: extra[1].domains[1]: invalid domain "exa mple.com"`}},
		{name: "validation error of a missing key has the block's line", doc: "provider: local\nextra:\n  - cert_path: a\n    key_path: b\n    provider: cfgtest-dns\n    domains: [a.example.com]\n    options: {api_token: t}\n",
			want: []string{"cfg.yaml:3: extra[0].email: required by provider cfgtest-dns"}},
		{name: "validation error under autocert", doc: "app: 1\nautocert:\n  provider: cfgtest-cloudfare\n  email: a@example.com\n  domains: [a.example.com]\n",
			want: []string{`cfg.yaml:3: provider: unknown provider "cfgtest-cloudfare" (did you mean cfgtest-cloudflare?)`}, is: ErrUnknownProvider},
		{name: "options validator error has the options line", doc: "provider: cfgtest-dns\nemail: a@example.com\ndomains: [a.example.com]\noptions:\n  token: t\n",
			want: []string{"cfg.yaml:4: options: missing required option api_token"}},
		{name: "missing required key in main", doc: "provider: cfgtest-dns\ndomains: [a.example.com]\noptions: {api_token: t}\n",
			want: []string{"cfg.yaml: email: required by provider cfgtest-dns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := cfgWriteFile(t, dir, "cfg.yaml", tt.doc)
			cfg, err := LoadConfig(path)
			if cfg != nil {
				t.Error("config returned with an error")
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.Replace(w, "cfg.yaml", path, 1)
			}
			cfgCheckProblems(t, err, want...)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v", tt.is)
			}
		})
	}
}

func TestParseConfigErrorsHaveLineWithoutFile(t *testing.T) {
	_, err := ParseConfig([]byte("provider: pseudo\ndomains: [a.example.com]\nemial: x\n"))
	cfgCheckProblems(t, err, "line 3: emial: unknown key (did you mean email?)")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Line != 3 || fe.File != "" || fe.Path != "emial" {
		t.Errorf("FieldError: %#v", fe)
	}
}

// ---- secrets ----

const (
	cfgSecretToken = "tok-s3cr3t-should-never-show"
	cfgSecretHMAC  = "c2VjcmV0LWhtYWMtbmV2ZXItc2hvd24" // base64url, a secret
)

func cfgSecretConfig() *Config {
	cfg := cfgACMEConfig()
	cfg.Options = Options{"api_token": cfgSecretToken, "zone": cfgSecretToken + "-2"}
	cfg.EABKid = "kid-1"
	cfg.EABHmac = cfgSecretHMAC
	cfg.Extra = []ConfigExtra{{CertPath: "certs/x.crt", KeyPath: "certs/x.key", Options: Options{"api_token": cfgSecretToken + "-3"}}}
	return cfg
}

func cfgAssertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{cfgSecretToken, cfgSecretHMAC} {
		if strings.Contains(s, secret) {
			t.Errorf("%s shows a secret: %s", what, s)
		}
	}
}

func TestConfigSecretsNeverRendered(t *testing.T) {
	cfg := cfgSecretConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		cfgAssertNoSecret(t, "fmt "+verb, fmt.Sprintf(verb, cfg))
		cfgAssertNoSecret(t, "fmt "+verb+" of value", fmt.Sprintf(verb, *cfg))
		cfgAssertNoSecret(t, "fmt "+verb+" of options", fmt.Sprintf(verb, cfg.Options))
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgAssertNoSecret(t, "JSON", string(j))
	if !strings.Contains(string(j), `"api_token":"[REDACTED]"`) || !strings.Contains(string(j), `"eab_hmac":"[REDACTED]"`) {
		t.Errorf("JSON does not show redacted values: %s", j)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgAssertNoSecret(t, "YAML", string(y))

	var buf bytes.Buffer
	logger := zerolog.New(&buf)
	logger.Info().Interface("cfg", cfg).Any("options", cfg.Options).Msg("config")
	logger.Info().Stringer("hmac", cfg.EABHmac).Str("hmac_str", cfg.EABHmac.String()).Msgf("%v", cfg)
	logger.Info().Fields(map[string]any{"cfg": *cfg}).Send()
	cfgAssertNoSecret(t, "zerolog", buf.String())
	if !strings.Contains(buf.String(), "[REDACTED]") {
		t.Errorf("zerolog output: %s", buf.String())
	}
}

func TestConfigSecretsNeverInErrors(t *testing.T) {
	t.Run("validation", func(t *testing.T) {
		cfg := cfgSecretConfig()
		cfg.EABHmac = "not base64 " + cfgSecretHMAC
		cfg.Options["leaky"] = cfgSecretToken + "-leaky"
		cfg.Extra[0].Provider = "cfgtest-dsn"
		cfg.Extra[0].Options["leaky"] = cfgSecretToken + "-leaky2"
		err := cfg.Validate()
		if err == nil {
			t.Fatal("no error")
		}
		cfgAssertNoSecret(t, "Validate error", err.Error())
		cfgAssertNoSecret(t, "Validate error %+v", fmt.Sprintf("%+v %#v", err, err))
		if !strings.Contains(err.Error(), "options: option leaky: \"[REDACTED]\" is not accepted") {
			t.Errorf("leaky validator message not scrubbed as expected: %v", err)
		}
	})
	t.Run("parsing", func(t *testing.T) {
		t.Setenv("CFGTEST_SECRET", cfgSecretToken)
		docs := []string{
			"provider: cfgtest-dns\nemail: [" + cfgSecretToken + "]\n",
			"provider: cfgtest-dns\nemail: a@example.com\ndomains: [a.example.com]\noptions:\n  api_token: [" + cfgSecretToken + "]\n",
			"provider: cfgtest-dns\nemail: a@example.com\ndomains: [a.example.com]\neab_kid: k\neab_hmac: ${CFGTEST_SECRET}\noptions: {api_token: ${CFGTEST_SECRET}, leaky: ${CFGTEST_SECRET}}\n",
			"provider: cfgtest-dns\ndomains: ${CFGTEST_SECRET}\n",
			"provider: cfgtest-dns\noptions:\n  api_token: ${CFGTEST_MISSING:-" + cfgSecretToken + "\n",
		}
		for _, doc := range docs {
			_, err := ParseConfig([]byte(doc))
			if err == nil {
				t.Fatalf("no error for %q", doc)
			}
			cfgAssertNoSecret(t, "ParseConfig error", err.Error())
		}
	})
}

// ---- lego configuration ----

func TestGetLegoConfigLocalAndPseudo(t *testing.T) {
	for _, cfg := range []*Config{{}, {Provider: "pseudo", Domains: []string{"dev.example.com"}}} {
		user, lc, err := cfg.GetLegoConfig()
		if user != nil || lc != nil || err != nil {
			t.Errorf("%s: got %v %v %v, want nil, nil, nil", cfg.Provider, user, lc, err)
		}
	}
	_, _, err := (&Config{Provider: "pseudo"}).GetLegoConfig()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("invalid pseudo config: %v", err)
	}
}

func TestGetLegoConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := cfgACMEConfig()
	cfg.ACMEKeyPath = filepath.Join(dir, "acct", "acme.key")
	cfg.CADirURL = "https://ca.example/dir"
	user, lc, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatal(err)
	}
	if user.GetEmail() != "admin@example.com" || user.GetRegistration() != nil || user.GetPrivateKey() == nil {
		t.Errorf("user: %+v", user)
	}
	if lc.User != user || lc.CADirURL != "https://ca.example/dir" || lc.UserAgent != "autocert/"+Version ||
		lc.Certificate.KeyType != certcrypto.EC256 || lc.HTTPClient == nil || lc.HTTPClient.Transport == nil {
		t.Errorf("lego config: %+v", lc)
	}
	if _, err := os.Stat(cfg.ACMEKeyPath); err != nil {
		t.Errorf("account key not created: %v", err)
	}
	// Again: same key, but a new HTTP client and transport.
	user2, lc2, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !user2.Key.(interface{ Equal(crypto.PrivateKey) bool }).Equal(user.Key) {
		t.Error("account key not reused")
	}
	if lc2.HTTPClient == lc.HTTPClient || lc2.HTTPClient.Transport == lc.HTTPClient.Transport {
		t.Error("HTTP client or transport shared between calls")
	}
}

func TestGetLegoConfigKeyTypes(t *testing.T) {
	dir := t.TempDir()
	for name, want := range map[string]certcrypto.KeyType{
		"": certcrypto.EC256, "EC256": certcrypto.EC256, "ec384": certcrypto.EC384,
		"RSA2048": certcrypto.RSA2048, "RSA3072": certcrypto.RSA3072, "RSA4096": certcrypto.RSA4096,
	} {
		cfg := cfgACMEConfig()
		cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
		cfg.CertificateKeyType = name
		_, lc, err := cfg.GetLegoConfig()
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if lc.Certificate.KeyType != want {
			t.Errorf("%q: key type %q, want %q", name, lc.Certificate.KeyType, want)
		}
	}
}

func TestGetLegoConfigCACerts(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()

	get := func(cfg *Config) error {
		t.Helper()
		_, lc, err := cfg.GetLegoConfig()
		if err != nil {
			t.Fatal(err)
		}
		defer lc.HTTPClient.CloseIdleConnections()
		resp, err := lc.HTTPClient.Get(srv.URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}

	cfg := cfgACMEConfig()
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	cfg.CADirURL = srv.URL + "/dir"
	var unknownAuthority x509.UnknownAuthorityError
	if err := get(cfg); !errors.As(err, &unknownAuthority) {
		t.Errorf("without ca_certs: %v, want an unknown authority error", err)
	}
	cfg.CACerts = []string{cfgCAFile(t, dir, srv)}
	if err := get(cfg); err != nil {
		t.Errorf("with ca_certs: %v", err)
	}
}

func TestGetLegoConfigKeepsCorruptAccountKey(t *testing.T) {
	dir := t.TempDir()
	keyPath := cfgWriteFile(t, dir, "acme.key", "-----BEGIN EC PRIVATE KEY-----\ngarbage\n-----END EC PRIVATE KEY-----\n")
	before, _ := os.ReadFile(keyPath)
	cfg := cfgACMEConfig()
	cfg.ACMEKeyPath = keyPath
	user, lc, err := cfg.GetLegoConfig()
	if !errors.Is(err, ErrAccountKey) || user != nil || lc != nil {
		t.Fatalf("got %v, %v, %v; want ErrAccountKey", user, lc, err)
	}
	if !strings.Contains(err.Error(), keyPath) {
		t.Errorf("error does not name the file: %v", err)
	}
	after, _ := os.ReadFile(keyPath)
	if !bytes.Equal(before, after) {
		t.Error("corrupt account key was modified")
	}
}

func TestGetLegoConfigWithStorage(t *testing.T) {
	st := newAcctMemStorage()
	cfg := cfgACMEConfig()
	user, _, err := cfg.legoConfig(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := st.entries["certs/acme.key"]
	if !ok || !e.Private {
		t.Fatalf("account key not stored privately in the given storage: %+v", e)
	}
	if _, err := os.Stat("certs/acme.key"); err == nil {
		t.Error("key written to the file system instead of the storage")
	}
	if user.Key == nil {
		t.Error("no key")
	}
}

// TestConfigValidateStorageBlock: a storage block that says nothing of its
// type but gives a DSN is refused (it would silently mean file storage),
// as is a DSN for the file storage, which takes none; no message shows
// the DSN.
func TestConfigValidateStorageBlock(t *testing.T) {
	const dsn = "postgres://autocert:storage-pw-9f2e@db.internal/certs"
	tests := []struct {
		name string
		sc   *StorageConfig
		want []string
	}{
		{"no block", nil, nil},
		{"empty block", &StorageConfig{}, nil},
		{"file", &StorageConfig{Type: "file"}, nil},
		{"File, spaced", &StorageConfig{Type: " File "}, nil},
		{"DSN without type", &StorageConfig{DSN: dsn}, []string{"storage.type: required when storage.dsn is set"}},
		{"DSN with a blank type", &StorageConfig{Type: "  ", DSN: dsn}, []string{"storage.type: required when storage.dsn is set"}},
		{"DSN for file storage", &StorageConfig{Type: "file", DSN: dsn}, []string{"storage.dsn: not used by storage type file"}},
		{"unknown type", &StorageConfig{Type: "postgress", DSN: dsn}, []string{`storage.type: unknown storage type "postgress"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfgACMEConfig()
			cfg.Storage = tt.sc
			err := cfg.Validate()
			cfgCheckProblems(t, err, tt.want...)
			if err != nil && (strings.Contains(err.Error(), "storage-pw-9f2e") || strings.Contains(err.Error(), "db.internal")) {
				t.Errorf("the error shows the DSN: %v", err)
			}
		})
	}
	// From a file: the problem has the line of the storage block.
	doc := "provider: cfgtest-dns\nemail: a@example.com\ndomains: [a.example.com]\noptions: {api_token: tok-0123456789}\nstorage:\n  dsn: " + dsn + "\n"
	_, err := ParseConfig([]byte(doc))
	if err == nil || !strings.Contains(err.Error(), "line 5: storage.type: required when storage.dsn is set") {
		t.Errorf("ParseConfig: %v", err)
	}
}

// cfgTestReflecting is a DNS provider whose options validator quotes the
// api_token option in the forms a remote API reflects a credential: HTTP
// Basic, base64, hex, URL-escaped, JSON.
const cfgTestReflecting = "cfgtest-reflecting"

func init() {
	RegisterProvider(cfgTestReflecting, cfgReflectingFactory{})
}

type cfgReflectingFactory struct{}

func (cfgReflectingFactory) NewDNSProvider(Options) (challenge.Provider, error) {
	return nil, errors.New("test provider: not for use")
}

func (cfgReflectingFactory) ValidateOptions(opts Options) error {
	return errors.New(cfgReflections(opts["api_token"].Value()))
}

// cfgReflections returns sec in the forms an API reflects it.
func cfgReflections(sec string) string {
	j, _ := json.Marshal(sec)
	forms := []string{
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("apiuser:"+sec)),
		"as base64url " + base64.RawURLEncoding.EncodeToString([]byte(sec)),
		"hex " + hex.EncodeToString([]byte(sec)),
		"query ?token=" + url.QueryEscape(sec),
		"json " + string(j),
	}
	return "API says 401: " + strings.Join(forms, "; ")
}

// TestConfigValidateScrubsReflectedSecrets: an options validator that
// quotes a credential in one of the forms an API reflects (base64 of an
// HTTP Basic credential, hex, URL-escaped, JSON) has every form scrubbed.
func TestConfigValidateScrubsReflectedSecrets(t *testing.T) {
	const sec = `tok+/s3cr3t "reflected"&`
	if redact.Text != redactedText {
		t.Fatalf("redact.Text %q differs from redactedText %q", redact.Text, redactedText)
	}
	cfg := cfgACMEConfig()
	cfg.Provider, cfg.Options = cfgTestReflecting, Options{"api_token": sec}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	raw := cfgReflections(sec)
	for _, form := range strings.Split(strings.TrimPrefix(raw, "API says 401: "), "; ") {
		_, value, _ := strings.Cut(form, " ")
		value = strings.TrimPrefix(value, "Basic ")
		value = strings.TrimPrefix(value, "?token=")
		if strings.Contains(msg, value) {
			t.Errorf("the error shows %q: %s", form, msg)
		}
	}
	if got := strings.Count(msg, redactedText); got != 5 {
		t.Errorf("%d forms redacted, want 5: %s", got, msg)
	}
}
