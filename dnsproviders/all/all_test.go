package all_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/autocert-dev/autocert"
	_ "github.com/autocert-dev/autocert/dnsproviders/all"
)

// proxy records the hosts that anything using Go's default HTTP transport
// tries to reach, and refuses them. TestMain points HTTP_PROXY and
// HTTPS_PROXY at it before any test runs, so that building a provider
// that would contact its API is caught instead of reaching the network.
var proxy *recordingProxy

func TestMain(m *testing.M) {
	p, err := startRecordingProxy()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	proxy = p
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		os.Setenv(k, "http://"+p.addr)
	}
	os.Unsetenv("NO_PROXY")
	os.Unsetenv("no_proxy")
	code := m.Run()
	p.stop()
	os.Exit(code)
}

// The names the project promises (the seed's table and the list).
var promised = []string{
	"cloudflare", "route53", "digitalocean", "godaddy", "ovh", "clouddns", "gcloud", "azuredns", "duckdns",
	"rfc2136", "exec", "httpreq", "acme-dns", "desec", "porkbun", "hetzner", "namecheap", "gandiv5",
	"linode", "vultr", "namesilo", "pdns", "transip", "ionos",
}

func TestPromisedNamesRegistered(t *testing.T) {
	names := autocert.Providers()
	for _, n := range promised {
		if !slices.Contains(names, n) {
			t.Errorf("provider %q is not registered", n)
		}
	}
	if len(names) < 150 {
		t.Errorf("only %d providers registered; the all package should register every lego provider", len(names))
	}
}

// requiredSets is what legodns factories report beyond OptionKeys.
type requiredSets interface{ RequiredOptions() [][]string }

// provider is one registered name with its description.
type provider struct {
	name string
	f    autocert.DNSProviderFactory
	keys []autocert.OptionKey
	req  [][]string
}

func registered(t *testing.T) []provider {
	t.Helper()
	var out []provider
	for _, n := range autocert.Providers() {
		f, _ := autocert.LookupProvider(n)
		d, ok := f.(autocert.OptionsDescriber)
		if !ok {
			t.Errorf("%s: factory does not describe its options", n)
			continue
		}
		r, ok := f.(requiredSets)
		if !ok {
			t.Errorf("%s: factory does not list its required options", n)
			continue
		}
		if _, ok := f.(autocert.OptionsValidator); !ok {
			t.Errorf("%s: factory does not validate options", n)
			continue
		}
		out = append(out, provider{name: n, f: f, keys: d.OptionKeys(), req: r.RequiredOptions()})
	}
	return out
}

var keyName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$`)

// TestEveryProviderOptions checks, for every registered name, what a user
// sees when configuring it: valid options validate (directly and through
// Config.Validate), a missing credential is named, an unknown key lists
// the valid ones, and no option value ever appears in a message.
func TestEveryProviderOptions(t *testing.T) {
	for _, p := range registered(t) {
		t.Run(p.name, func(t *testing.T) {
			seen := make(map[string]bool)
			var valid []string
			for _, k := range p.keys {
				if !keyName.MatchString(k.Name) {
					t.Errorf("key %q is not snake_case", k.Name)
				}
				for _, n := range append([]string{k.Name}, k.Aliases...) {
					if seen[n] {
						t.Errorf("key or alias %q appears twice", n)
					}
					seen[n] = true
				}
				valid = append(valid, k.Name)
			}
			if len(p.keys) == 0 {
				t.Fatal("no option keys")
			}

			secrets := newSecrets()
			var set []string
			if len(p.req) > 0 {
				set = p.req[0]
			}
			opts := fill(t, p.f, set, secrets)

			// A complete block validates, as a user's config would.
			cfg := &autocert.Config{Provider: p.name, Email: "admin@example.com", Domains: []string{"example.com"}, Options: opts}
			if err := cfg.Validate(); err != nil {
				t.Errorf("config with %v does not validate: %v", set, err)
			}

			// Each required key, left out, is named.
			for _, missing := range set {
				o := clone(opts)
				delete(o, missing)
				err := validate(p.f, o)
				switch {
				case err == nil:
					t.Errorf("without %s: validates", missing)
				case !strings.Contains(err.Error(), missing):
					t.Errorf("without %s: error does not name it: %v", missing, err)
				}
				if len(p.req) > 1 {
					for _, alt := range p.req {
						for _, k := range alt {
							if !strings.Contains(err.Error(), k) {
								t.Errorf("without %s: error does not name the alternative %s: %v", missing, k, err)
							}
						}
					}
				}
				secrets.absent(t, err)
			}

			// An unknown key is refused with the valid keys listed.
			o := clone(opts)
			o["no_such_option"] = autocert.Redacted(secrets.next())
			err := validate(p.f, o)
			if err == nil || !strings.Contains(err.Error(), `unknown option "no_such_option"`) {
				t.Errorf("unknown key: %v", err)
			} else {
				for _, k := range valid {
					if !strings.Contains(err.Error(), k) {
						t.Errorf("unknown key: error does not list %s: %v", k, err)
					}
				}
			}
			secrets.absent(t, err)

			// A malformed value is named by its key, never shown.
			for _, k := range p.keys {
				if k.Name == "ttl" || k.Name == "propagation_timeout" {
					o := clone(opts)
					o[k.Name] = autocert.Redacted(secrets.next())
					err := validate(p.f, o)
					if err == nil || !strings.Contains(err.Error(), k.Name) {
						t.Errorf("malformed %s: %v", k.Name, err)
					}
					secrets.absent(t, err)
				}
			}
			secrets.absent(t, cfg.Validate())
			secrets.absent(t, fmt.Errorf("%v %+v %#v", cfg, cfg, cfg.Options))
		})
	}
}

// TestEveryProviderBuilds builds every provider from its required options
// (placeholder credentials): lego must neither panic nor contact the
// network, and an error lego returns must not quote a value.
func TestEveryProviderBuilds(t *testing.T) {
	for _, p := range registered(t) {
		t.Run(p.name, func(t *testing.T) {
			secrets := newSecrets()
			var set []string
			if len(p.req) > 0 {
				set = p.req[0]
			}
			opts := fill(t, p.f, set, secrets)
			before := proxy.count()
			prov, err := p.f.NewDNSProvider(opts)
			if err != nil {
				if strings.Contains(err.Error(), "panicked") {
					t.Errorf("lego panicked: %v", err)
				}
				secrets.absent(t, err)
				// Placeholder credentials can be refused (a key file that does
				// not exist, a malformed private key): that is lego's check.
				t.Logf("refused placeholder credentials: %v", err)
			} else if prov == nil {
				t.Error("nil provider without error")
			}
			if hosts := proxy.since(before); len(hosts) > 0 {
				t.Errorf("building the provider contacted %v", hosts)
			}
		})
	}
}

func validate(f autocert.DNSProviderFactory, o autocert.Options) error {
	return f.(autocert.OptionsValidator).ValidateOptions(o)
}

func clone(o autocert.Options) autocert.Options {
	c := make(autocert.Options, len(o))
	for k, v := range o {
		c[k] = v
	}
	return c
}

// fill returns options setting each key of set to a placeholder, chosen
// by the form the validator asks for.
func fill(t *testing.T, f autocert.DNSProviderFactory, set []string, s *secrets) autocert.Options {
	t.Helper()
	o := autocert.Options{}
	for _, k := range set {
		o[k] = autocert.Redacted(s.next())
	}
	for range 3 {
		err := validate(f, o)
		if err == nil {
			return o
		}
		for _, k := range set {
			msg := err.Error()
			prefix := fmt.Sprintf("option %q: ", k)
			i := strings.Index(msg, prefix)
			if i < 0 {
				continue
			}
			switch rest := msg[i+len(prefix):]; {
			case strings.HasPrefix(rest, "expected an absolute URL"):
				o[k] = "https://127.0.0.1:9/api"
			case strings.HasPrefix(rest, "expected true or false"):
				o[k] = "true"
			case strings.HasPrefix(rest, "expected a whole number"):
				o[k] = "300"
			case strings.HasPrefix(rest, "expected a duration"):
				o[k] = "30s"
			case strings.HasPrefix(rest, "expected a number"):
				o[k] = "1.5"
			case strings.HasPrefix(rest, "expected comma-separated key:value pairs"):
				o[k] = autocert.Redacted("example.com:" + s.next())
			}
		}
	}
	t.Fatalf("no placeholder values satisfy %v: %v", set, validate(f, o))
	return nil
}

// secrets hands out unique secret-looking values and checks that none of
// them appears in a message.
type secrets struct{ given []string }

func newSecrets() *secrets { return &secrets{} }

func (s *secrets) next() string {
	b := make([]byte, 12)
	rand.Read(b)
	v := "s3cr3t-" + hex.EncodeToString(b)
	s.given = append(s.given, v)
	return v
}

func (s *secrets) absent(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range s.given {
		if strings.Contains(err.Error(), v) {
			t.Errorf("a secret value appears in: %v", err)
		}
	}
}

// recordingProxy is an HTTP proxy that records and refuses every request.
type recordingProxy struct {
	addr string
	l    net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	hosts []string
}

func startRecordingProxy() (*recordingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &recordingProxy{addr: l.Addr().String(), l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				if f := strings.Fields(line); len(f) >= 2 {
					p.mu.Lock()
					p.hosts = append(p.hosts, f[1])
					p.mu.Unlock()
				}
				fmt.Fprint(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	return p, nil
}

func (p *recordingProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.hosts)
}

func (p *recordingProxy) since(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hosts[n:])
}

func (p *recordingProxy) stop() {
	p.l.Close()
	p.wg.Wait()
}
