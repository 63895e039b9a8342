package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/httpapi"
)

// TestObtainWithIssuers: a configuration with an issuers list works
// through the command: with the first CA rate-limiting, obtain gets the
// certificate from the second, and status --json, in another process,
// names the CA that issued it.
func TestObtainWithIssuers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := acmetest.New(t)
	first.FailOrders(1000, acmetest.Problem{Type: "rateLimited", Detail: "too many orders at the first CA"})
	text := fmt.Sprintf(`autocert:
  provider: acmetest
  email: admin@example.com
  domains: [issuers.example.com]
  cert_path: certs/issuers.crt
  key_path: certs/issuers.key
  resolvers: [%s]
  options:
    api_url: ${ACMETEST_API_URL}
    api_token: ${ACMETEST_API_TOKEN}
  issuers:
    - ca_dir_url: %s
      ca_certs: [%s]
      acme_key_path: certs/first.key
    - ca_dir_url: %s
      ca_certs: [%s]
      acme_key_path: certs/second.key
`, f.ca.DNSAddr(), first.DirectoryURL(), first.CACertFile(), f.ca.DirectoryURL(), f.ca.CACertFile())
	if err := os.WriteFile(filepath.Join(f.dir, "autocert.yml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.run(t, "obtain")
	wantExit(t, r, exitOK, "obtain")
	if n := f.ca.OrderCount("issuers.example.com"); n != 1 {
		t.Errorf("the second CA created %d orders, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "certs", "second.key")); err != nil {
		t.Errorf("the second CA's account key: %v", err)
	}
	r = f.run(t, "status", "--json")
	wantExit(t, r, exitOK, "status --json")
	var sts []httpapi.CertStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if len(sts) != 1 || !sts[0].Served() || sts[0].CA != f.ca.DirectoryURL() {
		t.Errorf("status: %+v; want the certificate of %s", sts, f.ca.DirectoryURL())
	}
	if !strings.Contains(r.stdout, `"ca": "`+f.ca.DirectoryURL()+`"`) && !strings.Contains(r.stdout, `"ca":"`+f.ca.DirectoryURL()+`"`) {
		t.Errorf("status JSON has no ca key:\n%s", r.stdout)
	}
}
