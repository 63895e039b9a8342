package interop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/go-acme/lego/v4/lego"
	"github.com/rs/zerolog"
)

const (
	// stepcaVersion is the step-ca release .ci/stepca.sh builds; keep the
	// two equal.
	stepcaVersion = "v0.30.2"
	// stepcaEnv names a step-ca binary to use instead of the one
	// .ci/stepca.sh builds.
	stepcaEnv = "AUTOCERT_TEST_STEPCA"
	// provACME, provEAB and provShort name the ACME provisioners of
	// ca.json, the path segment of their directory URLs: provEAB requires
	// External Account Binding, provShort issues short-lived certificates.
	provACME  = "acme"
	provEAB   = "acme-eab"
	provShort = "acme-short"
	// shortValidity is how long provShort's certificates are valid after
	// they are issued; step-ca backdates NotBefore by one minute more.
	shortValidity = 20 * time.Second
	// stepcaStartTimeout bounds the wait for step-ca's /health on a busy
	// machine; it is a deadline for a failure, not a measurement.
	stepcaStartTimeout = 2 * time.Minute
)

// stepcaBinary returns the step-ca binary to run. Without one the test
// fails in CI and is skipped elsewhere.
func stepcaBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv(stepcaEnv)
	if path == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("step-ca: no cache directory to look for the binary in (set %s): %v", stepcaEnv, err)
		}
		path = filepath.Join(cache, "autocert-stepca", stepcaVersion, "step-ca")
	}
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return path
	}
	msg := fmt.Sprintf("step-ca %s is not installed at %s (run `bash .ci/stepca.sh`, or set %s to a step-ca binary)", stepcaVersion, path, stepcaEnv)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// testPKI is a root and an intermediate CA made for one step-ca, in files.
type testPKI struct {
	root      *x509.Certificate
	rootPath  string // PEM of root
	interPath string // PEM of the intermediate
	keyPath   string // PEM of the intermediate's private key, unencrypted
}

// newPKI creates a root CA and an intermediate it signs, the intermediate
// limited to signing leaf certificates, and writes them into dir.
func newPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "autocert interop test root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour * 365),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "autocert interop test intermediate"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour * 180),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{
		root:      root,
		rootPath:  filepath.Join(dir, "root_ca.crt"),
		interPath: filepath.Join(dir, "intermediate_ca.crt"),
		keyPath:   filepath.Join(dir, "intermediate_ca.key"),
	}
	for path, b := range map[string]*pem.Block{
		p.rootPath:  {Type: "CERTIFICATE", Bytes: rootDER},
		p.interPath: {Type: "CERTIFICATE", Bytes: interDER},
		p.keyPath:   {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// roots returns a pool holding only the root.
func (p testPKI) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.root)
	return pool
}

// stepCA is a running step-ca process.
type stepCA struct {
	pki     testPKI
	addr    string // 127.0.0.1:port of its HTTPS server
	bin     string // the binary
	dir     string // where its config and database directories are made
	dnsAddr string // the DNS server it resolves names at
	cmd     *exec.Cmd
	log     syncbuf.Buffer // its standard output and error
	exited  chan struct{}  // closed when the process has been waited for
	err     error          // how it exited, once exited is closed

	mu   sync.Mutex
	sent []sentRequest // by the Providers that track it, oldest first
}

// directoryURL returns the URL of the directory of the ACME provisioner
// named prov.
func (s *stepCA) directoryURL(prov string) string {
	return "https://" + s.addr + "/acme/" + prov + "/directory"
}

// requests returns how many requests with method ("" for any) to a path
// ending in suffix ("" for any) the Providers that track s sent it.
func (s *stepCA) requests(method, suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.sent {
		if (method == "" || r.method == method) && strings.HasSuffix(r.path, suffix) {
			n++
		}
	}
	return n
}

// newOrders returns how many ACME new-order requests were sent to s.
func (s *stepCA) newOrders() int { return s.requests(http.MethodPost, "/new-order") }

// track makes the ACME HTTP client of cfg record every request it sends to
// s, as it sends it. (step-ca's own log is written after it answers, too
// late to count on.)
func (s *stepCA) track(cfg *lego.Config) {
	base := cfg.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cfg.HTTPClient.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host == s.addr {
			s.mu.Lock()
			s.sent = append(s.sent, sentRequest{req.Method, req.URL.Path})
			s.mu.Unlock()
		}
		return base.RoundTrip(req)
	})
}

// sentRequest is a request sent to step-ca.
type sentRequest struct{ method, path string }

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f.
func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// startStepCA writes a ca.json for p into dir and starts step-ca on a free
// loopback port, resolving DNS-01 TXT records at dnsAddr. It returns once
// /health answers, and stops the process when the test ends.
func startStepCA(t *testing.T, bin, dir, dnsAddr string, p testPKI) *stepCA {
	t.Helper()
	// The port is chosen free and then given to step-ca: another process
	// may take it in between, so a step-ca that exits at once is started
	// again on another port.
	var lastErr error
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		s, err := tryStartStepCA(t, bin, dir, dnsAddr, addr, p)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

// restart stops s and starts a step-ca of the same PKI on the same
// address, with a new, empty database: a CA that forgot every account,
// order and certificate.
func (s *stepCA) restart(t *testing.T) *stepCA {
	t.Helper()
	s.stop(t)
	n, err := tryStartStepCA(t, s.bin, s.dir, s.dnsAddr, s.addr, s.pki)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tryStartStepCA starts step-ca on addr; an error means it exited before
// answering.
func tryStartStepCA(t *testing.T, bin, dir, dnsAddr, addr string, p testPKI) (*stepCA, error) {
	dbDir, err := os.MkdirTemp(dir, "db-")
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"root":     p.rootPath,
		"crt":      p.interPath,
		"key":      p.keyPath,
		"address":  addr,
		"dnsNames": []string{"127.0.0.1", "localhost"},
		"logger":   map[string]any{"format": "json"},
		"db":       map[string]any{"type": "bbolt", "dataSource": filepath.Join(dbDir, "bbolt")},
		"authority": map[string]any{
			"provisioners": []any{
				map[string]any{"type": "ACME", "name": provACME, "challenges": []string{"dns-01"}},
				map[string]any{"type": "ACME", "name": provEAB, "challenges": []string{"dns-01"}, "requireEAB": true},
				map[string]any{"type": "ACME", "name": provShort, "challenges": []string{"dns-01"},
					"claims": map[string]any{"minTLSCertDuration": "10s", "defaultTLSCertDuration": shortValidity.String()}},
			},
		},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dbDir, "ca.json")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return nil, err
	}

	s := &stepCA{pki: p, addr: addr, bin: bin, dir: dir, dnsAddr: dnsAddr, exited: make(chan struct{})}
	// --resolver makes step-ca ask acmetest's DNS server for every name,
	// the _acme-challenge TXT records included.
	s.cmd = exec.Command(bin, "--resolver", dnsAddr, cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	s.cmd.Env = append(os.Environ(), "STEPPATH="+filepath.Join(dbDir, "steppath"))
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("step-ca: %w", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()

	hc := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots()}},
		Timeout:   5 * time.Second,
	}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(stepcaStartTimeout)
	for {
		resp, err := hc.Get("https://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("HTTP status %s", resp.Status)
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("step-ca on %s exited before answering /health (%v); its output:\n%s", addr, s.err, s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop(t)
			t.Fatalf("step-ca on %s did not answer /health within %v: %v; its output:\n%s", addr, stepcaStartTimeout, err, s.log.String())
		}
	}
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("step-ca output:\n%s", s.log.String())
		}
	})
	return s, nil
}

// stop ends step-ca, if it still runs: SIGTERM, then SIGKILL if it has not
// exited after a while.
func (s *stepCA) stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("step-ca: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("step-ca did not stop on SIGTERM within 30 s; killing it")
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// served does a TLS handshake over TCP with a server that uses p's
// TLSConfig, for serverName, and returns the leaf the client verified
// against roots.
func served(t *testing.T, p *autocert.Provider, roots *x509.CertPool, serverName string) *x509.Certificate {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", p.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		errc <- c.(*tls.Conn).Handshake()
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{ServerName: serverName, RootCAs: roots})
	if err == nil {
		c.Close()
	}
	if serr := <-errc; err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		t.Fatalf("TLS handshake for %q: %v", serverName, err)
	}
	return c.ConnectionState().PeerCertificates[0]
}

// readChain parses the PEM certificates of a file.
func readChain(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		t.Fatalf("%s holds no certificate", path)
	}
	return chain
}

// verifyChain checks that the chain in path verifies against roots for
// every name and returns its leaf.
func verifyChain(t *testing.T, path string, roots *x509.CertPool, names ...string) *x509.Certificate {
	t.Helper()
	chain := readChain(t, path)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, name := range names {
		if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("%s does not verify for %s against the generated root: %v", path, name, err)
		}
	}
	return chain[0]
}

// startProvider runs the seed's start-up flow on cfg: GetLegoConfig,
// NewProvider, ObtainCertIfNotExistsAll, with the requests to ca tracked.
// The Provider is closed when the test ends.
func startProvider(t *testing.T, ca *stepCA, cfg *autocert.Config, logs *syncbuf.Buffer) *autocert.Provider {
	t.Helper()
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatalf("GetLegoConfig: %v", err)
	}
	ca.track(legoCfg)
	p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.New(logs).Level(zerolog.DebugLevel)))
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatalf("ObtainCertIfNotExistsAll against step-ca: %v\nautocert log:\n%s", err, logs.String())
	}
	return p
}

// newStepCA starts acmetest's DNS server and a step-ca that resolves names
// there.
func newStepCA(t *testing.T) (*acmetest.Server, *stepCA, string) {
	t.Helper()
	bin := stepcaBinary(t)
	dns := acmetest.New(t) // only its DNS server and DNS provider are used
	dir := t.TempDir()
	return dns, startStepCA(t, bin, dir, dns.DNSAddr(), newPKI(t, dir)), dir
}

// stepcaConfig returns a configuration that obtains a certificate for names
// from the provisioner prov of ca, with its files in dir: the DNS provider
// and resolver of dns, ca's directory and root.
func stepcaConfig(dns *acmetest.Server, ca *stepCA, prov, dir string, names ...string) *autocert.Config {
	cfg := dns.Config(names...)
	cfg.CADirURL = ca.directoryURL(prov)
	cfg.CACerts = []string{ca.pki.rootPath}
	cfg.CertPath = filepath.Join(dir, "cert.crt")
	cfg.KeyPath = filepath.Join(dir, "priv.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	return cfg
}

// TestStepCA obtains, serves and renews a certificate for a name and its
// wildcard from step-ca, a second ACME CA, through real DNS-01 challenges
// that step-ca looks up in acmetest's DNS server. step-ca offers neither
// certificate profiles nor renewal information (ARI): a configured profile
// is warned about and the certificate issued all the same, and renewal
// follows the lifetime rule.
func TestStepCA(t *testing.T) {
	dns, ca, dir := newStepCA(t)
	roots := ca.pki.roots()
	config := func() *autocert.Config {
		cfg := stepcaConfig(dns, ca, provACME, filepath.Join(dir, "certs"), "stepca.test", "*.stepca.test")
		cfg.Profile = "shortlived"
		return cfg
	}

	// First start: one order, a chain the generated root verifies, served
	// by SNI in a TLS handshake.
	var logs1 syncbuf.Buffer
	p1 := startProvider(t, ca, config(), &logs1)
	if n := ca.newOrders(); n != 1 {
		t.Errorf("%d new-order requests sent to step-ca on the first start, want 1", n)
	}
	leaf1 := verifyChain(t, config().CertPath, roots, "stepca.test", "www.stepca.test", "x.stepca.test")
	for _, name := range []string{"stepca.test", "www.stepca.test"} {
		if got := served(t, p1, roots, name); !got.Equal(leaf1) {
			t.Errorf("%s: handshake served serial %x, the file holds %x", name, got.SerialNumber, leaf1.SerialNumber)
		}
	}
	if !strings.Contains(logs1.String(), "the CA offers no certificate profiles") {
		t.Errorf("profile %q set, step-ca offers none: no warning logged; log:\n%s", config().Profile, logs1.String())
	}
	infos, err := p1.GetCertInfos()
	if err != nil || len(infos) != 1 || infos[0].Issuer != "autocert interop test intermediate" {
		t.Errorf("GetCertInfos = %+v, %v; want the one certificate, issued by the generated intermediate", infos, err)
	}

	// Second start with the files in place: step-ca hears nothing.
	before := ca.requests("", "")
	var logs2 syncbuf.Buffer
	p2 := startProvider(t, ca, config(), &logs2)
	if n := ca.requests("", "") - before; n != 0 {
		t.Errorf("the second start sent %d requests to step-ca, want none (%d new-order in all)", n, ca.newOrders())
	}
	if got := served(t, p2, roots, "api.stepca.test"); !got.Equal(leaf1) {
		t.Errorf("second start serves serial %x, want the stored %x", got.SerialNumber, leaf1.SerialNumber)
	}

	// The scheduler finds no renewal information at step-ca and falls
	// back to the lifetime rule.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		<-p2.SchedulerDone()
	})
	p2.ScheduleRenewalAll(autocert.ContextParent(ctx))
	next1 := checkLifetimeRule(t, p2, leaf1, time.Time{})

	// A forced renewal orders once more and the new certificate is served.
	if !p2.ForceExpiryAll() {
		t.Fatal("ForceExpiryAll started nothing")
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if !p2.WaitRenewalDone(wctx) {
		t.Fatalf("forced renewal did not finish; autocert log:\n%s", logs2.String())
	}
	st := p2.RenewalStatus()
	if len(st) != 1 || st[0].Forced == nil || st[0].Forced.Err != nil {
		t.Fatalf("forced renewal: status %+v; autocert log:\n%s", st, logs2.String())
	}
	if n := ca.newOrders(); n != 2 {
		t.Errorf("%d new-order requests sent to step-ca after the forced renewal, want 2", n)
	}
	leaf2 := verifyChain(t, config().CertPath, roots, "stepca.test", "www.stepca.test")
	if leaf2.Equal(leaf1) {
		t.Fatalf("the forced renewal left the old certificate (serial %x) in %s", leaf1.SerialNumber, config().CertPath)
	}
	if got := served(t, p2, roots, "www.stepca.test"); !got.Equal(leaf2) {
		t.Errorf("after the renewal the handshake serves serial %x, want the new %x", got.SerialNumber, leaf2.SerialNumber)
	}
	checkLifetimeRule(t, p2, leaf2, next1)

	for name, logs := range map[string]*syncbuf.Buffer{"first": &logs1, "second": &logs2} {
		checkNoWarnings(t, name+" start", logs, "certificate profiles")
	}
}

// checkNoWarnings reports every line of an autocert log at warn level or
// above, except those containing allowed.
func checkNoWarnings(t *testing.T, what string, logs *syncbuf.Buffer, allowed string) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		var l struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch l.Level {
		case "warn", "error", "fatal", "panic":
			if allowed == "" || !strings.Contains(line, allowed) {
				t.Errorf("%s: unexpected %s against step-ca: %s", what, l.Level, line)
			}
		}
	}
}

// TestStepCAKeyTypes obtains from step-ca certificates of every key type,
// in pairs on one ACME account: the main certificate and an extra of
// another type. Each has its configured type, so a second start orders
// nothing.
func TestStepCAKeyTypes(t *testing.T) {
	dns, ca, dir := newStepCA(t)
	roots := ca.pki.roots()
	isEC := func(bits int) func(any) bool {
		return func(k any) bool { e, ok := k.(*ecdsa.PublicKey); return ok && e.Curve.Params().BitSize == bits }
	}
	isRSA := func(bits int) func(any) bool {
		return func(k any) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == bits }
	}
	tests := []struct {
		main, extra string // key types
		mainOK      func(any) bool
		extraOK     func(any) bool
	}{
		{"EC256", "RSA2048", isEC(256), isRSA(2048)},
		{"EC384", "EC256", isEC(384), isEC(256)},
		{"RSA3072", "EC384", isRSA(3072), isEC(384)},
		{"RSA4096", "EC256", isRSA(4096), isEC(256)},
	}
	for i, tt := range tests {
		t.Run(tt.main+"+"+tt.extra, func(t *testing.T) {
			certs := filepath.Join(dir, fmt.Sprint(i))
			main := fmt.Sprintf("k%d.stepca.test", i)
			extra := "extra." + main
			config := func() *autocert.Config {
				cfg := stepcaConfig(dns, ca, provACME, certs, main)
				cfg.CertificateKeyType = tt.main
				cfg.Extra = []autocert.ConfigExtra{{
					Domains:            []string{extra},
					CertPath:           filepath.Join(certs, "extra.crt"),
					KeyPath:            filepath.Join(certs, "extra.key"),
					CertificateKeyType: tt.extra,
				}}
				return cfg
			}
			orders := ca.newOrders()
			var logs1 syncbuf.Buffer
			p := startProvider(t, ca, config(), &logs1)
			if n := ca.newOrders() - orders; n != 2 {
				t.Errorf("first start: %d new-order requests, want 2", n)
			}
			for _, c := range []struct {
				name, path string
				ok         func(any) bool
				keyType    string
			}{
				{main, config().CertPath, tt.mainOK, tt.main},
				{extra, config().Extra[0].CertPath, tt.extraOK, tt.extra},
			} {
				leaf := verifyChain(t, c.path, roots, c.name)
				if !c.ok(leaf.PublicKey) {
					t.Errorf("%s: certificate key %T, want %s", c.name, leaf.PublicKey, c.keyType)
				}
				if got := served(t, p, roots, c.name); !got.Equal(leaf) {
					t.Errorf("%s: handshake served serial %x, the file holds %x", c.name, got.SerialNumber, leaf.SerialNumber)
				}
			}
			before := ca.requests("", "")
			var logs2 syncbuf.Buffer
			startProvider(t, ca, config(), &logs2)
			if n := ca.requests("", "") - before; n != 0 {
				t.Errorf("second start sent %d requests to step-ca, want none; autocert log:\n%s", n, logs2.String())
			}
			checkNoWarnings(t, "first start", &logs1, "")
			checkNoWarnings(t, "second start", &logs2, "")
		})
	}
}

// TestStepCAExternalAccountRequired: a step-ca provisioner that requires
// External Account Binding says so in its directory. Without eab_kid the
// start fails with a configuration error naming the settings, before any
// registration; with a key ID step-ca does not know, with step-ca's refusal
// of the registration (step-ca v0.30.2 answers it with serverInternal).
// Neither error nor log holds the HMAC key.
func TestStepCAExternalAccountRequired(t *testing.T) {
	dns, ca, dir := newStepCA(t)
	const hmacKey = "c2VjcmV0LWhtYWMta2V5LW9mLXRoZS10ZXN0LWNhLTEyMzQ1Ng"
	tests := []struct {
		name      string
		kid, hmac string
		want      string // in the error
		invalid   bool   // the error wraps autocert.ErrInvalidConfig
	}{
		{name: "no binding", want: "eab_kid and eab_hmac are required", invalid: true},
		{name: "unknown key ID", kid: "kid-unknown-to-step-ca", hmac: hmacKey, want: "registering ACME account"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := stepcaConfig(dns, ca, provEAB, filepath.Join(dir, fmt.Sprint(i)), fmt.Sprintf("eab%d.stepca.test", i))
			cfg.EABKid, cfg.EABHmac = tt.kid, autocert.Redacted(tt.hmac)
			orders, accounts := ca.newOrders(), ca.requests(http.MethodPost, "/new-account")
			var logs syncbuf.Buffer
			user, legoCfg, err := cfg.GetLegoConfig()
			if err != nil {
				t.Fatalf("GetLegoConfig: %v", err)
			}
			ca.track(legoCfg)
			p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.New(&logs)))
			if err != nil {
				t.Fatalf("NewProvider: %v", err)
			}
			t.Cleanup(func() { p.Close() })
			err = p.ObtainCertIfNotExistsAll()
			if err == nil {
				t.Fatal("ObtainCertIfNotExistsAll succeeded without a valid binding")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if got := errors.Is(err, autocert.ErrInvalidConfig); got != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalidConfig) = %v, want %v: %v", got, tt.invalid, err)
			}
			if n := ca.newOrders() - orders; n != 0 {
				t.Errorf("%d new-order requests without an account, want none", n)
			}
			// The account lookup, and the registration if one is tried.
			if n, want := ca.requests(http.MethodPost, "/new-account")-accounts, 1+btoi(tt.kid != ""); n != want {
				t.Errorf("%d new-account requests, want %d", n, want)
			}
			for what, text := range map[string]string{"error": err.Error(), "log": logs.String()} {
				if tt.hmac != "" && strings.Contains(text, tt.hmac) {
					t.Errorf("the %s holds the EAB HMAC key: %s", what, text)
				}
			}
		})
	}
}

// checkLifetimeRule waits until the scheduler of p has planned the renewal
// of leaf (a NextRenewal other than prev, the one planned for the
// certificate before) and checks that it follows the lifetime rule, with no
// renewal window from the CA: step-ca offers no renewal information. It
// returns the NextRenewal planned.
func checkLifetimeRule(t *testing.T, p *autocert.Provider, leaf *x509.Certificate, prev time.Time) time.Time {
	t.Helper()
	// The README's rule: a third of the lifetime before expiry (a half
	// under ten days), at most 30 days, minus a jitter of at most a
	// twentieth of that (at most six hours).
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	renewBefore := min(lifetime/3, 30*24*time.Hour)
	if lifetime < 10*24*time.Hour {
		renewBefore = lifetime / 2
	}
	latest := leaf.NotAfter.Add(-renewBefore)
	earliest := latest.Add(-min(renewBefore/20, 6*time.Hour))
	deadline := time.Now().Add(time.Minute)
	for {
		st := p.RenewalStatus()
		if len(st) != 1 {
			t.Fatalf("RenewalStatus: %d entries, want 1", len(st))
		}
		s := st[0]
		if !s.Renewing && s.Reason != "" && !s.NextRenewal.IsZero() && !s.NextRenewal.Equal(prev) {
			if s.Reason != "lifetime" {
				t.Errorf("next renewal by %q, want by \"lifetime\" (step-ca offers no renewal information): %+v", s.Reason, s)
			}
			if !s.WindowStart.IsZero() || !s.WindowEnd.IsZero() {
				t.Errorf("a renewal window [%v, %v] from a CA without renewal information", s.WindowStart, s.WindowEnd)
			}
			if s.NextRenewal.After(latest) || s.NextRenewal.Before(earliest) {
				t.Errorf("next renewal %v for a certificate valid %v to %v (%v), want in [%v, %v]",
					s.NextRenewal, leaf.NotBefore, leaf.NotAfter, lifetime, earliest, latest)
			}
			return s.NextRenewal
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduler planned no renewal of serial %x: %+v", leaf.SerialNumber, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// btoi returns 1 for true, 0 for false.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestStepCAForgetsAccount: a step-ca whose database was reset (a common
// event for a private CA) no longer knows the ACME account autocert
// registered. A process started afterwards registers a new account with
// the same key and renews the certificate.
func TestStepCAForgetsAccount(t *testing.T) {
	dns, ca, dir := newStepCA(t)
	roots := ca.pki.roots()
	config := func() *autocert.Config {
		return stepcaConfig(dns, ca, provACME, filepath.Join(dir, "certs"), "forget.stepca.test")
	}
	var logs1 syncbuf.Buffer
	startProvider(t, ca, config(), &logs1)
	leaf := verifyChain(t, config().CertPath, roots, "forget.stepca.test")

	ca = ca.restart(t)
	var logs2 syncbuf.Buffer
	p := startProvider(t, ca, config(), &logs2)
	if !p.ForceExpiryAll() {
		t.Fatal("ForceExpiryAll started nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if !p.WaitRenewalDone(ctx) {
		t.Fatal("forced renewal did not finish")
	}
	if st := p.RenewalStatus(); len(st) != 1 || st[0].Forced == nil || st[0].Forced.Err != nil {
		t.Fatalf("forced renewal after step-ca forgot the account: %+v; autocert log:\n%s", st, logs2.String())
	}
	if n := ca.requests(http.MethodPost, "/new-order"); n != 1 {
		t.Errorf("%d new-order requests sent to the new step-ca, want 1", n)
	}
	if !strings.Contains(logs2.String(), "registered ACME account") {
		t.Errorf("no new account registered; autocert log:\n%s", logs2.String())
	}
	renewed := verifyChain(t, config().CertPath, roots, "forget.stepca.test")
	if renewed.Equal(leaf) {
		t.Fatal("the certificate file was not renewed")
	}
	if got := served(t, p, roots, "forget.stepca.test"); !got.Equal(renewed) {
		t.Errorf("handshake served serial %x, want the renewed %x", got.SerialNumber, renewed.SerialNumber)
	}
}
