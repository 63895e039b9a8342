package dnsproviders_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	_ "github.com/autocert-dev/autocert/dnsproviders"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/miekg/dns"
	"github.com/rs/zerolog"
)

// TestRFC2136WithBINDEndToEnd obtains a certificate for a zone apex and
// its wildcard with nothing simulated: the rfc2136 provider, configured
// only from YAML options, sends TSIG-signed dynamic updates to a real BIND
// server that is authoritative for the zone; autocert's propagation check
// and the CA's validation both ask that server.
func TestRFC2136WithBINDEndToEnd(t *testing.T) {
	const zone = "bind.example.org"
	bind := startNamed(t, zone)
	ca := acmetest.New(t, acmetest.WithValidationResolver(bind.addr))
	dir := t.TempDir()

	// The secret comes from the environment, as a user would keep it.
	t.Setenv("AUTOCERT_TEST_TSIG_SECRET", bind.secret)
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
    nameserver: %s
    tsig_algorithm: hmac-sha256
    tsig_key: %s
    tsig_secret: ${AUTOCERT_TEST_TSIG_SECRET}
    ttl: 60
    propagation_timeout: 30s
    polling_interval: 100ms
    sequence_interval: 100ms
`, acmetest.Email, zone, "*."+zone,
		filepath.Join(dir, "cert.crt"), filepath.Join(dir, "priv.key"), filepath.Join(dir, "acme.key"),
		ca.DirectoryURL(), ca.CACertFile(), bind.addr, bind.addr, bind.keyName)

	serialBefore := bind.serial(t)
	p, logs := obtainFromYAML(t, yaml)

	leaf := servedLeaf(t, p, ca.Roots(), zone)
	for _, name := range []string{zone, "www." + zone, "api." + zone} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	if got := ca.OrderCount(zone, "*."+zone); got != 1 {
		t.Errorf("CA saw %d orders for the zone, want 1", got)
	}
	// Both challenges went through BIND's dynamic updates (each add and
	// delete bumps the serial) and nothing is left behind.
	if after := bind.serial(t); after < serialBefore+2 {
		t.Errorf("zone serial %d -> %d: BIND received no dynamic updates", serialBefore, after)
	}
	if left := lookupTXT(t, bind.addr, "_acme-challenge."+zone); len(left) != 0 {
		t.Errorf("challenge records left in the zone: %q", left)
	}
	if strings.Contains(logs.String(), bind.secret) {
		t.Error("the TSIG secret appears in the log")
	}
}

// TestExecScriptEndToEnd obtains a certificate through the exec provider:
// a shell script that lego calls with present and cleanup, and that hands
// the record to the acmetest CA's DNS server through a helper program (the
// test binary itself, so no tool such as curl needs to be installed).
func TestExecScriptEndToEnd(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	hookLog := filepath.Join(dir, "hook.log")
	script := filepath.Join(dir, "dns-hook.sh")
	helper, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, script, 0o755, fmt.Sprintf(`#!/bin/sh
# DNS-01 hook for lego's exec provider in RAW mode:
#   dns-hook.sh present|cleanup -- DOMAIN TOKEN KEY_AUTHORIZATION
set -eu
action=${1:-}
[ "$#" -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
if [ "$#" -ne 3 ]; then
	echo "usage: $0 present|cleanup -- domain token key-authorization" >&2
	exit 2
fi
case "$action" in
present|cleanup) ;;
*) echo "$0: unknown action $action" >&2; exit 2 ;;
esac
printf '%%s %%s\n' "$action" "$1" >> %s
%s=1 exec %s "$action" "$@"
`, shellQuote(hookLog), helperEnv, shellQuote(helper)))

	opts := ca.ProviderOptions()
	t.Setenv("ACMETEST_API_URL", opts[acmetest.OptionAPIURL].Value())
	t.Setenv("ACMETEST_API_TOKEN", opts[acmetest.OptionAPIToken].Value())

	yaml := fmt.Sprintf(`provider: exec
email: %s
domains: [exec.example.com, "*.exec.example.com"]
cert_path: %s
key_path: %s
acme_key_path: %s
ca_dir_url: %s
ca_certs: [%s]
resolvers: [%s]
options:
  program: %s
  mode: RAW
  propagation_timeout: 10s
  polling_interval: 50ms
  sequence_interval: 100ms
`, acmetest.Email, filepath.Join(dir, "cert.crt"), filepath.Join(dir, "priv.key"), filepath.Join(dir, "acme.key"),
		ca.DirectoryURL(), ca.CACertFile(), ca.DNSAddr(), script)

	p, _ := obtainFromYAML(t, yaml)
	leaf := servedLeaf(t, p, ca.Roots(), "exec.example.com")
	if err := leaf.VerifyHostname("x.exec.example.com"); err != nil {
		t.Errorf("wildcard not covered: %v", err)
	}
	calls, err := os.ReadFile(hookLog)
	if err != nil {
		t.Fatal(err)
	}
	// One authorization per name; lego gives the wildcard's base name.
	got := strings.Split(strings.TrimSpace(string(calls)), "\n")
	slices.Sort(got)
	want := []string{"cleanup exec.example.com", "cleanup exec.example.com", "present exec.example.com", "present exec.example.com"}
	if !slices.Equal(got, want) {
		t.Errorf("hook calls (sorted) = %q, want %q", got, want)
	}
	if left := lookupTXT(t, ca.DNSAddr(), "_acme-challenge.exec.example.com"); len(left) != 0 {
		t.Errorf("challenge records left behind: %q", left)
	}
}

// obtainFromYAML runs the documented start-up on a YAML document:
// ParseConfig, GetLegoConfig, NewProvider, ObtainCertIfNotExistsAll.
func obtainFromYAML(t *testing.T, yaml string) (*autocert.Provider, *syncbuf.Buffer) {
	t.Helper()
	cfg, err := autocert.ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatalf("GetLegoConfig: %v", err)
	}
	logs := &syncbuf.Buffer{}
	p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.New(logs)))
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatalf("ObtainCertIfNotExistsAll: %v\nlog:\n%s", err, logs)
	}
	return p, logs
}

// servedLeaf returns the certificate GetCert serves for name, after
// checking that its chain verifies against roots.
func servedLeaf(t *testing.T, p *autocert.Provider, roots *x509.CertPool, name string) *x509.Certificate {
	t.Helper()
	cert, err := p.GetCert(&tls.ClientHelloInfo{ServerName: name})
	if err != nil || cert == nil {
		t.Fatalf("GetCert(%s) = %v, %v", name, cert, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
		t.Fatalf("served chain for %s does not verify: %v", name, err)
	}
	return leaf
}

// dnsServer is an authoritative DNS server process started by a test
// (startNamed, startKnot, startPDNS).
type dnsServer struct {
	addr    string // 127.0.0.1:port, UDP and TCP
	zone    string
	keyName string
	secret  string // base64 TSIG secret
}

// startNamed runs BIND's named in the foreground on a free loopback port,
// authoritative for zone, accepting dynamic updates signed with a fresh
// TSIG key. Config, zone and journal live in a temporary directory; the
// process is stopped when the test ends. Without named the test fails in
// CI (which installs it with .ci/bind9.sh) and is skipped elsewhere.
func startNamed(t *testing.T, zone string) *dnsServer {
	t.Helper()
	bin, err := exec.LookPath("named")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/named"); serr == nil {
			bin = "/usr/sbin/named"
		}
	}
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("named (BIND 9) is not installed: .ci/bind9.sh must run before the tests")
		}
		t.Skip("named (BIND 9) is not installed: run .ci/bind9.sh (Debian: apt-get install bind9 bind9-utils) to run this test")
	}
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &dnsServer{zone: zone, keyName: "autocert-test.", secret: base64.StdEncoding.EncodeToString(secret)}
	writeFile(t, filepath.Join(dir, "zone.db"), 0o644, fmt.Sprintf(`$TTL 60
@	IN SOA	ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@	IN NS	ns.%[1]s.
ns	IN A	127.0.0.1
`, zone))

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
	recursion no;
	dnssec-validation no;
	notify no;
	allow-transfer { none; };
};
controls { };
key %[5]q {
	algorithm hmac-sha256;
	secret %[6]q;
};
zone %[7]q {
	type primary;
	file %[8]q;
	allow-update { key %[5]q; };
};
`, dir, filepath.Join(dir, "named.pid"), filepath.Join(dir, "session.key"), port,
			s.keyName, s.secret, zone, filepath.Join(dir, "zone.db")))

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
		if err := waitForSOA(s.addr, zone, exited); err != nil {
			stop()
			lastErr = fmt.Errorf("attempt %d: %w\nnamed output:\n%s", attempt+1, err, out.String())
			continue
		}
		t.Cleanup(stop)
		return s
	}
	t.Fatalf("named did not start: %v", lastErr)
	return nil
}

// waitForSOA polls addr over TCP until it answers the SOA of zone, the
// process exits, or 20 seconds pass.
func waitForSOA(addr, zone string, exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("server exited: %v", err)
		default:
		}
		if in, _, err := c.Exchange(m, addr); err == nil && in.Rcode == dns.RcodeSuccess && len(in.Answer) > 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no SOA answer from %s within 20s", addr)
}

// serial returns the zone's SOA serial.
func (s *dnsServer) serial(t *testing.T) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(s.zone), dns.TypeSOA)
	in, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, s.addr)
	if err != nil || len(in.Answer) == 0 {
		t.Fatalf("SOA %s: %v", s.zone, err)
	}
	return in.Answer[0].(*dns.SOA).Serial
}

// freePort returns a port of 127.0.0.1 that was free for UDP and TCP.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port for UDP and TCP")
	return 0
}

func writeFile(t *testing.T, path string, mode os.FileMode, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
