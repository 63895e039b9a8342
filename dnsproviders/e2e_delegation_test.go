package dnsproviders_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/miekg/dns"
	"github.com/rs/zerolog"
)

// TestDelegationWithBIND obtains certificates whose challenge records are
// delegated to another zone, with nothing simulated: a real BIND server
// holds zone a.test, where the names are, and zone b.test, the only one
// the TSIG key may change; the rfc2136 provider writes there, and the CA
// validates through the CNAME records of a.test, asking that server. The
// record must be in b.test while the CA validates, and gone after.
func TestDelegationWithBIND(t *testing.T) {
	tests := []struct {
		name    string
		domains []string
		zoneA   string // records of a.test: the delegation
		keys    string // more configuration keys
		record  string // where the TXT records go
		values  int    // how many challenge values are written there
	}{
		{
			name:    "CNAME followed",
			domains: []string{"www.a.test"},
			zoneA:   "_acme-challenge.www CNAME www.delegated.b.test.",
			record:  "www.delegated.b.test.",
			values:  1,
		},
		{
			name:    "CNAME chain of two followed",
			domains: []string{"www.a.test"},
			zoneA:   "_acme-challenge.www CNAME hop.a.test.\nhop CNAME _acme-challenge.www.delegated.b.test.",
			record:  "_acme-challenge.www.delegated.b.test.",
			values:  1,
		},
		{
			name:    "explicit alias",
			domains: []string{"www.a.test"},
			zoneA:   "_acme-challenge.www CNAME _acme-challenge.acme.b.test.",
			keys:    "dns_challenge_alias: acme.b.test",
			record:  "_acme-challenge.acme.b.test.",
			values:  1,
		},
		{
			name:    "apex and wildcard through an alias",
			domains: []string{"a.test", "*.a.test"},
			zoneA:   "_acme-challenge CNAME _acme-challenge.acme.b.test.",
			keys:    "dns_challenge_alias: acme.b.test",
			record:  "_acme-challenge.acme.b.test.",
			values:  2,
		},
		{
			name:    "apex and wildcard through a CNAME",
			domains: []string{"a.test", "*.a.test"},
			zoneA:   "_acme-challenge CNAME apex.delegated.b.test.",
			record:  "apex.delegated.b.test.",
			values:  2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keepLegoResolvers(t)
			bind := startBIND(t, bindZone{name: "a.test", records: tt.zoneA}, bindZone{name: "b.test", update: true})
			ca := acmetest.New(t, acmetest.WithValidationResolver(bind.addr))
			cfg := delegationConfig(t, ca, bind, bind, tt.domains, tt.keys)

			serialA, serialB := bind.serial(t, "a.test"), bind.serial(t, "b.test")
			var mu sync.Mutex
			var seen [][]string // TXT values of the record each time the CA validates
			watch := func(pr autocert.Progress) {
				if pr.Step == autocert.StepValidation {
					values := lookupTXT(t, bind.addr, tt.record)
					mu.Lock()
					seen = append(seen, values)
					mu.Unlock()
				}
			}
			p, logs, err := obtainDelegated(t, cfg, watch)
			if err != nil {
				t.Fatalf("ObtainAll: %v\nlog:\n%s", err, logs)
			}
			leaf := servedLeaf(t, p, ca.Roots(), strings.TrimPrefix(tt.domains[0], "*."))
			for _, d := range tt.domains {
				if err := leaf.VerifyHostname(strings.Replace(d, "*", "x", 1)); err != nil {
					t.Errorf("certificate does not cover %s: %v", d, err)
				}
			}

			mu.Lock()
			defer mu.Unlock()
			all := map[string]bool{}
			for _, values := range seen {
				if len(values) == 0 {
					t.Errorf("the CA validated while %s held no TXT record", tt.record)
				}
				for _, v := range values {
					all[v] = true
				}
			}
			if len(seen) != tt.values || len(all) != tt.values {
				t.Errorf("%d validations saw %d values at %s (%q), want %d of each", len(seen), len(all), tt.record, seen, tt.values)
			}
			if left := lookupTXT(t, bind.addr, tt.record); len(left) != 0 {
				t.Errorf("challenge records left at %s: %q", tt.record, left)
			}
			// Nothing was written in zone a.test (the key may not), each
			// record was added and removed in b.test.
			if got := bind.serial(t, "a.test"); got != serialA {
				t.Errorf("zone a.test changed: serial %d -> %d", serialA, got)
			}
			if got := bind.serial(t, "b.test"); got < serialB+uint32(2*tt.values) {
				t.Errorf("zone b.test serial %d -> %d: want %d updates at least", serialB, got, 2*tt.values)
			}
			if strings.Contains(logs.String(), bind.secret) {
				t.Error("the TSIG secret appears in the log")
			}
		})
	}
}

// TestCNAMEChainErrorsWithBIND: a CNAME loop and a chain too long are
// clear errors naming the chain, before any record is written; with
// dns_follow_cname: false the record is written at the name itself,
// which the key may not change.
func TestCNAMEChainErrorsWithBIND(t *testing.T) {
	var long []string
	for i := range 9 {
		long = append(long, fmt.Sprintf("hop%d CNAME hop%d.a.test.", i, i+1))
	}
	tests := []struct {
		name  string
		zoneA string
		keys  string
		want  []string // in the error
	}{
		{
			name:  "loop",
			zoneA: "_acme-challenge.www CNAME back.a.test.\nback CNAME _acme-challenge.www.a.test.",
			want:  []string{"CNAME loop: _acme-challenge.www.a.test. -> back.a.test. -> _acme-challenge.www.a.test."},
		},
		{
			name:  "chain too long",
			zoneA: "_acme-challenge.www CNAME hop0.a.test.\n" + strings.Join(long, "\n"),
			want:  []string{"CNAME chain longer than 8 hops: _acme-challenge.www.a.test. -> hop0.a.test. -> hop1.a.test.", "hop8.a.test."},
		},
		{
			name:  "following turned off",
			zoneA: "_acme-challenge.www CNAME www.delegated.b.test.",
			keys:  "dns_follow_cname: false",
			want:  []string{"REFUSED", "a.test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keepLegoResolvers(t)
			bind := startBIND(t, bindZone{name: "a.test", records: tt.zoneA}, bindZone{name: "b.test", update: true})
			ca := acmetest.New(t, acmetest.WithValidationResolver(bind.addr))
			cfg := delegationConfig(t, ca, bind, bind, []string{"www.a.test"}, tt.keys)
			serialB := bind.serial(t, "b.test")
			_, logs, err := obtainDelegated(t, cfg, nil)
			if err == nil {
				t.Fatal("ObtainAll succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if got := bind.serial(t, "b.test"); got != serialB {
				t.Errorf("zone b.test changed: serial %d -> %d", serialB, got)
			}
			if strings.Contains(logs.String(), bind.secret) {
				t.Error("the TSIG secret appears in the log")
			}
		})
	}
}

// TestSplitHorizonWithBIND: two BIND servers answer differently for zone
// a.test. The internal one, which the CA asks and the rfc2136 provider
// updates, delegates the challenge of www.a.test to b.test; the other,
// which lego's process-wide resolvers ask (as a system resolver with the
// public view would), has no such CNAME. A certificate whose resolvers
// are the internal server is obtained: autocert follows the CNAME with
// them and points lego's list at them for the order. The same certificate
// with the other view's server as resolvers fails: its record would go
// to zone a.test, which the key may not change.
func TestSplitHorizonWithBIND(t *testing.T) {
	keepLegoResolvers(t)
	const delegation = "_acme-challenge.www CNAME www.delegated.b.test."
	internal := startBIND(t, bindZone{name: "a.test", records: delegation}, bindZone{name: "b.test", update: true})
	public := startBIND(t, bindZone{name: "a.test", records: "www A 192.0.2.1"}, bindZone{name: "b.test"})
	_ = dns01.AddRecursiveNameservers([]string{public.addr})(nil)
	ca := acmetest.New(t, acmetest.WithValidationResolver(internal.addr))

	t.Run("the other view fails", func(t *testing.T) {
		cfg := delegationConfig(t, ca, public, internal, []string{"www.a.test"}, "")
		_, logs, err := obtainDelegated(t, cfg, nil)
		if err == nil || !strings.Contains(err.Error(), "REFUSED") {
			t.Fatalf("ObtainAll with the public view's resolvers = %v, want the update of zone a.test refused\nlog:\n%s", err, logs)
		}
	})

	t.Run("the certificate's resolvers see the internal view", func(t *testing.T) {
		cfg := delegationConfig(t, ca, internal, internal, []string{"www.a.test"}, "")
		serialB := internal.serial(t, "b.test")
		var mu sync.Mutex
		var seen []string
		watch := func(pr autocert.Progress) {
			if pr.Step == autocert.StepValidation {
				mu.Lock()
				seen = append(seen, lookupTXT(t, internal.addr, "www.delegated.b.test")...)
				mu.Unlock()
			}
		}
		p, logs, err := obtainDelegated(t, cfg, watch)
		if err != nil {
			t.Fatalf("ObtainAll: %v\nlog:\n%s", err, logs)
		}
		servedLeaf(t, p, ca.Roots(), "www.a.test")
		mu.Lock()
		if len(seen) != 1 {
			t.Errorf("values at www.delegated.b.test during validation: %q, want one", seen)
		}
		mu.Unlock()
		if left := lookupTXT(t, internal.addr, "www.delegated.b.test"); len(left) != 0 {
			t.Errorf("challenge records left behind: %q", left)
		}
		if got := internal.serial(t, "b.test"); got < serialB+2 {
			t.Errorf("zone b.test serial %d -> %d: no update", serialB, got)
		}
		if !strings.Contains(logs.String(), "lego's process-wide DNS resolvers set to the certificate's") ||
			!strings.Contains(logs.String(), internal.addr) {
			t.Errorf("the log does not say lego's resolvers were set to %s:\n%s", internal.addr, logs)
		}
	})
}

// keepLegoResolvers restores, when the test ends, lego's process-wide
// resolvers as TestMain set them (the imitated cloud DNS, which the
// tests calling providers directly rely on): autocert points them at a
// certificate's resolvers for an order that needs lego to follow a CNAME
// only they see.
func keepLegoResolvers(t *testing.T) {
	t.Cleanup(func() { _ = dns01.AddRecursiveNameservers([]string{cloudDNS.addr})(nil) })
}

// delegationConfig returns the configuration of a certificate for
// domains, obtained from ca through the rfc2136 provider writing to
// primary, with resolvers as its resolvers; keys are more YAML lines of
// the block.
func delegationConfig(t *testing.T, ca *acmetest.Server, resolvers, primary *bindServer, domains []string, keys string) *autocert.Config {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AUTOCERT_TEST_TSIG_SECRET", primary.secret)
	quoted := make([]string, len(domains))
	for i, d := range domains {
		quoted[i] = strconv.Quote(d)
	}
	yaml := fmt.Sprintf(`autocert:
  provider: rfc2136
  email: %s
  domains: [%s]
  cert_path: %s
  key_path: %s
  acme_key_path: %s
  ca_dir_url: %s
  ca_certs: [%s]
  resolvers: [%s]
  options:
    nameserver: %s
    tsig_algorithm: hmac-sha256
    tsig_key: %s
    tsig_secret: ${AUTOCERT_TEST_TSIG_SECRET}
    ttl: 60
    propagation_timeout: 30s
    polling_interval: 100ms
    sequence_interval: 100ms
`, acmetest.Email, strings.Join(quoted, ", "),
		filepath.Join(dir, "cert.crt"), filepath.Join(dir, "priv.key"), filepath.Join(dir, "acme.key"),
		ca.DirectoryURL(), ca.CACertFile(), resolvers.addr, primary.addr, primary.keyName)
	if keys != "" {
		yaml += "  " + strings.ReplaceAll(keys, "\n", "\n  ") + "\n"
	}
	cfg, err := autocert.ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatalf("ParseConfig: %v\n%s", err, yaml)
	}
	return cfg
}

// obtainDelegated starts a Provider for cfg, reporting progress to watch
// (when not nil), and obtains its certificates.
func obtainDelegated(t *testing.T, cfg *autocert.Config, watch func(autocert.Progress)) (*autocert.Provider, *syncbuf.Buffer, error) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	opts := []autocert.Option{autocert.WithLogger(zerolog.New(logs))}
	if watch != nil {
		opts = append(opts, autocert.WithProgress(watch))
	}
	p, err := autocert.New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, logs, p.ObtainAll(context.Background(), false)
}

// bindZone is one zone of a server started by startBIND.
type bindZone struct {
	name    string
	records string // zone file lines after the SOA and NS records
	update  bool   // the TSIG key may add and delete TXT records in it
}

// bindServer is a named process started by startBIND.
type bindServer struct {
	addr    string // 127.0.0.1:port, UDP and TCP
	keyName string
	secret  string // base64 TSIG secret
}

// startBIND runs BIND's named in the foreground on a free loopback port,
// authoritative for zones, with a fresh TSIG key that may change TXT
// records of the zones marked update, and nothing else (BIND's
// update-policy). It also answers as a recursive resolver does, for
// loopback clients: an answer through a CNAME into another of its zones
// then holds the records at the end of the chain (BIND answers only the
// CNAME when recursion is off), as the CA's resolver would. Config, zones and journals live in a temporary
// directory; the process is stopped when the test ends. Without named the
// test fails in CI (which installs it with .ci/bind9.sh) and is skipped
// elsewhere.
func startBIND(t *testing.T, zones ...bindZone) *bindServer {
	t.Helper()
	bin := lookProgram(t, "named", ".ci/bind9.sh (Debian: apt-get install bind9 bind9-utils)")
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &bindServer{keyName: "autocert-test.", secret: base64.StdEncoding.EncodeToString(secret)}
	var zoneConf strings.Builder
	for _, z := range zones {
		file := filepath.Join(dir, z.name+".db")
		writeFile(t, file, 0o644, fmt.Sprintf(`$TTL 60
@	IN SOA	ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@	IN NS	ns.%[1]s.
ns	IN A	127.0.0.1
%[2]s
`, z.name, z.records))
		policy := ""
		if z.update {
			policy = fmt.Sprintf("\n\tupdate-policy { grant %q zonesub TXT; };", s.keyName)
		}
		fmt.Fprintf(&zoneConf, "zone %q {\n\ttype primary;\n\tfile %q;%s\n};\n", z.name, file, policy)
	}
	var lastErr error
	for attempt := range 5 {
		port := freePort(t)
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf := filepath.Join(dir, "named.conf")
		writeFile(t, conf, 0o644, fmt.Sprintf(`options {
	directory %[1]q;
	pid-file %[2]q;
	session-keyfile %[3]q;
	managed-keys-directory %[1]q;
	listen-on port %[4]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion yes;
	allow-recursion { 127.0.0.1; };
	dnssec-validation no;
	notify no;
	allow-transfer { none; };
};
controls { };
key %[5]q {
	algorithm hmac-sha256;
	secret %[6]q;
};
%[7]s`, dir, filepath.Join(dir, "named.pid"), filepath.Join(dir, "session.key"), port, s.keyName, s.secret, zoneConf.String()))
		var out syncbuf.Buffer
		cmd := exec.Command(bin, "-g", "-4", "-c", conf)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting named: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		ready := true
		for _, z := range zones {
			if err := waitForSOA(s.addr, z.name, exited); err != nil {
				lastErr = fmt.Errorf("attempt %d: %w\nnamed output:\n%s", attempt+1, err, out.String())
				ready = false
				break
			}
		}
		if !ready {
			stop()
			continue
		}
		t.Cleanup(stop)
		return s
	}
	t.Fatalf("named did not start: %v", lastErr)
	return nil
}

// serial returns the SOA serial of zone.
func (s *bindServer) serial(t *testing.T, zone string) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	in, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, s.addr)
	if err != nil || len(in.Answer) == 0 {
		t.Fatalf("SOA %s: %v", zone, err)
	}
	return in.Answer[0].(*dns.SOA).Serial
}

// TestAliasTwoValuesAtOnceWithPowerDNS obtains a certificate for a zone
// apex and its wildcard through lego's pdns provider, which talks to
// PowerDNS's HTTP API and presents both challenges before the CA
// validates either: with dns_challenge_alias, both TXT values are at the
// alias at once, and each cleanup removes its own only. The provider finds
// the record's zone with lego's process-wide resolvers (here the
// imitated cloud DNS, which knows neither zone): autocert answers that
// lookup in advance with the certificate's resolvers.
func TestAliasTwoValuesAtOnceWithPowerDNS(t *testing.T) {
	keepLegoResolvers(t)
	pdns := startPDNSAPI(t,
		bindZone{name: "a.test", records: "_acme-challenge CNAME _acme-challenge.acme.b.test."},
		bindZone{name: "b.test"})
	ca := acmetest.New(t, acmetest.WithValidationResolver(pdns.addr))
	dir := t.TempDir()
	t.Setenv("AUTOCERT_TEST_PDNS_API_KEY", pdns.apiKey)
	cfg, err := autocert.ParseConfig(fmt.Appendf(nil, `autocert:
  provider: pdns
  email: %s
  domains: [a.test, "*.a.test"]
  dns_challenge_alias: acme.b.test
  cert_path: %s
  key_path: %s
  acme_key_path: %s
  ca_dir_url: %s
  ca_certs: [%s]
  resolvers: [%s]
  options:
    host: %s
    api_key: ${AUTOCERT_TEST_PDNS_API_KEY}
    ttl: 60
    propagation_timeout: 30s
    polling_interval: 100ms
`, acmetest.Email, filepath.Join(dir, "cert.crt"), filepath.Join(dir, "priv.key"), filepath.Join(dir, "acme.key"),
		ca.DirectoryURL(), ca.CACertFile(), pdns.addr, pdns.apiURL))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	const record = "_acme-challenge.acme.b.test."
	var mu sync.Mutex
	var seen [][]string
	watch := func(pr autocert.Progress) {
		if pr.Step == autocert.StepValidation {
			values := lookupTXT(t, pdns.addr, record)
			mu.Lock()
			seen = append(seen, values)
			mu.Unlock()
		}
	}
	p, logs, err := obtainDelegated(t, cfg, watch)
	if err != nil {
		t.Fatalf("ObtainAll: %v\nlog:\n%s", err, logs)
	}
	leaf := servedLeaf(t, p, ca.Roots(), "a.test")
	if err := leaf.VerifyHostname("x.a.test"); err != nil {
		t.Errorf("wildcard not covered: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || len(seen[0]) != 2 {
		t.Errorf("TXT values at %s at each validation: %q, want both values at the first", record, seen)
	}
	if left := lookupTXT(t, pdns.addr, record); len(left) != 0 {
		t.Errorf("challenge records left at %s: %q", record, left)
	}
	if strings.Contains(logs.String(), "lego's process-wide DNS resolvers set") {
		t.Errorf("lego's resolvers were changed, though no CNAME needed lego to follow it:\n%s", logs)
	}
	if strings.Contains(logs.String(), pdns.apiKey) {
		t.Error("the API key appears in the log")
	}
}

// pdnsAPIServer is a pdns_server process started by startPDNSAPI.
type pdnsAPIServer struct {
	addr   string // DNS, 127.0.0.1:port
	apiURL string // the HTTP API's base URL
	apiKey string
}

// startPDNSAPI runs PowerDNS's pdns_server in the foreground on free
// loopback ports, authoritative for zones from a fresh SQLite database,
// with its HTTP API on. Without PowerDNS the test fails in CI (which
// installs it with .ci/pdns.sh) and is skipped elsewhere.
func startPDNSAPI(t *testing.T, zones ...bindZone) *pdnsAPIServer {
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
	key := make([]byte, 24)
	rand.Read(key)
	s := &pdnsAPIServer{apiKey: base64.RawURLEncoding.EncodeToString(key)}
	db := filepath.Join(dir, "pdns.sqlite3")
	run := func(what string, stdin []byte, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
	}
	run("sqlite3 creating the database", schema, sqlite, db)
	conf := filepath.Join(dir, "pdns.conf")
	writeConf := func(port, apiPort int) {
		writeFile(t, conf, 0o600, fmt.Sprintf(`launch=gsqlite3
gsqlite3-database=%[1]s
local-address=127.0.0.1:%[2]d
socket-dir=%[3]s
api=yes
api-key=%[4]s
webserver=yes
webserver-address=127.0.0.1
webserver-port=%[5]d
webserver-allow-from=127.0.0.0/8
guardian=no
daemon=no
disable-syslog=yes
write-pid=no
security-poll-suffix=
distributor-threads=1
receiver-threads=1
loglevel=6
`, db, port, dir, s.apiKey, apiPort))
	}
	writeConf(0, 0)
	cfgDir := "--config-dir=" + dir
	for _, z := range zones {
		file := filepath.Join(dir, z.name+".db")
		writeFile(t, file, 0o644, fmt.Sprintf(`$TTL 60
@	IN SOA	ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@	IN NS	ns.%[1]s.
ns	IN A	127.0.0.1
%[2]s
`, z.name, z.records))
		run("pdnsutil load-zone "+z.name, nil, pdnsutil, cfgDir, "load-zone", z.name, file)
	}
	var lastErr error
	for attempt := range 5 {
		port, apiPort := freePort(t), freePort(t)
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.apiURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
		writeConf(port, apiPort)
		var out syncbuf.Buffer
		cmd := exec.Command(bin, cfgDir)
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
		err := waitForSOA(s.addr, zones[0].name, exited)
		if err == nil {
			err = waitForAPI(s.apiURL, s.apiKey)
		}
		if err != nil {
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

// waitForAPI polls PowerDNS's HTTP API until it answers, for 20 seconds.
func waitForAPI(base, key string) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/servers/localhost", nil)
		req.Header.Set("X-API-Key", key)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("PowerDNS's API at %s did not answer within 20s", base)
}
