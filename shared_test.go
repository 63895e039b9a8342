package autocert

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// watchedMem is an acctMemStorage that implements Watcher, like a storage
// shared by several instances: every Store is reported to the running
// Watch calls, unless quiet (a notification lost).
type watchedMem struct {
	*acctMemStorage
	mu    sync.Mutex
	subs  map[chan string]struct{}
	quiet bool
}

func newWatchedMem() *watchedMem {
	return &watchedMem{acctMemStorage: newAcctMemStorage(), subs: make(map[chan string]struct{})}
}

func (w *watchedMem) Store(ctx context.Context, entries ...Entry) error {
	if err := w.acctMemStorage.Store(ctx, entries...); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.quiet {
		return nil
	}
	for _, e := range entries {
		for ch := range w.subs {
			ch <- e.Key
		}
	}
	return nil
}

func (w *watchedMem) Watch(ctx context.Context, changed func(string)) error {
	ch := make(chan string, 64)
	w.mu.Lock()
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.subs, ch)
		w.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case k := <-ch:
			changed(k)
		}
	}
}

// watchers returns how many Watch calls run.
func (w *watchedMem) watchers() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.subs)
}

// closingMem is an acctMemStorage that can be closed.
type closingMem struct {
	*acctMemStorage
	mu     sync.Mutex
	closed int
}

func (c *closingMem) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
	return nil
}

func (c *closingMem) closes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// sharedTestConfig is a pseudo certificate whose files are in dir.
func sharedTestConfig(dir string) *Config {
	return &Config{
		Provider: ProviderPseudo,
		Domains:  []string{"shared.test"},
		CertPath: filepath.Join(dir, "certs", "c.crt"),
		KeyPath:  filepath.Join(dir, "certs", "c.key"),
	}
}

// storeOther stores a new self-signed certificate for cfg into st, as
// another instance renewing it would, and returns its serial.
func storeOther(t *testing.T, st Storage, cfg *Config) string {
	t.Helper()
	certPEM, keyPEM, err := selfSigned(cfg.Domains, "EC256", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store(context.Background(),
		Entry{Key: cfg.CertPath, Value: certPEM},
		Entry{Key: cfg.KeyPath, Value: keyPEM, Private: true}); err != nil {
		t.Fatal(err)
	}
	c, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return serialHex(c.Leaf)
}

// servedSerial is the serial of the certificate p serves.
func servedSerial(t *testing.T, p *Provider) string {
	t.Helper()
	c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: "shared.test"})
	if err != nil {
		t.Fatal(err)
	}
	return serialHex(c.Leaf)
}

// waitServed waits until p serves serial.
func waitServed(t *testing.T, p *Provider, serial string, within time.Duration) {
	t.Helper()
	end := time.Now().Add(within)
	for servedSerial(t, p) != serial {
		if time.Now().After(end) {
			t.Fatalf("serial %s not served within %v (serving %s)", serial, within, servedSerial(t, p))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scheduleShared starts p's scheduler until the test ends, then waits for
// it to stop.
func scheduleShared(t *testing.T, p *Provider) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p.ScheduleRenewalAll(ContextParent(ctx))
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.SchedulerDone():
		case <-time.After(20 * time.Second):
			t.Error("scheduler did not stop")
		}
	})
}

// checkCertFiles checks that cfg's files hold the certificate of serial,
// with the modes of FileStorage.
func checkCertFiles(t *testing.T, cfg *Config, serial string) {
	t.Helper()
	certPEM, err := os.ReadFile(cfg.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(cfg.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("certificate files do not hold a matching pair: %v", err)
	}
	if got := serialHex(c.Leaf); got != serial {
		t.Errorf("certificate file holds serial %s, want %s", got, serial)
	}
	for path, mode := range map[string]os.FileMode{cfg.CertPath: 0o644, cfg.KeyPath: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", path, fi.Mode(), err, mode)
		}
	}
}

// TestSharedStorageWatch: with a storage that reports changes, a
// certificate another instance stores is served at once, written to the
// certificate files, and announced with CertReloaded; the scheduler's
// Watch ends with its parent.
func TestSharedStorageWatch(t *testing.T) {
	st := newWatchedMem()
	cfg := sharedTestConfig(t.TempDir())
	events := make(chan Event, 16)
	p, err := NewProvider(cfg, nil, nil, WithStorage(st), WithLogger(zerolog.Nop()),
		WithNotifier(NotifierFunc(func(_ context.Context, e Event) error { events <- e; return nil })))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	first := servedSerial(t, p)
	checkCertFiles(t, cfg, first) // written by this instance: the storage is not the files

	ctx, cancel := context.WithCancel(context.Background())
	p.ScheduleRenewalAll(ContextParent(ctx))
	for st.watchers() == 0 {
		time.Sleep(time.Millisecond)
	}
	other := storeOther(t, st, cfg)
	waitServed(t, p, other, 20*time.Second)
	checkCertFiles(t, cfg, other)
	for r := (*CertReloaded)(nil); r == nil; {
		select {
		case e := <-events:
			if r, _ = e.(*CertReloaded); r != nil && (r.Serial != other || r.PreviousSerial != first || r.Provider != "main") {
				t.Errorf("CertReloaded %+v, want serial %s after %s", r, other, first)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no CertReloaded event")
		}
	}

	cancel()
	select {
	case <-p.SchedulerDone():
	case <-time.After(10 * time.Second):
		t.Fatal("scheduler did not stop")
	}
	if n := st.watchers(); n != 0 {
		t.Errorf("%d Watch calls still run after the parent ended", n)
	}
}

// TestSharedStoragePeriodicReread: a change whose notification was lost,
// or made in a storage that cannot report changes, is served at the next
// periodic re-read.
func TestSharedStoragePeriodicReread(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   Storage
	}{
		{"notification lost", func() Storage { w := newWatchedMem(); w.quiet = true; return w }()},
		{"no Watcher", newAcctMemStorage()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sharedTestConfig(t.TempDir())
			p, err := NewProvider(cfg, nil, nil, WithStorage(tc.st), WithLogger(zerolog.Nop()),
				func(s *settings) { s.reread = 50 * time.Millisecond })
			if err != nil {
				t.Fatal(err)
			}
			if err := p.ObtainCertIfNotExistsAll(); err != nil {
				t.Fatal(err)
			}
			scheduleShared(t, p)
			other := storeOther(t, tc.st, cfg)
			waitServed(t, p, other, 5*time.Second)
			checkCertFiles(t, cfg, other)
		})
	}
}

// TestSharedStorageFilesUnwritable: when the certificate files cannot be
// written, the certificate is served all the same; the failure is logged
// at Error once, not at every attempt.
func TestSharedStorageFilesUnwritable(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "certs")
	if err := os.WriteFile(blocker, []byte("a file where the directory should be"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := newWatchedMem()
	cfg := sharedTestConfig(dir)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := zerolog.New(writerFunc(func(b []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(b)
	}))
	p, err := NewProvider(cfg, nil, nil, WithStorage(st), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatalf("a certificate file that cannot be written failed the start: %v", err)
	}
	servedSerial(t, p)
	scheduleShared(t, p)
	for st.watchers() == 0 {
		time.Sleep(time.Millisecond)
	}
	other := storeOther(t, st, cfg)
	waitServed(t, p, other, 20*time.Second)

	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if n := strings.Count(out, `"level":"error"`); n != 1 || !strings.Contains(out, "cannot write the certificate files") {
		t.Errorf("%d Error lines, want one saying the files cannot be written:\n%s", n, out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestProviderStorageOwnership: a storage given with WithStorage is the
// one the certificates use, and the caller's: Close never closes it. (New
// closing the storage it opened from the storage block is tested with a
// real database in storage/postgres.)
func TestProviderStorageOwnership(t *testing.T) {
	cfg := sharedTestConfig(t.TempDir())
	mine := &closingMem{acctMemStorage: newAcctMemStorage()}
	p, err := New(context.Background(), cfg, WithStorage(mine), WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.certs {
		if c.storage != Storage(mine) {
			t.Fatalf("%s uses %T, not the storage given", c.name, c.storage)
		}
	}
	if err := p.Close(); err != nil || mine.closes() != 0 {
		t.Errorf("Close: %v; the caller's storage closed %d times, want never", err, mine.closes())
	}
}

// TestStorageTypeMessages: an unknown storage type names the package to
// import or the nearest type, and no problem shows the DSN.
func TestStorageTypeMessages(t *testing.T) {
	const pw = "hunter2-very-secret"
	dsn := "postgres://autocert:" + pw + "@db.internal/certs"
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		{"postgres", []string{`storage type "postgres" is not registered`, `import _ "github.com/autocert-dev/autocert/storage/postgres"`}},
		{"Postgress", []string{`unknown storage type "postgress" (did you mean postgres?)`, `import _ "github.com/autocert-dev/autocert/storage/postgres"`}},
		{"redis", []string{`unknown storage type "redis" (known: file; a storage package must be imported to register its type)`}},
	} {
		cfg := sharedTestConfig(t.TempDir())
		cfg.Storage = &StorageConfig{Type: tc.typ, DSN: Redacted(dsn)}
		verr := cfg.Validate()
		_, oerr := cfg.OpenStorage(context.Background())
		for _, err := range []error{verr, oerr} {
			if err == nil {
				t.Fatalf("type %q accepted", tc.typ)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("type %q: %q lacks %q", tc.typ, msg, w)
				}
			}
			if !strings.Contains(msg, "storage.type") || strings.Contains(msg, pw) {
				t.Errorf("type %q: %q must name storage.type and not show the password", tc.typ, msg)
			}
		}
	}

	cfg := sharedTestConfig(t.TempDir())
	cfg.Storage = &StorageConfig{Type: "file", DSN: Redacted(dsn)}
	var zl bytes.Buffer
	zlog := zerolog.New(&zl)
	zlog.Info().Interface("config", cfg).Msg("")
	js, _ := json.Marshal(cfg)
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", *cfg.Storage), fmt.Sprintf("%#v", *cfg.Storage), string(js), zl.String()} {
		if strings.Contains(s, pw) || strings.Contains(s, "db.internal") {
			t.Errorf("the DSN shows in %s", s)
		}
	}
}

// TestScrubDSN: a storage package's error that quotes the DSN or its
// password is shown without them.
func TestScrubDSN(t *testing.T) {
	for _, tc := range []struct{ dsn, msg, secret string }{
		{"postgres://u:p%40ss%2Fw0rd@h/db", "cannot connect to postgres://u:p%40ss%2Fw0rd@h/db", "p%40ss"},
		{"postgres://u:p%40ss%2Fw0rd@h/db", "password p@ss/w0rd rejected", "p@ss/w0rd"},
		{"host=h user=u password='s3cr3t!' dbname=d", "bad setting password='s3cr3t!'", "s3cr3t!"},
	} {
		got := dsnScrubber(tc.dsn).Scrub(tc.msg)
		if strings.Contains(got, tc.secret) {
			t.Errorf("scrubbing %q = %q, still shows the secret", tc.msg, got)
		}
	}
	cause := errors.New("cannot reach postgres://u:pw12@h")
	err := dsnScrubber("postgres://u:pw12@h").Error(cause)
	if !errors.Is(err, cause) || strings.Contains(err.Error(), "pw12") {
		t.Errorf("scrubbed error %q does not unwrap to its cause, or shows the password", err)
	}
}
