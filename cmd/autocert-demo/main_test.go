package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/internal/syncbuf"
	"go.uber.org/goleak"
)

// binary is the command, built once by TestMain; the tests run it as a
// separate process, as "go run ./cmd/autocert-demo" does.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "autocert-demo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "autocert-demo")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the command:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// Import paths, for go list.
const (
	module    = "github.com/autocert-dev/autocert"
	thisMain  = module + "/cmd/autocert-demo"
	providers = module + "/dnsproviders/all"
)

// deps lists the packages that patterns need, by go list, as import path
// -> module path ("" for the standard library).
func deps(t *testing.T, patterns ...string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}"}, patterns...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", strings.Join(patterns, " "), err, stderr.String())
	}
	pkgs := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		path, mod, _ := strings.Cut(sc.Text(), " ")
		pkgs[path] = mod
	}
	return pkgs
}

// modules returns the modules of pkgs (from deps).
func modules(pkgs map[string]string) map[string]bool {
	mods := map[string]bool{}
	for _, m := range pkgs {
		if m != "" {
			mods[m] = true
		}
	}
	return mods
}

// TestLinksNoDNSProvider: the command links no DNS provider: no package of
// autocert's dnsproviders or lego's providers/dns, none of the modules
// (the cloud SDKs) that the DNS providers need and the library does not,
// and no module beyond those of the library and its test CA. That is what
// makes "go run ./cmd/autocert-demo" quick from an empty module cache.
func TestLinksNoDNSProvider(t *testing.T) {
	t.Parallel()
	demo := deps(t, thisMain)
	core := modules(deps(t, module, module+"/acmetest"))
	var providerOnly []string
	for m := range modules(deps(t, providers)) {
		if !core[m] {
			providerOnly = append(providerOnly, m)
		}
	}
	slices.Sort(providerOnly)
	// The DNS providers do bring modules of their own (Azure's, AWS's,
	// Google's SDKs...): what this test keeps out is real.
	if len(providerOnly) < 10 {
		t.Fatalf("the DNS providers need only %d modules beyond the library's: %v", len(providerOnly), providerOnly)
	}
	t.Logf("the DNS providers need %d modules the library does not; the demo links %d packages of %d modules",
		len(providerOnly), len(demo), len(modules(demo)))

	for path := range demo {
		if strings.HasPrefix(path, module+"/dnsproviders") || strings.HasPrefix(path, "github.com/go-acme/lego/v4/providers/dns") {
			t.Errorf("the demo links the DNS provider package %s", path)
		}
	}
	mods := modules(demo)
	for _, m := range providerOnly {
		if mods[m] {
			t.Errorf("the demo links %s, a module of the DNS providers", m)
		}
	}
	for m := range mods {
		if !core[m] {
			t.Errorf("the demo links %s, a module neither the library nor acmetest needs", m)
		}
	}
}

// proc is a running command.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncbuf.Buffer
	done           chan struct{}
	code           int
}

// processTimeout bounds every run of the command: a hung process fails
// the test instead of hanging it.
const processTimeout = 90 * time.Second

// start runs the command with args.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	// The race detector waits a second before a process exits, to let
	// racing goroutines report: the runs of the tests end cleanly.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=20 "+os.Getenv("GORACE"))
	p := &proc{cmd: cmd, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to end and returns its exit status.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(processTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%v did not end within %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, processTimeout, p.stdout, p.stderr)
		return -1
	}
}

// waitOutput waits until re matches the process's standard output and
// returns the submatches.
func (p *proc) waitOutput(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(processTimeout)
	for {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
				return m
			}
			t.Fatalf("the command ended (exit %d) before printing %s\nstdout:\n%s\nstderr:\n%s", p.code, re, p.stdout, p.stderr)
		case <-deadline:
			t.Fatalf("no %s within %v\nstdout:\n%s\nstderr:\n%s", re, processTimeout, p.stdout, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestDemo: the command runs the demo of "autocert demo": three
// certificates obtained through DNS-01 from the CA in the process, each
// HTTPS request answered with the certificate its SNI name selects, the
// short-lived certificate renewed and the new one served; the steps of the
// orders on the error stream; exit 0.
func TestDemo(t *testing.T) {
	t.Parallel()
	p := start(t)
	code := p.wait(t)
	stdout, stderr := p.stdout.String(), p.stderr.String()
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, re := range []string{
		`(?m)^  main\s+example\.test, \*\.example\.test\s+serial \S+, valid 90 days$`,
		`(?m)^  extra\[0\]\s+api\.example\.test, \*\.api\.example\.test\s+serial \S+, valid 90 days$`,
		`(?m)^  extra\[1\]\s+live\.example\.test\s+serial \S+, valid 11s$`,
		`(?m)^  https://www\.example\.test/\s+-> main\s+example\.test, \*\.example\.test\s+serial`,
		`(?m)^  https://v2\.api\.example\.test/\s+-> extra\[0\]\s+api\.example\.test`,
		`(?m)^  https://a\.b\.example\.test/\s+-> main\s.*\n\s+no certificate covers this name.*the client refuses it$`,
		`(?m)^  renewed about \d+s after it was issued: serial \S+ -> \S+ \(.+\)\n  https://live\.example\.test/\s+-> extra\[1\]\s+live\.example\.test\s+serial \S+ \(the new certificate, without a restart\)$`,
		`(?m)^Done in \d+\.\ds\.$`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("stdout does not match %s", re)
		}
	}
	for _, step := range []string{"ordering a certificate for", "DNS record presented for", "waiting for the DNS record of", "the CA is validating", "the CA is issuing", "certificate saved to"} {
		if !strings.Contains(stderr, step) {
			t.Errorf("progress step %q not shown", step)
		}
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("stack trace on stderr")
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

// TestDemoServe: "--serve" keeps serving after the demo and prints a curl
// line that works (done here with Go's client), until SIGTERM, after which
// the command exits 0 and leaves no file behind.
func TestDemoServe(t *testing.T) {
	t.Parallel()
	p := start(t, "--serve")
	m := p.waitOutput(t, regexp.MustCompile(`(?m)^  curl --cacert (\S+) --resolve api\.example\.test:(\d+):127\.0\.0\.1 https://api\.example\.test:\d+/$`))
	root, port := m[1], m[2]
	pemBytes, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("the --cacert file holds no certificate")
	}
	tr := &http.Transport{
		// curl --resolve: the name resolves to the demo's loopback address.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:"+port)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://api.example.test:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "this connection got the certificate of extra[0] (api.example.test, *.api.example.test)") {
		t.Errorf("answer %s: %s", resp.Status, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != exitOK {
		t.Fatalf("after SIGTERM: exit %d\n%s", code, p.stderr)
	}
	if out := p.stdout.String(); !strings.HasSuffix(out, "Stopped.\n") {
		t.Errorf("stdout ends with %q", out[max(0, len(out)-80):])
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the demo's files were left behind: %v", err)
	}
}

// TestUsage: bad flags and arguments exit 2 with the problem named; -h
// prints the usage and exits 0.
func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"-h"}, exitOK, "Usage: autocert-demo [--serve]"},
		{"argument", []string{"now"}, exitUsage, `autocert-demo: unexpected argument "now"`},
		{"unknown flag", []string{"--config", "x.yml"}, exitUsage, "flag provided but not defined: -config"},
		{"log level", []string{"-log-level", "loud"}, exitUsage, `autocert-demo: -log-level: unknown level "loud"`},
		{"log format", []string{"-log-format", "xml"}, exitUsage, `autocert-demo: -log-format: unknown format "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, tc.args...)
			if code := p.wait(t); code != tc.code || !strings.Contains(p.stderr.String(), tc.stderr) {
				t.Errorf("exit %d, want %d; stderr (want %q):\n%s", code, tc.code, tc.stderr, p.stderr)
			}
			if p.stdout.String() != "" {
				t.Errorf("stdout: %q", p.stdout)
			}
		})
	}
}

// TestListenBusy: an address already in use fails the demo with exit 1
// and the server named, once the certificates are obtained.
func TestListenBusy(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := start(t, "--listen", ln.Addr().String())
	if code := p.wait(t); code != exitFailed || !strings.Contains(p.stderr.String(), "autocert-demo: demo HTTPS server: listen tcp "+ln.Addr().String()) {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitFailed, p.stderr)
	}
}
