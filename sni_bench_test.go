package autocert

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"testing"
)

// sniBenchSizes are the numbers of certificates held in the benchmarks.
var sniBenchSizes = []int{1, 100, 10000}

// sniBenchAsks is the number of distinct server names a benchmark cycles
// through (a power of two), so the figures include cache misses as real
// traffic does.
const sniBenchAsks = 4096

// sniBench is the workload of the GetCert benchmarks at one size: a
// provider holding n certificates, half with an exact name and half with
// a wildcard (n = 1: one certificate with one of each), the same names in
// a plain map for the lower bound, and the server names asked for.
type sniBench struct {
	p     *Provider
	lower map[string]*tls.Certificate // exact names and "*.parent" keys
	main  *tls.Certificate
	asks  map[string][]string // by sub-benchmark: exact, wildcard, miss, mixedcase, mixed
}

func newSNIBench(b *testing.B, n int) *sniBench {
	b.Helper()
	key := sniKey(b)
	// The extras are made directly: publish needs only their certificate,
	// and NewProvider's config merging costs O(n) per extra.
	p := sniProvider(b, 0)
	for i := 1; i < n; i++ {
		p.certs = append(p.certs, &certificate{name: fmt.Sprintf("extra[%d]", i-1), sni: &p.sni})
	}
	p.sni.certs = p.certs
	w := &sniBench{p: p, lower: make(map[string]*tls.Certificate), asks: make(map[string][]string)}
	var exact, wild []string // wild holds the parents of the wildcards
	for i, q := range p.certs {
		var names []string
		if n == 1 || i%2 == 0 {
			names = append(names, fmt.Sprintf("svc-%d.example.com", i))
		}
		if n == 1 || i%2 == 1 {
			names = append(names, fmt.Sprintf("*.tenant-%d.example.net", i))
		}
		c := sniCert(b, key, "", names...)
		q.served.Store(c) // published once below: n rebuilds would be quadratic
		for _, name := range names {
			w.lower[name] = c
			if parent, ok := strings.CutPrefix(name, "*."); ok {
				wild = append(wild, parent)
			} else {
				exact = append(exact, name)
			}
		}
	}
	p.sni.publish()
	w.main = p.certs[0].current()

	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range sniBenchAsks {
		e := exact[r.IntN(len(exact))]
		wl := fmt.Sprintf("h%d.%s", i, wild[r.IntN(len(wild))])
		miss := fmt.Sprintf("h%d.nowhere-%d.example.org", i, i)
		// A fresh copy, as a server name parsed from a ClientHello is: the
		// lookups compare bytes, never just pointers.
		e = strings.Clone(e)
		w.asks["exact"] = append(w.asks["exact"], e)
		w.asks["wildcard"] = append(w.asks["wildcard"], wl)
		w.asks["miss"] = append(w.asks["miss"], miss)
		w.asks["mixed"] = append(w.asks["mixed"], []string{e, wl, miss}[i%3])
		// Mixed case, and a trailing dot on every other name.
		m := []byte([]string{e, wl}[i%2])
		for j := range m {
			if r.IntN(2) == 0 && 'a' <= m[j] && m[j] <= 'z' {
				m[j] -= 'a' - 'A'
			}
		}
		if i%2 == 0 {
			m = append(m, '.')
		}
		w.asks["mixedcase"] = append(w.asks["mixedcase"], string(m))
	}

	// The workload is what it says: hits hit, misses miss, in both.
	for kind, asks := range w.asks {
		for _, name := range asks {
			got, _ := p.GetCert(&tls.ClientHelloInfo{ServerName: name})
			hit := got != w.main || strings.HasPrefix(strings.ToLower(name), "svc-0.") ||
				strings.Contains(strings.ToLower(name), ".tenant-0.")
			if want := !strings.Contains(name, "nowhere"); hit != want {
				b.Fatalf("%s: GetCert(%q) hit = %v", kind, name, hit)
			}
			if kind != "mixedcase" && lowerBound(w.lower, w.main, name) != got {
				b.Fatalf("%s: lower bound and GetCert disagree on %q", kind, name)
			}
		}
	}
	return w
}

// BenchmarkGetCert measures GetCert on the handshake path.
func BenchmarkGetCert(b *testing.B) {
	for _, n := range sniBenchSizes {
		w := newSNIBench(b, n)
		for _, kind := range []string{"exact", "wildcard", "miss", "mixedcase"} {
			asks := w.asks[kind]
			b.Run(fmt.Sprintf("%s/n=%d", kind, n), func(b *testing.B) {
				b.ReportAllocs()
				hello := &tls.ClientHelloInfo{}
				for i := 0; b.Loop(); i++ {
					hello.ServerName = asks[i&(sniBenchAsks-1)]
					if c, err := w.p.GetCert(hello); c == nil || err != nil {
						b.Fatal(c, err)
					}
				}
			})
		}
		asks := w.asks["mixed"]
		b.Run(fmt.Sprintf("parallel/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				hello := &tls.ClientHelloInfo{}
				for i := rand.IntN(sniBenchAsks); pb.Next(); i++ {
					hello.ServerName = asks[i&(sniBenchAsks-1)]
					if c, err := w.p.GetCert(hello); c == nil || err != nil {
						b.Fatal(c, err)
					}
				}
			})
		})
	}
}

// lowerBound is the practical lower bound of a lookup on the same names:
// one map, the name as given, then the name with its first label replaced
// by "*". It neither folds case nor drops a trailing dot.
func lowerBound(m map[string]*tls.Certificate, main *tls.Certificate, name string) *tls.Certificate {
	if c, ok := m[name]; ok {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		var buf [maxHostLen + 1]byte
		buf[0] = '*'
		n := copy(buf[1:], name[i:])
		if c, ok := m[string(buf[:n+1])]; ok {
			return c
		}
	}
	return main
}

// BenchmarkGetCertMapLowerBound is lowerBound on the workload of
// BenchmarkGetCert, for comparison in the same run.
func BenchmarkGetCertMapLowerBound(b *testing.B) {
	for _, n := range sniBenchSizes {
		w := newSNIBench(b, n)
		for _, kind := range []string{"exact", "wildcard", "miss"} {
			asks := w.asks[kind]
			b.Run(fmt.Sprintf("%s/n=%d", kind, n), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if lowerBound(w.lower, w.main, asks[i&(sniBenchAsks-1)]) == nil {
						b.Fatal("nil")
					}
				}
			})
		}
		asks := w.asks["mixed"]
		b.Run(fmt.Sprintf("parallel/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := rand.IntN(sniBenchAsks); pb.Next(); i++ {
					if lowerBound(w.lower, w.main, asks[i&(sniBenchAsks-1)]) == nil {
						b.Fatal("nil")
					}
				}
			})
		})
	}
}

// BenchmarkGetCertHandshake measures full TLS 1.3 handshakes (ECDSA P-256,
// no resumption) over an in-memory connection: a server choosing through
// GetCert among n certificates, against one with a static
// tls.Config.Certificates holding the one certificate both serve.
func BenchmarkGetCertHandshake(b *testing.B) {
	const server = "svc-0.example.com"
	run := func(b *testing.B, srv *tls.Config, roots *x509.CertPool) {
		srv.MinVersion = tls.VersionTLS13
		srv.SessionTicketsDisabled = true
		cli := &tls.Config{ServerName: server, RootCAs: roots, MinVersion: tls.VersionTLS13}
		b.ReportAllocs()
		for b.Loop() {
			c, s := net.Pipe()
			done := make(chan error, 1)
			go func() { done <- tls.Server(s, srv).Handshake() }()
			err := tls.Client(c, cli).Handshake()
			if serr := <-done; err == nil {
				err = serr
			}
			c.Close()
			s.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	}
	for _, n := range []int{1, 10000} {
		// Both servers run with the n certificates held in memory, so that
		// they pay the same garbage collection costs.
		w := newSNIBench(b, n)
		roots := x509.NewCertPool()
		roots.AddCert(w.main.Leaf)
		b.Run(fmt.Sprintf("static/n=%d", n), func(b *testing.B) {
			run(b, &tls.Config{Certificates: []tls.Certificate{*w.main}}, roots)
		})
		b.Run(fmt.Sprintf("getcert/n=%d", n), func(b *testing.B) {
			run(b, &tls.Config{GetCertificate: w.p.GetCert}, roots)
		})
		runtime.KeepAlive(w)
	}
}
