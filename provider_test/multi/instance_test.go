package multi_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
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
	_ "github.com/autocert-dev/autocert/storage/postgres" // the "postgres" storage type of the configs
	"github.com/go-acme/lego/v4/challenge"
	"github.com/rs/zerolog"
)

// Environment of an instance process.
const (
	envChild  = "AUTOCERT_MULTI_CHILD"  // the instance's name; set only in instance processes
	envConfig = "AUTOCERT_MULTI_CONFIG" // the path of its configuration file
	envDSN    = "AUTOCERT_MULTI_PG_DSN" // the DSN its configuration reads, as ${AUTOCERT_MULTI_PG_DSN}
	envAPIURL = "AUTOCERT_MULTI_API_URL"
	envToken  = "AUTOCERT_MULTI_API_TOKEN"
)

// blockingProvider is a DNS provider, registered in instance processes only,
// that presents its record through the acmetest API and then never returns:
// an instance using it stays in the middle of its order until it is killed.
const blockingProvider = "acmetest-blocking"

// output writes the lines of an instance's report on standard output, one
// call at a time.
type output struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *output) say(words ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintln(o.w, words...)
}

// runInstance is the main function of an instance process: a program that
// serves TLS with autocert, the way the README shows, driven by commands on
// standard input and reporting on standard output:
//
//	started                       the process runs; it waits for "go"
//	presenting <domain>           (blocking provider) stuck in the order
//	obtained | obtain-error <msg> ObtainCertIfNotExistsAll returned
//	serving <addr>                TLS served on addr; renewals scheduled
//	event <kind> <serial> <unix ns>  a notification, with its time
//	renewed | renew-error <msg>   answer to "renew" (ForceExpiryAll)
//
// Commands: "go", then "renew" any number of times, then "quit". The logs
// (JSON) go to standard error.
func runInstance() int {
	out := &output{w: os.Stdout}
	autocert.RegisterProvider(blockingProvider, autocert.DNSProviderFunc(func(opts autocert.Options) (challenge.Provider, error) {
		f, _ := autocert.LookupProvider(acmetest.ProviderName)
		inner, err := f.NewDNSProvider(opts)
		if err != nil {
			return nil, err
		}
		return blockingDNS{inner, out}, nil
	}))
	in := bufio.NewScanner(os.Stdin)
	out.say("started")
	if !in.Scan() || in.Text() != "go" {
		return 2
	}

	logger := zerolog.New(os.Stderr).With().Timestamp().Str("instance", os.Getenv(envChild)).Logger()
	cfg, err := autocert.LoadConfig(os.Getenv(envConfig))
	if err != nil {
		logger.Error().Err(err).Msg("config")
		return 2
	}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		logger.Error().Err(err).Msg("GetLegoConfig")
		return 2
	}
	events := autocert.NotifierFunc(func(_ context.Context, e autocert.Event) error {
		switch e := e.(type) {
		case *autocert.CertObtained:
			out.say("event", e.Kind(), e.Provider, e.Serial, e.Time.UnixNano())
		case *autocert.CertRenewed:
			out.say("event", e.Kind(), e.Provider, e.Serial, e.Time.UnixNano())
		case *autocert.CertReloaded:
			out.say("event", e.Kind(), e.Provider, e.Serial, e.Time.UnixNano())
		}
		return nil
	})
	p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(logger), autocert.WithNotifier(events))
	if err != nil {
		logger.Error().Err(err).Msg("NewProvider")
		return 2
	}
	defer p.Close()
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		out.say("obtain-error", strings.ReplaceAll(err.Error(), "\n", " "))
	} else {
		out.say("obtained")
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.TLSConfig())
	if err != nil {
		logger.Error().Err(err).Msg("listen")
		return 2
	}
	defer ln.Close()
	go serveHandshakes(ln)
	ctx, cancel := context.WithCancel(context.Background())
	p.ScheduleRenewalAll(autocert.ContextParent(ctx))
	out.say("serving", ln.Addr())

	for in.Scan() {
		switch in.Text() {
		case "renew":
			p.ForceExpiryAll()
			p.WaitRenewalDone(context.Background())
			var errs []string
			for _, st := range p.RenewalStatus() {
				if st.Forced != nil && st.Forced.Error != "" {
					errs = append(errs, st.Provider+": "+st.Forced.Error)
				}
			}
			if len(errs) > 0 {
				out.say("renew-error", strings.Join(errs, "; "))
			} else {
				out.say("renewed")
			}
		case "quit":
			cancel()
			<-p.SchedulerDone()
			return 0
		}
	}
	cancel()
	<-p.SchedulerDone()
	return 0
}

// serveHandshakes completes the TLS handshake of every connection, then
// closes it: enough for a client to see the certificate served.
func serveHandshakes(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.(*tls.Conn).Handshake()
		}()
	}
}

// blockingDNS presents the challenge record, says so, and never returns.
type blockingDNS struct {
	inner challenge.Provider
	out   *output
}

func (b blockingDNS) Present(domain, token, keyAuth string) error {
	if err := b.inner.Present(domain, token, keyAuth); err != nil {
		return err
	}
	b.out.say("presenting", domain)
	time.Sleep(time.Hour) // killed before that
	return errors.New("not killed")
}

func (b blockingDNS) CleanUp(domain, token, keyAuth string) error {
	return b.inner.CleanUp(domain, token, keyAuth)
}

// instance is a running instance process, seen from the test.
type instance struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	logs   *syncbuf.Buffer // its standard error
	exited chan struct{}   // closed once it has exited
	err    error           // how it exited, once exited is closed
	addr   string          // where it serves TLS, once "serving"

	mu      sync.Mutex
	lines   [][]string    // the words of each line it reported so far
	eof     bool          // its standard output is closed
	changed chan struct{} // receives a value when lines or eof change
	next    int           // index in lines where expect looks next
}

// report records a line of the instance's report.
func (in *instance) report(words []string, eof bool) {
	in.mu.Lock()
	if eof {
		in.eof = true
	} else {
		in.lines = append(in.lines, words)
	}
	in.mu.Unlock()
	select {
	case in.changed <- struct{}{}:
	default:
	}
}

// find looks for the first line from index from on for which match holds,
// waiting for more lines until timeout; it returns its index, or -1 with
// why it gave up.
func (in *instance) find(from int, timeout time.Duration, match func([]string) bool) (int, string) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		in.mu.Lock()
		for i := from; i < len(in.lines); i++ {
			if match(in.lines[i]) {
				in.mu.Unlock()
				return i, ""
			}
		}
		from = len(in.lines)
		eof := in.eof
		in.mu.Unlock()
		if eof {
			<-in.exited
			return -1, fmt.Sprintf("exited (%v)", in.err)
		}
		select {
		case <-in.changed:
		case <-deadline.C:
			return -1, fmt.Sprintf("said nothing of the kind within %v", timeout)
		}
	}
}

// line returns the words of the line at index i.
func (in *instance) line(i int) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lines[i]
}

// mark returns the index of the next line the instance will report, for
// expectEvent.
func (in *instance) mark() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.lines)
}

// startInstance starts an instance process in dir (its working directory:
// the relative paths of the configuration are its own, as on a host of its
// own) with the configuration file config. It does not wait: the instance
// says "started", then waits for "go". The instance is stopped when the
// test ends.
func startInstance(t *testing.T, ca *acmetest.Server, name, dir, config, dsn string) *instance {
	t.Helper()
	opts := ca.ProviderOptions()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	// The race detector waits a second before an instance exits, unless
	// told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(),
		"GORACE="+gorace,
		envChild+"="+name,
		envConfig+"="+config,
		envDSN+"="+dsn,
		envAPIURL+"="+opts[acmetest.OptionAPIURL].Value(),
		envToken+"="+opts[acmetest.OptionAPIToken].Value(),
	)
	in := &instance{name: name, cmd: cmd, logs: &syncbuf.Buffer{}, exited: make(chan struct{}), changed: make(chan struct{}, 1)}
	cmd.Stderr = in.logs
	var err error
	if in.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			in.report(strings.Fields(sc.Text()), false)
		}
		in.err = cmd.Wait()
		close(in.exited)
		in.report(nil, true)
	}()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// start waits until the instance is started, then lets it go.
func (in *instance) start(t *testing.T) {
	t.Helper()
	in.expect(t, 60*time.Second, "started")
	in.send(t, "go")
}

// send writes a command to the instance.
func (in *instance) send(t *testing.T, command string) {
	t.Helper()
	if _, err := io.WriteString(in.stdin, command+"\n"); err != nil {
		t.Fatalf("%s: sending %q: %v", in.name, command, err)
	}
}

// expect waits for the next line starting with word, skipping others, and
// returns its words. A line "obtain-error" or "renew-error" that is not
// expected fails the test.
func (in *instance) expect(t *testing.T, timeout time.Duration, word string) []string {
	t.Helper()
	in.mu.Lock()
	from := in.next
	in.mu.Unlock()
	var failed []string
	i, why := in.find(from, timeout, func(l []string) bool {
		if len(l) > 0 && l[0] != word && strings.HasSuffix(l[0], "-error") {
			failed = l
			return true
		}
		return len(l) > 0 && l[0] == word
	})
	if failed != nil {
		t.Fatalf("%s: %s while waiting for %q; its log:\n%s", in.name, strings.Join(failed, " "), word, in.logTail())
	}
	if i < 0 {
		t.Fatalf("%s %s while waiting for %q; its log:\n%s", in.name, why, word, in.logTail())
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.next = i + 1
	return in.lines[i]
}

// expectEvent waits for a notification of kind about provider, with a
// serial other than not, reported at index from or later (see mark), and
// returns its serial and time.
func (in *instance) expectEvent(t *testing.T, from int, timeout time.Duration, kind autocert.EventKind, provider, not string) (string, time.Time) {
	t.Helper()
	i, why := in.find(from, timeout, func(l []string) bool {
		return len(l) == 5 && l[0] == "event" && l[1] == string(kind) && l[2] == provider && l[3] != not
	})
	if i < 0 {
		t.Fatalf("%s %s while waiting for a %s event of %s; its log:\n%s", in.name, why, kind, provider, in.logTail())
	}
	l := in.line(i)
	var ns int64
	fmt.Sscan(l[4], &ns)
	return l[3], time.Unix(0, ns)
}

// quiet fails the test if the instance reports anything after "started"
// within d.
func (in *instance) quiet(t *testing.T, d time.Duration, why string) {
	t.Helper()
	in.mu.Lock()
	from := in.next
	in.mu.Unlock()
	if i, _ := in.find(from, d, func([]string) bool { return true }); i >= 0 {
		t.Fatalf("%s said %q %s", in.name, strings.Join(in.line(i), " "), why)
	}
}

// serving waits until the instance serves TLS, and notes where.
func (in *instance) serving(t *testing.T) {
	t.Helper()
	in.addr = in.expect(t, 60*time.Second, "serving")[1]
}

// leaf does a TLS handshake with the instance for serverName, verifying the
// chain against roots, and returns the certificate it presented.
func (in *instance) leaf(serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", in.addr, &tls.Config{ServerName: serverName, RootCAs: roots})
	if err != nil {
		return nil, fmt.Errorf("%s: TLS handshake for %s: %w", in.name, serverName, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// serial is the hex serial of the certificate the instance serves for
// serverName, failing the test on error.
func (in *instance) serial(t *testing.T, serverName string, roots *x509.CertPool) string {
	t.Helper()
	l, err := in.leaf(serverName, roots)
	if err != nil {
		t.Fatal(err)
	}
	return l.SerialNumber.Text(16)
}

// waitSerial polls the instance with handshakes until it serves a serial
// other than old, and returns it with the time it was first seen.
func (in *instance) waitSerial(serverName string, roots *x509.CertPool, old string, timeout time.Duration) (string, time.Time, error) {
	end := time.Now().Add(timeout)
	for {
		l, err := in.leaf(serverName, roots)
		seen := time.Now()
		if err == nil && l.SerialNumber.Text(16) != old {
			return l.SerialNumber.Text(16), seen, nil
		}
		if seen.After(end) {
			if err == nil {
				err = fmt.Errorf("%s still serves serial %s after %v", in.name, old, timeout)
			}
			return "", time.Time{}, err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// kill ends the instance with SIGKILL, the way a crash or the OOM killer
// does, and waits for it to be gone.
func (in *instance) kill(t *testing.T) {
	t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-in.exited
}

// stop asks a running instance to quit and checks that it exited cleanly
// (the race detector makes a child exit with status 66). An instance that
// does not quit within 30 s is killed.
func (in *instance) stop(t *testing.T) {
	select {
	case <-in.exited:
		return
	default:
	}
	io.WriteString(in.stdin, "quit\n")
	in.stdin.Close()
	select {
	case <-in.exited:
		if in.err != nil {
			t.Errorf("%s exited with %v; its log:\n%s", in.name, in.err, in.logTail())
		}
	case <-time.After(30 * time.Second):
		in.cmd.Process.Kill()
		<-in.exited
		t.Errorf("%s did not quit; its log:\n%s", in.name, in.logTail())
	}
}

// logTail is the end of the instance's log.
func (in *instance) logTail() string {
	s := in.logs.String()
	if len(s) > 6000 {
		s = "..." + s[len(s)-6000:]
	}
	return s
}

// Names certified in the tests.
const (
	mainName  = "multi.example.com"
	mainWild  = "*.multi.example.com"
	extraName = "api.example.net"
)

// configOptions are the choices of writeConfig.
type configOptions struct {
	provider string // DNS provider; acmetest when empty
	postgres bool   // storage: postgres, with the DSN from the environment
	extra    bool   // an extra certificate for extraName
}

// writeConfig writes an autocert YAML file for ca into dir, as a user
// would, and returns its path. Paths of certificates and keys are
// relative: each instance resolves them in its own working directory. The
// DNS provider's credentials and the DSN come from the environment.
func writeConfig(t *testing.T, ca *acmetest.Server, dir string, o configOptions) string {
	t.Helper()
	if o.provider == "" {
		o.provider = acmetest.ProviderName
	}
	var b strings.Builder
	fmt.Fprintf(&b, `autocert:
  provider: %s
  email: admin@example.com
  domains: [%q, %q]
  cert_path: certs/cert.crt
  key_path: certs/priv.key
  acme_key_path: certs/acme.key
  ca_dir_url: %s
  ca_certs: [%q]
  resolvers: [%q]
  options:
    api_url: ${%s}
    api_token: ${%s}
`, o.provider, mainName, mainWild, ca.DirectoryURL(), ca.CACertFile(), ca.DNSAddr(), envAPIURL, envToken)
	if o.postgres {
		fmt.Fprintf(&b, "  storage:\n    type: postgres\n    dsn: ${%s}\n", envDSN)
	}
	if o.extra {
		fmt.Fprintf(&b, "  extra:\n    - domains: [%q]\n      cert_path: certs/api.crt\n      key_path: certs/api.key\n", extraName)
	}
	path := filepath.Join(dir, "autocert.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
