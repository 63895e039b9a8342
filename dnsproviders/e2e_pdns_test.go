package dnsproviders_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/miekg/dns"
)

// pdnsSchema is the SQL schema of Debian's pdns-backend-sqlite3.
const pdnsSchema = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"

// pdnsInstall tells how to install what startPDNS needs.
const pdnsInstall = ".ci/pdns.sh (Debian: apt-get install pdns-server pdns-backend-sqlite3 sqlite3)"

// TestRFC2136WithPowerDNSEndToEnd obtains certificates for a name and its
// wildcard through the rfc2136 provider against a real PowerDNS
// authoritative server with its SQLite backend, for a zone apex and for a
// name below the apex (the provider then finds the zone by asking
// PowerDNS for the SOA). A history that triggers keep in PowerDNS's
// database must show that it stored every challenge record and deleted
// each one again.
func TestRFC2136WithPowerDNSEndToEnd(t *testing.T) {
	tests := []struct {
		name      string
		zone      string
		domain    string
		algorithm string // tsig_algorithm option, as PowerDNS names it too
	}{
		{"apex hmac-sha256", "sha256.pdns.example.org", "sha256.pdns.example.org", "hmac-sha256"},
		{"below apex hmac-sha512", "sha512.pdns.example.org", "app.sha512.pdns.example.org", "hmac-sha512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pdns := startPDNS(t, tt.zone, tt.algorithm)
			obtainWithRFC2136(t, pdns.dnsServer, tt.domain, tt.algorithm)
			checkChallengeHistory(t, "PowerDNS's database", pdns.historyTXT(t, "_acme-challenge."+tt.domain))
		})
	}
}

// pdnsServer is a pdns_server process started by startPDNS.
type pdnsServer struct {
	*dnsServer
	sqlite string // the sqlite3 shell
	db     string // the backend's database
}

// startPDNS runs PowerDNS's pdns_server in the foreground on a free
// loopback port, authoritative for zone from a fresh SQLite database, and
// accepting dynamic updates (RFC 2136) of the zone signed with a fresh TSIG
// key of algorithm. Configuration and database live in a temporary
// directory; the process is stopped when the test ends. Without PowerDNS
// the test fails in CI (which installs it with .ci/pdns.sh) and is skipped
// elsewhere.
func startPDNS(t *testing.T, zone, algorithm string) *pdnsServer {
	t.Helper()
	bin := lookProgram(t, "pdns_server", pdnsInstall)
	pdnsutil := lookProgram(t, "pdnsutil", pdnsInstall)
	sqlite := lookProgram(t, "sqlite3", pdnsInstall)
	schema, err := os.ReadFile(pdnsSchema)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PowerDNS's SQLite backend is not installed: %s must run before the tests: %v", pdnsInstall, err)
		}
		t.Skipf("PowerDNS's SQLite backend is not installed: run %s to run this test", pdnsInstall)
	}
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &pdnsServer{
		dnsServer: &dnsServer{zone: zone, keyName: "autocert-test.", secret: base64.StdEncoding.EncodeToString(secret)},
	}
	s.sqlite, s.db = sqlite, filepath.Join(dir, "pdns.sqlite3")
	// run runs a set-up command; what names it in errors, which must not
	// show the arguments (one is the TSIG secret).
	run := func(what string, stdin []byte, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
	}
	// The backend's schema, and triggers that keep a history of the
	// records PowerDNS adds and deletes.
	run("sqlite3 creating the database", append(schema, pdnsHistorySQL...), sqlite, s.db)

	zoneFile := filepath.Join(dir, "zone.db")
	writeFile(t, zoneFile, 0o644, fmt.Sprintf(`$TTL 60
@	IN SOA	ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@	IN NS	ns.%[1]s.
ns	IN A	127.0.0.1
`, zone))
	conf := filepath.Join(dir, "pdns.conf")
	writeConf := func(port int) {
		// security-poll-suffix is empty: no query to the Internet. One
		// thread of each kind: the machine is small and the test sends
		// one query or update at a time.
		writeFile(t, conf, 0o600, fmt.Sprintf(`launch=gsqlite3
gsqlite3-database=%[1]s
local-address=127.0.0.1:%[2]d
socket-dir=%[3]s
dnsupdate=yes
allow-dnsupdate-from=127.0.0.0/8
guardian=no
daemon=no
disable-syslog=yes
write-pid=no
security-poll-suffix=
distributor-threads=1
receiver-threads=1
loglevel=6
`, s.db, port, dir))
	}
	writeConf(0)
	cfg := "--config-dir=" + dir
	run("pdnsutil load-zone", nil, pdnsutil, cfg, "load-zone", zone, zoneFile)
	run("pdnsutil import-tsig-key", nil, pdnsutil, cfg, "import-tsig-key", s.keyName, algorithm, s.secret)
	run("pdnsutil set-meta TSIG-ALLOW-DNSUPDATE", nil, pdnsutil, cfg, "set-meta", zone, "TSIG-ALLOW-DNSUPDATE", s.keyName)
	// Without it PowerDNS leaves the serial as it is on updates.
	run("pdnsutil set-meta SOA-EDIT-DNSUPDATE", nil, pdnsutil, cfg, "set-meta", zone, "SOA-EDIT-DNSUPDATE", "INCREASE")

	var lastErr error
	for attempt := range 5 {
		port := freePort(t)
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		writeConf(port)
		var out syncbuf.Buffer
		cmd := exec.Command(bin, cfg)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting pdns_server: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if err := waitForSOA(s.addr, zone, exited); err != nil {
			stop()
			lastErr = fmt.Errorf("attempt %d: %w\npdns_server output:\n%s", attempt+1, err, out.String())
			continue
		}
		t.Cleanup(stop)
		return s
	}
	t.Fatalf("pdns_server did not start: %v", lastErr)
	return nil
}

// pdnsHistorySQL adds to PowerDNS's SQLite schema a table of every record
// that is inserted into or deleted from the table records, in order.
const pdnsHistorySQL = `
CREATE TABLE autocert_history (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	added   INTEGER NOT NULL,
	name    TEXT,
	type    TEXT,
	content TEXT
);
CREATE TRIGGER autocert_history_insert AFTER INSERT ON records BEGIN
	INSERT INTO autocert_history (added, name, type, content) VALUES (1, NEW.name, NEW.type, NEW.content);
END;
CREATE TRIGGER autocert_history_delete AFTER DELETE ON records BEGIN
	INSERT INTO autocert_history (added, name, type, content) VALUES (0, OLD.name, OLD.type, OLD.content);
END;
`

// historyTXT returns, oldest first, the changes that PowerDNS made to the
// TXT records of owner in its database.
func (s *pdnsServer) historyTXT(t *testing.T, owner string) []recordChange {
	t.Helper()
	// PowerDNS stores names in lower case without the final dot.
	name := strings.TrimSuffix(strings.ToLower(owner), ".")
	query := fmt.Sprintf("SELECT seq, added, content FROM autocert_history WHERE name = '%s' AND type = 'TXT' ORDER BY seq;",
		strings.ReplaceAll(name, "'", "''"))
	out, err := exec.Command(s.sqlite, "-json", s.db, query).Output()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v", s.db, err)
	}
	var rows []struct {
		Seq     int    `json:"seq"`
		Added   int    `json:"added"`
		Content string `json:"content"`
	}
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatalf("sqlite3 printed %q: %v", out, err)
		}
	}
	changes := make([]recordChange, 0, len(rows))
	for _, r := range rows {
		// The content of a TXT record is in zone file format.
		rr, err := dns.NewRR(owner + " TXT " + r.Content)
		if err != nil {
			t.Fatalf("PowerDNS stored TXT content %q: %v", r.Content, err)
		}
		changes = append(changes, recordChange{r.Seq, r.Added == 1, strings.Join(rr.(*dns.TXT).Txt, "")})
	}
	return changes
}
