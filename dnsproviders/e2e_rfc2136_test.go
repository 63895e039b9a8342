package dnsproviders_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
)

// obtainWithRFC2136 obtains a certificate for domain and its wildcard
// through the rfc2136 provider, configured only from YAML options, against
// srv: the provider finds the zone by asking srv for the SOA and sends it
// TSIG-signed dynamic updates, autocert's propagation check asks srv, and
// so does the CA's validation. An empty algorithm leaves tsig_algorithm
// out, so the provider's default applies. It checks the served certificate,
// that srv's zone changed and that no challenge record is left behind.
func obtainWithRFC2136(t *testing.T, srv *dnsServer, domain, algorithm string) {
	t.Helper()
	ca := acmetest.New(t, acmetest.WithValidationResolver(srv.addr))
	dir := t.TempDir()

	algorithmLine := ""
	if algorithm != "" {
		algorithmLine = "\n    tsig_algorithm: " + algorithm
	}
	// The secret comes from the environment, as a user would keep it.
	t.Setenv("AUTOCERT_TEST_TSIG_SECRET", srv.secret)
	yaml := fmt.Sprintf(`autocert:
  provider: rfc2136
  email: %s
  domains: [%q, %q]
  cert_path: %s
  key_path: %s
  acme_key_path: %s
  ca_dir_url: %s
  ca_certs: [%s]
  resolvers: [%s]
  options:
    nameserver: %s%s
    tsig_key: %s
    tsig_secret: ${AUTOCERT_TEST_TSIG_SECRET}
    ttl: 60
    propagation_timeout: 30s
    polling_interval: 100ms
    sequence_interval: 100ms
`, acmetest.Email, domain, "*."+domain,
		filepath.Join(dir, "cert.crt"), filepath.Join(dir, "priv.key"), filepath.Join(dir, "acme.key"),
		ca.DirectoryURL(), ca.CACertFile(), srv.addr, srv.addr, algorithmLine, srv.keyName)

	serialBefore := srv.serial(t)
	p, logs := obtainFromYAML(t, yaml)

	leaf := servedLeaf(t, p, ca.Roots(), domain)
	for _, name := range []string{domain, "www." + domain, "api." + domain} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	if got := ca.OrderCount(domain, "*."+domain); got != 1 {
		t.Errorf("CA saw %d orders for %s, want 1", got, domain)
	}
	// Each dynamic update that adds or deletes a record bumps the serial.
	if after := srv.serial(t); after < serialBefore+2 {
		t.Errorf("zone serial %d -> %d: the server received no dynamic updates", serialBefore, after)
	}
	if left := lookupTXT(t, srv.addr, "_acme-challenge."+domain); len(left) != 0 {
		t.Errorf("challenge records left in the zone: %q", left)
	}
	if strings.Contains(logs.String(), srv.secret) {
		t.Error("the TSIG secret appears in the log")
	}
}

// recordChange is a change of a TXT record that a DNS server made.
type recordChange struct {
	seq   int // order of the change: a later change has a greater seq
	added bool
	value string
}

// checkChallengeHistory checks the changes that a DNS server made to the
// challenge TXT records of an order for a name and its wildcard, as source
// shows them: each of the two challenge values was added by one update and
// deleted by a later one. The server held each record in between, while the
// CA, asking that server, validated the challenge.
func checkChallengeHistory(t *testing.T, source string, changes []recordChange) {
	t.Helper()
	added := map[string]int{}   // value -> seq of the change that added it
	removed := map[string]int{} // value -> seq of the change that removed it
	for _, c := range changes {
		m := removed
		if c.added {
			m = added
		}
		if _, dup := m[c.value]; dup {
			t.Errorf("%s changes challenge record %q the same way twice: %+v", source, c.value, changes)
		}
		m[c.value] = c.seq
	}
	if len(added) != 2 || len(removed) != 2 {
		t.Errorf("%s adds %d and removes %d challenge records, want 2 and 2: %+v", source, len(added), len(removed), changes)
	}
	for v, n := range added {
		if r, ok := removed[v]; !ok || r <= n {
			t.Errorf("%s adds challenge record %q (change %d) and does not remove it later: %+v", source, v, n, changes)
		}
	}
}

// lookProgram returns the path of the program name, found in PATH or in
// /usr/sbin (where Debian puts daemons, often outside a user's PATH).
// Without it the test fails in CI, whose script install names, and is
// skipped elsewhere.
func lookProgram(t *testing.T, name, install string) string {
	t.Helper()
	if bin, err := exec.LookPath(name); err == nil {
		return bin
	}
	if bin := filepath.Join("/usr/sbin", name); isExecutable(bin) {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: %s must run before the tests", name, install)
	}
	t.Skipf("%s is not installed: run %s to run this test", name, install)
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
