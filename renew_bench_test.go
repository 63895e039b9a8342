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
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/autocert-dev/autocert/internal/scalecerts"
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

// idleCPU returns the CPU time the process uses per second of a span of
// d in which the benchmark itself does nothing. The heap is collected and
// returned to the system first, so that the runtime's background work
// after building a large set (sweeping, scavenging) does not count.
func idleCPU(d time.Duration) float64 {
	debug.FreeOSMemory()
	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(d)
	return float64(cpuTime()-cpu0) / time.Since(wall0).Seconds()
}

// waitIdle waits until the scheduler has looked at every certificate once
// and no worker runs.
func waitIdle(b *testing.B, p *Provider) {
	s := p.sched
	deadline := time.Now().Add(time.Minute)
	for {
		// Looked at every 10 ms, stopping at the first entry not done:
		// holding the lock longer would slow the pass measured.
		s.mu.Lock()
		done := s.active == 0
		for _, e := range s.entries {
			if !done {
				break
			}
			done = e.rs.loaded && !e.rs.busy
		}
		s.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("scheduler never idle")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkScheduler10k runs one scheduler over 10,000 certificates (no
// CA, no storage: due times only); see benchScheduler.
func BenchmarkScheduler10k(b *testing.B) {
	benchScheduler(b, 10_000, func() *Provider { return benchProvider(b, 10_000) }, time.Second)
}

// BenchmarkScheduler100k runs one scheduler over 100,000 certificates:
// with no storage, as BenchmarkScheduler10k ("none"), and with the
// certificates stored as files in one directory ("files"): a
// FileStorage, whose files the Provider follows (file-system
// notifications and the periodic look), read by the first pass. The idle
// CPU of "files" is measured over two periodic looks.
func BenchmarkScheduler100k(b *testing.B) {
	const n = 100_000
	b.Run("none", func(b *testing.B) {
		benchScheduler(b, n, func() *Provider { return benchProvider(b, n) }, time.Second)
	})
	b.Run("files", func(b *testing.B) {
		benchScheduler(b, n, func() *Provider { return filesProvider(b, n) }, 2*fileCheckInterval)
	})
}

// BenchmarkSchedulerFirstPass is BenchmarkScheduler100k's "files" at
// n = 100, 1,000, 10,000 and 100,000 (AUTOCERT_SCALE_SIZES, such as
// "100,1000", replaces the sizes): the first pass of one scheduler over n
// certificates stored as files in one directory, to see how it grows
// with n (first-pass-ms, first-pass-cpu-ms), with its memory per
// certificate; the idle CPU is measured over one second.
func BenchmarkSchedulerFirstPass(b *testing.B) {
	sizes := []int{100, 1_000, 10_000, 100_000}
	if env := os.Getenv("AUTOCERT_SCALE_SIZES"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("AUTOCERT_SCALE_SIZES: %q is not a size", f)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			benchScheduler(b, n, func() *Provider { return filesProvider(b, n) }, time.Second)
		})
	}
}

// filesProvider starts a Provider with n "pseudo" certificates stored in
// files of one directory (internal/scalecerts: valid a year, none due).
func filesProvider(b *testing.B, n int) *Provider {
	set, err := scalecerts.Get(n)
	if err != nil {
		b.Fatal(err)
	}
	cert, key := set.Shared(0)
	cfg := &Config{Provider: ProviderPseudo, Domains: []string{set.Name(0)}, CertPath: cert, KeyPath: key,
		Extra: make([]ConfigExtra, 0, n-1)}
	for i := 1; i < n; i++ {
		cert, key := set.Shared(i)
		cfg.Extra = append(cfg.Extra, ConfigExtra{Domains: []string{set.Name(i)}, CertPath: cert, KeyPath: key})
	}
	ctx := context.Background()
	p, err := New(ctx, cfg, WithLogger(zerolog.Nop()))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.ObtainAll(ctx, false); err != nil {
		b.Fatal(err)
	}
	return p
}

// benchScheduler runs one scheduler over the n certificates of the
// Provider build makes. It reports, once the scheduler is idle, the
// goroutines it added (with files: the file following, its event queue
// and the notifications' reader too), the memory the scheduler state
// (and the file following) takes per certificate, the time of its first
// pass over all of them and the CPU time the process used meanwhile (all
// goroutines: with files, the first look at every file too; on a loaded
// machine the steadier of the two), and the CPU the process uses per second of an
// idle span of idle with the scheduler running and, for comparison,
// before it started; each operation re-plans one certificate (as a
// renewal does) and lets the scheduler re-arm its timer.
func benchScheduler(b *testing.B, n int, build func() *Provider, idle time.Duration) {
	base := heapInUse()
	p := build()
	built := heapInUse()
	g0 := runtime.NumGoroutine()
	baseCPU := idleCPU(idle)

	ctx, cancel := context.WithCancel(context.Background())
	started, cpu0 := time.Now(), cpuTime()
	p.ScheduleRenewalAll(ContextParent(ctx))
	waitIdle(b, p)
	firstPass, firstPassCPU := time.Since(started), cpuTime()-cpu0
	goroutines := runtime.NumGoroutine() - g0
	scheduled := heapInUse()

	schedCPU := idleCPU(idle)

	s := p.sched
	all := s.entries
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() { // b.Loop: the set-up above runs once
		q := all[i%n]
		s.mu.Lock()
		s.planLocked(q, s.clock.Now())
		s.mu.Unlock()
		s.poke()
		i++
	}
	b.StopTimer()
	cancel()
	<-p.SchedulerDone()

	b.ReportMetric(float64(goroutines), "goroutines")
	// The scheduler's state of a certificate lives in its entry; the
	// queue adds a pointer.
	b.ReportMetric(float64(unsafe.Sizeof(renewState{}))+float64(int64(scheduled)-int64(built))/float64(n), "sched-B/cert")
	b.ReportMetric(float64(int64(scheduled)-int64(base))/float64(n), "total-B/cert")
	b.ReportMetric(float64(firstPass.Milliseconds()), "first-pass-ms")
	b.ReportMetric(float64(firstPassCPU.Milliseconds()), "first-pass-cpu-ms")
	b.ReportMetric(schedCPU, "idle-cpu-ns/s")
	b.ReportMetric(baseCPU, "no-sched-cpu-ns/s")
}
