package multi_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// maxSwap is how soon the other instances must serve a certificate that
// one instance stored.
const maxSwap = 2 * time.Second

// startFleet starts n instances at the same moment, each in a working
// directory of its own, with the configuration o, and waits until all
// serve TLS.
func startFleet(t *testing.T, ca *acmetest.Server, n int, o configOptions, dsn string) []*instance {
	t.Helper()
	config := writeConfig(t, ca, t.TempDir(), o)
	fleet := make([]*instance, n)
	for i := range fleet {
		fleet[i] = startInstance(t, ca, fmt.Sprintf("instance-%d", i+1), t.TempDir(), config, dsn)
	}
	// Every process is up: let them go together.
	for _, in := range fleet {
		in.expect(t, 60*time.Second, "started")
	}
	for _, in := range fleet {
		in.send(t, "go")
	}
	for _, in := range fleet {
		in.serving(t)
	}
	return fleet
}

// TestThreeInstancesStartTogether: three replicas sharing one PostgreSQL
// database start at the same moment on empty storage. The CA sees one
// account and one order per certificate; all three serve the same
// certificates, which every instance writes to its own cert_path and
// key_path files; the account key is kept in the database only; no log
// line shows the database password.
func TestThreeInstancesStartTogether(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	ca := acmetest.New(t)
	fleet := startFleet(t, ca, 3, configOptions{postgres: true, extra: true}, dsn)

	if n := ca.OrderCount(mainName, mainWild); n != 1 {
		t.Errorf("the CA received %d orders for the main certificate, want 1", n)
	}
	if n := ca.OrderCount(extraName); n != 1 {
		t.Errorf("the CA received %d orders for the extra certificate, want 1", n)
	}
	if n := ca.Accounts(); n != 1 {
		t.Errorf("the CA created %d accounts, want 1", n)
	}

	stored := storedValues(t, dsn)
	var accountKeys []string
	for k := range stored {
		if strings.Contains(k, "acme") {
			accountKeys = append(accountKeys, k)
		}
	}
	if !slices.Equal(accountKeys, []string{"certs/acme.key"}) {
		t.Errorf("account keys in the database: %v, want just certs/acme.key", accountKeys)
	}
	for _, c := range []struct{ name, certKey, keyKey string }{
		{mainName, "certs/cert.crt", "certs/priv.key"},
		{"www." + mainName, "certs/cert.crt", "certs/priv.key"},
		{extraName, "certs/api.crt", "certs/api.key"},
	} {
		want := leafOf(t, stored[c.certKey])
		for _, in := range fleet {
			if got := in.serial(t, c.name, ca.Roots()); got != want.SerialNumber.Text(16) {
				t.Errorf("%s serves serial %s for %s, the database holds %x", in.name, got, c.name, want.SerialNumber)
			}
			dir := in.cmd.Dir
			checkFile(t, filepath.Join(dir, c.certKey), stored[c.certKey], 0o644)
			checkFile(t, filepath.Join(dir, c.keyKey), stored[c.keyKey], 0o600)
		}
	}
	for _, in := range fleet {
		if _, err := os.Stat(filepath.Join(in.cmd.Dir, "certs", "acme.key")); err == nil {
			t.Errorf("%s wrote the account key to a file; it belongs in the database", in.name)
		}
	}

	// One instance ordered each certificate; the others did not even
	// start to.
	ordering := map[string]int{}
	obtained := map[string]int{}
	for _, in := range fleet {
		for _, l := range logLines(t, in) {
			switch l["message"] {
			case "obtaining certificate":
				ordering[l["provider"].(string)]++
			case "certificate obtained":
				obtained[l["provider"].(string)]++
			}
		}
	}
	for _, prov := range []string{"main", "extra[0]"} {
		if ordering[prov] != 1 || obtained[prov] != 1 {
			t.Errorf("%s: %d instances started an order and %d obtained the certificate, want 1 and 1", prov, ordering[prov], obtained[prov])
		}
	}
	checkNoSecret(t, ca, fleet, dsn)
}

// TestRenewalReachesEveryInstance: a renewal forced on one instance is
// served by the two others within maxSwap, files included. The test
// reports the latency: from the renewing instance storing the certificate
// (the start of its transaction) to the first TLS handshake with each other
// instance that presents it (handshakes every few milliseconds).
func TestRenewalReachesEveryInstance(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	ca := acmetest.New(t)
	fleet := startFleet(t, ca, 3, configOptions{postgres: true, extra: true}, dsn)
	roots := ca.Roots()
	oldMain := fleet[0].serial(t, mainName, roots)
	oldExtra := fleet[0].serial(t, extraName, roots)

	type seen struct {
		serial string
		at     time.Time
		err    error
	}
	results := make([][2]seen, len(fleet))
	var wg sync.WaitGroup
	for i, in := range fleet[1:] {
		wg.Go(func() {
			s, at, err := in.waitSerial(mainName, roots, oldMain, 20*time.Second)
			results[i+1][0] = seen{s, at, err}
		})
		wg.Go(func() {
			s, at, err := in.waitSerial(extraName, roots, oldExtra, 20*time.Second)
			results[i+1][1] = seen{s, at, err}
		})
	}
	marks := make([]int, len(fleet))
	for i, in := range fleet {
		marks[i] = in.mark()
	}
	fleet[0].send(t, "renew")
	fleet[0].expect(t, 30*time.Second, "renewed")
	newMain, _ := fleet[0].expectEvent(t, marks[0], time.Second, autocert.KindRenewed, "main", "")
	newExtra, _ := fleet[0].expectEvent(t, marks[0], time.Second, autocert.KindRenewed, "extra[0]", "")
	storedMain := storedAt(t, dsn, "certs/cert.crt")
	storedExtra := storedAt(t, dsn, "certs/api.crt")
	if i, _ := fleet[0].find(marks[0], 0, func(l []string) bool { return len(l) > 1 && l[1] == string(autocert.KindReloaded) }); i >= 0 {
		t.Errorf("the renewing instance reported its own certificate as reloaded: %q", fleet[0].line(i))
	}
	wg.Wait()

	for i, in := range fleet[1:] {
		for j, c := range []struct {
			what, serial string
			stored       time.Time
		}{{"main", newMain, storedMain}, {"extra", newExtra, storedExtra}} {
			r := results[i+1][j]
			if r.err != nil {
				t.Errorf("%s, %s certificate: %v", in.name, c.what, r.err)
				continue
			}
			if r.serial != c.serial {
				t.Errorf("%s serves %s serial %s, the renewal stored %s", in.name, c.what, r.serial, c.serial)
			}
			latency := r.at.Sub(c.stored)
			t.Logf("%s certificate: stored by %s, served by %s %v later (first handshake seeing it)", c.what, fleet[0].name, in.name, latency.Round(time.Millisecond))
			if latency > maxSwap {
				t.Errorf("%s served the renewed %s certificate %v after it was stored, want at most %v", in.name, c.what, latency, maxSwap)
			}
		}
		// The instance's own account of the swap, and its files.
		serial, at := in.expectEvent(t, marks[i+1], 5*time.Second, autocert.KindReloaded, "main", oldMain)
		t.Logf("main certificate: %s swapped it in %v after the store (its notification)", in.name, at.Sub(storedMain).Round(time.Millisecond))
		if serial != newMain {
			t.Errorf("%s reloaded serial %s, want %s", in.name, serial, newMain)
		}
		if l := leafOf(t, readFile(t, filepath.Join(in.cmd.Dir, "certs", "cert.crt"))); l.SerialNumber.Text(16) != newMain {
			t.Errorf("%s's certs/cert.crt holds serial %x after the swap, want %s", in.name, l.SerialNumber, newMain)
		}
	}
	if n := ca.OrderCount(mainName, mainWild); n != 2 {
		t.Errorf("%d orders for the main certificate, want 2 (start and forced renewal)", n)
	}
}

// TestLockHolderKilledMidOrder: the instance holding a certificate's lock
// is killed (SIGKILL) while its order waits in the DNS provider. The
// instance waiting for the lock takes over at once and completes the
// certificate; afterwards no lock is held.
func TestLockHolderKilledMidOrder(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	ca := acmetest.New(t)
	holder := startInstance(t, ca, "holder", t.TempDir(),
		writeConfig(t, ca, t.TempDir(), configOptions{provider: blockingProvider, postgres: true}), dsn)
	holder.start(t)
	holder.expect(t, 30*time.Second, "presenting")
	if n := heldAdvisoryLocks(t, dsn); n != 1 {
		t.Fatalf("%d advisory locks held while the holder orders, want 1", n)
	}

	survivor := startInstance(t, ca, "survivor", t.TempDir(),
		writeConfig(t, ca, t.TempDir(), configOptions{postgres: true}), dsn)
	survivor.start(t)
	survivor.quiet(t, 500*time.Millisecond, "while the holder held the lock")
	if n := ca.OrderCount(mainName, mainWild); n != 1 {
		t.Fatalf("%d orders while the holder orders, want 1", n)
	}

	killed := time.Now()
	holder.kill(t)
	survivor.expect(t, 30*time.Second, "obtained")
	t.Logf("the survivor obtained the certificate %v after the holder was killed", time.Since(killed).Round(time.Millisecond))
	survivor.serving(t)

	stored := storedValues(t, dsn)
	want := leafOf(t, stored["certs/cert.crt"])
	if got := survivor.serial(t, mainName, ca.Roots()); got != want.SerialNumber.Text(16) {
		t.Errorf("the survivor serves serial %s, the database holds %x", got, want.SerialNumber)
	}
	for k := range stored {
		if strings.Contains(k, ".last_failure-") {
			t.Errorf("failure record %s left after the survivor's success", k)
		}
	}
	if n := ca.OrderCount(mainName, mainWild); n != 2 {
		t.Errorf("%d orders, want 2 (the killed one and the survivor's)", n)
	}
	if n := ca.Accounts(); n != 1 {
		t.Errorf("%d accounts, want 1", n)
	}
	if n := heldAdvisoryLocks(t, dsn); n != 0 {
		t.Errorf("%d advisory locks still held", n)
	}
}

// TestDatabaseRestart: while the database is down, every instance keeps
// serving its certificates from memory, and a renewal fails at once
// without disturbing them. Once the database is back, the instances
// reconnect on their own, and a renewal on one reaches all of them within
// maxSwap.
func TestDatabaseRestart(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	ca := acmetest.New(t)
	fleet := startFleet(t, ca, 3, configOptions{postgres: true}, dsn)
	roots := ca.Roots()
	old := fleet[0].serial(t, mainName, roots)

	down := true
	t.Cleanup(func() {
		if down {
			pgtest.Start(t)
		}
	})
	pgtest.Stop(t)
	end := time.Now().Add(time.Second)
	handshakes := 0
	for time.Now().Before(end) {
		for _, in := range fleet {
			if got := in.serial(t, mainName, roots); got != old {
				t.Fatalf("%s serves serial %s during the outage, want %s", in.name, got, old)
			}
			handshakes++
		}
	}
	fleet[0].send(t, "renew")
	msg := fleet[0].expect(t, 30*time.Second, "renew-error")
	t.Logf("renewal during the outage: %s", strings.Join(msg[1:], " "))
	for _, in := range fleet {
		if got := in.serial(t, mainName, roots); got != old {
			t.Fatalf("%s serves serial %s after the failed renewal, want %s", in.name, got, old)
		}
	}
	t.Logf("%d handshakes served from memory while the database was down", handshakes)

	pgtest.Start(t)
	down = false
	restarted := time.Now()
	for _, in := range fleet {
		waitLog(t, in, "storage connection regained", 30*time.Second)
	}
	t.Logf("every instance was listening again %v after the database started", time.Since(restarted).Round(time.Millisecond))

	mark := fleet[1].mark()
	fleet[1].send(t, "renew")
	fleet[1].expect(t, 30*time.Second, "renewed")
	renewed, _ := fleet[1].expectEvent(t, mark, time.Second, autocert.KindRenewed, "main", "")
	stored := storedAt(t, dsn, "certs/cert.crt")
	for _, in := range []*instance{fleet[0], fleet[2]} {
		serial, at, err := in.waitSerial(mainName, roots, old, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if serial != renewed {
			t.Errorf("%s serves %s, want the renewed %s", in.name, serial, renewed)
		}
		latency := at.Sub(stored)
		t.Logf("after the restart: %s served the renewal %v after it was stored", in.name, latency.Round(time.Millisecond))
		if latency > maxSwap {
			t.Errorf("%s served the renewal %v after it was stored, want at most %v", in.name, latency, maxSwap)
		}
	}
}

// TestFileStorageTwoProcesses: two processes on one host share a certs/
// directory with the default file storage and start at the same moment:
// one account, one order, the same certificate served by both.
func TestFileStorageTwoProcesses(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	config := writeConfig(t, ca, dir, configOptions{})
	a := startInstance(t, ca, "process-1", dir, config, "")
	b := startInstance(t, ca, "process-2", dir, config, "")
	a.expect(t, 60*time.Second, "started")
	b.expect(t, 60*time.Second, "started")
	a.send(t, "go")
	b.send(t, "go")
	a.serving(t)
	b.serving(t)

	if n := ca.OrderCount(mainName, mainWild); n != 1 {
		t.Errorf("the CA received %d orders, want 1", n)
	}
	if n := ca.Accounts(); n != 1 {
		t.Errorf("the CA created %d accounts, want 1", n)
	}
	want := leafOf(t, readFile(t, filepath.Join(dir, "certs", "cert.crt")))
	for _, in := range []*instance{a, b} {
		if got := in.serial(t, mainName, ca.Roots()); got != want.SerialNumber.Text(16) {
			t.Errorf("%s serves serial %s, certs/cert.crt holds %x", in.name, got, want.SerialNumber)
		}
	}
}

// storedValues returns everything in the autocert table of the schema of
// dsn.
func storedValues(t *testing.T, dsn string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT key, value FROM autocert_storage")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedAt returns when key was last stored in the schema of dsn: the
// start of the storing transaction, by the database server's clock (the
// server runs on this host), a little before the value became visible.
func storedAt(t *testing.T, dsn, key string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var at time.Time
	if err := conn.QueryRow(ctx, "SELECT modified FROM autocert_storage WHERE key = $1", key).Scan(&at); err != nil {
		t.Fatalf("when %s was stored: %v", key, err)
	}
	return at
}

// heldAdvisoryLocks counts the advisory locks granted in the database of
// dsn. Test processes that use the server run one at a time, and the tests
// of this one one after the other, so they are the test's.
func heldAdvisoryLocks(t *testing.T, dsn string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
		WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// leafOf parses the first certificate of a PEM chain.
func leafOf(t *testing.T, chain []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(chain)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkFile checks that path holds want with mode.
func checkFile(t *testing.T, path string, want []byte, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("certificate file: %v", err)
		return
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
	if got := readFile(t, path); string(got) != string(want) {
		t.Errorf("%s does not hold what the database holds", path)
	}
}

// logLines decodes an instance's JSON log lines.
func logLines(t *testing.T, in *instance) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(in.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("%s: log line is not JSON: %q", in.name, sc.Text())
			continue
		}
		out = append(out, m)
	}
	return out
}

// waitLog waits until an instance logs a message containing msg.
func waitLog(t *testing.T, in *instance, msg string, timeout time.Duration) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !strings.Contains(in.logs.String(), msg) {
		if time.Now().After(end) {
			t.Fatalf("%s did not log %q within %v; its log:\n%s", in.name, msg, timeout, in.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkNoSecret fails the test if an instance's log shows the database
// password or the DNS provider's token.
func checkNoSecret(t *testing.T, ca *acmetest.Server, fleet []*instance, dsn string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal("the test DSN is not a URL")
	}
	pw, _ := u.User.Password()
	for _, in := range fleet {
		logs := in.logs.String()
		if pw != "" && strings.Contains(logs, pw) {
			t.Errorf("%s's log shows the database password", in.name)
		}
		if tok := ca.ProviderOptions()[acmetest.OptionAPIToken].Value(); strings.Contains(logs, tok) {
			t.Errorf("%s's log shows the DNS API token", in.name)
		}
	}
}

// TestProviderOwnsConfiguredStorage: in one process, the seed's flow
// (GetLegoConfig, NewProvider) on a config with a postgres storage block
// opens one connection pool: the account key goes to the database, the
// Provider uses the same pool, writes the certificate files, and Close
// leaves no connection open.
func TestProviderOwnsConfiguredStorage(t *testing.T) {
	app := fmt.Sprintf("autocert-owns-%d", time.Now().UnixNano())
	dsn := pgtest.WithParam(t, pgtest.SchemaDSN(t), "application_name", app)
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := ca.Config(mainName)
	cfg.CertPath = filepath.Join(dir, "certs", "cert.crt")
	cfg.KeyPath = filepath.Join(dir, "certs", "priv.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "certs", "acme.key")
	cfg.Storage = &autocert.StorageConfig{Type: "postgres", DSN: autocert.Redacted(dsn)}

	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := storedValues(t, dsn)[cfg.ACMEKeyPath]; !ok {
		t.Fatal("GetLegoConfig did not keep the account key in the database")
	}
	p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.ACMEKeyPath); err == nil {
		t.Error("the account key was written to a file")
	}
	stored := storedValues(t, dsn)
	checkFile(t, cfg.CertPath, stored[cfg.CertPath], 0o644)
	checkFile(t, cfg.KeyPath, stored[cfg.KeyPath], 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	p.ScheduleRenewalAll(autocert.ContextParent(ctx))
	cancel()
	<-p.SchedulerDone()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(10 * time.Second)
	for n := connections(t, app); n != 0; n = connections(t, app) {
		if time.Now().After(end) {
			t.Fatalf("%d connections of the Provider left open after Close", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := p.GetCert(&tls.ClientHelloInfo{ServerName: mainName}); err != nil {
		t.Errorf("GetCert after Close: %v", err)
	}
}

// connections counts the connections to the test server whose
// application_name is app.
func connections(t *testing.T, app string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
