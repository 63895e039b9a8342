// Package storagetest checks that an autocert.Storage keeps the contract
// documented on the interface, so that the Provider can rely on it. Call
// Run from a test of the storage's package:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) autocert.Storage { ... })
//	}
//
// The checks use relative slash-separated keys such as
// "certs/example.com.crt". They need nothing but the storage and take a few
// seconds; run them with -race.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
)

// Timing of the checks: how long a blocked Lock must stay blocked, and how
// long anything that should happen may take.
const (
	blockedFor = 300 * time.Millisecond
	patience   = 10 * time.Second
)

// Run checks the storage that open returns against the autocert.Storage
// contract, and against the autocert.Watcher contract when it implements
// it, in subtests.
//
// open is called one or more times in each subtest, with that subtest's t.
// Every call with the same t must return a new instance (as another process
// would open it) sharing one backing store with the other instances of that
// t; the store must be empty at the first call, and not shared with any
// other t. open closes what it opens when t ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) autocert.Storage) {
	t.Helper()
	checks := []struct {
		name string
		f    func(*testing.T, func(*testing.T) autocert.Storage)
	}{
		{"MissingKey", testMissingKey},
		{"StoreLoad", testStoreLoad},
		{"Overwrite", testOverwrite},
		{"OwnedSlices", testOwnedSlices},
		{"StoreSeveralAtomically", testStoreSeveral},
		{"StoreSeveralConcurrentReaders", testStoreSeveralConcurrent},
		{"StoreCancelled", testStoreCancelled},
		{"Delete", testDelete},
		{"Stat", testStat},
		{"LockExcludes", testLockExcludes},
		{"LockContext", testLockContext},
		{"LockOutlivesContext", testLockOutlivesContext},
		{"LockedCounter", testLockedCounter},
		{"ConcurrentUse", testConcurrentUse},
		{"Watch", testWatch},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.f(t, open) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustStore(t *testing.T, s autocert.Storage, entries ...autocert.Entry) {
	t.Helper()
	if err := s.Store(ctxFor(t), entries...); err != nil {
		t.Fatalf("Store: %v", err)
	}
}

// wantValue fails t unless key holds want in s.
func wantValue(t *testing.T, s autocert.Storage, key string, want []byte) {
	t.Helper()
	got, err := s.Load(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Load(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Load(%q) = %s, want %s", key, abbrev(got), abbrev(want))
	}
}

// wantMissing fails t unless key is missing from s, to Load and to Stat.
func wantMissing(t *testing.T, s autocert.Storage, key string) {
	t.Helper()
	if v, err := s.Load(ctxFor(t), key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(%q) of a missing key = %s, %v; want an error wrapping fs.ErrNotExist", key, abbrev(v), err)
	}
	if info, err := s.Stat(ctxFor(t), key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat(%q) of a missing key = %+v, %v; want an error wrapping fs.ErrNotExist", key, info, err)
	}
}

func abbrev(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func testMissingKey(t *testing.T, open func(*testing.T) autocert.Storage) {
	s := open(t)
	wantMissing(t, s, "certs/missing.crt")
	wantMissing(t, s, "never/created/dir/x.key")
	for range 2 {
		if err := s.Delete(ctxFor(t), "certs/missing.crt"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	}
	mustStore(t, s, autocert.Entry{Key: "certs/present.crt", Value: []byte("x")})
	wantMissing(t, s, "certs/present.cr")
	wantMissing(t, s, "certs/present.crt.bak")
}

func testStoreLoad(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	binary := make([]byte, 256*3)
	for i := range binary {
		binary[i] = byte(i)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16+3) // past 64 KiB
	values := map[string][]byte{
		"certs/example.com.crt":      []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		"certs/example.com.key":      binary,
		"certs/big/chain.pem":        big,
		"certs/empty":                {},
		"acme/accounts/acme.key":     []byte("account key"),
		"certs/_.wild.example.crt":   []byte("wildcard"),
		"certs/.last_failure-abcdef": []byte("2026-01-02T03:04:05Z\n"),
		"certs/ünïcode 'name'.crt":   []byte("unicode key"),
	}
	for key, v := range values {
		mustStore(t, s1, autocert.Entry{Key: key, Value: v, Private: strings.HasSuffix(key, ".key")})
	}
	if err := s1.Store(ctxFor(t)); err != nil {
		t.Fatalf("Store without entries: %v", err)
	}
	for key, v := range values {
		wantValue(t, s1, key, v)
		wantValue(t, s2, key, v) // another instance on the same store
	}
}

func testOverwrite(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	const key = "certs/example.com.crt"
	mustStore(t, s1, autocert.Entry{Key: key, Value: []byte("a much longer first value")})
	mustStore(t, s2, autocert.Entry{Key: key, Value: []byte("second")})
	wantValue(t, s1, key, []byte("second"))
	mustStore(t, s1, autocert.Entry{Key: key, Value: []byte("third, longer than the second")})
	wantValue(t, s2, key, []byte("third, longer than the second"))
}

func testOwnedSlices(t *testing.T, open func(*testing.T) autocert.Storage) {
	s := open(t)
	const key = "certs/owned.crt"
	v := []byte("original")
	mustStore(t, s, autocert.Entry{Key: key, Value: v})
	copy(v, "CHANGED!")
	wantValue(t, s, key, []byte("original"))
	got, err := s.Load(ctxFor(t), key)
	if err != nil {
		t.Fatal(err)
	}
	copy(got, "CHANGED!")
	wantValue(t, s, key, []byte("original"))
}

func testStoreSeveral(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	keys := []string{"certs/a.example.crt", "certs/a.example.key", "state/a.example.ari"}
	for round := range 3 {
		entries := make([]autocert.Entry, len(keys))
		for i, k := range keys {
			entries[i] = autocert.Entry{Key: k, Value: fmt.Appendf(nil, "%s round %d", k, round), Private: i == 1}
		}
		mustStore(t, s1, entries...)
		for _, e := range entries {
			wantValue(t, s2, e.Key, e.Value)
			wantValue(t, s1, e.Key, e.Value)
		}
	}
}

// testStoreSeveralConcurrent has one instance store pairs (cert n, key n)
// with n increasing while other instances read the pair in both orders. A
// Store that is atomic as a unit never lets the second read of a pair see
// an older round than the first, whatever the order in which the store
// writes the two values; a store that writes them one after the other does.
func testStoreSeveralConcurrent(t *testing.T, open func(*testing.T) autocert.Storage) {
	writer := open(t)
	readers := []autocert.Storage{open(t), open(t), writer}
	const certKey, keyKey = "certs/pair.crt", "certs/pair.key"
	pair := func(n int) []autocert.Entry {
		return []autocert.Entry{
			{Key: certKey, Value: fmt.Appendf(nil, "cert %d", n)},
			{Key: keyKey, Value: fmt.Appendf(nil, "key %d", n), Private: true},
		}
	}
	mustStore(t, writer, pair(0)...)
	ctx := ctxFor(t)

	round := func(key string, v []byte) (int, error) {
		prefix := "cert "
		if key == keyKey {
			prefix = "key "
		}
		n, err := strconv.Atoi(strings.TrimPrefix(string(v), prefix))
		if err != nil || !strings.HasPrefix(string(v), prefix) {
			return 0, fmt.Errorf("Load(%q) = %s: a torn or foreign value", key, abbrev(v))
		}
		return n, nil
	}
	var stop atomic.Bool
	var reads atomic.Int64
	errc := make(chan error, 2*len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		for _, order := range [][2]string{{certKey, keyKey}, {keyKey, certKey}} {
			wg.Go(func() {
				for !stop.Load() {
					var n [2]int
					for j, key := range order {
						v, err := r.Load(ctx, key)
						if err == nil {
							n[j], err = round(key, v)
						}
						if err != nil {
							errc <- fmt.Errorf("reader %d: %w", i, err)
							return
						}
					}
					if n[1] < n[0] {
						errc <- fmt.Errorf("reader %d read %s of round %d, then %s of round %d: Store of several entries is not atomic",
							i, order[0], n[0], order[1], n[1])
						return
					}
					reads.Add(1)
				}
			})
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	n := 1
	for ; n <= 200 && time.Now().Before(deadline); n++ {
		if err := writer.Store(ctx, pair(n)...); err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("Store round %d: %v", n, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if n < 10 || reads.Load() < 10 {
		t.Fatalf("only %d stores and %d pair reads in the time allowed: too slow to check anything", n-1, reads.Load())
	}
	t.Logf("%d stores, %d pair reads", n-1, reads.Load())
	wantValue(t, readers[0], certKey, fmt.Appendf(nil, "cert %d", n-1))
	wantValue(t, readers[1], keyKey, fmt.Appendf(nil, "key %d", n-1))
}

// testStoreCancelled stores with a context that has already ended: the
// outcome may be an error or success, but never half of the entries.
func testStoreCancelled(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	mustStore(t, s1, autocert.Entry{Key: "certs/c.crt", Value: []byte("old cert")}, autocert.Entry{Key: "certs/c.key", Value: []byte("old key")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s1.Store(ctx, autocert.Entry{Key: "certs/c.crt", Value: []byte("new cert")}, autocert.Entry{Key: "certs/c.key", Value: []byte("new key")})
	prefix := "new "
	if err != nil {
		prefix = "old "
		t.Logf("Store with an ended context failed (fine): %v", err)
	}
	wantValue(t, s2, "certs/c.crt", []byte(prefix+"cert"))
	wantValue(t, s2, "certs/c.key", []byte(prefix+"key"))
}

func testDelete(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	mustStore(t, s1,
		autocert.Entry{Key: "certs/d.crt", Value: []byte("cert")},
		autocert.Entry{Key: "certs/d.key", Value: []byte("key"), Private: true})
	if err := s2.Delete(ctxFor(t), "certs/d.crt"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantMissing(t, s1, "certs/d.crt")
	wantMissing(t, s2, "certs/d.crt")
	wantValue(t, s1, "certs/d.key", []byte("key"))
	if err := s1.Delete(ctxFor(t), "certs/d.crt"); err != nil {
		t.Fatalf("second Delete of a key: %v", err)
	}
	mustStore(t, s1, autocert.Entry{Key: "certs/d.crt", Value: []byte("again")})
	wantValue(t, s2, "certs/d.crt", []byte("again"))
}

func testStat(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	const key, slack = "certs/stat.crt", 5 * time.Second
	before := time.Now()
	mustStore(t, s1, autocert.Entry{Key: key, Value: make([]byte, 1234)})
	after := time.Now()
	info, err := s2.Stat(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Size != 1234 {
		t.Errorf("Stat(%q).Size = %d, want 1234", key, info.Size)
	}
	if info.Modified.Before(before.Add(-slack)) || info.Modified.After(after.Add(slack)) {
		t.Errorf("Stat(%q).Modified = %v, want between %v and %v", key, info.Modified, before, after)
	}
	time.Sleep(20 * time.Millisecond)
	mustStore(t, s2, autocert.Entry{Key: key, Value: []byte("short")})
	info2, err := s1.Stat(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info2.Size != 5 {
		t.Errorf("Stat(%q).Size after a rewrite = %d, want 5", key, info2.Size)
	}
	if info2.Modified.Before(info.Modified) {
		t.Errorf("Stat(%q).Modified went back after a rewrite: %v, then %v", key, info.Modified, info2.Modified)
	}
}

// lockAsync calls Lock in a goroutine and delivers its outcome.
func lockAsync(ctx context.Context, s autocert.Storage, name string) <-chan lockResult {
	c := make(chan lockResult, 1)
	go func() {
		unlock, err := s.Lock(ctx, name)
		c <- lockResult{unlock, err}
	}()
	return c
}

type lockResult struct {
	unlock func()
	err    error
}

func mustLock(t *testing.T, s autocert.Storage, name string) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	unlock, err := s.Lock(ctx, name)
	if err != nil {
		t.Fatalf("Lock(%q): %v", name, err)
	}
	return unlock
}

// wantBlocked fails t if c delivers within blockedFor.
func wantBlocked(t *testing.T, c <-chan lockResult, what string) {
	t.Helper()
	select {
	case r := <-c:
		if r.err == nil {
			r.unlock()
		}
		t.Fatalf("%s returned (error %v) while another holder held the lock", what, r.err)
	case <-time.After(blockedFor):
	}
}

// wantAcquired waits for c to deliver a held lock.
func wantAcquired(t *testing.T, c <-chan lockResult, what string) func() {
	t.Helper()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.unlock
	case <-time.After(patience):
		t.Fatalf("%s: still waiting %v after the lock was released", what, patience)
	}
	return nil
}

func testLockExcludes(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	const name = "certs/lock.crt"
	ctx := ctxFor(t)
	unlock := mustLock(t, s1, name)

	other := lockAsync(ctx, s2, name) // another instance
	same := lockAsync(ctx, s1, name)  // another goroutine of the holder's instance
	wantBlocked(t, other, "Lock by another instance")
	wantBlocked(t, same, "a second Lock by the same instance")

	// Other names are not blocked.
	free := mustLock(t, s2, "certs/other.crt")
	free()

	unlock()
	var second <-chan lockResult
	var firstUnlock func()
	select {
	case r := <-other:
		second = same
		firstUnlock = r.unlock
		if r.err != nil {
			t.Fatalf("Lock by another instance: %v", r.err)
		}
	case r := <-same:
		second = other
		firstUnlock = r.unlock
		if r.err != nil {
			t.Fatalf("second Lock by the same instance: %v", r.err)
		}
	case <-time.After(patience):
		t.Fatalf("no waiting Lock got the lock within %v of its release", patience)
	}
	wantBlocked(t, second, "Lock while the first waiter holds the lock")
	firstUnlock()
	wantAcquired(t, second, "the last waiting Lock")()
	// Released for good: it can be taken again at once.
	mustLock(t, s2, name)()
	mustLock(t, s1, name)()
}

func testLockContext(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	const name = "certs/ctx.crt"
	unlock := mustLock(t, s1, name)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	u, err := s2.Lock(ctx, name)
	if err == nil {
		u()
		t.Fatal("Lock returned the lock while another instance held it")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock when ctx timed out: %v; want an error wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Lock returned %v after its ctx timed out after 200ms", d)
	}

	ended, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if u, err := s2.Lock(ended, name); err == nil {
		u()
		t.Fatal("Lock with an ended ctx returned the lock while another instance held it")
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a cancelled ctx: %v; want an error wrapping context.Canceled", err)
	}

	// Abandoned waits leave nothing behind: once released, the lock is
	// free for the next one.
	unlock()
	start = time.Now()
	mustLock(t, s2, name)()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Lock of a released lock took %v after abandoned waits", d)
	}
}

func testLockOutlivesContext(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	const name = "certs/outlive.crt"
	ctx, cancel := context.WithCancel(context.Background())
	unlock, err := s1.Lock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cancel() // ctx bounds the wait only
	time.Sleep(50 * time.Millisecond)
	c := lockAsync(ctxFor(t), s2, name)
	wantBlocked(t, c, "Lock after the holder's ctx ended")
	unlock()
	unlock() // a second call does nothing
	wantAcquired(t, c, "Lock after release")()
	// The second unlock call did not release someone else's lock.
	u := mustLock(t, s1, name)
	unlock()
	wantBlocked(t, lockAsync(ctxFor(t), s2, name), "Lock after a stale unlock call")
	u()
}

// testLockedCounter increments a stored counter from goroutines of two
// instances, each under the lock: no increment may be lost.
func testLockedCounter(t *testing.T, open func(*testing.T) autocert.Storage) {
	instances := []autocert.Storage{open(t), open(t)}
	const key, workers, each = "state/counter", 4, 5
	mustStore(t, instances[0], autocert.Entry{Key: key, Value: []byte("0")})
	ctx := ctxFor(t)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		s := instances[w%len(instances)]
		wg.Go(func() {
			for range each {
				if err := increment(ctx, s, key); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	wantValue(t, instances[1], key, []byte(strconv.Itoa(workers*each)))
}

func increment(ctx context.Context, s autocert.Storage, key string) error {
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	v, err := s.Load(ctx, key)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return fmt.Errorf("counter %q: %w", v, err)
	}
	time.Sleep(time.Millisecond) // widen the window a missing lock would open
	return s.Store(ctx, autocert.Entry{Key: key, Value: []byte(strconv.Itoa(n + 1))})
}

// testConcurrentUse runs every operation at once from goroutines of two
// instances: run with -race. Every value read must be one that was written.
func testConcurrentUse(t *testing.T, open func(*testing.T) autocert.Storage) {
	instances := []autocert.Storage{open(t), open(t)}
	ctx := ctxFor(t)
	keys := []string{"certs/x.crt", "certs/y.crt", "certs/sub/z.crt"}
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for w := range 6 {
		s := instances[w%2]
		wg.Go(func() {
			for i := range 15 {
				key := keys[(w+i)%len(keys)]
				var err error
				switch i % 5 {
				case 0, 1:
					err = s.Store(ctx, autocert.Entry{Key: key, Value: fmt.Appendf(nil, "%s by %d at %d", key, w, i)})
				case 2:
					var v []byte
					v, err = s.Load(ctx, key)
					if err == nil && !bytes.HasPrefix(v, []byte(key+" by ")) {
						err = fmt.Errorf("Load(%q) = %s: not a value that was stored", key, abbrev(v))
					}
				case 3:
					_, err = s.Stat(ctx, key)
				case 4:
					if w%3 == 0 {
						err = s.Delete(ctx, key)
					} else {
						var unlock func()
						if unlock, err = s.Lock(ctx, key); err == nil {
							unlock()
						}
					}
				}
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// watchLog records the keys a Watch reports.
type watchLog struct {
	mu     sync.Mutex
	seen   map[string]int // reports not yet waited for, by key
	signal chan struct{}
}

func (l *watchLog) add(key string) {
	l.mu.Lock()
	l.seen[key]++
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// waitFor waits until key has been reported, and takes that report.
func (l *watchLog) waitFor(key string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		if l.seen[key] > 0 {
			l.seen[key]--
			l.mu.Unlock()
			return true
		}
		l.mu.Unlock()
		select {
		case <-l.signal:
		case <-deadline.C:
			return false
		}
	}
}

func testWatch(t *testing.T, open func(*testing.T) autocert.Storage) {
	s1, s2 := open(t), open(t)
	w, ok := s1.(autocert.Watcher)
	if !ok {
		t.Logf("%T does not implement autocert.Watcher: nothing to check", s1)
		return
	}
	log := &watchLog{seen: make(map[string]int), signal: make(chan struct{}, 1)}
	const probe = "certs/probe.crt"
	var probeSeen atomic.Value // what Load returned when the probe was reported
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(ctx, func(key string) {
			if key == probe {
				v, err := s1.Load(ctx, key)
				probeSeen.Store(fmt.Sprintf("%s %v", v, err))
			}
			log.add(key)
		})
	}()
	defer func() {
		cancel()
		<-done
	}()

	// Watch listens from some point after it starts: store until it
	// reports something.
	start := time.Now()
	for i := 0; ; i++ {
		mustStore(t, s2, autocert.Entry{Key: "state/ready", Value: []byte(strconv.Itoa(i))})
		if log.waitFor("state/ready", 200*time.Millisecond) {
			break
		}
		if time.Since(start) > patience {
			t.Fatalf("Watch reported no change within %v", patience)
		}
	}

	mustStore(t, s2, autocert.Entry{Key: probe, Value: []byte("probe value")})
	if !log.waitFor(probe, patience) {
		t.Fatalf("Watch did not report %q stored by another instance", probe)
	}
	if got := probeSeen.Load(); got != "probe value <nil>" {
		t.Errorf("when %q was reported, Load returned %v; want the stored value", probe, got)
	}

	mustStore(t, s2, autocert.Entry{Key: "certs/m.crt", Value: []byte("c")}, autocert.Entry{Key: "certs/m.key", Value: []byte("k")})
	for _, key := range []string{"certs/m.crt", "certs/m.key"} {
		if !log.waitFor(key, patience) {
			t.Fatalf("Watch did not report %q of a Store of several entries", key)
		}
	}

	if err := s2.Delete(ctxFor(t), "certs/m.crt"); err != nil {
		t.Fatal(err)
	}
	if !log.waitFor("certs/m.crt", patience) {
		t.Fatal("Watch did not report a key deleted by another instance")
	}
	mustStore(t, s1, autocert.Entry{Key: "certs/own.crt", Value: []byte("x")})
	if !log.waitFor("certs/own.crt", patience) {
		t.Fatal("Watch did not report a key stored by its own instance")
	}

	cancel()
	select {
	case err := <-done:
		done <- err // for the deferred receive
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v when its ctx was cancelled; want context.Canceled", err)
		}
	case <-time.After(patience):
		t.Fatalf("Watch still running %v after its ctx was cancelled", patience)
	}
}
