package autocert

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
)

// TestForcedRoundBoundsItsWorkers: a forced renewal of many certificates
// (RenewAll after a mass revocation) runs on at most maxWorkers goroutines,
// not one per certificate, and renews every one of them, both with the
// scheduler running and without it.
func TestForcedRoundBoundsItsWorkers(t *testing.T) {
	const n = 40
	for _, running := range []bool{false, true} {
		t.Run(fmt.Sprintf("scheduler running=%v", running), func(t *testing.T) {
			dir := t.TempDir()
			name := func(i int) string { return fmt.Sprintf("h%d.force.test", i) }
			cfg := &Config{Provider: ProviderPseudo, Domains: []string{name(0)},
				CertPath: filepath.Join(dir, "0.crt"), KeyPath: filepath.Join(dir, "0.key")}
			for i := 1; i < n; i++ {
				cfg.Extra = append(cfg.Extra, ConfigExtra{Domains: []string{name(i)},
					CertPath: filepath.Join(dir, fmt.Sprint(i)+".crt"), KeyPath: filepath.Join(dir, fmt.Sprint(i)+".key")})
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, err := New(ctx, cfg, WithLogger(zerolog.Nop()))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.ObtainAll(ctx, false); err != nil {
				t.Fatal(err)
			}
			before := make([]*tls.Certificate, n)
			for i, c := range p.certs {
				before[i] = c.current()
			}
			if running {
				p.Start(ctx)
				defer func() { cancel(); <-p.SchedulerDone() }()
			}

			round := p.sched.force(ctx)
			if round == nil {
				t.Fatal("force started nothing")
			}
			p.sched.mu.Lock()
			active := p.sched.active
			p.sched.mu.Unlock()
			if active > maxWorkers {
				t.Errorf("the forced round of %d certificates started %d workers, want at most %d", n, active, maxWorkers)
			}
			<-round.done
			if err := p.sched.forcedErrors(); err != nil {
				t.Fatal(err)
			}
			for i, c := range p.certs {
				if cur := c.current(); cur == before[i] || cur.Leaf.Equal(before[i].Leaf) {
					t.Errorf("%s was not renewed", name(i))
				}
			}
		})
	}
}
