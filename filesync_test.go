package autocert

import (
	"context"
	"crypto/tls"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestFileStorageFollowedByScheduler: with the file layout, a certificate
// that another process stores in the files (here, a FileStorage of its
// own, as a second process has) is served by a running Provider, with a
// CertReloaded event, and its files are not written again: through
// file-system notifications, and through the periodic look when
// notifications are off (a network file system).
func TestFileStorageFollowedByScheduler(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Option
	}{
		{"notifications", func(s *settings) { s.fileCheck = time.Hour }},
		{"periodic look", func(s *settings) { s.noFileNotify, s.fileCheck = true, 50*time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sharedTestConfig(t.TempDir())
			events := make(chan Event, 16)
			rec := NotifierFunc(func(_ context.Context, e Event) error { events <- e; return nil })
			p, err := NewProvider(cfg, nil, nil, WithLogger(zerolog.Nop()), WithNotifier(rec), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.ObtainCertIfNotExistsAll(); err != nil {
				t.Fatal(err)
			}
			first := servedSerial(t, p)
			scheduleShared(t, p)
			for i := range 2 { // twice: the watch stays on after a swap
				before, err := os.Stat(cfg.CertPath)
				if err != nil {
					t.Fatal(err)
				}
				// A distinct modification time for the periodic look.
				time.Sleep(10 * time.Millisecond)
				other := storeOther(t, &FileStorage{}, cfg)
				if other == first {
					t.Fatal("the same serial twice")
				}
				waitServed(t, p, other, 20*time.Second)
				ev := waitEvent(t, events, KindReloaded).(*CertReloaded)
				if ev.Serial != other || ev.Provider != "main" {
					t.Errorf("swap %d: reloaded event %+v, want serial %s", i, ev, other)
				}
				after, err := os.Stat(cfg.CertPath)
				if err != nil {
					t.Fatal(err)
				}
				if os.SameFile(before, after) {
					t.Errorf("swap %d: the certificate file was not replaced", i)
				}
				time.Sleep(2 * fileSettle)
				again, err := os.Stat(cfg.CertPath)
				if err != nil || !os.SameFile(after, again) || !again.ModTime().Equal(after.ModTime()) {
					t.Errorf("swap %d: the swapped-in certificate's file was written again", i)
				}
				checkCertFiles(t, cfg, other)
			}
		})
	}
}

// waitEvent returns the next event of kind, skipping others.
func waitEvent(t *testing.T, events <-chan Event, kind EventKind) Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind() == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event", kind)
			return nil
		}
	}
}

// TestFileStoragePeriodicLookInTurn: with more certificates than one
// periodic look takes, the looks take them in turn, so a certificate
// stored by another process is served whichever it is: here without
// notifications, with looks of 2 certificates (every 40 ms) over 12.
func TestFileStoragePeriodicLookInTurn(t *testing.T) {
	const n = 12
	if b := fileCheckBatch(40 * time.Millisecond); b != 2 {
		t.Fatalf("a look every 40 ms takes %d certificates, want 2", b)
	}
	dir := t.TempDir()
	name := func(i int) string { return fmt.Sprintf("c%d.turn.test", i) }
	cfg := &Config{Provider: ProviderPseudo, Domains: []string{name(0)},
		CertPath: filepath.Join(dir, "c0.crt"), KeyPath: filepath.Join(dir, "c0.key")}
	for i := 1; i < n; i++ {
		cfg.Extra = append(cfg.Extra, ConfigExtra{Domains: []string{name(i)},
			CertPath: filepath.Join(dir, fmt.Sprintf("c%d.crt", i)), KeyPath: filepath.Join(dir, fmt.Sprintf("c%d.key", i))})
	}
	events := make(chan Event, 4*n)
	rec := NotifierFunc(func(_ context.Context, e Event) error { events <- e; return nil })
	p, err := NewProvider(cfg, nil, nil, WithLogger(zerolog.Nop()), WithNotifier(rec),
		func(s *settings) { s.noFileNotify, s.fileCheck = true, 40*time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	scheduleShared(t, p)
	for _, i := range []int{n - 1, 0, n / 2} {
		other := &Config{Domains: []string{name(i)}, CertPath: cfg.CertPath, KeyPath: cfg.KeyPath}
		if i > 0 {
			other.CertPath, other.KeyPath = cfg.Extra[i-1].CertPath, cfg.Extra[i-1].KeyPath
		}
		time.Sleep(10 * time.Millisecond) // a distinct modification time
		serial := storeOther(t, &FileStorage{}, other)
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: name(i)})
			if err == nil && serialHex(c.Leaf) == serial {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("certificate %d stored by another process not served", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		ev := waitEvent(t, events, KindReloaded).(*CertReloaded)
		if ev.Serial != serial {
			t.Errorf("certificate %d: reloaded event %+v, want serial %s", i, ev, serial)
		}
	}
}

// statCounter is a Storage that holds nothing and counts the Stat calls
// of each key.
type statCounter struct {
	mu    sync.Mutex
	stats map[string]int
}

func (*statCounter) Load(context.Context, string) ([]byte, error) { return nil, fs.ErrNotExist }
func (*statCounter) Store(context.Context, ...Entry) error        { return nil }
func (*statCounter) Delete(context.Context, string) error         { return nil }
func (*statCounter) Lock(context.Context, string) (func(), error) { return func() {}, nil }

func (s *statCounter) Stat(_ context.Context, key string) (KeyInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats[key]++
	return KeyInfo{}, fs.ErrNotExist
}

// TestFileCheckBatch: a periodic look takes interval × fileCheckRate
// files, two per certificate, at least one certificate; and the looks
// take the certificates in turn, each look at most that many.
func TestFileCheckBatch(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		want     int
	}{
		{fileCheckInterval, 250},
		{time.Second, 50},
		{100 * time.Millisecond, 5},
		{time.Millisecond, 1},
		{time.Hour, 180_000},
	} {
		if got := fileCheckBatch(tc.interval); got != tc.want {
			t.Errorf("fileCheckBatch(%v) = %d, want %d", tc.interval, got, tc.want)
		}
	}

	const n, batch = 7, 3
	st := &statCounter{stats: map[string]int{}}
	s := &scheduler{}
	for i := range n {
		cfg := &Config{CertPath: fmt.Sprintf("c%d.crt", i), KeyPath: fmt.Sprintf("c%d.key", i)}
		s.entries = append(s.entries, &entry{c: &certificate{cfg: cfg, storage: st}})
	}
	fsync := &fileSync{s: s, stamps: map[*entry]fileStamp{}, batch: batch}
	total := 0
	for look := 1; look <= 3; look++ {
		fsync.checkNext(context.Background())
		sum := 0
		for _, c := range st.stats {
			sum += c
		}
		if sum-total > 2*batch {
			t.Errorf("look %d looked at %d files, want at most %d", look, sum-total, 2*batch)
		}
		total = sum
	}
	// 9 certificates looked at over 7: the first two twice.
	for i := range n {
		want := 1
		if i < 9-n {
			want = 2
		}
		for _, key := range []string{fmt.Sprintf("c%d.crt", i), fmt.Sprintf("c%d.key", i)} {
			if got := st.stats[key]; got != want {
				t.Errorf("%s looked at %d times in 3 looks, want %d", key, got, want)
			}
		}
	}
}
