package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBadConfig: a config with problems gets a message naming the file,
// line and key of each, and exit status 2, before anything is ordered.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		want       []string // regular expressions
	}{
		{"provider typo", `autocert:
  provider: cloudflar
  email: admin@example.com
  domains: [example.com]
`, []string{`autocert\.yml:2: provider: .*"cloudflar".*cloudflare`}},
		{"missing credentials", `autocert:
  provider: cloudflare
  email: admin@example.com
  domains: [example.com]
`, []string{`autocert\.yml: options: missing credentials: set auth_token`}},
		{"tab indentation", "autocert:\n  provider: pseudo\n\tdomains: [example.com]\n",
			// The YAML parser places the error on the line before.
			[]string{`autocert\.yml:[23]: syntax error: .*indent with spaces, not tabs`}},
		{"unquoted wildcard", "autocert:\n  provider: pseudo\n  domains:\n    - *.example.com\n",
			[]string{`autocert\.yml:4: syntax error: .*quote wildcard domains`}},
		{"several problems at once", `autocert:
  provider: pseudo
  domains: ["exa mple.com"]
command:
  deploy_hook: systemctl reload nginx
  deploy_timeout: soon
`, []string{`\(2 problems\)`, `autocert\.yml:3: domains\[0\]: invalid domain "exa mple\.com"`,
			`autocert\.yml:6: command\.deploy_timeout: expected a positive duration`}},
		{"unknown command key", `autocert:
  provider: pseudo
  domains: [example.com]
command:
  deploy_hok: systemctl reload nginx
`, []string{`autocert\.yml:5: command\.deploy_hok: unknown key \(known: api, deploy_hook, deploy_timeout, webhooks\)`}},
		{"command section without the autocert block", `provider: pseudo
domains: [example.com]
command:
  deploy_hook: systemctl reload nginx
`, []string{`autocert\.yml:3: command: the command section needs the autocert keys under "autocert:"`}},
		{"unset variable", `autocert:
  provider: pseudo
  domains: [example.com]
command:
  api:
    listen: 127.0.0.1:9443
    token: ${AUTOCERT_TEST_SURELY_UNSET}
`, []string{`autocert\.yml:7: command\.api\.token: environment variable AUTOCERT_TEST_SURELY_UNSET is not set`}},
		{"bad webhook", `autocert:
  provider: pseudo
  domains: [example.com]
command:
  webhooks:
    - url: ftp://hooks.example.com/abc
      format: telegram
`, []string{`autocert\.yml:6: command\.webhooks\[0\]\.url: expected an http or https URL`,
			`autocert\.yml:7: command\.webhooks\[0\]\.format: unknown format "telegram"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "autocert.yml"), []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			r := run(t, dir, nil, "obtain")
			wantExit(t, r, exitUsage, c.name)
			for _, re := range c.want {
				if !regexp.MustCompile(re).MatchString(r.stderr) {
					t.Errorf("message does not match %s:\n%s", re, r.stderr)
				}
			}
			if !strings.HasPrefix(r.stderr, "autocert: invalid configuration") {
				t.Errorf("message does not start with what is wrong:\n%s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "certs")); err == nil {
				t.Error("files were written for an invalid config")
			}
		})
	}
}

// TestUsage: bad arguments and flags get a message and exit status 2;
// help and a missing config file are explained.
func TestUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Usage:\n  autocert [flags] <command>"},
		{[]string{"help"}, exitOK, "Commands:"},
		{[]string{"renew", "-h"}, exitOK, "Usage: autocert renew [--force]"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"renew", "--forse"}, exitUsage, "flag provided but not defined: -forse"},
		{[]string{"status", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"--log-level", "loud", "status"}, exitUsage, `-log-level: unknown level "loud"`},
		{[]string{"status", "--log-format", "xml"}, exitUsage, `-log-format: unknown format "xml"`},
		{[]string{"obtain"}, exitUsage, "autocert.yml does not exist"},
		{[]string{"-config", "other.yml", "status"}, exitUsage, "other.yml does not exist"},
	}
	for _, c := range cases {
		r := run(t, dir, nil, c.args...)
		if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.want) {
			t.Errorf("autocert %q: exit %d, want %d and %q in:\n%s%s", c.args, r.code, c.code, c.want, r.stdout, r.stderr)
		}
	}
}

// TestProviders: the registered names, and the option keys of one.
func TestProviders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := run(t, dir, nil, "providers")
	wantExit(t, r, exitOK, "providers")
	for _, name := range []string{"acmetest", "cloudflare", "route53", "clouddns", "azuredns", "rfc2136", "exec"} {
		if !regexp.MustCompile(`(?m)^` + name + `$`).MatchString(r.stdout) {
			t.Errorf("provider %s not listed", name)
		}
	}
	if m := regexp.MustCompile(`^(\d+) DNS providers`).FindStringSubmatch(r.stdout); m == nil || len(strings.Split(strings.TrimSpace(r.stdout), "\n")) < 150 {
		t.Errorf("providers output:\n%.300s", r.stdout)
	}

	r = run(t, dir, nil, "providers", "cloudflare")
	wantExit(t, r, exitOK, "providers cloudflare")
	for _, re := range []string{`KEY\s+REQUIRED\s+ALIASES`, `(?m)^auth_token\s+\S+\s+.*CF_DNS_API_TOKEN`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("providers cloudflare does not match %s:\n%s", re, r.stdout)
		}
	}
	r = run(t, dir, nil, "providers", "acmetest")
	wantExit(t, r, exitOK, "providers acmetest")
	if !regexp.MustCompile(`(?m)^api_url\s+yes\s+-$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^api_token\s+yes`).MatchString(r.stdout) {
		t.Errorf("providers acmetest:\n%s", r.stdout)
	}

	r = run(t, dir, nil, "providers", "cloudflar")
	wantExit(t, r, exitUsage, "providers cloudflar")
	if !strings.Contains(r.stderr, `unknown DNS provider "cloudflar" (did you mean cloudflare?)`) {
		t.Errorf("typo:\n%s", r.stderr)
	}
}
