package postgres_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/pgtest"
	"github.com/autocert-dev/autocert/internal/scalecerts"
	"github.com/autocert-dev/autocert/storage/postgres"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/rs/zerolog"
)

// BenchmarkStart is the scale benchmark of the root package
// (scale_bench_test.go there) with the certificates kept in PostgreSQL: a
// server's start with n certificates stored, New and ObtainAll, beside
// the floor of parsing them (scalecerts.Floor) in the same run. The
// certificates (internal/scalecerts) are put in a schema of the
// benchmark's own first; their files are there too, holding the same
// certificates, so the start reads them and writes none. Run it with the
// throwaway server:
//
//	source .ci/postgres.sh
//	go test -run '^$' -bench 'Start/n=10000$' -benchmem -count 1 ./storage/postgres/
//
// AUTOCERT_SCALE_SIZES (such as "100,1000") replaces the sizes. Besides
// ns/op, B/op and allocs/op, it reports floor-ms, x-floor (the start over
// the floor), alloc-B/cert, allocs/cert (what a start allocates per
// certificate) and heap-B/cert (the heap the started Provider keeps per
// certificate).
func BenchmarkStart(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			set, err := scalecerts.Get(n)
			if err != nil {
				b.Fatal(err)
			}
			pairs, err := set.ReadAll()
			if err != nil {
				b.Fatal(err)
			}
			dsn := pgtest.SchemaDSN(b)
			fill(b, dsn, set, pairs)
			cfg := scaleConfig(set, dsn)
			ctx := context.Background()
			start := func() (*autocert.Provider, error) {
				p, err := autocert.New(ctx, cfg, autocert.WithLogger(zerolog.Nop()))
				if err != nil {
					return nil, err
				}
				if err := p.ObtainAll(ctx, false); err != nil {
					return nil, errors.Join(err, p.Close())
				}
				return p, nil
			}
			runScale(b, set, pairs, start)
		})
	}
}

// scaleDNS is the DNS provider of the benchmark's config: it never orders.
const scaleDNS = "pg-scalebench-dns"

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

// fill stores every certificate and key of set in the database of dsn,
// under the paths of the shared layout, a few hundred per Store.
func fill(b *testing.B, dsn string, set *scalecerts.Set, pairs []scalecerts.Pair) {
	b.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const chunk = 500
	for lo := 0; lo < set.N; lo += chunk {
		var entries []autocert.Entry
		for i := lo; i < min(lo+chunk, set.N); i++ {
			cert, key := set.Shared(i)
			entries = append(entries,
				autocert.Entry{Key: cert, Value: pairs[i].Cert},
				autocert.Entry{Key: key, Value: pairs[i].Key, Private: true})
		}
		if err := st.Store(ctx, entries...); err != nil {
			b.Fatal(err)
		}
	}
}

// scaleConfig is the config of the set kept in the database of dsn: the
// main block holds certificate 0 and extra[i-1] certificate i.
func scaleConfig(set *scalecerts.Set, dsn string) *autocert.Config {
	cert, key := set.Shared(0)
	cfg := &autocert.Config{
		Provider:    scaleDNS,
		Email:       "admin@example.com",
		Domains:     []string{set.Name(0)},
		CertPath:    cert,
		KeyPath:     key,
		ACMEKeyPath: filepath.Join(set.Dir, "acme-postgres.key"), // a key in the database
		CADirURL:    "https://ca.invalid/directory",
		Storage:     &autocert.StorageConfig{Type: postgres.StorageType, DSN: autocert.Redacted(dsn)},
		Extra:       make([]autocert.ConfigExtra, 0, set.N-1),
	}
	for i := 1; i < set.N; i++ {
		cert, key := set.Shared(i)
		cfg.Extra = append(cfg.Extra, autocert.ConfigExtra{Domains: []string{set.Name(i)}, CertPath: cert, KeyPath: key})
	}
	return cfg
}

// runScale measures start: the floor, a warm start kept to measure the
// heap it holds, then timed starts; and reports the scale metrics.
func runScale(b *testing.B, set *scalecerts.Set, pairs []scalecerts.Pair, start func() (*autocert.Provider, error)) {
	b.Helper()
	n := set.N
	floor, err := scalecerts.Floor(pairs)
	if err != nil {
		b.Fatal(err)
	}
	base := heapAlloc()
	p, err := start()
	if err != nil {
		b.Fatal(err)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: set.Name(i)})
		if err != nil || c.Leaf == nil || c.Leaf.DNSNames[0] != set.Name(i) {
			b.Fatalf("GetCert(%s) after the start: %v", set.Name(i), err)
		}
	}
	held := int64(heapAlloc()) - int64(base)
	runtime.KeepAlive(p)
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}

	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	b.ResetTimer()
	iters := 0
	for b.Loop() {
		p, err := start()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
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

// heapAlloc is the heap in use after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
