package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/httpapi"
)

// hookScript records the environment of each deploy hook run, one line
// per run.
const hookScript = `#!/bin/sh
printf '%s|%s|%s|%s|%s|%s\n' "$AUTOCERT_EVENT" "$AUTOCERT_PROVIDER" "$AUTOCERT_CERT_PATH" "$AUTOCERT_KEY_PATH" "$AUTOCERT_DOMAINS" "$AUTOCERT_SERIAL" >> hook.log
`

// hookRuns returns the lines hookScript wrote, by provider.
func hookRuns(t *testing.T, dir string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "hook.log"))
	if os.IsNotExist(err) {
		return map[string][]string{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 6 {
			t.Fatalf("hook.log line %q", line)
		}
		out[f[1]] = append(out[f[1]], line)
	}
	return out
}

// checkHookRun checks that the last hook run of provider had the event,
// files, names and serial of its certificate.
func checkHookRun(t *testing.T, dir string, runs map[string][]string, provider, event, base, domains string) {
	t.Helper()
	lines := runs[provider]
	if len(lines) == 0 {
		t.Fatalf("no deploy hook run for %s: %v", provider, runs)
	}
	f := strings.Split(lines[len(lines)-1], "|")
	certPath := filepath.Join(dir, "certs", base+".crt")
	if f[0] != event || realPath(t, f[2]) != realPath(t, certPath) || realPath(t, f[3]) != realPath(t, filepath.Join(dir, "certs", base+".key")) ||
		f[4] != domains || f[5] != serialOf(t, certPath) {
		t.Errorf("hook run for %s: %q; want %s, %s, its key, %q and serial %s", provider, lines[len(lines)-1], event, certPath, domains, serialOf(t, certPath))
	}
}

// TestObtainStatusRenew: the one-shot commands against a real CA: obtain
// writes the files and runs the deploy hook with each certificate's
// files and names; a second obtain and a renew of fresh certificates
// order nothing; status reads the files; renew --force replaces both
// certificates and runs the hook again.
func TestObtainStatusRenew(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.dir, "hook.sh"), []byte(hookScript), 0o755); err != nil {
		t.Fatal(err)
	}
	f.writeConfig(t, "command:\n  deploy_hook: [/bin/sh, ./hook.sh]\n")
	mainCrt, apiCrt := filepath.Join(f.dir, "certs", "example.com.crt"), filepath.Join(f.dir, "certs", "api.example.com.crt")

	r := f.run(t, "obtain")
	wantExit(t, r, exitOK, "obtain")
	for _, re := range []string{`(?m)^main\s+obtained\s+example\.com, \*\.example\.com\s+valid until`, `(?m)^extra\[0\]\s+obtained\s+api\.example\.com\s+valid until`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("obtain output does not match %s:\n%s", re, r.stdout)
		}
	}
	for path, mode := range map[string]os.FileMode{mainCrt: 0o644, filepath.Join(f.dir, "certs", "example.com.key"): 0o600, apiCrt: 0o644} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", path, err, st.Mode().Perm(), mode)
		}
	}
	if l := leaf(t, mainCrt); strings.Join(l.DNSNames, " ") != "example.com *.example.com" {
		t.Errorf("main certificate names %v", l.DNSNames)
	}
	runs := hookRuns(t, f.dir)
	checkHookRun(t, f.dir, runs, "main", "obtained", "example.com", "example.com *.example.com")
	checkHookRun(t, f.dir, runs, "extra[0]", "obtained", "api.example.com", "api.example.com")
	orders := len(f.ca.Orders())
	mainSerial, apiSerial := serialOf(t, mainCrt), serialOf(t, apiCrt)

	// Nothing to do: no order, no hook.
	r = f.run(t, "obtain")
	wantExit(t, r, exitOK, "second obtain")
	if !regexp.MustCompile(`(?m)^main\s+unchanged`).MatchString(r.stdout) {
		t.Errorf("second obtain:\n%s", r.stdout)
	}
	r = f.run(t, "renew")
	wantExit(t, r, exitOK, "renew")
	if !regexp.MustCompile(`(?m)^main\s+unchanged.*next renewal 20`).MatchString(r.stdout) {
		t.Errorf("renew of fresh certificates:\n%s", r.stdout)
	}
	if n := len(f.ca.Orders()); n != orders {
		t.Errorf("%d orders for certificates that are not due", n-orders)
	}
	if n := len(hookRuns(t, f.dir)["main"]); n != 1 {
		t.Errorf("deploy hook ran %d times for main, want once", n)
	}

	// status: from the files, as JSON and as a table.
	r = f.run(t, "status", "--json")
	wantExit(t, r, exitOK, "status --json")
	var sts []httpapi.CertStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if len(sts) != 2 || sts[0].Provider != "main" || sts[0].Serial != mainSerial || sts[1].Serial != apiSerial {
		t.Fatalf("status: %+v", sts)
	}
	now := time.Now()
	for _, st := range sts {
		next := time.Unix(st.NextRenewal, 0)
		if st.NotAfter != leaf(t, map[string]string{"main": mainCrt, "extra[0]": apiCrt}[st.Provider]).NotAfter.Unix() ||
			next.Before(now.Add(50*24*time.Hour)) || (st.RenewalReason != "lifetime" && st.RenewalReason != "ari") || st.LastFailure != 0 {
			t.Errorf("status of %s: %+v", st.Provider, st)
		}
	}
	r = f.run(t, "status")
	wantExit(t, r, exitOK, "status")
	for _, re := range []string{`PROVIDER\s+NAMES\s+ISSUER\s+NOT AFTER\s+NEXT RENEWAL\s+LAST FAILURE`,
		`(?m)^main\s+example\.com, \*\.example\.com\s+Pebble Intermediate.*\((lifetime|ari)\)\s+-$`,
		`(?m)^extra\[0\]\s+api\.example\.com\s+`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("status table does not match %s:\n%s", re, r.stdout)
		}
	}

	// Forced: both renewed, the hook told.
	r = f.run(t, "renew", "--force")
	wantExit(t, r, exitOK, "renew --force")
	if !regexp.MustCompile(`(?m)^main\s+renewed`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^extra\[0\]\s+renewed`).MatchString(r.stdout) {
		t.Errorf("renew --force:\n%s", r.stdout)
	}
	if serialOf(t, mainCrt) == mainSerial || serialOf(t, apiCrt) == apiSerial {
		t.Error("renew --force left a certificate file unchanged")
	}
	runs = hookRuns(t, f.dir)
	checkHookRun(t, f.dir, runs, "main", "renewed", "example.com", "example.com *.example.com")
	checkHookRun(t, f.dir, runs, "extra[0]", "renewed", "api.example.com", "api.example.com")
	// The progress of the orders was shown (plain lines: not a terminal).
	for _, want := range []string{"main: ordering a certificate for example.com, *.example.com", "main: DNS record presented for example.com",
		"main: the CA is validating the DNS record", "main: the CA is issuing the certificate", "main: certificate saved to certs/example.com.crt"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("progress line %q not shown:\n%s", want, r.stderr)
		}
	}
}

// TestObtainFailure: a CA that refuses orders makes obtain exit 1 naming
// the certificate and the CA's reason; status shows the failure from the
// files; an immediate retry is refused rather than sent.
func TestObtainFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.writeConfig(t, "")
	f.ca.FailOrders(100, acmetest.Problem{Type: "serverInternal", Detail: "the CA is having a bad day"})

	r := f.run(t, "obtain")
	wantExit(t, r, exitFailed, "obtain from a failing CA")
	if !regexp.MustCompile(`(?m)^autocert: .*main: .*bad day`).MatchString(r.stderr) || !strings.Contains(r.stderr, "extra[0]: ") {
		t.Errorf("obtain error does not name the certificates and the cause:\n%s", r.stderr)
	}
	if !regexp.MustCompile(`(?m)^main\s+failed\s+example\.com, \*\.example\.com\s+no certificate`).MatchString(r.stdout) {
		t.Errorf("obtain summary:\n%s", r.stdout)
	}

	r = f.run(t, "status", "--json")
	wantExit(t, r, exitFailed, "status without certificates")
	var sts []httpapi.CertStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	for _, st := range sts {
		if st.Served() || st.LastFailure == 0 || !strings.Contains(st.LastError, "bad day") || st.Failures != 1 {
			t.Errorf("status of %s after a failure: %+v", st.Provider, st)
		}
	}
	r = f.run(t, "status")
	wantExit(t, r, exitFailed, "status table without certificates")
	if !regexp.MustCompile(`(?m)^main\s+example\.com, \*\.example\.com\s+-\s+no certificate\s+.*\(1 in a row\)`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "Last errors:") {
		t.Errorf("status table after a failure:\n%s", r.stdout)
	}

	orders := len(f.ca.Orders())
	r = f.run(t, "obtain")
	wantExit(t, r, exitFailed, "obtain right after a failure")
	if !strings.Contains(r.stderr, "waiting after a recent failure") {
		t.Errorf("immediate retry:\n%s", r.stderr)
	}
	if n := len(f.ca.Orders()); n != orders {
		t.Errorf("the retry placed %d orders", n-orders)
	}
}

// TestStatusWritesNothing: status on a fresh directory, with a local main
// certificate and ACME extras on two CAs (one with its own account key),
// reports what is missing without reading, creating or registering any
// account key: it works from the files alone, also where the directory
// cannot be written.
func TestStatusWritesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	text := fmt.Sprintf(`autocert:
  provider: local
  cert_path: certs/local.crt
  key_path: certs/local.key
  extra:
    - provider: acmetest
      email: admin@example.com
      domains: [api.example.com]
      cert_path: certs/api.example.com.crt
      key_path: certs/api.example.com.key
      acme_key_path: certs/acme.key
      ca_dir_url: %s
      ca_certs: [%s]
      options:
        api_url: ${ACMETEST_API_URL}
        api_token: ${ACMETEST_API_TOKEN}
    - provider: acmetest
      email: admin@example.com
      domains: [other.example.com]
      cert_path: certs/other.example.com.crt
      key_path: certs/other.example.com.key
      acme_key_path: certs/other-ca.key
      ca_dir_url: https://127.0.0.1:9/other-ca/dir
      ca_certs: [%s]
      options:
        api_url: ${ACMETEST_API_URL}
        api_token: ${ACMETEST_API_TOKEN}
`, f.ca.DirectoryURL(), f.ca.CACertFile(), f.ca.CACertFile())
	if err := os.WriteFile(filepath.Join(f.dir, "autocert.yml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.run(t, "status", "--json")
	wantExit(t, r, exitFailed, "status without certificates")
	var sts []httpapi.CertStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if len(sts) != 3 || sts[1].Provider != "extra[0]" || sts[2].Provider != "extra[1]" || sts[2].Served() {
		t.Errorf("status: %+v", sts)
	}
	if strings.Contains(r.stderr, "acme.key") || strings.Contains(r.stderr, "other-ca.key") {
		t.Errorf("status spoke of account keys:\n%s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "certs")); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(filepath.Join(f.dir, "certs"))
		t.Errorf("status created certs/ (%v): %v", err, entries)
	}
	if n := f.ca.Accounts(); n != 0 {
		t.Errorf("status registered %d accounts", n)
	}
}
