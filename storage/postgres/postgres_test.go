package postgres_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/pgtest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/autocert-dev/autocert/storage/postgres"
	"github.com/autocert-dev/autocert/storagetest"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// Environment of the child process of TestLockFreedWhenHolderKilled.
const (
	childEnv     = "AUTOCERT_PG_LOCK_CHILD_DSN"
	childLockEnv = "AUTOCERT_PG_LOCK_CHILD_NAME"
)

func TestMain(m *testing.M) {
	if dsn := os.Getenv(childEnv); dsn != "" {
		lockChild(dsn, os.Getenv(childLockEnv))
		return
	}
	pgtest.Serialize() // some tests restart the server
	goleak.VerifyTestMain(m)
}

// lockChild takes a lock, says so on stdout, and waits to be killed.
func lockChild(dsn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if _, err := s.Lock(ctx, name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("locked")
	<-ctx.Done() // killed before that
	os.Exit(3)
}

// open opens a Storage on dsn, closed when t ends.
func open(t testing.TB, dsn string, opts ...postgres.Option) *postgres.Storage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dsns := make(map[*testing.T]string)
	dsnOf := func(t *testing.T) string {
		mu.Lock()
		defer mu.Unlock() // SchemaDSN may end t with runtime.Goexit
		dsn, ok := dsns[t]
		if !ok {
			dsn = pgtest.SchemaDSN(t)
			dsns[t] = dsn
		}
		return dsn
	}
	storagetest.Run(t, func(t *testing.T) autocert.Storage { return open(t, dsnOf(t)) })
}

// TestRegistered opens the storage through a configuration's storage
// block, as a program importing the package does.
func TestRegistered(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	cfg := &autocert.Config{Storage: &autocert.StorageConfig{Type: "postgres", DSN: autocert.Redacted(dsn)}}
	st, err := cfg.OpenStorage(context.Background())
	if err != nil {
		t.Fatalf("OpenStorage: %v", err)
	}
	ps, ok := st.(*postgres.Storage)
	if !ok {
		t.Fatalf("OpenStorage returned %T, want *postgres.Storage", st)
	}
	defer ps.Close()
	var _ autocert.Watcher = ps
	var _ io.Closer = ps
	if err := st.Store(context.Background(), autocert.Entry{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if v, err := open(t, dsn).Load(context.Background(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Load through another instance = %q, %v", v, err)
	}
}

// TestOpenConcurrently opens several instances on a new schema at the same
// moment, as replicas starting together do: creating the table must not
// fail for any.
func TestOpenConcurrently(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	const n = 6
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			s, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				err = s.Store(context.Background(), autocert.Entry{Key: "k", Value: []byte("v")})
				s.Close()
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestOpenNeedsSchema: a search_path naming no existing schema is reported
// as such.
func TestOpenNeedsSchema(t *testing.T) {
	dsn := pgtest.WithParam(t, pgtest.DSN(t), "search_path", "no_such_schema_here")
	s, err := postgres.Open(context.Background(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with a search_path naming no existing schema")
	}
	if !strings.Contains(err.Error(), "search_path") {
		t.Errorf("error does not point at the search_path: %v", err)
	}
}

// TestSchemasAreSeparate: two stores in different schemas of one database
// share neither data, nor locks, nor notifications.
func TestSchemasAreSeparate(t *testing.T) {
	a, b := open(t, pgtest.SchemaDSN(t)), open(t, pgtest.SchemaDSN(t))
	ctx := context.Background()
	if err := a.Store(ctx, autocert.Entry{Key: "k", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, "k"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key stored in one schema is visible in another: %v", err)
	}
	unlock, err := a.Lock(ctx, "name")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	u, err := b.Lock(lctx, "name")
	if err != nil {
		t.Fatalf("a lock held in one schema blocks the same name in another: %v", err)
	}
	u()

	wctx, wcancel := context.WithCancel(ctx)
	keys := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- b.Watch(wctx, func(k string) { keys <- k }) }()
	defer func() { wcancel(); <-done }()
	waitListening(t, b, keys)
	if err := a.Store(ctx, autocert.Entry{Key: "from-a", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(ctx, autocert.Entry{Key: "from-b", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		if k == "from-a" {
			t.Fatal("Watch reported a key stored in another schema")
		}
		if k == "from-b" {
			break
		}
	}
}

// waitListening stores a key through s until the Watch sending to keys
// reports it: from then on it is listening. It drains keys.
func waitListening(t *testing.T, s *postgres.Storage, keys <-chan string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.Store(context.Background(), autocert.Entry{Key: "ready", Value: []byte("1")}); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(100 * time.Millisecond)
	drain:
		for {
			select {
			case k := <-keys:
				if k == "ready" {
					for len(keys) > 0 {
						<-keys
					}
					return
				}
			case <-timeout:
				break drain
			}
		}
	}
	t.Fatal("Watch reported nothing within 10 s")
}

// TestWatchLatency measures the time from the start of a Store on one
// instance to the Watch callback on another.
func TestWatchLatency(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	watcher, writer := open(t, dsn), open(t, dsn)
	type event struct {
		key string
		at  time.Time
	}
	events := make(chan event, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- watcher.Watch(ctx, func(k string) { events <- event{k, time.Now()} })
	}()
	defer func() { cancel(); <-done }()
	keys := make(chan string, 100)
	go func() {
		for e := range events {
			if e.key == "ready" {
				keys <- e.key
				continue
			}
			keys <- e.key + "@" + e.at.Format(time.RFC3339Nano)
		}
	}()
	defer close(events)
	waitListening(t, writer, keys)

	const n = 15
	var lat []time.Duration
	for i := range n {
		key := fmt.Sprintf("certs/latency-%d.crt", i)
		start := time.Now()
		if err := writer.Store(context.Background(), autocert.Entry{Key: key, Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-keys:
			k, at, _ := strings.Cut(got, "@")
			if k != key {
				t.Fatalf("Watch reported %q, want %q", k, key)
			}
			when, _ := time.Parse(time.RFC3339Nano, at)
			lat = append(lat, when.Sub(start))
		case <-time.After(time.Second):
			t.Fatalf("Watch did not report %q within a second", key)
		}
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(lat)
	t.Logf("Store on one instance -> Watch callback on another: median %v, min %v, max %v (%d samples)",
		lat[n/2], lat[0], lat[n-1], n)
	if lat[n-1] > time.Second {
		t.Errorf("slowest notification took %v, want under a second", lat[n-1])
	}
}

// TestLockFreedWhenHolderKilled takes a lock in a child process, kills the
// child with SIGKILL, and takes the lock in this process.
func TestLockFreedWhenHolderKilled(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	s := open(t, dsn) // creates the table before the child opens it
	const name = "certs/killed.crt"

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dsn, childLockEnv+"="+name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "locked\n" {
			cmd.Wait()
			t.Fatalf("child said %q; stderr: %s", l, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not take the lock within 30 s")
	}

	// The child holds it.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	u, err := s.Lock(ctx, name)
	cancel()
	if err == nil {
		u()
		t.Fatal("took the lock while the child held it")
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	cmd.Wait()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx, name)
	if err != nil {
		t.Fatalf("lock of a killed holder not free within 5 s: %v", err)
	}
	t.Logf("lock taken %v after the holder was killed", time.Since(killed))
	unlock()
}

// TestLockAfterServerRestart: a restart ends the holder's session and so
// releases its lock; another instance takes it, and the old holder's
// unlock function returns at once, harming nothing.
func TestLockAfterServerRestart(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	a, b := open(t, dsn), open(t, dsn)
	const name = "certs/restart.crt"
	unlockA, err := a.Lock(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Restart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlockB := lockRetrying(ctx, t, b, name)
	start := time.Now()
	unlockA()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("unlock of a lock lost in a restart took %v", d)
	}
	// B still holds it.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if u, err := a.Lock(ctx2, name); err == nil {
		u()
		t.Fatal("the old holder's unlock released the new holder's lock")
	}
	unlockB()
}

// lockRetrying takes a lock, retrying on errors other than ctx's end
// (the pool may hand out connections the restart broke).
func lockRetrying(ctx context.Context, t *testing.T, s *postgres.Storage, name string) func() {
	t.Helper()
	for {
		u, err := s.Lock(ctx, name)
		if err == nil {
			return u
		}
		if ctx.Err() != nil {
			t.Fatalf("Lock: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatchSurvivesRestart restarts the server under a running Watch: it
// reconnects, reports the empty key (re-read everything), then reports
// later changes; its log never shows the password.
func TestWatchSurvivesRestart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dsn := pgtest.SchemaDSN(t)
	var logs syncbuf.Buffer
	watcher := open(t, dsn, postgres.WithLogger(zerolog.New(&logs)))
	writer := open(t, dsn)
	keys := make(chan string, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- watcher.Watch(ctx, func(k string) { keys <- k }) }()
	waitListening(t, writer, keys)

	pgtest.Restart(t)
	restarted := time.Now()
	select {
	case k := <-keys:
		if k != "" {
			t.Fatalf("first report after the restart is %q, want the empty key", k)
		}
		t.Logf("Watch listening again %v after the restart finished", time.Since(restarted))
	case <-time.After(15 * time.Second):
		t.Fatalf("Watch did not reconnect within 15 s of the restart; log:\n%s", logs.String())
	}

	// The writer's pool may still hold connections the restart broke.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := writer.Store(context.Background(), autocert.Entry{Key: "after-restart", Value: []byte("x")})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Store after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case k := <-keys:
		if k != "after-restart" {
			t.Fatalf("Watch reported %q, want %q", k, "after-restart")
		}
	case <-time.After(time.Second):
		t.Fatal("Watch did not report a change made after the restart within a second")
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
	log := logs.String()
	if !strings.Contains(log, "watching for changes failed") {
		t.Errorf("the lost connection was not logged:\n%s", log)
	}
	if u, err := url.Parse(dsn); err != nil {
		t.Errorf("%s is not a URL", pgtest.EnvDSN)
	} else if pw, ok := u.User.Password(); ok && strings.Contains(log, pw) {
		t.Errorf("the log shows the password:\n%s", log)
	}
	watcher.Close()
	writer.Close()
}

// TestCloseEndsWatchAndReleasesLocks: Close makes a running Watch return
// ErrClosed and frees the locks still held.
func TestCloseEndsWatchAndReleasesLocks(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	a, b := open(t, dsn), open(t, dsn)
	if _, err := a.Lock(context.Background(), "held"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Watch(context.Background(), func(string) {}) }()
	time.Sleep(100 * time.Millisecond)
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, postgres.ErrClosed) {
			t.Errorf("Watch returned %v after Close, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch still running 5 s after Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := b.Lock(ctx, "held")
	if err != nil {
		t.Fatalf("lock of a closed Storage not free: %v", err)
	}
	u()
	if _, err := a.Load(context.Background(), "x"); !errors.Is(err, postgres.ErrClosed) {
		t.Errorf("Load after Close: %v, want ErrClosed", err)
	}
}

func password(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s must be a URL for this test", pgtest.EnvDSN)
	}
	pw, ok := u.User.Password()
	if !ok || len(pw) < 8 {
		t.Fatalf("%s must hold a password of 8 characters or more for this test", pgtest.EnvDSN)
	}
	return pw
}

// TestSecretNotInErrors opens the store with a wrong password and with
// malformed DSNs holding a password: no error shows the password, through
// Open or through a configuration's storage block.
func TestSecretNotInErrors(t *testing.T) {
	good := pgtest.DSN(t)
	u, err := url.Parse(good)
	if err != nil {
		t.Fatalf("%s must be a URL for this test", pgtest.EnvDSN)
	}
	real := password(t, good)
	const secret = "Sup3r-S3cret-pw"
	u.User = url.UserPassword(u.User.Username(), secret)
	wrong := u.String()
	host := u.Host

	cases := []struct {
		name, dsn string
		want      string // in the error
	}{
		{"wrong password", wrong, "password authentication failed"},
		{"wrong password, key=value", fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
			u.Hostname(), u.Port(), u.User.Username(), secret, strings.TrimPrefix(u.Path, "/")), "password authentication failed"},
		{"unescaped slash in password", "postgres://postgres:" + secret + "/x@" + host + "/db", "cannot parse"},
		{"unescaped hash in password", "postgres://postgres:" + secret + "#x@" + host + "/db", ""},
		{"bad port", "postgres://postgres:" + secret + "@" + u.Hostname() + ":notaport/db", "cannot parse"},
		{"bad escape", "postgres://postgres:" + secret + "%zz@" + host + "/db", "cannot parse"},
		{"key=value, bad port", "host=127.0.0.1 port=x password=" + secret, "cannot parse"},
		{"key=value, unterminated quote", "host=127.0.0.1 password='" + secret, "cannot parse"},
		{"unknown parameter", good + "&no_such_parameter=" + secret, "no_such_parameter"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var errs []error
			if s, err := postgres.Open(ctx, c.dsn); err != nil {
				errs = append(errs, err)
			} else {
				s.Close()
			}
			cfg := &autocert.Config{Storage: &autocert.StorageConfig{Type: "postgres", DSN: autocert.Redacted(c.dsn)}}
			if s, err := cfg.OpenStorage(ctx); err != nil {
				errs = append(errs, err)
			} else {
				s.(io.Closer).Close()
			}
			if len(errs) != 2 {
				t.Fatalf("a DSN with a wrong password or malformed opened a storage")
			}
			for _, err := range errs {
				for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
					for _, s := range []string{secret, url.QueryEscape(secret), real} {
						if strings.Contains(text, s) {
							t.Errorf("error shows the password: %s", text)
						}
					}
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %q does not say %q", err, c.want)
				}
			}
		})
	}
}

// TestWatchWhileServerDown stops the server for a while under two running
// Watch calls: one is cancelled while the server is down and returns at
// once; the other keeps retrying and, once the server is back, reports the
// empty key and then later changes.
func TestWatchWhileServerDown(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	var logs syncbuf.Buffer
	s := open(t, dsn, postgres.WithLogger(zerolog.New(&logs)))
	keys := make(chan string, 100)
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	ctxB, cancelB := context.WithCancel(context.Background())
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- s.Watch(ctxA, func(string) {}) }()
	go func() { doneB <- s.Watch(ctxB, func(k string) { keys <- k }) }()
	defer func() { cancelB(); <-doneB }()
	waitListening(t, s, keys)

	pgtest.Stop(t)
	stopped := true
	defer func() {
		if stopped {
			pgtest.Start(t)
		}
	}()
	time.Sleep(1500 * time.Millisecond) // several failed reconnections
	cancelA()
	select {
	case err := <-doneA:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch cancelled while the server is down returned %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Watch cancelled while the server is down still running after 2 s")
	}
	select {
	case err := <-doneB:
		t.Fatalf("Watch returned while the server was down: %v", err)
	default:
	}
	if n := strings.Count(logs.String(), "watching for changes failed"); n < 3 {
		t.Errorf("%d failed connections logged in 1.5 s down, want several:\n%s", n, logs.String())
	}

	pgtest.Start(t)
	stopped = false
	select {
	case k := <-keys:
		if k != "" {
			t.Fatalf("first report after the server came back is %q, want the empty key", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not reconnect within 10 s of the server's start")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Store(context.Background(), autocert.Entry{Key: "back", Value: []byte("x")})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Store after the server came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case k := <-keys:
		if k != "back" {
			t.Fatalf("Watch reported %q, want %q", k, "back")
		}
	case <-time.After(time.Second):
		t.Fatal("Watch did not report a change made after the server came back within a second")
	}
}
