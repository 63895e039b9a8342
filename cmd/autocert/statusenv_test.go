package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/httpapi"
)

// TestStatusWithoutCredentials: status and providers contact nothing and
// read no secret, so they work without the environment that holds the
// credentials (the DNS token in options, the API token and the webhook
// URL of the command section): a cron job or a monitoring check can run
// them. The commands that order still refuse an unset variable, naming
// it, and so does status for a variable that a key it needs uses.
func TestStatusWithoutCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	const blocks = `autocert:
  provider: acmetest
  email: %[1]s
  domains: [status-env.example.com]
  cert_path: certs/main.crt
  key_path: certs/main.key
  acme_key_path: certs/acme.key
  ca_dir_url: %[2]s
  ca_certs: [%[3]s]
  resolvers: [%[4]s]
  options:
    api_url: %[5]s
    api_token: ${ACMETEST_API_TOKEN}
  extra:
    - domains: [status-env-extra.example.com]
      cert_path: certs/extra.crt
      key_path: certs/extra.key
      options:
        api_url: %[5]s
        api_token: "${ACMETEST_API_TOKEN}"
command:
  api:
    listen: 0.0.0.0:0
    token: ${STATUS_TEST_API_TOKEN}
  webhooks:
    - url: ${STATUS_TEST_HOOK_URL}
      format: json
`
	write := func(email string) {
		t.Helper()
		text := fmt.Sprintf(blocks, email, f.ca.DirectoryURL(), f.ca.CACertFile(), f.ca.DNSAddr(),
			f.ca.ProviderOptions()[acmetest.OptionAPIURL].Value())
		if err := os.WriteFile(filepath.Join(f.dir, "autocert.yml"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("admin@example.com")
	credentials := append(f.env, "STATUS_TEST_API_TOKEN=api-token-0123456789", "STATUS_TEST_HOOK_URL="+hook.URL+"/hook")
	r := run(t, f.dir, credentials, "obtain")
	wantExit(t, r, exitOK, "obtain with the credentials")
	orders := len(f.ca.Orders())

	// Without them: status and providers work.
	r = run(t, f.dir, nil, "status")
	wantExit(t, r, exitOK, "status without the credentials")
	for _, re := range []string{`(?m)^main\s+status-env\.example\.com\s`, `(?m)^extra\[0\]\s+status-env-extra\.example\.com\s`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("status table does not match %s:\n%s", re, r.stdout)
		}
	}
	r = run(t, f.dir, nil, "status", "--json")
	wantExit(t, r, exitOK, "status --json without the credentials")
	var sts []httpapi.CertStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil || len(sts) != 2 || !sts[0].Served() || !sts[1].Served() || sts[0].NextRenewal == 0 {
		t.Errorf("status --json: %v\n%s", err, r.stdout)
	}
	for _, args := range [][]string{{"providers"}, {"providers", "acmetest"}} {
		r = run(t, f.dir, nil, args...)
		wantExit(t, r, exitOK, strings.Join(args, " ")+" without the credentials")
	}

	// The commands that order need them.
	for _, cmd := range []string{"obtain", "renew", "run"} {
		r = run(t, f.dir, nil, cmd)
		wantExit(t, r, exitUsage, cmd+" without the credentials")
		for _, want := range []string{"options.api_token: environment variable ACMETEST_API_TOKEN is not set", "STATUS_TEST_API_TOKEN", "STATUS_TEST_HOOK_URL"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s without the credentials: the error does not name %q:\n%s", cmd, want, r.stderr)
			}
		}
	}
	if n := len(f.ca.Orders()); n != orders {
		t.Errorf("%d orders without the credentials", n-orders)
	}

	// A variable that a key status needs uses is required by status too,
	// even where options use it as well.
	write("${STATUS_TEST_EMAIL}")
	if err := os.WriteFile(filepath.Join(f.dir, "autocert.yml"), []byte(strings.Replace(mustRead(t, filepath.Join(f.dir, "autocert.yml")),
		"api_token: ${ACMETEST_API_TOKEN}", "api_token: ${STATUS_TEST_EMAIL}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, f.dir, nil, "status")
	wantExit(t, r, exitUsage, "status with email from an unset variable")
	if !strings.Contains(r.stderr, "email: environment variable STATUS_TEST_EMAIL is not set") {
		t.Errorf("status with email from an unset variable:\n%s", r.stderr)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
