package autocert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/dnsproviders/legodns"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/providers/dns/cloudflare"
	"github.com/go-acme/lego/v4/providers/dns/ovh"
	"github.com/rs/zerolog"
)

// godoxyTestDNS is a DNS provider whose options validator requires
// api_token; it builds no provider.
const godoxyTestDNS = "godoxytest-dns"

func init() {
	autocert.RegisterProvider(godoxyTestDNS, godoxyTestFactory{})
	// The lego providers GoDoxy's examples use, built as package
	// dnsproviders builds them, unless it is linked in and did so.
	if _, ok := autocert.LookupProvider("cloudflare"); !ok {
		autocert.RegisterProvider("cloudflare", legodns.New(cloudflare.NewDefaultConfig, cloudflare.NewDNSProviderConfig,
			legodns.RequireOneOf("auth_token", "auth_email auth_key")))
	}
	if _, ok := autocert.LookupProvider("ovh"); !ok {
		autocert.RegisterProvider("ovh", legodns.New(ovh.NewDefaultConfig, ovh.NewDNSProviderConfig,
			legodns.RequireOneOf("api_endpoint application_key application_secret consumer_key",
				"api_endpoint oauth2_config.client_id oauth2_config.client_secret", "api_endpoint access_token")))
	}
}

type godoxyTestFactory struct{}

func (godoxyTestFactory) NewDNSProvider(autocert.Options) (challenge.Provider, error) {
	return nil, errors.New("test provider: not for use")
}

func (godoxyTestFactory) ValidateOptions(opts autocert.Options) error {
	if opts["api_token"] == "" {
		return errors.New("missing required option api_token")
	}
	return nil
}

// godoxyEnv is a lookup of the variables in m.
func godoxyEnv(m map[string]string) autocert.LoadOption {
	return autocert.WithLookup(func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	})
}

// godoxyLoad writes doc to a file named cfg.yaml in a new directory and
// loads it with the variables of env. It returns the file's path too.
func godoxyLoad(t *testing.T, doc string, env map[string]string) (*autocert.Config, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cfg.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := autocert.LoadConfigFile(path, godoxyEnv(env))
	return cfg, path, err
}

// godoxyMustLoad is godoxyLoad failing the test on an error.
func godoxyMustLoad(t *testing.T, doc string, env map[string]string) *autocert.Config {
	t.Helper()
	cfg, _, err := godoxyLoad(t, doc, env)
	if err != nil {
		t.Fatalf("%v\nin:\n%s", err, doc)
	}
	return cfg
}

// godoxyProblems returns the text of each problem err joins.
func godoxyProblems(err error) []string {
	if fe, ok := err.(*autocert.FieldError); ok {
		return []string{fe.Error()}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, godoxyProblems(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []string{err.Error()}
}

// godoxyCheckProblems asserts that err wraps ErrInvalidConfig and holds
// exactly one problem per want, each containing it ("cfg.yaml" standing
// for the file's path).
func godoxyCheckProblems(t *testing.T, err error, path string, want ...string) {
	t.Helper()
	if !errors.Is(err, autocert.ErrInvalidConfig) {
		t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
	}
	got := godoxyProblems(err)
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		w = strings.Replace(w, "cfg.yaml", path, 1)
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
			t.Errorf("no problem contains %q; got:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

// godoxyHead is the start of the documents of the domains tests; domains
// come on line 4.
const godoxyHead = "provider: " + godoxyTestDNS + "\nemail: admin@example.com\noptions: {api_token: tok-0123456789}\n"

// TestGoDoxyDomainsForms: domains (and resolvers) written as one string,
// as GoDoxy accepts them, load as the same configuration as the YAML list.
func TestGoDoxyDomainsForms(t *testing.T) {
	want := godoxyMustLoad(t, godoxyHead+"domains: [a.example.com, \"*.a.example.com\"]\nresolvers: [1.1.1.1, \"9.9.9.9:5353\"]\n", nil)
	if !slices.Equal(want.Domains, []string{"a.example.com", "*.a.example.com"}) {
		t.Fatalf("list form: domains %q", want.Domains)
	}
	tests := []struct {
		name, domains, resolvers string
		env                      map[string]string
	}{
		{name: "comma-separated", domains: "a.example.com,*.a.example.com"},
		{name: "spaces around commas", domains: "a.example.com ,   *.a.example.com"},
		{name: "quoted", domains: `"a.example.com, *.a.example.com"`, resolvers: `"1.1.1.1, 9.9.9.9:5353"`},
		{name: "space-separated", domains: "a.example.com *.a.example.com", resolvers: "1.1.1.1 9.9.9.9:5353"},
		{name: "normalised like the list", domains: "A.Example.COM., *.a.example.com"},
		{name: "from ${DOMAINS}", domains: "${DOMAINS}", resolvers: "${RESOLVERS}",
			env: map[string]string{"DOMAINS": "a.example.com,*.a.example.com", "RESOLVERS": "1.1.1.1,9.9.9.9:5353"}},
		{name: "from ${DOMAINS} with spaces", domains: "${DOMAINS}",
			env: map[string]string{"DOMAINS": "  a.example.com , *.a.example.com  "}},
		{name: "from two variables", domains: "${D1},${D2}",
			env: map[string]string{"D1": "a.example.com", "D2": "*.a.example.com"}},
		{name: "a YAML list from ${DOMAINS}", domains: "${DOMAINS}",
			env: map[string]string{"DOMAINS": `[a.example.com, "*.a.example.com"]`}},
		{name: "a YAML block list from ${DOMAINS}", domains: "${DOMAINS}",
			env: map[string]string{"DOMAINS": "- a.example.com\n- \"*.a.example.com\""}},
		{name: "a default", domains: "${DOMAINS:-a.example.com,*.a.example.com}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.resolvers == "" {
				tt.resolvers = "1.1.1.1, 9.9.9.9:5353"
			}
			got := godoxyMustLoad(t, godoxyHead+"domains: "+tt.domains+"\nresolvers: "+tt.resolvers+"\n", tt.env)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}

	t.Run("JSON", func(t *testing.T) {
		got := godoxyMustLoad(t, `{"autocert": {"provider": "`+godoxyTestDNS+`", "email": "admin@example.com",
			"options": {"api_token": "tok-0123456789"}, "domains": "a.example.com, *.a.example.com",
			"resolvers": "1.1.1.1,9.9.9.9:5353"}}`, nil)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got\n%+v\nwant\n%+v", got, want)
		}
	})

	t.Run("extra", func(t *testing.T) {
		doc := godoxyHead + "domains: a.example.com\nextra:\n  - domains: b.example.com, *.b.example.com\n    cert_path: certs/b.crt\n    key_path: certs/b.key\n"
		got := godoxyMustLoad(t, doc, nil)
		merged := autocert.MergeExtraConfig(got, &got.Extra[0])
		if !slices.Equal(merged.Domains, []string{"b.example.com", "*.b.example.com"}) {
			t.Errorf("extra's domains %q", merged.Domains)
		}
	})
}

// TestGoDoxyDomainsFormErrors: a malformed one-string list is reported
// with the file, the line and the item's key.
func TestGoDoxyDomainsFormErrors(t *testing.T) {
	tests := []struct {
		name, doc string
		env       map[string]string
		want      []string
	}{
		{name: "empty item", doc: "domains: a.example.com,,*.a.example.com\n",
			want: []string{"cfg.yaml:4: domains[1]: empty item in the comma-separated list"}},
		{name: "trailing comma", doc: "domains: a.example.com, \n",
			want: []string{"cfg.yaml:4: domains[1]: empty item"}},
		{name: "leading comma", doc: "domains: \", a.example.com\"\n",
			want: []string{"cfg.yaml:4: domains[0]: empty item"}},
		{name: "only a comma", doc: "domains: \",\"\n",
			want: []string{"cfg.yaml:4: domains[0]: empty item", "cfg.yaml:4: domains[1]: empty item"}},
		{name: "empty item from ${DOMAINS}", doc: "domains: ${DOMAINS}\n", env: map[string]string{"DOMAINS": "a.example.com,,b.example.com"},
			want: []string{"cfg.yaml:4: domains[1]: empty item"}},
		{name: "empty resolver", doc: "domains: a.example.com\nresolvers: 1.1.1.1,,9.9.9.9\n",
			want: []string{"cfg.yaml:5: resolvers[1]: empty item"}},
		{name: "invalid item", doc: "domains: a.example.com, bad..example.com\n",
			want: []string{`cfg.yaml:4: domains[1]: invalid domain "bad..example.com": empty label`}},
		{name: "duplicate item", doc: "domains: a.example.com, A.example.com\n",
			want: []string{`cfg.yaml:4: domains[1]: duplicate domain "a.example.com" (also domains[0])`}},
		{name: "not a YAML list", doc: "domains: \"[a.example.com\"\n",
			want: []string{`cfg.yaml:4: domains: the value starts like a YAML list ("[" or "- ") but is not one`}},
		{name: "a list in the list", doc: "domains: ${DOMAINS}\n", env: map[string]string{"DOMAINS": "[a.example.com, [b.example.com]]"},
			want: []string{"cfg.yaml:4: domains[1]: expected a string, got a list"}},
		{name: "in an extra", doc: "domains: a.example.com\nextra:\n  - cert_path: a\n    key_path: b\n    domains: b.example.com,\n",
			want: []string{"cfg.yaml:8: extra[0].domains[1]: empty item"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, path, err := godoxyLoad(t, godoxyHead+tt.doc, tt.env)
			if cfg != nil {
				t.Error("config returned with an error")
			}
			godoxyCheckProblems(t, err, path, tt.want...)
		})
	}
}

// TestGoDoxyKeyTypes: the key type names of lego and GoDoxy are accepted
// in any case and become autocert's, which is what lego is given.
func TestGoDoxyKeyTypes(t *testing.T) {
	tests := []struct {
		names []string
		want  string
		lego  certcrypto.KeyType
	}{
		{[]string{"P256", "p256", "EC256", "ec256", `"P256"`}, "EC256", certcrypto.EC256},
		{[]string{"P384", "p384", "EC384", "Ec384"}, "EC384", certcrypto.EC384},
		{[]string{"2048", `"2048"`, "RSA2048", "rsa2048"}, "RSA2048", certcrypto.RSA2048},
		{[]string{"3072", "RSA3072", "rsa3072"}, "RSA3072", certcrypto.RSA3072},
		{[]string{"4096", "RSA4096", "rsa4096"}, "RSA4096", certcrypto.RSA4096},
		{[]string{"8192", "RSA8192", "rsa8192", `" RSA8192 "`}, "RSA8192", certcrypto.RSA8192},
	}
	for _, tt := range tests {
		for _, name := range tt.names {
			t.Run(name, func(t *testing.T) {
				doc := fmt.Sprintf("%scertificate_key_type: %s\ndomains: a.example.com\nacme_key_path: %s\nextra:\n  - cert_path: e.crt\n    key_path: e.key\n    certificate_key_type: %s\n",
					godoxyHead, name, filepath.Join(t.TempDir(), "acme.key"), name)
				cfg := godoxyMustLoad(t, doc, nil)
				if cfg.CertificateKeyType != tt.want {
					t.Errorf("certificate_key_type %q, want %q", cfg.CertificateKeyType, tt.want)
				}
				if e := autocert.MergeExtraConfig(cfg, &cfg.Extra[0]); e.CertificateKeyType != tt.want {
					t.Errorf("extra's certificate_key_type %q, want %q", e.CertificateKeyType, tt.want)
				}
				_, lc, err := cfg.GetLegoConfig()
				if err != nil {
					t.Fatal(err)
				}
				if lc.Certificate.KeyType != tt.lego {
					t.Errorf("lego key type %q, want %q", lc.Certificate.KeyType, tt.lego)
				}
			})
		}
	}

	t.Run("unknown", func(t *testing.T) {
		cfg, path, err := godoxyLoad(t, godoxyHead+"domains: a.example.com\ncertificate_key_type: 1024\n", nil)
		if cfg != nil {
			t.Error("config returned with an error")
		}
		godoxyCheckProblems(t, err, path, `cfg.yaml:5: certificate_key_type: unknown key type "1024": use EC256, EC384, RSA2048, RSA3072, RSA4096 or RSA8192 (also written P256, P384, 2048, 3072, 4096, 8192)`)
	})
}

// godoxyKeyType names the type of a certificate's public key as autocert
// does.
func godoxyKeyType(leaf *x509.Certificate) string {
	switch k := leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "EC256"
		case elliptic.P384():
			return "EC384"
		}
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA%d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", leaf.PublicKey)
}

// godoxyServed returns the leaf p serves for name.
func godoxyServed(t *testing.T, p *autocert.Provider, name string) *x509.Certificate {
	t.Helper()
	c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c.Leaf
}

// TestGoDoxyKeyTypeReachesPseudoCertificate: a key type written in lego's
// or GoDoxy's way makes a pseudo certificate with that key, which a later
// start with the same type under any of its names keeps.
func TestGoDoxyKeyTypeReachesPseudoCertificate(t *testing.T) {
	tests := []struct{ name, again, want string }{
		{"P256", "ec256", "EC256"},
		{"p384", "EC384", "EC384"},
		{"2048", "RSA2048", "RSA2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			doc := func(kt string) string {
				return fmt.Sprintf("provider: pseudo\ndomains: dev.example.com\ncertificate_key_type: %s\ncert_path: %s\nkey_path: %s\n",
					kt, filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"))
			}
			serial := func(kt string) string {
				p, err := autocert.New(context.Background(), godoxyMustLoad(t, doc(kt), nil), autocert.WithLogger(zerolog.Nop()))
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				if err := p.ObtainAll(context.Background(), false); err != nil {
					t.Fatal(err)
				}
				leaf := godoxyServed(t, p, "dev.example.com")
				if got := godoxyKeyType(leaf); got != tt.want {
					t.Errorf("certificate_key_type %s: served a %s key, want %s", kt, got, tt.want)
				}
				return leaf.SerialNumber.String()
			}
			first := serial(tt.name)
			if again := serial(tt.again); again != first {
				t.Errorf("certificate_key_type %s after %s made a new certificate: the same type must not mismatch", tt.again, tt.name)
			}
		})
	}
}

// TestGoDoxyConfigObtains: testdata/godoxy/acmetest.yml, written in
// GoDoxy's forms, obtains its certificates from the in-process CA: the
// main one for the names of one comma-separated variable with a P384 key,
// the extra with a 2048-bit RSA key through the DNS account of the main
// block, which its options: {} inherits. A second start orders nothing:
// the certificates match the configuration.
func TestGoDoxyConfigObtains(t *testing.T) {
	ca := acmetest.New(t)
	opts := ca.ProviderOptions()
	env := map[string]string{
		"DOMAINS":       "example.com, *.example.com",
		"CERT_DIR":      t.TempDir(),
		"CA_DIR_URL":    ca.DirectoryURL(),
		"CA_CERTS":      ca.CACertFile(),
		"RESOLVERS":     ca.DNSAddr(),
		"DNS_API_URL":   opts[acmetest.OptionAPIURL].Value(),
		"DNS_API_TOKEN": opts[acmetest.OptionAPIToken].Value(),
	}
	start := func() *autocert.Provider {
		cfg, err := autocert.LoadConfigFile(filepath.Join("testdata", "godoxy", "acmetest.yml"), godoxyEnv(env))
		if err != nil {
			t.Fatal(err)
		}
		p, err := autocert.New(context.Background(), cfg, autocert.WithLogger(zerolog.Nop()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		if err := p.ObtainAll(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := start()
	for _, tt := range []struct{ name, keyType string }{
		{"www.example.com", "EC384"},
		{"www.rsa.example.com", "RSA2048"},
	} {
		leaf := godoxyServed(t, p, tt.name)
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tt.name, Roots: ca.Roots(), Intermediates: godoxyPool(ca.Intermediate())}); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if got := godoxyKeyType(leaf); got != tt.keyType {
			t.Errorf("%s: a %s key, want %s", tt.name, got, tt.keyType)
		}
	}
	main, rsaCert := []string{"example.com", "*.example.com"}, []string{"rsa.example.com", "www.rsa.example.com"}
	if n, m := ca.OrderCount(main...), ca.OrderCount(rsaCert...); n != 1 || m != 1 {
		t.Fatalf("orders %d and %d, want 1 each", n, m)
	}
	start()
	if n, m := ca.OrderCount(main...), ca.OrderCount(rsaCert...); n != 1 || m != 1 {
		t.Errorf("after a second start: orders %d and %d, want still 1 each", n, m)
	}
}

func godoxyPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// godoxyOVH is the head of the documents of the nested options tests;
// options start on line 5.
const godoxyOVH = "provider: ovh\nemail: admin@example.com\ndomains: example.com\ncert_path: certs/ovh.crt\noptions:\n"

// TestGoDoxyNestedOptions: options nested as GoDoxy's users write them
// (ovh's oauth2_config) become the dotted keys the DNS providers take, as
// secrets, with ${VAR} expanded inside.
func TestGoDoxyNestedOptions(t *testing.T) {
	const id, secret = "godoxy-client-id-1", "godoxy-client-secret-2"
	env := map[string]string{"OVH_CLIENT_ID": id, "OVH_CLIENT_SECRET": secret}
	dotted := godoxyMustLoad(t, godoxyOVH+"  api_endpoint: ovh-eu\n  oauth2_config.client_id: "+id+"\n  oauth2_config.client_secret: "+secret+"\n", nil)
	wantKeys := []string{"api_endpoint", "oauth2_config.client_id", "oauth2_config.client_secret"}
	if keys := slices.Sorted(func(yield func(string) bool) {
		for k := range dotted.Options {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(keys, wantKeys) {
		t.Fatalf("dotted form: keys %q", keys)
	}
	tests := []struct{ name, options string }{
		{"block mapping", "  api_endpoint: ovh-eu\n  oauth2_config:\n    client_id: ${OVH_CLIENT_ID}\n    client_secret: ${OVH_CLIENT_SECRET}\n"},
		{"flow mapping", "  api_endpoint: ovh-eu\n  oauth2_config: {client_id: \"${OVH_CLIENT_ID}\", client_secret: '${OVH_CLIENT_SECRET}'}\n"},
		{"nested and dotted side by side", "  api_endpoint: ovh-eu\n  oauth2_config:\n    client_id: ${OVH_CLIENT_ID}\n  oauth2_config.client_secret: ${OVH_CLIENT_SECRET}\n"},
		{"through an anchor", "  api_endpoint: ovh-eu\n  oauth2_config: &client\n    client_id: ${OVH_CLIENT_ID}\n    client_secret: ${OVH_CLIENT_SECRET}\nextra:\n  - cert_path: a\n    key_path: b\n    options:\n      api_endpoint: ovh-ca\n      oauth2_config: *client\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := godoxyMustLoad(t, godoxyOVH+tt.options, env)
			if !reflect.DeepEqual(got.Options, dotted.Options) {
				t.Errorf("options differ from the dotted form")
			}
			for _, e := range got.Extra {
				if e.Options["oauth2_config.client_secret"].Value() != secret || e.Options["api_endpoint"] != "ovh-ca" {
					t.Errorf("extra's options not decoded")
				}
			}
			for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", got, got, got.Options, got.Options)} {
				if strings.Contains(s, secret) || strings.Contains(s, id) {
					t.Errorf("secret rendered: %s", s)
				}
			}
			// The factory registered as ovh takes them: its validator and
			// lego's constructor, which refuses a Config without
			// credentials (no network is contacted).
			f, _ := autocert.LookupProvider("ovh")
			if _, err := f.NewDNSProvider(got.Options); err != nil {
				t.Errorf("ovh provider refused the options: %v", err)
			}
			// lego's Config has its OAuth2Config: with an access token as
			// well, lego refuses the two.
			both := maps.Clone(got.Options)
			both["access_token"] = "token"
			if _, err := f.NewDNSProvider(both); err == nil || !strings.Contains(err.Error(), "(OAuth2, Access Token)") {
				t.Errorf("OAuth2 client and access token: %v, want lego's refusal of both", err)
			}
		})
	}

	t.Run("deeper nesting", func(t *testing.T) {
		got := godoxyMustLoad(t, godoxyHead+"domains: a.example.com\nextra:\n  - cert_path: a\n    key_path: b\n    options:\n      api_token: t\n      a:\n        b: {c: x, d: y}\n        e: z\n", nil)
		want := autocert.Options{"api_token": "t", "a.b.c": "x", "a.b.d": "y", "a.e": "z"}
		if !reflect.DeepEqual(got.Extra[0].Options, want) {
			t.Errorf("options %q", slices.Collect(func(yield func(string) bool) {
				for k := range got.Extra[0].Options {
					if !yield(k) {
						return
					}
				}
			}))
		}
	})

	t.Run("optional variables see the nested key", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cfg.yaml")
		doc := godoxyOVH + "  api_endpoint: ovh-eu\n  oauth2_config:\n    client_id: x\n    client_secret: ${OVH_CLIENT_SECRET}\n"
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		var keys []string
		cfg, err := autocert.LoadConfigFile(path, godoxyEnv(nil), autocert.WithOptionalVariables(func(key string) bool {
			keys = append(keys, key)
			return true
		}))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, []string{"options.oauth2_config.client_secret"}) || cfg.Options["oauth2_config.client_secret"] != "${OVH_CLIENT_SECRET}" {
			t.Errorf("optional asked for %q; value kept: %v", keys, cfg.Options["oauth2_config.client_secret"] == "${OVH_CLIENT_SECRET}")
		}
	})
}

// TestGoDoxyNestedOptionsErrors: problems of nested options name the file,
// the line and the nested key, and never a value.
func TestGoDoxyNestedOptionsErrors(t *testing.T) {
	const secret = "godoxy-secret-value-3"
	env := map[string]string{"OVH_CLIENT_SECRET": secret}
	tests := []struct {
		name, options string
		want          []string
	}{
		{name: "a list inside", options: "  api_endpoint: ovh-eu\n  oauth2_config:\n    client_id: [a]\n    client_secret: ${OVH_CLIENT_SECRET}\n",
			want: []string{"cfg.yaml:8: options.oauth2_config.client_id: expected a string or a mapping of options, got a list"}},
		{name: "nested and dotted both", options: "  api_endpoint: ovh-eu\n  oauth2_config.client_id: a\n  oauth2_config:\n    client_id: b\n    client_secret: ${OVH_CLIENT_SECRET}\n",
			want: []string{"cfg.yaml:9: options.oauth2_config.client_id: duplicate option (first at line 7"}},
		{name: "duplicate inside", options: "  api_endpoint: ovh-eu\n  oauth2_config:\n    client_id: a\n    client_id: b\n    client_secret: ${OVH_CLIENT_SECRET}\n",
			want: []string{"cfg.yaml:9: options.oauth2_config.client_id: duplicate key (first at line 8)"}},
		{name: "unset variable inside", options: "  api_endpoint: ovh-eu\n  oauth2_config:\n    client_id: a\n    client_secret: ${OVH_UNSET_SECRET}\n",
			want: []string{"cfg.yaml:9: options.oauth2_config.client_secret: environment variable OVH_UNSET_SECRET is not set"}},
		{name: "misspelt nested key", options: "  api_endpoint: ovh-eu\n  oauth2_config:\n    client_idd: a\n    client_secret: ${OVH_CLIENT_SECRET}\n",
			want: []string{`cfg.yaml:5: options: unknown option "oauth2_config.client_idd" (did you mean oauth2_config.client_id?)`, "cfg.yaml:5: options: missing credentials"}},
		{name: "half of the client", options: "  api_endpoint: ovh-eu\n  oauth2_config:\n    client_secret: ${OVH_CLIENT_SECRET}\n",
			want: []string{"cfg.yaml:5: options: missing credentials: set api_endpoint and application_key and application_secret and consumer_key, or api_endpoint and oauth2_config.client_id and oauth2_config.client_secret"}},
		{name: "in an extra", options: "  api_endpoint: ovh-eu\n  access_token: a\nextra:\n  - cert_path: a\n    key_path: b\n    options:\n      oauth2_config: {client_id: {x: [y]}, client_secret: \"${OVH_CLIENT_SECRET}\"}\n",
			want: []string{"cfg.yaml:12: extra[0].options.oauth2_config.client_id.x: expected a string or a mapping of options, got a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, path, err := godoxyLoad(t, godoxyOVH+tt.options, env)
			if cfg != nil {
				t.Error("config returned with an error")
			}
			godoxyCheckProblems(t, err, path, tt.want...)
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("secret in the error: %v", err)
			}
		})
	}
}

// TestGoDoxyExtraEmptyOptions: an extra with options: {} has the main
// block's options, as one that leaves options out; one with options of
// its own has only those.
func TestGoDoxyExtraEmptyOptions(t *testing.T) {
	const doc = godoxyHead + "domains: a.example.com\nextra:\n  - cert_path: a\n    key_path: b\n    options: %s\n"
	main := autocert.Options{"api_token": "tok-0123456789"}
	for _, tt := range []struct {
		options string
		want    autocert.Options
	}{
		{"{}", main},
		{"", main}, // null: unset
		{"{api_token: other-token, zone: z}", autocert.Options{"api_token": "other-token", "zone": "z"}},
	} {
		cfg := godoxyMustLoad(t, fmt.Sprintf(doc, tt.options), nil)
		if got := autocert.MergeExtraConfig(cfg, &cfg.Extra[0]); !reflect.DeepEqual(got.Options, tt.want) {
			t.Errorf("options: %s: merged options differ", tt.options)
		}
	}

	// Own options are never completed from the main block's.
	cfg, path, err := godoxyLoad(t, fmt.Sprintf(doc, "{zone: z}"), nil)
	if cfg != nil {
		t.Error("config returned with an error")
	}
	godoxyCheckProblems(t, err, path, "cfg.yaml:8: extra[0].options: missing required option api_token")

	// A problem of the inherited options is reported once, for the main block.
	cfg, path, err = godoxyLoad(t, "provider: "+godoxyTestDNS+"\nemail: admin@example.com\noptions: {token: t}\ndomains: a.example.com\nextra:\n  - cert_path: a\n    key_path: b\n    options: {}\n", nil)
	if cfg != nil {
		t.Error("config returned with an error")
	}
	godoxyCheckProblems(t, err, path, "cfg.yaml:3: options: missing required option api_token")
}

// TestGoDoxyEABPair: a lone eab_kid or eab_hmac is an error whatever the
// provider, reported at the line of the half that is there.
func TestGoDoxyEABPair(t *testing.T) {
	const hmac = "c2VjcmV0LWhtYWMta2V5"
	heads := map[string]string{
		"local":  "provider: local\n",
		"pseudo": "provider: pseudo\ndomains: a.example.com\n",
		"dns":    "provider: " + godoxyTestDNS + "\nemail: admin@example.com\ndomains: a.example.com\noptions: {api_token: t}\n",
	}
	for name, head := range heads {
		line := strings.Count(head, "\n") + 1
		t.Run(name, func(t *testing.T) {
			for _, tt := range []struct{ doc, want string }{
				{"eab_kid: kid-1\n", fmt.Sprintf("cfg.yaml:%d: eab_hmac: required when eab_kid is set", line)},
				{"eab_hmac: " + hmac + "\n", fmt.Sprintf("cfg.yaml:%d: eab_kid: required when eab_hmac is set", line)},
				{"extra:\n  - cert_path: a\n    key_path: b\n    ca_dir_url: https://ca.example/dir\n    eab_hmac: " + hmac + "\n",
					fmt.Sprintf("cfg.yaml:%d: extra[0].eab_kid: required when eab_hmac is set", line+4)},
			} {
				cfg, path, err := godoxyLoad(t, head+tt.doc, nil)
				if cfg != nil {
					t.Error("config returned with an error")
				}
				godoxyCheckProblems(t, err, path, tt.want)
				if err != nil && strings.Contains(err.Error(), hmac) {
					t.Errorf("HMAC in the error: %v", err)
				}
			}
			godoxyMustLoad(t, head+"eab_kid: kid-1\neab_hmac: "+hmac+"\n", nil)
		})
	}
}

// TestGoDoxyConfigFiles: configuration files in GoDoxy's style, kept in
// testdata/godoxy, load as the same configuration written in autocert's
// own forms.
func TestGoDoxyConfigFiles(t *testing.T) {
	env := map[string]string{
		"ACME_EMAIL":           "admin@example.com",
		"DOMAINS":              "example.com,*.example.com",
		"CLOUDFLARE_API_TOKEN": "cf-token-0123456789",
		"OVH_CLIENT_ID":        "ovh-client-id",
		"OVH_CLIENT_SECRET":    "ovh-client-secret",
	}
	tests := []struct{ file, ours string }{
		{"config.yml", `provider: cloudflare
email: admin@example.com
domains: [example.com, "*.example.com"]
certificate_key_type: EC256
options:
  auth_token: cf-token-0123456789
`},
		{"ovh.yml", `provider: ovh
email: admin@example.com
domains: ["*.example.com", example.com]
cert_path: /app/certs/cert.crt
key_path: /app/certs/priv.key
options:
  api_endpoint: ovh-eu
  oauth2_config.client_id: ovh-client-id
  oauth2_config.client_secret: ovh-client-secret
`},
		{"extras.yml", `provider: cloudflare
email: admin@example.com
domains: [example.com, "*.example.com"]
certificate_key_type: RSA4096
cert_path: certs/example.com.crt
key_path: certs/example.com.key
options:
  auth_token: cf-token-0123456789
resolvers: [1.1.1.1:53, 1.0.0.1:53]
extra:
  - domains: [example.org, "*.example.org"]
    cert_path: certs/example.org.crt
    key_path: certs/example.org.key
    certificate_key_type: RSA2048
  - provider: ovh
    domains: [example.net]
    cert_path: certs/example.net.crt
    key_path: certs/example.net.key
    certificate_key_type: EC384
    options:
      api_endpoint: ovh-eu
      oauth2_config.client_id: ovh-client-id
      oauth2_config.client_secret: ovh-client-secret
`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := autocert.LoadConfigFile(filepath.Join("testdata", "godoxy", tt.file), godoxyEnv(env))
			if err != nil {
				t.Fatal(err)
			}
			want := godoxyMustLoad(t, tt.ours, nil)
			// Compared as merged: options: {} and no options are the same.
			if len(got.Extra) != len(want.Extra) {
				t.Fatalf("%d extras, want %d", len(got.Extra), len(want.Extra))
			}
			for i := range got.Extra {
				g, w := autocert.MergeExtraConfig(got, &got.Extra[i]), autocert.MergeExtraConfig(want, &want.Extra[i])
				if !reflect.DeepEqual(g, w) {
					t.Errorf("extra[%d]:\n%+v\nwant\n%+v", i, g, w)
				}
				got.Extra[i].Options, want.Extra[i].Options = nil, nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestEmptyOptionsOfAnotherProvider: an extra naming another DNS provider
// than the main block's, with options: {}, gets no options: the main
// block's credentials are another provider's.
func TestEmptyOptionsOfAnotherProvider(t *testing.T) {
	main := &autocert.Config{Provider: "cloudflare", Options: autocert.Options{"api_token": "main-secret"}}
	for _, tc := range []struct {
		provider string
		inherit  bool
	}{{"", true}, {"cloudflare", true}, {" Cloudflare ", true}, {"route53", false}} {
		got := autocert.MergeExtraConfig(main, &autocert.ConfigExtra{Provider: tc.provider, Options: autocert.Options{}})
		if _, has := got.Options["api_token"]; has != tc.inherit {
			t.Errorf("extra with provider %q and options {}: inherits the main block's options = %v, want %v", tc.provider, has, tc.inherit)
		}
	}
}
