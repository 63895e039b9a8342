package interop_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

const (
	// fileServersScript installs the servers of these tests.
	fileServersScript = ".ci/fileservers.sh"
	// haproxyEnv and nginxEnv name binaries to use instead of those found
	// in PATH or /usr/sbin.
	haproxyEnv = "AUTOCERT_TEST_HAPROXY"
	nginxEnv   = "AUTOCERT_TEST_NGINX"
	// serverTimeout bounds the wait for a server to serve a certificate
	// after a start or a reload, and for it to stop, on a busy machine:
	// a deadline for a failure, not a measurement.
	serverTimeout = time.Minute
)

// serverBinary returns the path of the program name (haproxy, nginx): the
// one env names, else name in PATH or /usr/sbin. Without one the test
// fails in CI and is skipped elsewhere.
func serverBinary(t *testing.T, name, env string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join("/usr/sbin", name)
		if p, err := exec.LookPath(name); err == nil {
			path = p
		}
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return path
	}
	msg := fmt.Sprintf("%s is not installed at %s (run `bash %s` as root, or set %s to the %s binary to run)", name, path, fileServersScript, env, name)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// certFiles are the files autocert writes for one certificate, and the
// name it is for.
type certFiles struct {
	name   string
	cert   string // cert_path: the chain
	key    string // key_path: cert + ".key", where HAProxy looks for it
	bundle string // bundle_path: key and chain
}

// newCertFiles returns the paths of the certificate named base in dir.
func newCertFiles(dir, base, name string) certFiles {
	cert := filepath.Join(dir, base+".crt")
	return certFiles{name: name, cert: cert, key: cert + ".key", bundle: filepath.Join(dir, base+".pem")}
}

// fileServersConfig returns a configuration of two certificates from ca,
// each with its cert_path, key_path and bundle_path: the main one (an
// EC256 key) for files[0].name, an extra (RSA2048) for files[1].name.
func fileServersConfig(ca *acmetest.Server, dir string, files [2]certFiles) *autocert.Config {
	cfg := ca.Config(files[0].name)
	cfg.CertPath, cfg.KeyPath, cfg.BundlePath = files[0].cert, files[0].key, files[0].bundle
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	cfg.Extra = []autocert.ConfigExtra{{
		Domains:            []string{files[1].name},
		CertPath:           files[1].cert,
		KeyPath:            files[1].key,
		BundlePath:         files[1].bundle,
		CertificateKeyType: "RSA2048",
	}}
	return cfg
}

// startFileProvider runs the seed's start-up flow on cfg (GetLegoConfig,
// NewProvider, ObtainCertIfNotExistsAll); the Provider is closed when the
// test ends.
func startFileProvider(t *testing.T, cfg *autocert.Config, logs *syncbuf.Buffer) *autocert.Provider {
	t.Helper()
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatalf("GetLegoConfig: %v", err)
	}
	p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.New(logs).Level(zerolog.InfoLevel)))
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatalf("ObtainCertIfNotExistsAll: %v\nautocert log:\n%s", err, logs.String())
	}
	return p
}

// servedLeaf returns the leaf certificate p serves for name.
func servedLeaf(t *testing.T, p *autocert.Provider, name string) *x509.Certificate {
	t.Helper()
	c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatalf("GetCert(%q): %v", name, err)
	}
	return c.Leaf
}

// checkBundle checks the bundle file of f against what autocert serves,
// want: mode 0600, the private key first and then the chain of cert_path,
// a pair tls.X509KeyPair accepts whose leaf is want, with the key of
// key_path.
func checkBundle(t *testing.T, f certFiles, want *x509.Certificate) {
	t.Helper()
	fi, err := os.Stat(f.bundle)
	if err != nil {
		t.Fatalf("bundle_path: %v", err)
	}
	if mode := fi.Mode(); mode != 0o600 {
		t.Errorf("%s: mode %v, want -rw-------", f.bundle, mode)
	}
	data, err := os.ReadFile(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var chain [][]byte
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				t.Errorf("%s: %d bytes after the last PEM block", f.bundle, len(rest))
			}
			break
		}
		types = append(types, b.Type)
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(types) < 3 || !strings.HasSuffix(types[0], "PRIVATE KEY") || len(chain) != len(types)-1 {
		t.Errorf("%s holds PEM blocks %q, want a private key and then the chain (leaf and intermediate)", f.bundle, types)
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatalf("%s: tls.X509KeyPair(bundle, bundle): %v", f.bundle, err)
	}
	if !pair.Leaf.Equal(want) {
		t.Errorf("%s holds serial %x, autocert serves %x", f.bundle, pair.Leaf.SerialNumber, want.SerialNumber)
	}
	var fileChain [][]byte
	for _, c := range readChain(t, f.cert) {
		fileChain = append(fileChain, c.Raw)
	}
	if !equalDERs(chain, fileChain) {
		t.Errorf("the chain of %s (%d certificates) is not that of %s (%d)", f.bundle, len(chain), f.cert, len(fileChain))
	}
	files, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		t.Fatalf("cert_path and key_path: %v", err)
	}
	if k, ok := files.PrivateKey.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !k.Equal(pair.PrivateKey) {
		t.Errorf("the key of %s is not that of %s", f.bundle, f.key)
	}
}

// equalDERs reports whether a and b hold the same certificates in order.
func equalDERs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// serverProc is a third-party server run as a child process, in its own
// process group so that its workers are stopped with it.
type serverProc struct {
	name   string
	cmd    *exec.Cmd
	out    string        // file of its standard output and error
	exited chan struct{} // closed when the main process has been waited for
	err    error         // how it exited, once exited is closed
}

// output returns what the server wrote so far.
func (s *serverProc) output() string {
	b, _ := os.ReadFile(s.out)
	return string(b)
}

// startServer runs bin with args, writing its output into out, and stops
// it and all its processes when the test ends.
func startServer(t *testing.T, name, out, bin string, args ...string) *serverProc {
	t.Helper()
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	// Files, not pipes: a worker that outlives the main process keeps no
	// copying goroutine of this process waiting.
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	s := &serverProc{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// signal sends sig to the server's main process.
func (s *serverProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: sending %v: %v; output:\n%s", s.name, sig, err, s.output())
	}
}

// stop ends the server: SIGTERM to its main process, which stops its
// workers, then SIGKILL to its process group if it is still there after
// serverTimeout. It reports every process of the group left behind.
func (s *serverProc) stop(t *testing.T) {
	t.Helper()
	pgid := s.cmd.Process.Pid
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(serverTimeout):
		t.Errorf("%s did not stop within %v of SIGTERM; killing its process group", s.name, serverTimeout)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
	// The workers end after the main process has waited for them; one
	// still there is killed and reported.
	deadline := time.Now().Add(serverTimeout)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			t.Errorf("%s: processes of group %d left after the main process exited; killing them", s.name, pgid)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// handshake does a TLS handshake with addr for name, verifying the chain
// against roots, and returns the leaf served.
func handshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config:    &tls.Config{ServerName: name, RootCAs: roots},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// errExited is returned by tryWaitServes when the server exited.
var errExited = errors.New("exited")

// tryWaitServes waits until s, at addr, serves want for name in a verified
// handshake. It returns an error wrapping errExited when s exits first, and
// one with what s served last after serverTimeout.
func tryWaitServes(s *serverProc, addr, name string, want *x509.Certificate, roots *x509.CertPool) error {
	deadline := time.Now().Add(serverTimeout)
	var last error
	for {
		got, err := handshake(addr, name, roots)
		switch {
		case err == nil && got.Equal(want):
			return nil
		case err == nil:
			last = fmt.Errorf("served serial %x", got.SerialNumber)
		default:
			last = err
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s at %s for %s: %w (%v) before serving serial %x; last: %v", s.name, addr, name, errExited, s.err, want.SerialNumber, last)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s at %s for %s: serial %x not served within %v; last: %v", s.name, addr, name, want.SerialNumber, serverTimeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkServes checks that a verified handshake with addr for name serves
// want, once.
func checkServes(t *testing.T, s *serverProc, addr, name string, want *x509.Certificate, roots *x509.CertPool, when string) {
	t.Helper()
	got, err := handshake(addr, name, roots)
	if err != nil {
		t.Errorf("%s, %s at %s for %s: %v; output:\n%s", when, s.name, addr, name, err, s.output())
		return
	}
	if !got.Equal(want) {
		t.Errorf("%s, %s at %s for %s serves serial %x, want %x", when, s.name, addr, name, got.SerialNumber, want.SerialNumber)
	}
}

// haproxy is a running HAProxy in master-worker mode.
type haproxy struct {
	*serverProc
	bundles string // address of the frontend reading bundle_path
	pairs   string // address of the frontend reading cert_path and <cert_path>.key
}

// startHAProxy starts HAProxy in master-worker mode with two frontends,
// each offering both certificates by SNI: one with the bundles (`crt
// <bundle_path>`), one with the certificate files whose key HAProxy finds
// beside them (`crt <cert_path>`, key in <cert_path>.key). It returns once
// both frontends serve want[i] for files[i].name.
func startHAProxy(t *testing.T, bin, dir string, files [2]certFiles, want [2]*x509.Certificate, roots *x509.CertPool) *haproxy {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A port chosen free may be taken before HAProxy binds it: a HAProxy
	// that exits before serving is started again on other ports.
	var lastErr error
	for attempt := range 3 {
		h := &haproxy{
			bundles: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			pairs:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		}
		conf := filepath.Join(dir, fmt.Sprintf("haproxy-%d.cfg", attempt))
		text := fmt.Sprintf(`global
	# no log target: alerts and warnings go to standard error

defaults
	mode http
	timeout connect 10s
	timeout client 30s
	timeout server 30s

frontend bundles
	bind %s ssl crt %s crt %s
	http-request return status 200 content-type text/plain string bundles

frontend pairs
	bind %s ssl crt %s crt %s
	http-request return status 200 content-type text/plain string pairs
`, h.bundles, files[0].bundle, files[1].bundle, h.pairs, files[0].cert, files[1].cert)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		// -W: master-worker, reloaded by SIGUSR2 as systemd's unit does;
		// -db: in the foreground.
		h.serverProc = startServer(t, "haproxy", filepath.Join(dir, fmt.Sprintf("haproxy-%d.out", attempt)), bin, "-W", "-db", "-f", conf)
		lastErr = h.waitServes(files, want, roots)
		if lastErr == nil {
			return h
		}
		if !errors.Is(lastErr, errExited) {
			break
		}
		h.stop(t)
	}
	t.Fatal(lastErr)
	return nil
}

// waitServes waits until both frontends of h serve want[i] for
// files[i].name.
func (h *haproxy) waitServes(files [2]certFiles, want [2]*x509.Certificate, roots *x509.CertPool) error {
	for _, addr := range []string{h.bundles, h.pairs} {
		for i, f := range files {
			if err := tryWaitServes(h.serverProc, addr, f.name, want[i], roots); err != nil {
				return fmt.Errorf("%w; haproxy output:\n%s", err, h.output())
			}
		}
	}
	return nil
}

// nginx is a running nginx, master and worker, not daemonized.
type nginx struct {
	*serverProc
	bin, dir, conf, errLog string
	addr                   string
}

// startNginx starts nginx with prefix dir and one server block per
// certificate on one port, chosen by SNI, each reading cert_path and
// key_path. It returns once nginx serves want[i] for files[i].name.
func startNginx(t *testing.T, bin, dir string, files [2]certFiles, want [2]*x509.Certificate, roots *x509.CertPool) *nginx {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Running as root, nginx switches its workers to a user, by default
	// "nobody" of group "nobody", which Debian lacks: they run as the
	// user of the test instead.
	userLine := ""
	if os.Geteuid() == 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			t.Fatal(err)
		}
		userLine = fmt.Sprintf("user %s %s;", u.Username, g.Name)
	}
	var lastErr error
	for attempt := range 3 {
		n := &nginx{
			bin:    bin,
			dir:    dir,
			conf:   filepath.Join(dir, fmt.Sprintf("nginx-%d.conf", attempt)),
			errLog: filepath.Join(dir, "error.log"),
			addr:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		}
		var servers strings.Builder
		for _, f := range files {
			fmt.Fprintf(&servers, `
	server {
		listen %s ssl;
		server_name %s;
		ssl_certificate %s;
		ssl_certificate_key %s;
		return 200 "nginx\n";
	}
`, n.addr, f.name, f.cert, f.key)
		}
		text := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
%s
pid %s;
error_log %s notice;

events {
	worker_connections 64;
}

http {
	access_log off;
	client_body_temp_path %[4]s/body;
	proxy_temp_path %[4]s/proxy;
	fastcgi_temp_path %[4]s/fastcgi;
	uwsgi_temp_path %[4]s/uwsgi;
	scgi_temp_path %[4]s/scgi;
%s}
`, userLine, filepath.Join(dir, "nginx.pid"), n.errLog, dir, servers.String())
		if err := os.WriteFile(n.conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		n.serverProc = startServer(t, "nginx", filepath.Join(dir, fmt.Sprintf("nginx-%d.out", attempt)), bin, n.args()...)
		lastErr = n.waitServes(files, want, roots)
		if lastErr == nil {
			return n
		}
		if !errors.Is(lastErr, errExited) {
			break
		}
		n.stop(t)
	}
	t.Fatal(lastErr)
	return nil
}

// args returns the command-line options that make nginx use n's files:
// prefix, configuration, and the error log before the configuration is
// read (Debian's default is standard error).
func (n *nginx) args(more ...string) []string {
	return append([]string{"-p", n.dir, "-c", n.conf, "-e", n.errLog}, more...)
}

// output returns nginx's standard output and error and its error log.
func (n *nginx) output() string {
	b, _ := os.ReadFile(n.errLog)
	return n.serverProc.output() + "\nerror.log:\n" + string(b)
}

// waitServes waits until n serves want[i] for files[i].name.
func (n *nginx) waitServes(files [2]certFiles, want [2]*x509.Certificate, roots *x509.CertPool) error {
	for i, f := range files {
		if err := tryWaitServes(n.serverProc, n.addr, f.name, want[i], roots); err != nil {
			return fmt.Errorf("%w; nginx output:\n%s", err, n.output())
		}
	}
	return nil
}

// reload runs `nginx -s reload`, as a deploy hook would: the command
// signals the master found in the pid file, which reads its configuration
// and certificates again and replaces its workers.
func (n *nginx) reload(t *testing.T) {
	t.Helper()
	out, err := exec.Command(n.bin, n.args("-s", "reload")...).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -s reload: %v\n%s\n%s", err, out, n.output())
	}
}

// TestFileServers obtains two certificates from the in-process CA, one
// with an EC256 key and one with RSA2048, each written to cert_path,
// key_path and bundle_path, and has real servers read the files: HAProxy
// the bundles (and, on a second frontend, the certificate files whose key
// it finds at <cert_path>.key), nginx cert_path and key_path. Verified TLS
// handshakes by SNI get from each server the certificate autocert serves.
// After a renewal the servers still serve the old certificates until they
// are reloaded as a deploy hook would (nginx -s reload; SIGUSR2 to the
// HAProxy master), and then the new ones. Each time the bundle is 0600,
// the key first, and the pair autocert serves.
func TestFileServers(t *testing.T) {
	haproxyBin := serverBinary(t, "haproxy", haproxyEnv)
	nginxBin := serverBinary(t, "nginx", nginxEnv)
	ca := acmetest.New(t)
	roots := ca.Roots()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	files := [2]certFiles{
		newCertFiles(certs, "www", "www.example.com"),
		newCertFiles(certs, "mail", "mail.example.com"),
	}
	var logs syncbuf.Buffer
	p := startFileProvider(t, fileServersConfig(ca, dir, files), &logs)
	var first [2]*x509.Certificate
	for i, f := range files {
		first[i] = servedLeaf(t, p, f.name)
		if got := verifyChain(t, f.cert, roots, f.name); !got.Equal(first[i]) {
			t.Fatalf("%s holds serial %x, autocert serves %x", f.cert, got.SerialNumber, first[i].SerialNumber)
		}
		checkBundle(t, f, first[i])
	}

	hp := startHAProxy(t, haproxyBin, filepath.Join(dir, "haproxy"), files, first, roots)
	ng := startNginx(t, nginxBin, filepath.Join(dir, "nginx"), files, first, roots)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.RenewAll(ctx); err != nil {
		t.Fatalf("RenewAll: %v\nautocert log:\n%s", err, logs.String())
	}
	var renewed [2]*x509.Certificate
	for i, f := range files {
		renewed[i] = servedLeaf(t, p, f.name)
		if renewed[i].Equal(first[i]) {
			t.Fatalf("%s: RenewAll left serial %x served", f.name, first[i].SerialNumber)
		}
		if got := verifyChain(t, f.cert, roots, f.name); !got.Equal(renewed[i]) {
			t.Errorf("%s holds serial %x after the renewal, autocert serves %x", f.cert, got.SerialNumber, renewed[i].SerialNumber)
		}
		checkBundle(t, f, renewed[i])
		// Neither server watches its files: until reloaded, both serve
		// what they read at start.
		for _, addr := range []string{hp.bundles, hp.pairs} {
			checkServes(t, hp.serverProc, addr, f.name, first[i], roots, "before the reload")
		}
		checkServes(t, ng.serverProc, ng.addr, f.name, first[i], roots, "before the reload")
	}

	ng.reload(t)
	hp.signal(t, syscall.SIGUSR2)
	if err := ng.waitServes(files, renewed, roots); err != nil {
		t.Errorf("after nginx -s reload: %v", err)
	}
	if err := hp.waitServes(files, renewed, roots); err != nil {
		t.Errorf("after SIGUSR2 to the HAProxy master: %v", err)
	}
}

// TestFileServersBundleAtStart: a process killed after it stored a new
// certificate and key and before it wrote the bundle leaves a bundle of
// the previous pair (or none, or a torn one, when it never got that far
// with a first bundle). The next start writes the bundle again, before
// HAProxy is started or reloaded on it, so HAProxy serves the certificate
// autocert serves.
func TestFileServersBundleAtStart(t *testing.T) {
	haproxyBin := serverBinary(t, "haproxy", haproxyEnv)
	ca := acmetest.New(t)
	roots := ca.Roots()
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, old []byte)
	}{
		{"previous pair", func(t *testing.T, path string, old []byte) { writeFile(t, path, old) }},
		{"missing", func(t *testing.T, path string, _ []byte) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"torn", func(t *testing.T, path string, old []byte) { writeFile(t, path, old[:len(old)/2]) }},
		{"certificate only", func(t *testing.T, path string, _ []byte) {
			data, err := os.ReadFile(strings.TrimSuffix(path, ".pem") + ".crt")
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, data)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certs := filepath.Join(dir, "certs")
			files := [2]certFiles{
				newCertFiles(certs, "www", fmt.Sprintf("www%d.example.com", i)),
				newCertFiles(certs, "mail", fmt.Sprintf("mail%d.example.com", i)),
			}
			config := func() *autocert.Config { return fileServersConfig(ca, dir, files) }
			var logs1 syncbuf.Buffer
			p1 := startFileProvider(t, config(), &logs1)
			var old [2][]byte
			for j, f := range files {
				old[j] = readFile(t, f.bundle)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := p1.RenewAll(ctx); err != nil {
				t.Fatalf("RenewAll: %v\nautocert log:\n%s", err, logs1.String())
			}
			for j, f := range files {
				tt.damage(t, f.bundle, old[j])
			}

			var logs2 syncbuf.Buffer
			p2 := startFileProvider(t, config(), &logs2)
			var want [2]*x509.Certificate
			for j, f := range files {
				want[j] = servedLeaf(t, p2, f.name)
				if !want[j].Equal(servedLeaf(t, p1, f.name)) {
					t.Errorf("%s: the fresh start serves serial %x, not the stored %x", f.name, want[j].SerialNumber, servedLeaf(t, p1, f.name).SerialNumber)
				}
				checkBundle(t, f, want[j])
			}
			if t.Failed() {
				return
			}
			startHAProxy(t, haproxyBin, filepath.Join(dir, "haproxy"), files, want, roots)
		})
	}
}

// readFile returns the content of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile replaces the content of path with data.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
