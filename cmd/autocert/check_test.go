package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/demo"
	"go.yaml.in/yaml/v3"
)

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// TestCheck: "autocert check" on a good config prints a line per step,
// each ok, and exits 0, having ordered nothing, created no account and
// written no file; with -json it prints the report. Each problem makes
// it exit 1 with the failed step and its fix, stopping before the
// extra; an invalid config exits 2.
func TestCheck(t *testing.T) {
	f := newFixture(t)
	r := f.run(t, "check", "-h")
	wantExit(t, r, exitOK, "check -h")
	if !strings.Contains(r.stderr, "Usage: autocert check [--json] [--timeout 2m]") {
		t.Errorf("check -h:\n%s", r.stderr)
	}
	f.writeConfig(t, "")
	r = f.run(t, "check")
	wantExit(t, r, exitOK, "check")
	t.Logf("autocert check:\n%s", r.stdout)
	for _, want := range []string{
		"ok    -         config       valid: 2 certificate(s): main, extra[0]",
		"ok    main      directory    " + f.ca.DirectoryURL() + " reachable",
		"ok    main      account      no account yet: one will be registered at the first obtain",
		"ok    main      dns_record   test TXT record written at _acme-challenge.example.com., seen by resolvers " + f.ca.DNSAddr(),
		"ok    extra[0]  dns_record   test TXT record written at _acme-challenge.api.example.com.",
		"check passed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := len(f.ca.Orders()); n != 0 {
		t.Errorf("check sent %d orders", n)
	}
	if n := f.ca.Accounts(); n != 0 {
		t.Errorf("check created %d accounts", n)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "certs")); !os.IsNotExist(err) {
		t.Errorf("check wrote into certs/: %v", err)
	}

	r = f.run(t, "check", "-json")
	wantExit(t, r, exitOK, "check -json")
	var report autocert.CheckReport
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("check -json: %v\n%s", err, r.stdout)
	}
	if len(report.Steps) != 1+2*6 || report.Failed() != nil {
		t.Errorf("check -json: %d steps (want 13), failed %v", len(report.Steps), report.Failed())
	}

	eab := newFixture(t, acmetest.WithEAB("kid-1", "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw"))
	tests := []struct {
		name string
		f    *fixture
		from string // replaced in the config
		to   string
		env  []string
		args []string
		code int
		want []string // in stdout
	}{
		{
			name: "CA unreachable", f: f, from: f.ca.DirectoryURL(), to: "https://" + closedPort(t) + "/dir", code: exitFailed,
			want: []string{"fail  main      directory", "fix: check ca_dir_url"},
		},
		{
			name: "profile not offered", f: f, from: "  options:", to: "  profile: tiny\n  options:", code: exitFailed,
			want: []string{"fail  main      profile      profile \"tiny\" is not offered", "fix: set profile to one the CA offers: default"},
		},
		{
			name: "EAB required but missing", f: eab, code: exitFailed,
			want: []string{"fail  main      eab", "fix: set eab_kid and eab_hmac"},
		},
		{
			name: "DNS provider refuses the credentials", f: f, env: []string{"ACMETEST_API_TOKEN=not-the-token"}, code: exitFailed,
			want: []string{"fail  main      dns_record   writing a test TXT record", "fix: check the credentials in options"},
		},
		{
			name: "resolvers never see the record", f: f, from: f.ca.DNSAddr(), to: closedPort(t), args: []string{"-timeout", "1s"}, code: exitFailed,
			want: []string{"fail  main      dns_record   test TXT record written at _acme-challenge.example.com., not seen by resolvers", "fix: set resolvers"},
		},
		{
			name: "invalid config", f: f, from: "email: admin@example.com", to: "email: admin", code: exitUsage,
			want: []string{"fail  -         config"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.writeConfig(t, "")
			path := filepath.Join(tt.f.dir, "autocert.yml")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.from != "" {
				if !strings.Contains(string(data), tt.from) {
					t.Fatalf("config lacks %q", tt.from)
				}
				data = []byte(strings.Replace(string(data), tt.from, tt.to, 1))
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			orders := len(tt.f.ca.Orders())
			r := run(t, tt.f.dir, append(append([]string{}, tt.f.env...), tt.env...), append([]string{"check"}, tt.args...)...)
			tt.f.noSecret(t, r.stdout+r.stderr)
			wantExit(t, r, tt.code, "check")
			t.Logf("autocert check:\n%s", r.stdout)
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s\nstderr:\n%s", w, r.stdout, r.stderr)
				}
			}
			if tt.code == exitFailed && (!strings.Contains(r.stdout, "not checked, after the first certificate that would fail: extra[0]") || strings.Contains(r.stdout, "extra[0]  ")) {
				t.Errorf("extra[0] checked after main failed:\n%s", r.stdout)
			}
			if len(tt.f.ca.Orders()) != orders || tt.f.ca.Accounts() != 0 {
				t.Errorf("orders %d -> %d, accounts %d", orders, len(tt.f.ca.Orders()), tt.f.ca.Accounts())
			}
		})
	}
}

// TestCheckDemoConfig runs "autocert check" on the configuration of
// "autocert demo" (three certificates on the demo's CA, each with its
// profile) and logs the wall time of each run of the command. The check
// passes and orders nothing.
func TestCheckDemoConfig(t *testing.T) {
	ca := acmetest.New(t, demo.CAOptions()...)
	dir := t.TempDir()
	cfg := demo.Config(ca, dir)
	o := ca.ProviderOptions()
	env := []string{
		"ACMETEST_API_URL=" + o[acmetest.OptionAPIURL].Value(),
		"ACMETEST_API_TOKEN=" + o[acmetest.OptionAPIToken].Value(),
	}
	cfg.Options = nil
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := "autocert:\n  " + strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", "\n  ") +
		"\n  options:\n    api_url: ${ACMETEST_API_URL}\n    api_token: ${ACMETEST_API_TOKEN}\n"
	if err := os.WriteFile(filepath.Join(dir, "autocert.yml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		start := time.Now()
		r := run(t, dir, env, "check")
		took := time.Since(start)
		wantExit(t, r, exitOK, "check on the demo config")
		if n := strings.Count(r.stdout, "ok    "); n != 1+3*6 {
			t.Errorf("%d steps ok, want 19:\n%s", n, r.stdout)
		}
		t.Logf("run %d: autocert check on the demo configuration took %v (race detector: %v)", i+1, took.Round(time.Millisecond), raceEnabled)
		if i == 0 {
			t.Logf("autocert check:\n%s", r.stdout)
		}
	}
	if n := len(ca.Orders()); n != 0 || ca.Accounts() != 0 {
		t.Errorf("check sent %d orders, created %d accounts", n, ca.Accounts())
	}
}
