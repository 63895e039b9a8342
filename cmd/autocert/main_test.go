package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	legolog "github.com/go-acme/lego/v4/log"
	"go.uber.org/goleak"
)

// binary is the command, built once by TestMain; the tests run it as a
// separate process, as a user would.
var binary string

func TestMain(m *testing.M) {
	legolog.Logger = log.New(io.Discard, "", 0)
	dir, err := os.MkdirTemp("", "autocert-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "autocert")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		// The packages are those of this test binary: the build links
		// what is already compiled.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the command:", err)
		os.Exit(1)
	}
	// Goroutines started by the packages' init functions (a cloud SDK's
	// logger) are not the tests' doing.
	atStart := goleak.IgnoreCurrent()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(append(acmetest.LeakOptions(), atStart)...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
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

// start runs the command in dir with env added to the environment.
func start(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	// The race detector waits a second before a process exits, to let
	// racing goroutines report: the runs of the tests end cleanly.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=20 "+os.Getenv("GORACE"))
	cmd.Env = append(cmd.Env, env...)
	p := &proc{cmd: cmd, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if err != nil && p.code < 0 {
			p.code = -1 // killed by a signal
		}
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

// wait waits for the process to end and returns its exit code.
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

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitOutput waits until re matches the process's stderr (or stdout) and
// returns the submatches.
func (p *proc) waitOutput(t *testing.T, stream *syncbuf.Buffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(processTimeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(stream.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(stream.String()); m != nil {
				return m
			}
			t.Fatalf("%v ended (exit %d) before printing %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, p.code, re, p.stdout, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%v printed no %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, re, p.stdout, p.stderr)
	return nil
}

// result is the outcome of a command run to its end.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the command to its end.
func run(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	p := start(t, dir, env, args...)
	code := p.wait(t)
	r := result{p.stdout.String(), p.stderr.String(), code}
	noStackTrace(t, r)
	return r
}

// noStackTrace fails when a run printed a Go panic or stack trace.
func noStackTrace(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", ".go:"} {
		if strings.Contains(r.stderr, s) || strings.Contains(r.stdout, s) {
			t.Errorf("output holds %q (a stack trace?):\n%s\n%s", s, r.stdout, r.stderr)
		}
	}
}

// fixture is a CA in the test process and a directory holding a config
// for it, the way a user would write it: credentials in the environment.
type fixture struct {
	ca  *acmetest.Server
	dir string
	env []string
}

func newFixture(t *testing.T, opts ...acmetest.Option) *fixture {
	t.Helper()
	ca := acmetest.New(t, opts...)
	o := ca.ProviderOptions()
	return &fixture{ca: ca, dir: t.TempDir(), env: []string{
		"ACMETEST_API_URL=" + o[acmetest.OptionAPIURL].Value(),
		"ACMETEST_API_TOKEN=" + o[acmetest.OptionAPIToken].Value(),
	}}
}

// writeConfig writes autocert.yml: a main certificate for example.com and
// *.example.com, an extra for api.example.com, and the command section.
func (f *fixture) writeConfig(t *testing.T, command string) {
	t.Helper()
	text := fmt.Sprintf(`autocert:
  provider: acmetest
  email: admin@example.com
  domains: [example.com, "*.example.com"]
  cert_path: certs/example.com.crt
  key_path: certs/example.com.key
  acme_key_path: certs/acme.key
  ca_dir_url: %s
  ca_certs: [%s]
  resolvers: [%s]
  options:
    api_url: ${ACMETEST_API_URL}
    api_token: ${ACMETEST_API_TOKEN}
  extra:
    - domains: [api.example.com]
      cert_path: certs/api.example.com.crt
      key_path: certs/api.example.com.key
%s`, f.ca.DirectoryURL(), f.ca.CACertFile(), f.ca.DNSAddr(), command)
	if err := os.WriteFile(filepath.Join(f.dir, "autocert.yml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) run(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, f.dir, f.env, args...)
	f.noSecret(t, r.stdout+r.stderr)
	return r
}

// noSecret fails when out holds the DNS provider's token.
func (f *fixture) noSecret(t *testing.T, out string) {
	t.Helper()
	if tok := f.ca.ProviderOptions()[acmetest.OptionAPIToken].Value(); strings.Contains(out, tok) {
		t.Errorf("the output holds the DNS provider's API token")
	}
}

// leaf reads the certificate of a file.
func leaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serialOf(t *testing.T, path string) string { return leaf(t, path).SerialNumber.Text(16) }

// realPath resolves symbolic links, to compare paths.
func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(processTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exitCode names what a test expects of a run.
func wantExit(t *testing.T, r result, want int, what string) {
	t.Helper()
	if r.code != want {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, want, r.stdout, r.stderr)
	}
}
