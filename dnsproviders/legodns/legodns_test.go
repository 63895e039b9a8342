package legodns

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/go-acme/lego/v4/challenge"
)

func TestSnakeCase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"AuthToken", "auth_token"},
		{"APIKey", "api_key"},
		{"TTL", "ttl"},
		{"AccessKeyID", "access_key_id"},
		{"TSIGKey", "tsig_key"},
		{"OAuth2Config", "oauth2_config"},
		{"HTTPTimeout", "http_timeout"},
		{"BaseURL", "base_url"},
		{"OIDCRequestURL", "oidc_request_url"},
		{"PropagationTimeout", "propagation_timeout"},
		{"UseIPv6", "use_ipv6"},
		{"Route53", "route53"},
	} {
		if got := snakeCase(tc.in); got != tc.want {
			t.Errorf("snakeCase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// testConfig has a field of every supported kind, like a lego Config.
type testConfig struct {
	Token      string
	Flag       bool
	TTL        int
	Port       uint16
	Ratio      float64
	Timeout    time.Duration
	Endpoint   *url.URL
	Zones      []string
	Labels     map[string]string
	HTTPClient *http.Client
	Nested     *nestedConfig
	Callback   func() // not an option
}

type nestedConfig struct{ ClientID string }

type testProvider struct{ cfg *testConfig }

func (*testProvider) Present(_, _, _ string) error { return nil }
func (*testProvider) CleanUp(_, _, _ string) error { return nil }

func newTestConfig() *testConfig {
	return &testConfig{TTL: 120, HTTPClient: &http.Client{Transport: http.DefaultTransport}}
}

func newTestProvider(c *testConfig) (*testProvider, error) {
	if strings.HasPrefix(c.Token, "bad") {
		return nil, errors.New("token bad rejected: " + c.Token)
	}
	if c.Token == "boom" {
		panic("lego bug")
	}
	return &testProvider{cfg: c}, nil
}

func newFactory(opts ...Option) *Factory[testConfig] {
	return New(newTestConfig, newTestProvider, opts...)
}

func TestOptionKeys(t *testing.T) {
	f := newFactory(RequireOneOf("token"), Alias("token", "TEST_TOKEN"))
	var names []string
	for _, k := range f.OptionKeys() {
		names = append(names, k.Name)
		if k.Name == "token" && (!k.Required || len(k.Aliases) != 1 || k.Aliases[0] != "TEST_TOKEN") {
			t.Errorf("token key = %+v", k)
		}
	}
	want := "token flag ttl port ratio timeout endpoint zones labels http_timeout nested.client_id"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("keys = %s\nwant   %s", got, want)
	}
}

func TestConversion(t *testing.T) {
	tests := []struct {
		key, value string
		check      func(*testConfig) bool
		wantErr    string
	}{
		{"flag", "true", func(c *testConfig) bool { return c.Flag }, ""},
		{"flag", "maybe", nil, "expected true or false"},
		{"ttl", "300", func(c *testConfig) bool { return c.TTL == 300 }, ""},
		{"ttl", "5m", nil, "expected a whole number"},
		{"port", "-1", nil, "expected a whole number >= 0"},
		{"port", "70000", nil, "expected a whole number >= 0"},
		{"ratio", "0.5", func(c *testConfig) bool { return c.Ratio == 0.5 }, ""},
		{"timeout", "2m", func(c *testConfig) bool { return c.Timeout == 2*time.Minute }, ""},
		{"timeout", "90", func(c *testConfig) bool { return c.Timeout == 90*time.Second }, ""},
		{"timeout", "soon", nil, "expected a duration"},
		{"endpoint", "https://dns.example/api", func(c *testConfig) bool { return c.Endpoint.Host == "dns.example" }, ""},
		{"endpoint", "dns.example", nil, "expected an absolute URL"},
		{"zones", "a.example, b.example,", func(c *testConfig) bool { return strings.Join(c.Zones, "|") == "a.example|b.example" }, ""},
		{"labels", "env:prod,team:web", func(c *testConfig) bool { return c.Labels["env"] == "prod" && c.Labels["team"] == "web" }, ""},
		{"labels", "prod", nil, "expected comma-separated key:value pairs"},
		{"http_timeout", "45s", func(c *testConfig) bool {
			return c.HTTPClient.Timeout == 45*time.Second && c.HTTPClient.Transport == http.DefaultTransport
		}, ""},
		{"nested.client_id", "abc", func(c *testConfig) bool { return c.Nested != nil && c.Nested.ClientID == "abc" }, ""},
	}
	f := newFactory()
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			p, err := f.NewDNSProvider(autocert.Options{tc.key: autocert.Redacted(tc.value)})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.key) {
					t.Fatalf("error = %v, want one naming %s and saying %q", err, tc.key, tc.wantErr)
				}
				if len(tc.value) >= 3 && strings.Contains(err.Error(), tc.value) {
					t.Errorf("error quotes the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg := p.(*testProvider).cfg; !tc.check(cfg) {
				t.Errorf("config after %s=%s: %+v", tc.key, tc.value, cfg)
			}
		})
	}
}

func TestValidationMessages(t *testing.T) {
	const secret = "s3cr3t-value-123"
	tests := []struct {
		name  string
		f     *Factory[testConfig]
		opts  autocert.Options
		want  []string // substrings of the error; none: no error
		avoid []string
	}{
		{"defaults kept", newFactory(), autocert.Options{}, nil, nil},
		{"alias sets the key", newFactory(Alias("token", "TEST_TOKEN"), RequireOneOf("token")),
			autocert.Options{"TEST_TOKEN": secret}, nil, nil},
		{"unknown key lists the valid ones", newFactory(), autocert.Options{"tokn": secret},
			[]string{`unknown option "tokn"`, "did you mean token?", "token, flag, ttl", "nested.client_id"}, []string{secret}},
		{"missing key named with aliases", newFactory(RequireOneOf("token ttl"), Alias("token", "TEST_TOKEN")),
			autocert.Options{"ttl": "60"}, []string{"missing required option token (or TEST_TOKEN)"}, nil},
		{"alternatives", newFactory(RequireOneOf("token", "nested.client_id flag")), autocert.Options{"flag": "true"},
			[]string{"missing credentials: set token, or nested.client_id and flag"}, nil},
		{"empty value is unset", newFactory(RequireOneOf("token")), autocert.Options{"token": "  "},
			[]string{"missing required option token"}, nil},
		{"two spellings", newFactory(Alias("token", "TEST_TOKEN")), autocert.Options{"token": secret, "TEST_TOKEN": secret},
			[]string{`options "TEST_TOKEN" and "token" both set token`}, []string{secret}},
		{"every problem at once", newFactory(RequireOneOf("token")), autocert.Options{"ttl": autocert.Redacted(secret), "x": "1"},
			[]string{`option "ttl"`, `unknown option "x"`, "missing required option token"}, []string{secret}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.ValidateOptions(tc.opts)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, a := range tc.avoid {
				if strings.Contains(err.Error(), a) {
					t.Errorf("error shows a value:\n%v", err)
				}
			}
		})
	}
}

func TestConstructorFailures(t *testing.T) {
	f := newFactory()
	_, err := f.NewDNSProvider(autocert.Options{"token": "bad"})
	if err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("lego's error not returned: %v", err)
	}
	_, err = f.NewDNSProvider(autocert.Options{"token": "boom"})
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("panic not turned into an error: %v", err)
	}
	// lego quoting a secret in its error is scrubbed.
	_, err = f.NewDNSProvider(autocert.Options{"token": "bad-s3cr3t-token"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("secret not scrubbed: %v", err)
	}
}

// TestConstructorErrorKeepsCause: an error of lego that quotes a secret,
// even URL-escaped, is scrubbed, and errors.Is still finds its cause.
func TestConstructorErrorKeepsCause(t *testing.T) {
	errRefused := errors.New("refused by the API")
	f := New(newTestConfig, func(c *testConfig) (*testProvider, error) {
		return nil, fmt.Errorf("GET /zones?token=%s: %w", url.QueryEscape(c.Token), errRefused)
	})
	const secret = "s3cr3t/token+value"
	_, err := f.NewDNSProvider(autocert.Options{"token": secret})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "GET /zones?token=[REDACTED]: refused by the API") {
		t.Errorf("secret not scrubbed: %v", err)
	}
	if !errors.Is(err, errRefused) {
		t.Errorf("the cause is lost: %v", err)
	}
}

func TestLazy(t *testing.T) {
	builds := 0
	f := New(newTestConfig, func(c *testConfig) (*testProvider, error) {
		builds++
		return newTestProvider(c)
	}, Lazy())
	type timeoutConfig struct{ PropagationTimeout, PollingInterval time.Duration }
	p, err := f.NewDNSProvider(autocert.Options{"token": "ok-token"})
	if err != nil {
		t.Fatal(err)
	}
	if builds != 0 {
		t.Fatalf("built %d times before use", builds)
	}
	if err := p.Present("example.com", "t", "k"); err != nil {
		t.Fatal(err)
	}
	if err := p.CleanUp("example.com", "t", "k"); err != nil {
		t.Fatal(err)
	}
	if builds != 1 {
		t.Errorf("built %d times, want 1", builds)
	}
	if _, ok := p.(challenge.ProviderTimeout); !ok {
		t.Error("lazy provider does not report timeouts")
	}
	to, iv := timeouts(&timeoutConfig{PropagationTimeout: time.Minute, PollingInterval: time.Second})
	if to != time.Minute || iv != time.Second {
		t.Errorf("timeouts = %v, %v", to, iv)
	}
}

func TestNewPanicsOnUnknownKeys(t *testing.T) {
	for name, opt := range map[string]Option{
		"require": RequireOneOf("nope"),
		"alias":   Alias("nope", "X"),
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			newFactory(opt)
		})
	}
}
