//go:build unix

package autocert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"math/big"
	mrand "math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
)

// nothingStored is a Storage holding nothing: the scheduler finds no
// failure or renewal records.
type nothingStored struct{}

func (nothingStored) Load(context.Context, string) ([]byte, error) { return nil, fs.ErrNotExist }
func (nothingStored) Store(context.Context, ...Entry) error        { return nil }
func (nothingStored) Delete(context.Context, string) error         { return nil }
func (nothingStored) Stat(context.Context, string) (KeyInfo, error) {
	return KeyInfo{}, fs.ErrNotExist
}
func (nothingStored) Lock(context.Context, string) (func(), error) { return func() {}, nil }

// benchProvider builds a Provider with n certificates (main and n-1
// extras) of 90 days, issued over the last 59 days, so that their renewals
// fall over the next two months and none is due.
func benchProvider(b *testing.B, n int) *Provider {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s := settings{logger: zerolog.Nop(), storage: nothingStored{}, clock: systemClock{}}
	now := time.Now()
	p := &Provider{}
	for i := range n {
		name := fmt.Sprintf("host%d.example.com", i)
		cfg := &Config{Provider: ProviderPseudo, Domains: []string{name},
			CertPath: "certs/" + name + ".crt", KeyPath: "certs/" + name + ".key"}
		c := &certificate{name: fmt.Sprintf("extra[%d]", i-1), cfg: cfg, storage: s.storage, clock: s.clock,
			logger: s.logger, sni: &p.sni,
			failureKey: failureKey(cfg.CertPath, cfg.KeyPath), ariKey: ariKey(cfg.CertPath, cfg.KeyPath)}
		if i == 0 {
			c.name = "main"
		}
		notBefore := now.Add(-time.Duration(mrand.Int64N(int64(59 * day))))
		leaf := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), DNSNames: cfg.Domains,
			NotBefore: notBefore, NotAfter: notBefore.Add(90 * day)}
		c.served.Store(&tls.Certificate{Leaf: leaf, PrivateKey: key})
		p.certs = append(p.certs, c)
	}
	p.sni.certs = p.certs
	p.sched = newScheduler(&s, p.certs)
	return p
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleCPU returns the CPU time the process uses per second of a second
// in which the benchmark itself does nothing.
func idleCPU() float64 {
	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(time.Second)
	return float64(cpuTime()-cpu0) / time.Since(wall0).Seconds()
}

// waitIdle waits until the scheduler has looked at every certificate once
// and no worker runs.
func waitIdle(b *testing.B, p *Provider) {
	s := p.sched
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		done := s.active == 0
		for _, e := range s.entries {
			done = done && e.rs.loaded && !e.rs.busy
		}
		s.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("scheduler never idle")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkScheduler10k runs one scheduler over 10,000 certificates (no
// CA: due times only). It reports, once the scheduler is idle, the
// goroutines it added, the memory the scheduler state takes per
// certificate, the time of its first pass over all of them, and the CPU
// the process uses in an idle second with the scheduler running and,
// for comparison, before it started; each operation re-plans one certificate (as a renewal
// does) and lets the scheduler re-arm its timer.
func BenchmarkScheduler10k(b *testing.B) {
	const n = 10_000
	base := heapInUse()
	p := benchProvider(b, n)
	built := heapInUse()
	g0 := runtime.NumGoroutine()
	baseCPU := idleCPU()

	ctx, cancel := context.WithCancel(context.Background())
	started := time.Now()
	p.ScheduleRenewalAll(ContextParent(ctx))
	waitIdle(b, p)
	firstPass := time.Since(started)
	goroutines := runtime.NumGoroutine() - g0
	scheduled := heapInUse()

	schedCPU := idleCPU()

	s := p.sched
	all := s.entries
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		q := all[i%n]
		s.mu.Lock()
		s.planLocked(q, s.clock.Now())
		s.mu.Unlock()
		s.poke()
	}
	b.StopTimer()
	cancel()
	<-p.SchedulerDone()

	b.ReportMetric(float64(goroutines), "goroutines")
	// The scheduler's state of a certificate lives in its entry; the
	// queue adds a pointer.
	b.ReportMetric(float64(unsafe.Sizeof(renewState{}))+float64(int64(scheduled)-int64(built))/n, "sched-B/cert")
	b.ReportMetric(float64(int64(scheduled)-int64(base))/n, "total-B/cert")
	b.ReportMetric(float64(firstPass.Milliseconds()), "first-pass-ms")
	b.ReportMetric(schedCPU, "idle-cpu-ns/s")
	b.ReportMetric(baseCPU, "no-sched-cpu-ns/s")
}
