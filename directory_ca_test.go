package autocert_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

// logLine is one JSON line of a Provider's log.
type logLine struct {
	Level        string            `json:"level"`
	Message      string            `json:"message"`
	Provider     string            `json:"provider"`
	Profile      string            `json:"profile"`
	CA           string            `json:"ca"`
	Offered      map[string]string `json:"offered"`
	Certificates []string          `json:"certificates"`
}

// profileWarnings returns the warnings of logs that are about the profile
// setting.
func profileWarnings(t *testing.T, logs string) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if ll.Level == "warn" && strings.Contains(ll.Message, "profile") {
			out = append(out, ll)
		}
	}
	return out
}

// TestProfileCheckedAgainstDirectory: at its first contact with the CA, a
// Provider compares the configured profile with the profiles the CA's
// directory offers, and warns once per CA (not once per certificate) when
// the CA does not offer it, listing what it offers, or offers none at all.
func TestProfileCheckedAgainstDirectory(t *testing.T) {
	withProfiles := []acmetest.Option{
		acmetest.WithProfile("shortlived", "Six-day certificates", 6*24*time.Hour),
		acmetest.WithProfile("classic", "The usual 90 days", 90*24*time.Hour),
	}
	tests := []struct {
		name     string
		ca       []acmetest.Option
		profile  string
		extras   int
		wantWarn string // part of the one warning's message; "" for none
		obtains  bool
	}{
		{name: "offered profile", ca: withProfiles, profile: "shortlived", extras: 2, obtains: true},
		{name: "typo", ca: withProfiles, profile: "shortlivd", wantWarn: "does not offer"},
		{name: "typo shared by main and two extras", ca: withProfiles, profile: "shortlivd", extras: 2, wantWarn: "does not offer"},
		{name: "CA without profiles", ca: []acmetest.Option{acmetest.WithoutProfiles()}, profile: "shortlived", extras: 1, wantWarn: "offers no certificate profiles"},
		{name: "no profile asked of a CA without profiles", ca: []acmetest.Option{acmetest.WithoutProfiles()}, extras: 1, obtains: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := acmetest.New(t, tt.ca...)
			dir := t.TempDir()
			cfg := ca.Config("profile.example.com")
			cfg.Profile = tt.profile
			cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "main.crt"), filepath.Join(dir, "main.key")
			cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
			for i := range tt.extras {
				name := string(rune('a'+i)) + ".profile.example.com"
				cfg.Extra = append(cfg.Extra, autocert.ConfigExtra{
					Domains:  []string{name},
					CertPath: filepath.Join(dir, name+".crt"), KeyPath: filepath.Join(dir, name+".key"),
				})
			}
			user, legoCfg, err := cfg.GetLegoConfig()
			if err != nil {
				t.Fatal(err)
			}
			var logs syncbuf.Buffer
			p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.New(&logs)))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			err = p.ObtainCertIfNotExistsAll()
			if tt.obtains && err != nil {
				t.Fatal(err)
			}
			if !tt.obtains && err == nil {
				t.Error("obtained a certificate; want the CA to refuse a profile it does not offer")
			}

			warns := profileWarnings(t, logs.String())
			if tt.wantWarn == "" {
				if len(warns) != 0 {
					t.Fatalf("warnings %+v; want none", warns)
				}
				return
			}
			if len(warns) != 1 {
				t.Fatalf("%d profile warnings %+v; want one for the CA\nlog:\n%s", len(warns), warns, logs.String())
			}
			w := warns[0]
			if !strings.Contains(w.Message, tt.wantWarn) || w.Profile != tt.profile || w.CA != ca.DirectoryURL() {
				t.Errorf("warning %+v; want %q about profile %q at %s", w, tt.wantWarn, tt.profile, ca.DirectoryURL())
			}
			if len(w.Certificates) != 1+tt.extras {
				t.Errorf("warning names certificates %q; want main and its %d extras", w.Certificates, tt.extras)
			}
			wantOffered := map[string]string{}
			if len(ca.Profiles()) > 0 {
				wantOffered = map[string]string{"classic": "The usual 90 days", "shortlived": "Six-day certificates"}
			}
			if len(w.Offered) != len(wantOffered) {
				t.Errorf("offered %q; want %q", w.Offered, wantOffered)
			}
			for k, v := range wantOffered {
				if w.Offered[k] != v {
					t.Errorf("offered %q; want %q", w.Offered, wantOffered)
				}
			}
			// The offered profiles are listed by name, in order.
			if i, j := strings.Index(logs.String(), `"classic"`), strings.Index(logs.String(), `"shortlived":`); len(wantOffered) > 0 && (i < 0 || j < i) {
				t.Errorf("offered profiles not sorted by name:\n%s", logs.String())
			}
		})
	}
}

// TestEABRequiredWithoutKid: a CA that requires External Account Binding,
// and a config without eab_kid: the error names the missing settings and
// the CA, and no account is created. Once the account exists (registered
// with the binding), the same account key needs no eab_kid.
func TestEABRequiredWithoutKid(t *testing.T) {
	ca := acmetest.New(t, acmetest.WithEAB("kid-1", "YSB0ZXN0LW9ubHkgRUFCIEhNQUMga2V5LCAzMiBieXQ"))
	dir := t.TempDir()
	obtain := func(name string, withEAB bool) error {
		cfg := ca.Config(name + ".eab.example.com")
		if !withEAB {
			cfg.EABKid, cfg.EABHmac = "", ""
		}
		cfg.CertPath, cfg.KeyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
		user, legoCfg, err := cfg.GetLegoConfig()
		if err != nil {
			t.Fatal(err)
		}
		p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.Nop()))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		return p.ObtainCertIfNotExistsAll()
	}

	err := obtain("first", false)
	if err == nil {
		t.Fatal("obtained a certificate without EAB")
	}
	for _, want := range []string{"eab_kid", "eab_hmac", ca.DirectoryURL(), "External Account Binding"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if !errors.Is(err, autocert.ErrInvalidConfig) {
		t.Errorf("error %v is not ErrInvalidConfig", err)
	}
	if n := ca.Accounts(); n != 0 {
		t.Errorf("%d accounts created", n)
	}

	if err := obtain("second", true); err != nil {
		t.Fatal(err)
	}
	if err := obtain("third", false); err != nil {
		t.Fatalf("existing account without eab_kid: %v", err)
	}
	if n := ca.Accounts(); n != 1 {
		t.Errorf("%d accounts created; want 1", n)
	}
}
