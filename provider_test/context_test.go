package provider_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/rs/zerolog"
)

// silentResolver returns the address of a UDP socket that reads DNS
// questions and never answers: a resolver behind a broken network, where
// every propagation check waits.
func silentResolver(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// cancelAt returns an option reporting progress that cancels the context
// the first time step is reported, and a channel closed then.
func cancelAt(step autocert.Step, cancel context.CancelFunc) (autocert.Option, <-chan struct{}) {
	var once sync.Once
	reached := make(chan struct{})
	return autocert.WithProgress(func(pr autocert.Progress) {
		if pr.Step == step {
			once.Do(func() { cancel(); close(reached) })
		}
	}), reached
}

// TestCancelStopsWaiting: ending the context of a call stops what it
// waits for, with the context's error: ObtainAll waiting for a DNS record
// that the resolvers never confirm (lego alone would wait for its
// propagation timeout, then fail with "time limit exceeded"), RenewAll in
// the same wait, and ObtainAll waiting for the storage lock another holder
// keeps. A call given up records no failure: the next start orders at
// once, and the certificate served before is still served.
func TestCancelStopsWaiting(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	records := func() []string { m, _ := filepath.Glob(filepath.Join(dir, ".last_failure-*")); return m }
	cfg := ca.Config("example.com")
	cfg.CertPath, cfg.KeyPath, cfg.ACMEKeyPath = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), filepath.Join(dir, "acme.key")
	live := cfg.Resolvers
	cfg.Resolvers = []string{silentResolver(t)}

	t.Run("obtain", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		progress, reached := cancelAt(autocert.StepPropagation, cancel)
		p := newProvider(t, cfg, progress, autocert.WithLogger(zerolog.Nop()))
		err := p.ObtainAll(ctx, false)
		<-reached
		if !errors.Is(err, context.Canceled) || !errors.Is(err, autocert.ErrObtain) {
			t.Fatalf("ObtainAll cancelled while waiting for propagation: %v; want context.Canceled and ErrObtain", err)
		}
		if m := records(); len(m) != 0 {
			t.Errorf("a given-up obtain left a failure record: %v", m)
		}
		if st := p.RenewalStatus()[0]; !st.LastFailure.IsZero() {
			t.Errorf("a given-up obtain counts as a failure: %+v", st)
		}
		if _, err := os.Stat(cfg.CertPath); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a certificate was stored after the context ended: %v", err)
		}
	})

	cfg.Resolvers = live
	first := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if err := first.ObtainAll(context.Background(), false); err != nil {
		t.Fatalf("the next start did not order at once: %v", err)
	}
	servedBefore := served(t, first, ca.Roots(), "example.com")

	t.Run("renew", func(t *testing.T) {
		cfg := *cfg
		cfg.Resolvers = []string{silentResolver(t)}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		progress, reached := cancelAt(autocert.StepPropagation, cancel)
		p := newProvider(t, &cfg, progress, autocert.WithLogger(zerolog.Nop()))
		if err := p.LoadCertsAll(); err != nil {
			t.Fatal(err)
		}
		err := p.RenewAll(ctx)
		<-reached
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("RenewAll cancelled while waiting for propagation: %v; want context.Canceled", err)
		}
		if got := served(t, p, ca.Roots(), "example.com"); !got.Equal(servedBefore) {
			t.Error("a given-up renewal replaced the certificate served")
		}
		if m := records(); len(m) != 0 {
			t.Errorf("a given-up renewal left a failure record: %v", m)
		}
	})

	t.Run("lock", func(t *testing.T) {
		cfg := *cfg
		cfg.Domains = []string{"other.example.com"} // to order: the stored one no longer fits
		st := &autocert.FileStorage{}
		unlock, err := st.Lock(context.Background(), cfg.CertPath)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		p := newProvider(t, &cfg, autocert.WithStorage(st), autocert.WithLogger(zerolog.Nop()))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := p.ObtainAll(ctx, false); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ObtainAll while another holds the lock: %v; want context.DeadlineExceeded", err)
		}
	})
}
