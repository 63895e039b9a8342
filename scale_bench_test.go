package autocert_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/scalecerts"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/rs/zerolog"
)

// The scale benchmarks start a Provider with n certificates stored, one
// per extra, through the public API, and compare it with the floor of
// that work measured in the same run: parsing the n certificates and keys
// (scalecerts.Floor). The certificates are made once per machine and kept
// under os.TempDir() (internal/scalecerts); the first run at 100,000 makes
// them, which takes a while. Each start runs on files already in the page
// cache (a warm start, made once before timing, also creates the account
// key). Run them one size at a time, for example:
//
//	go test -run '^$' -bench 'Start/shared/n=10000$' -benchmem -count 1 .
//
// AUTOCERT_SCALE_SIZES (such as "100,1000,4000") replaces the sizes.
//
// Besides ns/op, B/op and allocs/op (one start of all n), each reports:
// floor-ms, the floor; x-floor, the start over the floor; alloc-B/cert and
// allocs/cert, what a start allocates per certificate; heap-B/cert, the
// heap the started Provider keeps per certificate.

// scaleDNS is the DNS provider of the benchmarks' configs: they never
// order, so it is never asked for anything.
const scaleDNS = "scalebench-dns"

func init() {
	autocert.RegisterProvider(scaleDNS, autocert.DNSProviderFunc(func(autocert.Options) (challenge.Provider, error) {
		return scalecerts.NoDNS{}, nil
	}))
}

// scaleSizes returns the numbers of certificates of the benchmarks
// (scalecerts.Sizes).
func scaleSizes(b *testing.B) []int {
	sizes, err := scalecerts.Sizes()
	if err != nil {
		b.Fatal(err)
	}
	return sizes
}

// scaleLayouts are the two file layouts: a directory per certificate, and
// every certificate in one directory.
var scaleLayouts = []struct {
	name  string
	paths func(s *scalecerts.Set, i int) (certPath, keyPath string)
}{
	{"dirs", (*scalecerts.Set).PerDir},
	{"shared", (*scalecerts.Set).Shared},
}

// scaleSet returns the set of n certificates, and their PEM texts.
func scaleSet(b *testing.B, n int) (*scalecerts.Set, []scalecerts.Pair) {
	b.Helper()
	set, err := scalecerts.Get(n)
	if err != nil {
		b.Fatal(err)
	}
	pairs, err := set.ReadAll()
	if err != nil {
		b.Fatal(err)
	}
	return set, pairs
}

// scaleConfig is the config of n certificates: the main block holds
// certificate 0 and extra[i-1] certificate i, at the paths of the layout.
// The account key is kept beside the set, one per layout name.
func scaleConfig(set *scalecerts.Set, layout string, paths func(*scalecerts.Set, int) (string, string)) *autocert.Config {
	cert, key := paths(set, 0)
	cfg := &autocert.Config{
		Provider:    scaleDNS,
		Email:       "admin@example.com",
		Domains:     []string{set.Name(0)},
		CertPath:    cert,
		KeyPath:     key,
		ACMEKeyPath: filepath.Join(set.Dir, "acme-"+layout+".key"),
		CADirURL:    "https://ca.invalid/directory",
		Extra:       make([]autocert.ConfigExtra, 0, set.N-1),
	}
	for i := 1; i < set.N; i++ {
		cert, key := paths(set, i)
		cfg.Extra = append(cfg.Extra, autocert.ConfigExtra{Domains: []string{set.Name(i)}, CertPath: cert, KeyPath: key})
	}
	return cfg
}

// scaleStart starts a Provider as a server does (New, then ObtainAll) or
// as a tool that only reads does (New, then Load).
func scaleStart(ctx context.Context, cfg *autocert.Config, load bool, opts ...autocert.Option) (*autocert.Provider, error) {
	p, err := autocert.New(ctx, cfg, append([]autocert.Option{autocert.WithLogger(zerolog.Nop())}, opts...)...)
	if err != nil {
		return nil, err
	}
	if load {
		err = p.Load(ctx)
	} else {
		err = p.ObtainAll(ctx, false)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// checkServes checks that p serves the certificates of the set, by the
// name of a few of them.
func checkServes(b *testing.B, p *autocert.Provider, set *scalecerts.Set) {
	b.Helper()
	for _, i := range []int{0, set.N / 2, set.N - 1} {
		c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: set.Name(i)})
		if err != nil {
			b.Fatal(err)
		}
		if c.Leaf == nil || len(c.Leaf.DNSNames) != 1 || c.Leaf.DNSNames[0] != set.Name(i) {
			b.Fatalf("GetCert(%s) answers a certificate for %v", set.Name(i), c.Leaf.DNSNames)
		}
	}
}

// heapAlloc is the heap in use after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// scaleRun is one scale benchmark at one size: how to start (and stop)
// what is measured.
type scaleRun struct {
	set   *scalecerts.Set
	pairs []scalecerts.Pair
	start func() (*autocert.Provider, error)
}

// run measures r: the floor, a warm start kept to measure the heap it
// holds, then timed starts, and reports the metrics of the scale
// benchmarks.
func (r scaleRun) run(b *testing.B) {
	b.Helper()
	n := r.set.N
	floor, err := scalecerts.Floor(r.pairs)
	if err != nil {
		b.Fatal(err)
	}
	base := heapAlloc()
	p, err := r.start()
	if err != nil {
		b.Fatal(err)
	}
	checkServes(b, p, r.set)
	held := int64(heapAlloc()) - int64(base)
	runtime.KeepAlive(p)
	p.Close()

	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	b.ResetTimer()
	iters := 0
	for b.Loop() {
		p, err := r.start()
		if err != nil {
			b.Fatal(err)
		}
		p.Close()
		iters++
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	per := time.Duration(int64(b.Elapsed()) / int64(iters))
	b.ReportMetric(float64(floor.Microseconds())/1e3, "floor-ms")
	b.ReportMetric(float64(per)/float64(floor), "x-floor")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(iters*n), "alloc-B/cert")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(iters*n), "allocs/cert")
	b.ReportMetric(float64(held)/float64(n), "heap-B/cert")
}

// BenchmarkStart is a server's start with n certificates stored as files:
// New and ObtainAll, which finds every certificate stored and fitting.
func BenchmarkStart(b *testing.B) {
	benchmarkFiles(b, false)
}

// BenchmarkLoad is a tool's start with n certificates stored as files
// (what `autocert status` and `renew` do): New and Load.
func BenchmarkLoad(b *testing.B) {
	benchmarkFiles(b, true)
}

func benchmarkFiles(b *testing.B, load bool) {
	for _, layout := range scaleLayouts {
		b.Run(layout.name, func(b *testing.B) {
			for _, n := range scaleSizes(b) {
				b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
					set, pairs := scaleSet(b, n)
					cfg := scaleConfig(set, layout.name, layout.paths)
					ctx := context.Background()
					scaleRun{set: set, pairs: pairs, start: func() (*autocert.Provider, error) {
						return scaleStart(ctx, cfg, load)
					}}.run(b)
				})
			}
		})
	}
}

// BenchmarkValidate validates a config with n certificates (n-1 extras),
// as New does first; ns/cert shows whether it grows linearly.
func BenchmarkValidate(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			set := &scalecerts.Set{N: n, Dir: b.TempDir()} // paths only: Validate reads no certificate
			cfg := scaleConfig(set, "shared", (*scalecerts.Set).Shared)
			b.ReportAllocs()
			iters := 0
			for b.Loop() {
				if err := cfg.Validate(); err != nil {
					b.Fatal(err)
				}
				iters++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters*n), "ns/cert")
		})
	}
}

// BenchmarkMergeExtraConfig merges each of n-1 extras with the main block,
// as New and Validate do for every extra; ns/cert shows whether a merge
// costs more with more extras.
func BenchmarkMergeExtraConfig(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			set := &scalecerts.Set{N: n, Dir: b.TempDir()}
			cfg := scaleConfig(set, "shared", (*scalecerts.Set).Shared)
			if err := cfg.Validate(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			iters := 0
			for b.Loop() {
				for i := range cfg.Extra {
					_ = autocert.MergeExtraConfig(cfg, &cfg.Extra[i])
				}
				iters++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters*n), "ns/cert")
		})
	}
}

// BenchmarkNew builds the Provider of a config with n certificates (New
// alone: the config validated and copied, every extra merged, the account
// key read, the certificates made; none read): the part of a start before
// ObtainAll reads the certificates.
func BenchmarkNew(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			set := &scalecerts.Set{N: n, Dir: b.TempDir()}
			cfg := scaleConfig(set, "shared", (*scalecerts.Set).Shared)
			ctx := context.Background()
			b.ReportAllocs()
			iters := 0
			for b.Loop() {
				p, err := autocert.New(ctx, cfg, autocert.WithLogger(zerolog.Nop()))
				if err != nil {
					b.Fatal(err)
				}
				p.Close()
				iters++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters*n), "ns/cert")
		})
	}
}
