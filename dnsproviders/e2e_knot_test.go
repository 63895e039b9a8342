package dnsproviders_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/miekg/dns"
)

// TestRFC2136WithKnotEndToEnd obtains certificates for a name and its
// wildcard through the rfc2136 provider against a real Knot DNS server,
// with each TSIG algorithm form a user would write, for a zone apex and
// for a name below the apex (the provider then finds the zone by asking
// Knot for the SOA). Knot's own journal must show that it stored every
// challenge record and deleted each one again.
func TestRFC2136WithKnotEndToEnd(t *testing.T) {
	tests := []struct {
		name      string
		zone      string
		domain    string
		algorithm string // tsig_algorithm option; empty: the provider's default
		keyAlg    string // Knot's name of the key's algorithm
	}{
		{"apex hmac-sha256", "sha256.knot.example.org", "sha256.knot.example.org", "hmac-sha256", "hmac-sha256"},
		{"apex hmac-sha512 with trailing dot", "sha512.knot.example.org", "sha512.knot.example.org", "hmac-sha512.", "hmac-sha512"},
		{"below apex default algorithm", "default.knot.example.org", "app.default.knot.example.org", "", "hmac-sha1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			knot := startKnot(t, tt.zone, tt.keyAlg)
			obtainWithRFC2136(t, knot.dnsServer, tt.domain, tt.algorithm)

			checkChallengeHistory(t, "Knot's journal", knot.journalTXT(t, "_acme-challenge."+tt.domain))
		})
	}
}

// knotInstall tells how to install what startKnot needs.
const knotInstall = ".ci/knot.sh (Debian: apt-get install knot)"

// knotServer is a knotd process started by startKnot.
type knotServer struct {
	*dnsServer
	dir           string // configuration, zone file, journal and control socket
	kjournalprint string // Knot's program that prints the journal
}

// startKnot runs Knot DNS's knotd in the foreground on a free loopback
// port, authoritative for zone, accepting dynamic updates signed with a
// fresh TSIG key of the algorithm named as Knot names it. Configuration,
// zone file and databases live in a temporary directory; the process is
// stopped when the test ends. Without knotd the test fails in CI (which
// installs it with .ci/knot.sh) and is skipped elsewhere.
func startKnot(t *testing.T, zone, algorithm string) *knotServer {
	t.Helper()
	bin := lookProgram(t, "knotd", knotInstall)
	journal := lookProgram(t, "kjournalprint", knotInstall)
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &knotServer{
		dnsServer:     &dnsServer{zone: zone, keyName: "autocert-test.", secret: base64.StdEncoding.EncodeToString(secret)},
		dir:           dir,
		kjournalprint: journal,
	}
	zoneFile := filepath.Join(dir, "zone.db")
	writeFile(t, zoneFile, 0o644, fmt.Sprintf(`$TTL 60
@	IN SOA	ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@	IN NS	ns.%[1]s.
ns	IN A	127.0.0.1
`, zone))

	var lastErr error
	for attempt := range 5 {
		port := freePort(t)
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf := filepath.Join(dir, "knot.conf")
		// One worker of each kind: the machine is small and the test
		// sends one query or update at a time.
		writeFile(t, conf, 0o600, fmt.Sprintf(`server:
    rundir: %[1]q
    pidfile: %[2]q
    listen: 127.0.0.1@%[3]d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: %[4]q
database:
    storage: %[1]q
log:
  - target: stderr
    any: info
key:
  - id: %[5]s
    algorithm: %[6]s
    secret: %[7]s
acl:
  - id: update
    key: %[5]s
    action: update
zone:
  - domain: %[8]s
    file: %[9]q
    acl: update
`, dir, filepath.Join(dir, "knot.pid"), port, filepath.Join(dir, "knot.sock"),
			s.keyName, algorithm, s.secret, zone, zoneFile))

		var out syncbuf.Buffer
		cmd := exec.Command(bin, "-c", conf)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting knotd: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if err := waitForSOA(s.addr, zone, exited); err != nil {
			stop()
			lastErr = fmt.Errorf("attempt %d: %w\nknotd output:\n%s", attempt+1, err, out.String())
			continue
		}
		t.Cleanup(stop)
		return s
	}
	t.Fatalf("knotd did not start: %v", lastErr)
	return nil
}

// journalTXT reads Knot's journal of the zone with kjournalprint and
// returns, oldest first, the changes of the TXT records of owner.
func (s *knotServer) journalTXT(t *testing.T, owner string) []recordChange {
	t.Helper()
	out, err := exec.Command(s.kjournalprint, "-x", "-c", filepath.Join(s.dir, "knot.conf"), s.zone).CombinedOutput()
	if err != nil {
		t.Fatalf("kjournalprint: %v\n%s", err, out)
	}
	// The output is a sequence of changesets, each a ";; Changes between
	// zone versions" line, then ";; Removed" and ";; Added" sections of
	// records in zone file format.
	var changes []recordChange
	changeset, added := 0, false
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ";; Changes between zone versions"):
			changeset++
		case line == ";; Removed":
			added = false
		case line == ";; Added":
			added = true
		case line == "" || strings.HasPrefix(line, ";"):
		default:
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Fatalf("kjournalprint printed %q: %v\n%s", line, err, out)
			}
			if txt, ok := rr.(*dns.TXT); ok && strings.EqualFold(txt.Hdr.Name, dns.Fqdn(owner)) {
				changes = append(changes, recordChange{changeset, added, strings.Join(txt.Txt, "")})
			}
		}
	}
	if changeset == 0 {
		t.Fatalf("kjournalprint printed no changeset:\n%s", out)
	}
	return changes
}
