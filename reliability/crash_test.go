package reliability_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/rs/zerolog"
)

// Environment of the crash test's helper process.
const (
	crashChildEnv  = "AUTOCERT_CRASH_CHILD"  // set: run as the helper, with this config file
	crashOffsetEnv = "AUTOCERT_CRASH_OFFSET" // seconds added to the helper's clock
	crashKillsEnv  = "AUTOCERT_CRASH_KILLS"  // kills the test does (default 200 in CI)
	crashDomain    = "crash.example.com"
)

// Phases the helper announces, one line each on file descriptor 3:
//
//	begin account-key | end account-key     GetLegoConfig (creates the key in a new directory)
//	begin <what> [serial] | end <what> <µs> <ok|error>
//	                                         a Store or Delete: what is cert+key,
//	                                         failure-record, delete-failure-record, ari-record
//	progress <step>                          a step of an order (autocert.Step)
//	ready <serial>                           started, serving serial
//	renewed <serial> | failed               a forced renewal ended
//	fatal <message>                          the start failed
//
// The test picks a phase per kill and sends SIGKILL after a random short
// delay once the helper announces it.
const (
	phaseAccountKey = "account-key"
	phaseCertKey    = "cert+key"
	phaseFailure    = "failure-record"
	phaseOrder      = "order"
)

var crashPhases = []string{phaseAccountKey, phaseCertKey, phaseFailure, phaseOrder, phaseCertKey, phaseFailure}

// crashChild is the helper process: it starts like a program using
// autocert (config file, GetLegoConfig, NewProvider, obtain), then renews
// its certificate in a loop until it is killed.
func crashChild() int {
	out := os.NewFile(3, "phases")
	say := func(format string, args ...any) {
		// One write per line: the test sees each line as soon as it is
		// written, and nothing is lost when the process is killed.
		_, _ = out.WriteString(fmt.Sprintf(format, args...) + "\n")
	}
	offset, _ := strconv.Atoi(os.Getenv(crashOffsetEnv))
	clock := offsetClock{time.Duration(offset) * time.Second}
	logger := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)

	cfg, err := autocert.LoadConfig(os.Getenv(crashChildEnv))
	if err != nil {
		say("fatal config: %s", oneLine(err))
		return 1
	}
	say("begin %s", phaseAccountKey)
	start := time.Now()
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		say("fatal account key: %s", oneLine(err))
		return 1
	}
	say("end %s %d ok", phaseAccountKey, time.Since(start).Microseconds())
	st := &phaseStorage{Storage: &autocert.FileStorage{}, say: say, certPath: cfg.CertPath}
	p, err := autocert.NewProvider(cfg, user, legoCfg,
		autocert.WithStorage(st),
		autocert.WithClock(clock),
		autocert.WithLogger(logger),
		autocert.WithProgress(func(pr autocert.Progress) { say("progress %s", pr.Step) }))
	if err != nil {
		say("fatal provider: %s", oneLine(err))
		return 1
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		say("fatal start: %s", oneLine(err))
		return 1
	}
	c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: crashDomain})
	if err != nil {
		say("fatal serve: %s", oneLine(err))
		return 1
	}
	say("ready %s", c.Leaf.SerialNumber.Text(16))
	for {
		p.ForceExpiryAll()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		p.WaitRenewalDone(ctx)
		cancel()
		if f := p.RenewalStatus()[0].Forced; f != nil && f.Err == nil {
			c, _ := p.GetCert(&tls.ClientHelloInfo{ServerName: crashDomain})
			say("renewed %s", c.Leaf.SerialNumber.Text(16))
		} else {
			say("failed")
		}
	}
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// offsetClock is the real clock moved forward by a fixed offset.
type offsetClock struct{ offset time.Duration }

func (c offsetClock) Now() time.Time                          { return time.Now().Add(c.offset) }
func (c offsetClock) NewTimer(d time.Duration) autocert.Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// phaseStorage is the default FileStorage, announcing each write.
type phaseStorage struct {
	autocert.Storage
	say      func(string, ...any)
	certPath string
}

func (s *phaseStorage) what(key string) string {
	switch base := filepath.Base(key); {
	case key == s.certPath:
		return phaseCertKey
	case strings.HasPrefix(base, ".last_failure-"):
		return phaseFailure
	case strings.HasPrefix(base, ".renewal-"):
		return "ari-record"
	}
	return "other"
}

func (s *phaseStorage) Store(ctx context.Context, entries ...autocert.Entry) error {
	what, serial := "other", ""
	if len(entries) > 0 {
		what = s.what(entries[0].Key)
	}
	if what == phaseCertKey {
		if b, _ := pem.Decode(entries[0].Value); b != nil {
			if c, err := x509.ParseCertificate(b.Bytes); err == nil {
				serial = c.SerialNumber.Text(16)
			}
		}
	}
	s.say("begin %s %s", what, serial)
	start := time.Now()
	err := s.Storage.Store(ctx, entries...)
	s.say("end %s %d %s", what, time.Since(start).Microseconds(), okOrError(err))
	return err
}

func (s *phaseStorage) Delete(ctx context.Context, key string) error {
	what := "delete-" + s.what(key)
	s.say("begin %s", what)
	start := time.Now()
	err := s.Storage.Delete(ctx, key)
	s.say("end %s %d %s", what, time.Since(start).Microseconds(), okOrError(err))
	return err
}

func okOrError(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// crashDir is the state of one installation: a certificate directory and
// an account directory, started again and again.
type crashDir struct {
	root, config    string
	certDir, acmDir string
	bundle          string // bundle_path
	bundleBefore    []byte // the bundle as the last kill left it (nil: none)
	bundleSeen      bool   // bundleBefore was read after a kill
	hasCert         bool   // a certificate was stored whole at least once
	serial          string // the last certificate known stored
	pendingSerial   string // a certificate whose store a kill interrupted
	accountKey      []byte // SHA-256 of the account key once it existed
	tmpSeen         map[string]bool
}

// crashRun is the bookkeeping of TestCrashRecovery.
type crashRun struct {
	t          *testing.T
	ca         *acmetest.Server
	dirs       []*crashDir
	offset     int // seconds: every process runs later than the previous one
	kills      int
	byPhase    map[string]int // kills by target phase
	byInFlight map[string]int // kills by what the helper had begun and not ended
	byDisk     map[string]int // kills by what the directory showed afterwards
	durations  map[string][]time.Duration
	violations []string
	starts     int
	reorders   int
	tempLeft   int // temporary files of torn writes left by the kills
	// bundleRepairs counts the fresh starts that found the bundle not
	// holding the pair they serve, by what it held instead.
	bundleRepairs map[string]int

	// newOrder is the CA's new-order URL, from its directory;
	// freshOrders counts the new-order requests the fresh starts sent.
	newOrder    string
	freshOrders int64
}

// tempFiles lists the temporary files in every installation.
func (r *crashRun) tempFiles() []string {
	var out []string
	for _, d := range r.dirs {
		for _, dir := range []string{d.certDir, d.acmDir} {
			m, _ := filepath.Glob(filepath.Join(dir, ".autocert-tmp-*"))
			out = append(out, m...)
		}
	}
	return out
}

func (r *crashRun) violate(format string, args ...any) {
	r.violations = append(r.violations, fmt.Sprintf("kill %d: ", r.kills)+fmt.Sprintf(format, args...))
}

// newDir makes a new installation with its config file.
func (r *crashRun) newDir() *crashDir {
	root := filepath.Join(r.t.TempDir(), "inst")
	d := &crashDir{root: root, certDir: filepath.Join(root, "certs"), acmDir: filepath.Join(root, "account"), tmpSeen: map[string]bool{}}
	d.bundle = filepath.Join(d.certDir, "bundle.pem")
	if err := os.MkdirAll(root, 0o755); err != nil {
		r.t.Fatal(err)
	}
	d.config = filepath.Join(root, "autocert.yaml")
	text := fmt.Sprintf(`autocert:
  provider: acmetest
  email: admin@example.com
  domains: [%q]
  cert_path: %s
  key_path: %s
  bundle_path: %s
  acme_key_path: %s
  ca_dir_url: %s
  ca_certs: [%s]
  resolvers: [%s]
  options:
    api_url: ${ACMETEST_API_URL}
    api_token: ${ACMETEST_API_TOKEN}
`, crashDomain, filepath.Join(d.certDir, "cert.crt"), filepath.Join(d.certDir, "priv.key"), d.bundle,
		filepath.Join(d.acmDir, "acme.key"), r.ca.DirectoryURL(), r.ca.CACertFile(), r.ca.DNSAddr())
	if err := os.WriteFile(d.config, []byte(text), 0o600); err != nil {
		r.t.Fatal(err)
	}
	r.dirs = append(r.dirs, d)
	return d
}

// TestCrashRecovery kills a process that obtains and renews certificates
// with SIGKILL at chosen moments: while it creates the ACME account key,
// writes the certificate and its key, writes the last-failure record, or
// is in the middle of an order. After every kill a fresh start must load
// a certificate and key that match and verify (the old or the new one),
// never refuse to start, keep its ACME account, and send no order when a
// certificate was already stored.
func TestCrashRecovery(t *testing.T) {
	kills := 50
	if inCI() {
		kills = 200
	}
	if testing.Short() {
		kills = 20
	}
	if v := os.Getenv(crashKillsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashKillsEnv, v)
		}
		kills = n
	}
	ca := acmetest.New(t)
	opts := ca.ProviderOptions()
	t.Setenv("ACMETEST_API_URL", opts[acmetest.OptionAPIURL].Value())
	t.Setenv("ACMETEST_API_TOKEN", opts[acmetest.OptionAPIToken].Value())
	r := &crashRun{t: t, ca: ca, byPhase: map[string]int{}, byInFlight: map[string]int{},
		byDisk: map[string]int{}, durations: map[string][]time.Duration{}, bundleRepairs: map[string]int{},
		newOrder: newOrderURL(t, ca)}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 8))
	t.Logf("seed %d", seed)

	r.calibrate()
	start := time.Now()
	var d *crashDir
	for r.kills < kills {
		phase := crashPhases[r.kills%len(crashPhases)]
		if phase == phaseAccountKey {
			d = r.newDir()
		}
		failing := phase == phaseFailure && rng.IntN(2) == 0
		if failing {
			// The next order fails: the record is written again, with
			// the CA's problem; the kill aims at that second write.
			ca.FailOrders(1, acmetest.Problem{Type: "serverInternal", Detail: "crash test"})
		}
		r.killOnce(d, phase, failing, rng)
		ca.FailOrders(0, acmetest.Problem{})
		r.freshStart(d)
		if len(r.violations) > 20 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("gave up after %d kills in %v", r.kills, time.Since(start))
		}
	}
	elapsed := time.Since(start)

	// Temporary files of torn writes stay (they may hold private keys)
	// until they are ten minutes old; then the next start removes them.
	left := r.tempFiles()
	old := time.Now().Add(-time.Hour)
	for _, f := range left {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range r.dirs {
		r.freshStart(d)
	}
	if still := r.tempFiles(); len(still) > 0 {
		r.violate("temporary files of torn writes still there an hour later, after a start: %v", still)
	}
	r.tempLeft = len(left)
	// The first kill leaves an installation without a certificate, whose
	// fresh start orders one: a count of none means the count is broken.
	if r.freshOrders == 0 {
		r.violate("no new-order request of a fresh start was seen: counting the orders of the fresh starts does not work")
	}

	// Every installation registered exactly one account, whatever the
	// kills interrupted.
	if got := ca.Accounts(); got != len(r.dirs) {
		r.violate("the CA has %d accounts for %d installations", got, len(r.dirs))
	}
	r.report(elapsed)
	for _, v := range r.violations {
		t.Error(v)
	}
}

// killOnce starts the helper in d and kills it once it announces phase.
func (r *crashRun) killOnce(d *crashDir, phase string, failing bool, rng *rand.Rand) {
	t := r.t
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.offset += 20
	var stderr syncbuf.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+d.config, crashOffsetEnv+"="+strconv.Itoa(r.offset))
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r.starts++

	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	inFlight := map[string]string{} // what -> serial being stored
	killed := false
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	var last string
	handle := func(l string) {
		last = l
		f := strings.Fields(l)
		if len(f) == 0 {
			return
		}
		switch f[0] {
		case "begin":
			inFlight[f[1]] = strings.Join(f[2:], " ")
		case "end":
			if len(f) < 4 {
				return
			}
			if f[1] == phaseCertKey && f[3] == "ok" {
				d.hasCert, d.serial = true, inFlight[f[1]]
			}
			delete(inFlight, f[1])
			if us, err := strconv.Atoi(f[2]); err == nil {
				r.durations[f[1]] = append(r.durations[f[1]], time.Duration(us)*time.Microsecond)
			}
		case "ready", "renewed":
			d.hasCert, d.serial = true, f[1]
		case "fatal":
			r.violate("the helper refused to start: %s", l)
		}
	}
	skip := 0
	if failing {
		skip = 1
	}
	matches := func(l string) bool {
		f := strings.Fields(l)
		var hit bool
		switch phase {
		case phaseOrder:
			hit = len(f) == 2 && f[0] == "progress"
		default:
			hit = len(f) >= 2 && f[0] == "begin" && f[1] == phase
		}
		if hit && skip > 0 {
			skip--
			return false
		}
		return hit
	}
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			handle(l)
			if !killed && matches(l) {
				time.Sleep(r.delay(phase, rng))
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		case <-timeout.C:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			r.violate("the helper did not reach phase %s in 30 s (last line %q)", phase, last)
			killed = true
		}
	}
	err = cmd.Wait()
	pr.Close()
	if strings.Contains(stderr.String(), "DATA RACE") {
		r.violate("data race in the helper:\n%s", stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		r.violate("the helper ended by itself (%v), stderr:\n%s", err, stderr.String())
		return
	}
	r.kills++
	r.byPhase[phase]++
	var busy []string
	for what := range inFlight {
		busy = append(busy, what)
	}
	sort.Strings(busy)
	if len(busy) == 0 {
		busy = []string{"nothing"}
	}
	r.byInFlight[strings.Join(busy, "+")]++
	r.byDisk[r.inspect(d)]++
	if s, ok := inFlight[phaseCertKey]; ok && s != "" {
		d.pendingSerial = s
	}
}

// delay is how long after the announcement of phase to kill: random, up
// to a little more than the phase has been seen to last, so that kills
// land before, inside and just after it. The account key is written at the
// end of GetLegoConfig (after the CA roots are read): kills aim at its
// second half.
func (r *crashRun) delay(phase string, rng *rand.Rand) time.Duration {
	if phase == phaseOrder {
		return time.Duration(rng.Int64N(int64(40 * time.Millisecond)))
	}
	m := median(r.durations[phase])
	if m == 0 {
		m = 2 * time.Millisecond
	}
	lo, hi := time.Duration(0), m*13/10
	if phase == phaseAccountKey {
		lo = m / 2
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// calibrate measures how long FileStorage takes to store a certificate
// with its key, and a record, on the file system of the test, so that the
// first kills already aim well.
func (r *crashRun) calibrate() {
	dir := r.t.TempDir()
	st := &autocert.FileStorage{}
	cert := bytes.Repeat([]byte("c"), 2000)
	key := bytes.Repeat([]byte("k"), 300)
	for range 5 {
		start := time.Now()
		err := st.Store(context.Background(),
			autocert.Entry{Key: filepath.Join(dir, "c.crt"), Value: cert},
			autocert.Entry{Key: filepath.Join(dir, "c.key"), Value: key, Private: true})
		if err != nil {
			r.t.Fatal(err)
		}
		r.durations[phaseCertKey] = append(r.durations[phaseCertKey], time.Since(start))
		start = time.Now()
		if err := st.Store(context.Background(), autocert.Entry{Key: filepath.Join(dir, ".last_failure-x"), Value: key}); err != nil {
			r.t.Fatal(err)
		}
		r.durations[phaseFailure] = append(r.durations[phaseFailure], time.Since(start))
	}
}

// inspect describes what a kill left on disk, before anything reads it:
// a temporary file (a write torn before its rename), a journal (a
// certificate and key store not completed), or nothing unusual.
func (r *crashRun) inspect(d *crashDir) string {
	d.bundleBefore, _ = os.ReadFile(d.bundle)
	d.bundleSeen = true
	var found []string
	for _, dir := range []string{d.certDir, d.acmDir} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			switch {
			case strings.HasPrefix(e.Name(), ".autocert-tmp-"):
				if d.tmpSeen[path] {
					continue
				}
				d.tmpSeen[path] = true
				data, _ := os.ReadFile(path)
				found = append(found, "torn "+tmpKind(dir == d.acmDir, data))
			case strings.HasPrefix(e.Name(), ".autocert-journal-"):
				found = append(found, "journal pending")
			}
		}
	}
	if len(found) == 0 {
		return "clean"
	}
	sort.Strings(found)
	return strings.Join(slices.Compact(found), "+")
}

// tmpKind names what a temporary file was being written for.
func tmpKind(accountDir bool, data []byte) string {
	switch {
	case len(data) == 0:
		if accountDir {
			return "account-key (empty)"
		}
		return "file (empty)"
	case bytes.HasPrefix(data, []byte("-----BEGIN CERTIFICATE")):
		return "certificate"
	case bytes.HasPrefix(data, []byte("-----BEGIN")) && bytes.Contains(data, []byte("PRIVATE KEY")) &&
		bytes.Contains(data, []byte("CERTIFICATE")):
		return "bundle"
	case bytes.Contains(data, []byte("PRIVATE KEY")):
		if accountDir {
			return "account-key"
		}
		return "key"
	case bytes.HasPrefix(data, []byte(`{"entries"`)):
		return "journal"
	case len(data) > 0 && data[0] >= '0' && data[0] <= '9':
		return "failure-record"
	}
	return "file"
}

// freshStart starts d again in this process, as a program would after the
// crash, and checks what it finds.
func (r *crashRun) freshStart(d *crashDir) {
	ca := r.ca
	// Requests the killed process sent may still be at work on the CA's
	// side: their orders are not the fresh start's.
	for quiet, deadline := 0, time.Now().Add(10*time.Second); quiet < 2; time.Sleep(2 * time.Millisecond) {
		if ca.PendingRequests() == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			r.violate("the CA is still answering the killed process 10 s later")
			break
		}
	}
	var logs syncbuf.Buffer
	cfg, err := autocert.LoadConfig(d.config)
	if err != nil {
		r.violate("config no longer loads: %v", err)
		return
	}
	keyBefore, _ := os.ReadFile(cfg.ACMEKeyPath)
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		r.violate("fresh start refused: %v", err)
		return
	}
	// The orders of this start are those it sends. The CA may still
	// receive one from the killed process after the wait above: a request
	// the helper wrote just before its death waits in the CA's socket
	// until the CA's server gets to read it, which on a loaded machine can
	// be long after the helper died (PendingRequests counts it only from
	// then on), so the CA's count of orders is not this start's.
	sent := &orderCounter{base: legoCfg.HTTPClient.Transport, url: r.newOrder}
	legoCfg.HTTPClient.Transport = sent
	defer legoCfg.HTTPClient.CloseIdleConnections()
	key, err := os.ReadFile(cfg.ACMEKeyPath)
	if err != nil {
		r.violate("no account key after GetLegoConfig: %v", err)
		return
	}
	if keyBefore != nil && !bytes.Equal(keyBefore, key) {
		r.violate("the account key was replaced")
	}
	sum := sha256.Sum256(key)
	if d.accountKey != nil && !bytes.Equal(d.accountKey, sum[:]) {
		r.violate("the account key changed since it was first seen")
	}
	d.accountKey = sum[:]

	p, err := autocert.NewProvider(cfg, user, legoCfg,
		autocert.WithClock(offsetClock{time.Duration(r.offset+16) * time.Second}),
		autocert.WithLogger(zerolog.New(&logs).Level(zerolog.InfoLevel)))
	if err != nil {
		r.violate("NewProvider: %v", err)
		return
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		r.violate("fresh start failed: %v\n%s", err, logs.String())
		return
	}
	c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: crashDomain})
	if err != nil {
		r.violate("fresh start serves nothing: %v", err)
		return
	}
	if err := verifyPair(c, crashDomain, ca.Roots()); err != nil {
		r.violate("fresh start serves a certificate that does not verify: %v", err)
	}
	r.checkBundle(d, c)
	serial := c.Leaf.SerialNumber.Text(16)
	r.freshOrders += sent.n.Load()
	if d.hasCert {
		if n := sent.n.Load(); n > 0 {
			r.reorders++
			r.violate("fresh start ordered again (%d orders) although a certificate was stored\n%s", n, logs.String())
		} else if serial != d.serial && serial != d.pendingSerial {
			r.violate("fresh start serves %s, neither the stored %s nor the one being stored %q", serial, d.serial, d.pendingSerial)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(d.certDir, ".autocert-journal-*")); len(m) > 0 {
		r.violate("journal left after a fresh start: %v", m)
	}
	d.hasCert, d.serial, d.pendingSerial = true, serial, ""
}

// checkBundle checks, after a fresh start of d that serves c, that the
// bundle file holds exactly the pair served: mode 0600, a key and chain
// tls.X509KeyPair accepts, the leaf and chain of c, the key of c. It counts
// the starts after a kill that found it holding something else although a
// certificate had been stored.
func (r *crashRun) checkBundle(d *crashDir, c *tls.Certificate) {
	if d.bundleSeen && d.hasCert {
		if before := bundleState(d.bundleBefore, c); before != "" {
			r.bundleRepairs[before]++
		}
	}
	d.bundleBefore, d.bundleSeen = nil, false
	fi, err := os.Stat(d.bundle)
	if err != nil {
		r.violate("no bundle after a fresh start: %v", err)
		return
	}
	if fi.Mode() != 0o600 {
		r.violate("bundle mode %v after a fresh start, want -rw-------", fi.Mode())
	}
	data, err := os.ReadFile(d.bundle)
	if err != nil {
		r.violate("bundle: %v", err)
		return
	}
	if state := bundleState(data, c); state != "" {
		r.violate("after a fresh start the bundle holds %s, not the pair served (serial %s)", state, c.Leaf.SerialNumber.Text(16))
	}
}

// bundleState compares a bundle's content with the pair served, c: "" when
// it holds exactly that pair, else what it holds instead.
func bundleState(data []byte, c *tls.Certificate) string {
	if data == nil {
		return "nothing (missing)"
	}
	pair, err := tls.X509KeyPair(data, data)
	switch {
	case err != nil:
		return "no matching pair"
	case !pair.Leaf.Equal(c.Leaf):
		return "another certificate"
	case !slices.EqualFunc(pair.Certificate, c.Certificate, bytes.Equal):
		return "another chain"
	}
	if k, ok := pair.PrivateKey.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !k.Equal(c.PrivateKey) {
		return "another key"
	}
	return ""
}

// report logs the figures of the run.
func (r *crashRun) report(elapsed time.Duration) {
	t := r.t
	summary := map[string]any{
		"kills":                    r.kills,
		"violations":               len(r.violations),
		"helper_starts":            r.starts,
		"installations":            len(r.dirs),
		"accounts":                 r.ca.Accounts(),
		"seconds":                  elapsed.Round(time.Second).Seconds(),
		"kills_by_target_phase":    r.byPhase,
		"kills_by_write_in_flight": r.byInFlight,
		"kills_by_state_on_disk":   r.byDisk,
		"temp_files_left_by_kills": r.tempLeft,
		"bundle_rewrites":          r.bundleRepairs,
		"store_median_us":          r.medians(),
	}
	b, _ := json.MarshalIndent(summary, "", "  ")
	t.Logf("crash test figures:\n%s", b)
}

func (r *crashRun) medians() map[string]int64 {
	out := map[string]int64{}
	for what, ds := range r.durations {
		out[what] = median(ds).Microseconds()
	}
	return out
}

// orderCounter is an HTTP transport that counts the new-order requests a
// process sends through it to the CA.
type orderCounter struct {
	base http.RoundTripper // nil: http.DefaultTransport
	url  string            // the CA's new-order URL
	n    atomic.Int64
}

func (c *orderCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.URL.String() == c.url {
		c.n.Add(1)
	}
	base := c.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport underneath.
func (c *orderCounter) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// newOrderURL reads the new-order URL from the CA's directory.
func newOrderURL(t *testing.T, ca *acmetest.Server) string {
	t.Helper()
	pemData, err := os.ReadFile(ca.CACertFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		t.Fatalf("no certificate in %s", ca.CACertFile())
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Get(ca.DirectoryURL())
	if err != nil {
		t.Fatalf("CA directory: %v", err)
	}
	defer resp.Body.Close()
	var dir struct {
		NewOrder string `json:"newOrder"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil || dir.NewOrder == "" {
		t.Fatalf("CA directory %s: no newOrder URL (%v)", ca.DirectoryURL(), err)
	}
	return dir.NewOrder
}
