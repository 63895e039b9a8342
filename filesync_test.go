package autocert

import (
	"context"
	"os"
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
