package main

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// datagram is one notification received, with the pid of its sender.
type datagram struct {
	text string
	pid  int32
}

// lines returns the assignments of the datagram.
func (d datagram) lines() []string { return strings.Split(d.text, "\n") }

// status returns its STATUS= value, or "".
func (d datagram) status() string {
	for _, l := range d.lines() {
		if s, ok := strings.CutPrefix(l, "STATUS="); ok {
			return s
		}
	}
	return ""
}

func (d datagram) has(assignment string) bool { return slices.Contains(d.lines(), assignment) }

// notifySocket plays the service manager: a datagram socket, in a
// directory short enough for sun_path, that records what it receives and
// who sent it (SO_PASSCRED, as systemd checks NotifyAccess=).
type notifySocket struct {
	conn *net.UnixConn
	path string
	done chan struct{}

	mu  sync.Mutex
	got []datagram
}

// sentinel is sent by the test itself: every datagram before it was read.
const sentinel = "X_AUTOCERT_TEST=end"

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "acn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &notifySocket{path: filepath.Join(dir, "notify"), done: make(chan struct{})}
	s.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	go s.read()
	t.Cleanup(func() {
		s.conn.Close()
		<-s.done
	})
	return s
}

func (s *notifySocket) read() {
	defer close(s.done)
	buf, oob := make([]byte, 64<<10), make([]byte, 512)
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		d := datagram{text: string(buf[:n]), pid: -1}
		if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
			if cred, err := syscall.ParseUnixCredentials(&msgs[0]); err == nil {
				d.pid = cred.Pid
			}
		}
		s.mu.Lock()
		s.got = append(s.got, d)
		s.mu.Unlock()
	}
}

func (s *notifySocket) received() []datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// waitFor waits until a datagram matching match arrives and returns its
// index among those received.
func (s *notifySocket) waitFor(t *testing.T, what string, match func(datagram) bool) int {
	t.Helper()
	deadline := time.Now().Add(processTimeout)
	for {
		got := s.received()
		if i := slices.IndexFunc(got, match); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatalf("no datagram %s; received %q", what, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drain sends the sentinel and waits for it, then returns everything the
// command sent.
func (s *notifySocket) drain(t *testing.T) []datagram {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(sentinel)); err != nil {
		t.Fatal(err)
	}
	i := s.waitFor(t, "from the test", func(d datagram) bool { return d.text == sentinel })
	return s.received()[:i]
}

// checkSenders fails unless every datagram came from pid (the main
// process: NotifyAccess=main) and none holds a secret.
func checkSenders(t *testing.T, f *fixture, got []datagram, pid int, secrets ...string) {
	t.Helper()
	for _, d := range got {
		if d.pid != int32(pid) {
			t.Errorf("datagram %q sent by pid %d, not by the command (%d)", d.text, d.pid, pid)
		}
		f.noSecret(t, d.text)
		for _, s := range secrets {
			if strings.Contains(d.text, s) {
				t.Errorf("datagram %q holds a secret", d.text)
			}
		}
	}
}

// notifyEnvHook records the hook runs as hookScript does, and the
// service manager's variables it was given.
const notifyEnvHook = hookScript + `printf '%s|%s|%s\n' "${NOTIFY_SOCKET-unset}" "${WATCHDOG_USEC-unset}" "${WATCHDOG_PID-unset}" >> notify-env.log
`

// TestRunNotifiesSystemd: under a service manager (NOTIFY_SOCKET and
// WATCHDOG_USEC set), "autocert run" sends STATUS= lines from its start,
// the orders among them; READY=1 once both certificates are stored and
// the API's HTTPS port serves the certificate; WATCHDOG=1 pings; a status
// with the next renewal; and on SIGTERM STOPPING=1, after which it sends
// nothing. Every datagram comes from the main process and holds no
// secret, and the deploy hook is given none of the service manager's
// variables.
func TestRunNotifiesSystemd(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const apiToken = "systemd-api-token-0123456789"
	if err := os.WriteFile(filepath.Join(f.dir, "hook.sh"), []byte(notifyEnvHook), 0o755); err != nil {
		t.Fatal(err)
	}
	f.writeConfig(t, "command:\n  deploy_hook: [/bin/sh, ./hook.sh]\n  api:\n    listen: 127.0.0.1:0\n    token: ${API_TOKEN}\n    tls: true\n")
	sock := newNotifySocket(t)
	env := append(slices.Clone(f.env), "API_TOKEN="+apiToken, "NOTIFY_SOCKET="+sock.path, "WATCHDOG_USEC=400000")
	p, stderr := startFileLog(t, f.dir, env, "run", "--log-format", "json")
	mainCrt, apiCrt := filepath.Join(f.dir, "certs", "example.com.crt"), filepath.Join(f.dir, "certs", "api.example.com.crt")

	ready := sock.waitFor(t, "READY=1", func(d datagram) bool { return d.has("READY=1") })
	// Already there when READY=1 arrives: both certificates...
	for _, crt := range []string{mainCrt, apiCrt} {
		if _, err := os.Stat(crt); err != nil {
			t.Errorf("at READY=1: %v", err)
		}
	}
	// ... and the API's port (logged once it listens), which serves the
	// managed certificate.
	m := regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving the HTTP API"`).FindStringSubmatch(stderr())
	if m == nil {
		t.Fatalf("READY=1 came before the API listened:\n%s", stderr())
	}
	conn, err := tls.Dial("tcp", m[1], &tls.Config{RootCAs: f.ca.Roots(), ServerName: "api.example.com"})
	if err != nil {
		t.Fatalf("TLS handshake with the API after READY=1: %v", err)
	}
	served := conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
	conn.Close()
	if served != serialOf(t, apiCrt) {
		t.Errorf("the API serves serial %s, the file holds %s", served, serialOf(t, apiCrt))
	}

	got := sock.received()
	if st := got[ready].status(); !strings.HasPrefix(st, "serving 2 certificates") {
		t.Errorf("status sent with READY=1: %q", st)
	}
	var before []string
	for _, d := range got[:ready] {
		if st := d.status(); st != "" {
			before = append(before, st)
		}
	}
	if len(before) == 0 || before[0] != "starting: loading 2 certificates, obtaining what is missing" {
		t.Errorf("first status %q", before)
	}
	// The steps of an order follow each other faster than the statuses:
	// some step of one of the two orders shows.
	orderStep := regexp.MustCompile(`^obtaining (main|extra\[0\]): [^;]+; .*serving [01] of 2 certificates$`)
	if !slices.ContainsFunc(before, orderStep.MatchString) {
		t.Errorf("no status of a start-up order before READY=1: %q", before)
	}
	nextRenewal := regexp.MustCompile(`^serving 2 certificates; next renewal \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \((main|extra\[0\])\)$`)
	sock.waitFor(t, "with the next renewal", func(d datagram) bool { return nextRenewal.MatchString(d.status()) })
	sock.waitFor(t, "of 3 watchdog pings after READY=1", func(datagram) bool {
		n := 0
		for _, d := range sock.received()[ready:] {
			if d.has("WATCHDOG=1") {
				n++
			}
		}
		return n >= 3
	})

	eventually(t, "the deploy hook ran for both certificates", func() bool {
		runs := hookRuns(t, f.dir)
		return len(runs["main"]) == 1 && len(runs["extra[0]"]) == 1
	})
	envs, err := os.ReadFile(filepath.Join(f.dir, "notify-env.log"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "unset|unset|unset\nunset|unset|unset\n"; string(envs) != want {
		t.Errorf("the deploy hook's NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID:\n%s\nwant them unset", envs)
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != exitOK {
		t.Fatalf("run after SIGTERM: exit %d\n%s", code, stderr())
	}
	got = sock.drain(t)
	stopping := slices.IndexFunc(got, func(d datagram) bool { return d.has("STOPPING=1") })
	if stopping < ready || stopping != len(got)-1 {
		t.Errorf("STOPPING=1 at %d of %d datagrams (READY=1 at %d): want it last, after READY=1", stopping, len(got), ready)
	}
	if n := slices.IndexFunc(got, func(d datagram) bool { return d.has("READY=1") }); n != ready || slices.ContainsFunc(got[ready+1:], func(d datagram) bool { return d.has("READY=1") }) {
		t.Error("READY=1 sent more than once")
	}
	checkSenders(t, f, got, p.cmd.Process.Pid, apiToken)
	t.Logf("%d datagrams, %d statuses, READY=1 at %d", len(got), countStatuses(got), ready)
	noStackTrace(t, result{p.stdout.String(), stderr(), p.code})
	if !strings.Contains(stderr(), `"message":"stopped"`) {
		t.Errorf("no clean stop logged:\n%s", stderr())
	}
}

// startFileLog is start with the command's standard error in a file that
// the process writes itself, not through a pipe that the test copies: what
// it logged before sending a datagram is in the file when the datagram
// arrives. stderr reads the file.
func startFileLog(t *testing.T, dir string, env []string, args ...string) (p *proc, stderr func() string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=20 "+os.Getenv("GORACE"))
	cmd.Env = append(cmd.Env, env...)
	p = &proc{cmd: cmd, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if err != nil && p.code < 0 {
			p.code = -1
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
	return p, func() string {
		data, err := os.ReadFile(logFile.Name())
		if err != nil {
			t.Error(err)
		}
		return string(data)
	}
}

func countStatuses(got []datagram) int {
	n := 0
	for _, d := range got {
		if d.status() != "" {
			n++
		}
	}
	return n
}

// TestRunNotifiesSystemdFailure: when the CA refuses the start-up orders,
// "autocert run" still sends READY=1 (the failures are recorded and their
// retry scheduled: a restart would not do better), with a status naming
// each failure, its cause and its retry time; SIGTERM sends STOPPING=1.
func TestRunNotifiesSystemdFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.writeConfig(t, "")
	f.ca.FailOrders(2, acmetest.Problem{Type: "rateLimited", Detail: "too many new orders recently", RetryAfter: 3 * time.Hour})
	sock := newNotifySocket(t)
	env := append(slices.Clone(f.env), "NOTIFY_SOCKET="+sock.path)
	p := start(t, f.dir, env, "run", "--log-format", "json")

	ready := sock.waitFor(t, "READY=1", func(d datagram) bool { return d.has("READY=1") })
	st := sock.received()[ready].status()
	failure := regexp.MustCompile(`^serving 0 of 2 certificates; obtaining main failed: [^;]*too many new orders recently[^;]*; retry \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+; obtaining extra\[0\] failed: [^;]*too many new orders recently[^;]*; retry \d{4}-`)
	if !failure.MatchString(st) {
		t.Errorf("status sent with READY=1:\n%s\nwant it to match %s", st, failure)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != exitOK {
		t.Fatalf("run after SIGTERM: exit %d\n%s", code, p.stderr)
	}
	got := sock.drain(t)
	if len(got) == 0 || !got[len(got)-1].has("STOPPING=1") {
		t.Errorf("last datagram is not STOPPING=1: %q", got)
	}
	if slices.ContainsFunc(got, func(d datagram) bool { return d.has("WATCHDOG=1") }) {
		t.Error("watchdog pings without WATCHDOG_USEC")
	}
	checkSenders(t, f, got, p.cmd.Process.Pid)
}

// TestRunNotifySocketInvalid: a NOTIFY_SOCKET that is no unix socket
// address, or a bad WATCHDOG_USEC, is a usage error naming the variable,
// before anything starts; a socket where nothing listens is logged once
// (not at every watchdog ping), and run works all the same.
func TestRunNotifySocketInvalid(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.writeConfig(t, "")
	for _, tc := range []struct{ env, msg string }{
		{"NOTIFY_SOCKET=relative/notify", `autocert: NOTIFY_SOCKET="relative/notify": unsupported address: want an absolute path or @name`},
		{"WATCHDOG_USEC=soon", `autocert: WATCHDOG_USEC="soon": want a positive number of microseconds`},
	} {
		env := append(slices.Clone(f.env), "NOTIFY_SOCKET=/run/autocert-test-none", tc.env)
		r := run(t, f.dir, env, "run")
		wantExit(t, r, exitUsage, tc.env)
		if !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%s: stderr\n%s\nwant %s", tc.env, r.stderr, tc.msg)
		}
	}
	if n := len(f.ca.Orders()); n != 0 {
		t.Errorf("%d orders sent with a bad NOTIFY_SOCKET", n)
	}

	missing := "/nonexistent-autocert-test/nobody-listens"
	env := append(slices.Clone(f.env), "NOTIFY_SOCKET="+missing, "WATCHDOG_USEC=20000")
	p := start(t, f.dir, env, "run", "--log-format", "json")
	p.waitOutput(t, p.stderr, regexp.MustCompile(`running: certificates are renewed in the background`))
	// Some pings later (every 10 ms), still one warning.
	eventually(t, "the certificates obtained", func() bool { return len(f.ca.Orders()) == 2 })
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != exitOK {
		t.Fatalf("run with nobody listening: exit %d\n%s", code, p.stderr)
	}
	warn := regexp.MustCompile(`"level":"warn"[^\n]*"error":"sdnotify: dial unixgram [^"]*nobody-listens: connect: no such file or directory"[^\n]*"message":"notifying the service manager"`)
	if n := len(warn.FindAllString(p.stderr.String(), -1)); n != 1 {
		t.Errorf("%d warnings about the socket, want 1:\n%s", n, p.stderr)
	}
}

// TestNotifyServiceEndsWithContext: the goroutine that pings the watchdog
// and keeps the status current ends with the command's context, after
// STOPPING=1, and leaks nothing; the service manager's variables are
// gone from the environment once read.
func TestNotifyServiceEndsWithContext(t *testing.T) {
	sock := newNotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", sock.path)
	t.Setenv("WATCHDOG_USEC", "50000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	atStart := goleak.IgnoreCurrent()

	svc, err := newService(func(s string) string { return s })
	if err != nil || svc == nil {
		t.Fatalf("newService: %v, %v", svc, err)
	}
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q still in the environment", k, v)
		}
	}
	dir := t.TempDir()
	cfg := &autocert.Config{Provider: autocert.ProviderPseudo, Domains: []string{"dev.example"},
		CertPath: filepath.Join(dir, "cert.crt"), KeyPath: filepath.Join(dir, "priv.key")}
	p, err := autocert.NewProvider(cfg, nil, nil, autocert.WithNotifier(svc), autocert.WithProgress(svc.progress), autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc.start(ctx, p, zerolog.Nop())
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	svc.markReady()
	ready := sock.waitFor(t, "READY=1", func(d datagram) bool { return d.has("READY=1") })
	if st := sock.received()[ready].status(); st != "serving 1 certificate" {
		t.Errorf("status with READY=1: %q", st)
	}
	sock.waitFor(t, "WATCHDOG=1 after READY=1", func(datagram) bool {
		return slices.ContainsFunc(sock.received()[ready:], func(d datagram) bool { return d.has("WATCHDOG=1") })
	})
	cancel()
	svc.wait()
	svc.markReady() // once stopping, nothing more is sent
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	got := sock.drain(t)
	if last := got[len(got)-1]; last.text != "STOPPING=1\nSTATUS=stopping: finishing the work in progress" {
		t.Errorf("last datagram %q", last.text)
	}
	if err := goleak.Find(append(acmetest.LeakOptions(), atStart)...); err != nil {
		t.Error(err)
	}
	t.Logf("%d datagrams", len(got))
}
