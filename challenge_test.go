package autocert

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/rs/zerolog"
)

// TestChallengeKeysValidate: dns_challenge_alias is normalised as a
// domain, and a value that cannot be an alias, or either key where no DNS
// provider writes records, is reported under its key.
func TestChallengeKeysValidate(t *testing.T) {
	no := false
	tests := []struct {
		name      string
		edit      func(*Config)
		wantAlias string   // main block's alias after Validate
		want      []string // problems; none when empty
	}{
		{name: "normalised", edit: func(c *Config) { c.DNSChallengeAlias = " ACME-Zone.Example.NET. " }, wantAlias: "acme-zone.example.net"},
		{name: "punycode", edit: func(c *Config) { c.DNSChallengeAlias = "bücher.example" }, wantAlias: "xn--bcher-kva.example"},
		{name: "follow off", edit: func(c *Config) { c.DNSFollowCNAME = &no }},
		{
			name: "starts with _acme-challenge",
			edit: func(c *Config) { c.DNSChallengeAlias = "_acme-challenge.acme.example.net" },
			want: []string{`dns_challenge_alias: "_acme-challenge.acme.example.net" starts with _acme-challenge: give the domain below it ("acme.example.net")`},
		},
		{
			name: "wildcard",
			edit: func(c *Config) { c.DNSChallengeAlias = "*.example.net" },
			want: []string{`dns_challenge_alias: invalid alias "*.example.net": a wildcard`},
		},
		{
			name: "not a name",
			edit: func(c *Config) { c.DNSChallengeAlias = "acme zone.example.net" },
			want: []string{`dns_challenge_alias: invalid alias "acme zone.example.net"`},
		},
		{
			name: "local provider",
			edit: func(c *Config) {
				c.Provider, c.Options, c.DNSChallengeAlias, c.DNSFollowCNAME = ProviderLocal, nil, "acme.example.net", &no
			},
			want: []string{"dns_challenge_alias: only used with a DNS provider, not provider local", "dns_follow_cname: only used with a DNS provider, not provider local"},
		},
		{
			name: "extra with pseudo sets them",
			edit: func(c *Config) {
				c.Extra = []ConfigExtra{{Provider: ProviderPseudo, CertPath: "x.crt", KeyPath: "x.key", DNSChallengeAlias: "acme.example.net"}}
			},
			want: []string{"extra[0].dns_challenge_alias: only used with a DNS provider, not provider pseudo"},
		},
		{
			name: "extra with pseudo inherits them",
			edit: func(c *Config) {
				c.DNSChallengeAlias, c.DNSFollowCNAME = "acme.example.net", &no
				c.Extra = []ConfigExtra{{Provider: ProviderPseudo, CertPath: "x.crt", KeyPath: "x.key"}}
			},
			wantAlias: "acme.example.net",
		},
		{
			name: "extra's own alias checked",
			edit: func(c *Config) {
				c.Extra = []ConfigExtra{{CertPath: "x.crt", KeyPath: "x.key", DNSChallengeAlias: "_acme-challenge.x.example"}}
			},
			want: []string{"extra[0].dns_challenge_alias: \"_acme-challenge.x.example\" starts with _acme-challenge"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfgACMEConfig()
			tt.edit(cfg)
			got := cfgProblemTexts(cfg.Validate())
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %d: %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %q, want it to start with %q", got[i], w)
				}
			}
			if len(tt.want) == 0 && cfg.DNSChallengeAlias != tt.wantAlias {
				t.Errorf("alias %q, want %q", cfg.DNSChallengeAlias, tt.wantAlias)
			}
			if err := cfg.Validate(); len(tt.want) == 0 && err != nil {
				t.Errorf("Validate again: %v", err)
			}
		})
	}
}

// TestChallengeKeysYAML: the keys read from YAML, and an extra inherits
// them unless it sets its own (dns_follow_cname: true overriding the main
// block's false).
func TestChallengeKeysYAML(t *testing.T) {
	cfg, err := ParseConfig([]byte(`provider: cfgtest-dns
email: admin@example.com
domains: [example.com]
dns_challenge_alias: acme.example.net
dns_follow_cname: false
options: {api_token: tok}
extra:
  - domains: [a.example.org]
    cert_path: a.crt
    key_path: a.key
  - domains: [b.example.org]
    cert_path: b.crt
    key_path: b.key
    dns_challenge_alias: other.example.net
    dns_follow_cname: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DNSChallengeAlias != "acme.example.net" || cfg.DNSFollowCNAME == nil || *cfg.DNSFollowCNAME || cfg.followCNAME() {
		t.Fatalf("main block: alias %q, follow %v", cfg.DNSChallengeAlias, cfg.DNSFollowCNAME)
	}
	inherits := MergeExtraConfig(cfg, &cfg.Extra[0])
	if inherits.DNSChallengeAlias != "acme.example.net" || (*Config)(&inherits).followCNAME() {
		t.Errorf("extra[0] does not inherit: alias %q, follow %v", inherits.DNSChallengeAlias, *inherits.DNSFollowCNAME)
	}
	*inherits.DNSFollowCNAME = true
	if cfg.followCNAME() {
		t.Error("the merged block shares dns_follow_cname with the main block")
	}
	own := MergeExtraConfig(cfg, &cfg.Extra[1])
	if own.DNSChallengeAlias != "other.example.net" || !(*Config)(&own).followCNAME() {
		t.Errorf("extra[1]'s own keys lost: alias %q, follow %v", own.DNSChallengeAlias, *own.DNSFollowCNAME)
	}
	if _, err := ParseConfig([]byte("provider: cfgtest-dns\nemail: admin@example.com\ndomains: [example.com]\noptions: {api_token: tok}\ndns_follow_cname: maybe\n")); err == nil ||
		!strings.Contains(err.Error(), "dns_follow_cname") {
		t.Errorf("dns_follow_cname: maybe = %v, want an error naming the key", err)
	}
}

// TestChallengeKeysFingerprint: the keys change the fingerprint of a
// certificate (a failure recorded before the change is retried at once);
// a configuration that leaves them unset, or sets the default, keeps the
// fingerprint it had before the keys existed.
func TestChallengeKeysFingerprint(t *testing.T) {
	yes, no := true, false
	base := cfgACMEConfig()
	fp := base.fingerprint()
	with := func(edit func(*Config)) string {
		c := cfgACMEConfig()
		edit(c)
		return c.fingerprint()
	}
	if got := with(func(c *Config) { c.DNSFollowCNAME = &yes }); got != fp {
		t.Error("dns_follow_cname: true changes the fingerprint")
	}
	alias := with(func(c *Config) { c.DNSChallengeAlias = "acme.example.net" })
	off := with(func(c *Config) { c.DNSFollowCNAME = &no })
	if alias == fp || off == fp || alias == off {
		t.Errorf("fingerprints: none %s, alias %s, follow off %s: want three different", fp, alias, off)
	}
}

// TestChallengeLegoResolverHold: lego's process-wide resolver list is
// changed only while no challenge holds it. A challenge that needs
// another list waits for the others to end, and gives up, naming the
// list, when its context ends; one that needs the list as it is, or any
// list, does not wait.
func TestChallengeLegoResolverHold(t *testing.T) {
	var l legoResolverList
	t.Cleanup(func() {
		// Give lego back the list it starts with: l set it for real.
		if sys := systemResolvers(); sys != nil {
			_ = dns01.AddRecursiveNameservers(sys)(nil)
		}
	})
	ctx := context.Background()
	a, b := []string{"192.0.2.1:53"}, []string{"192.0.2.2:53"}

	relA, err := l.hold(ctx, a, "main", zerolog.Nop())
	if err != nil || !slices.Equal(l.current(), a) {
		t.Fatalf("first hold: %v, list %v", err, l.current())
	}
	relAny, err := l.hold(ctx, nil, "extra[0]", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	relA2, err := l.hold(ctx, a, "extra[1]", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.hold(short, b, "extra[2]", zerolog.Nop()); !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "192.0.2.2:53") || !strings.Contains(err.Error(), "main") {
		t.Errorf("hold of another list while held = %v, want the deadline, naming the lists' certificates", err)
	}

	got := make(chan error, 1)
	go func() {
		rel, err := l.hold(ctx, b, "extra[2]", zerolog.Nop())
		if err == nil {
			rel()
		}
		got <- err
	}()
	relA()
	relA() // a second call does nothing
	relAny()
	select {
	case err := <-got:
		t.Fatalf("hold of another list returned (%v) while extra[1] holds the list", err)
	case <-time.After(20 * time.Millisecond):
	}
	relA2()
	if err := <-got; err != nil {
		t.Fatalf("hold once the others ended: %v", err)
	}
	if !slices.Equal(l.current(), b) {
		t.Errorf("list %v, want %v", l.current(), b)
	}
}
