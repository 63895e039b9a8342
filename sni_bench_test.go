package autocert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// sniBenchSizes are the numbers of certificates held in the GetCert
// benchmarks.
var sniBenchSizes = []int{1, 100, 10000, 100000}

// sniChangeSizes are the numbers of certificates held in the benchmarks
// of a change of one.
var sniChangeSizes = []int{100, 1000, 10000, 100000}

// sniBenchAsks is the number of distinct server names a benchmark cycles
// through (a power of two), so the figures include cache misses as real
// traffic does.
const sniBenchAsks = 4096

// sniBench is the workload of the SNI benchmarks at one size: a provider
// holding n certificates, half with an exact name and half with a
// wildcard (n = 1: one certificate with one of each), the same names in a
// plain map for the lower bound and in the index as it was before it
// became incremental, and the server names asked for.
type sniBench struct {
	p     *Provider
	certs []*tls.Certificate          // served by p, by position
	names [][]string                  // the names of each
	lower map[string]*tls.Certificate // exact names and "*.parent" keys
	old   *rebuildIndex               // the index before issue 15, holding certs
	main  *tls.Certificate
	asks  map[string][]string // by sub-benchmark: exact, wildcard, miss, mixedcase, mixed
}

// sniBenchNames returns the names of certificate i of n: its own exact
// name or wildcard, with tag in the label before the domain.
func sniBenchNames(n, i int, tag string) []string {
	var names []string
	if n == 1 || i%2 == 0 {
		names = append(names, fmt.Sprintf("svc-%d%s.example.com", i, tag))
	}
	if n == 1 || i%2 == 1 {
		names = append(names, fmt.Sprintf("*.tenant-%d%s.example.net", i, tag))
	}
	return names
}

// sniNamesOnly is a certificate for the benchmarks of the index: the main
// certificate's chain and key, and a leaf holding only names, all the
// index reads (a signed certificate each would make building 100,000
// take minutes).
func sniNamesOnly(main *tls.Certificate, names ...string) *tls.Certificate {
	return &tls.Certificate{Certificate: main.Certificate, PrivateKey: main.PrivateKey, Leaf: &x509.Certificate{DNSNames: names}}
}

func newSNIBench(b *testing.B, n int) *sniBench {
	b.Helper()
	key := sniKey(b)
	// The extras are made directly: the index needs only their
	// certificate, and NewProvider's config merging costs O(n) per extra.
	p := sniProvider(b, 0)
	for i := 1; i < n; i++ {
		p.certs = append(p.certs, &certificate{name: fmt.Sprintf("extra[%d]", i-1), sni: &p.sni})
	}
	p.sni.certs = p.certs
	w := &sniBench{p: p, lower: make(map[string]*tls.Certificate), asks: make(map[string][]string)}
	var exact, wild []string // wild holds the parents of the wildcards
	for i, q := range p.certs {
		names := sniBenchNames(n, i, "")
		var c *tls.Certificate
		if i == 0 {
			c = sniCert(b, key, "", names...)
			w.main = c
		} else {
			c = sniNamesOnly(w.main, names...)
		}
		q.served.Store(c) // indexed at once below, as the first update does
		w.certs = append(w.certs, c)
		w.names = append(w.names, names)
		for _, name := range names {
			w.lower[name] = c
			if parent, ok := strings.CutPrefix(name, "*."); ok {
				wild = append(wild, parent)
			} else {
				exact = append(exact, name)
			}
		}
	}
	p.sni.update(p.certs[0])
	w.old = &rebuildIndex{served: slices.Clone(w.certs), snap: newRebuildSnapshot(slices.Clone(w.certs))}

	r := mrand.New(mrand.NewPCG(1, uint64(n)))
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

	// The workload is what it says: hits hit, misses miss, in all three.
	for kind, asks := range w.asks {
		for _, name := range asks {
			hello := &tls.ClientHelloInfo{ServerName: name}
			got, _ := p.GetCert(hello)
			hit := got != w.main || strings.HasPrefix(strings.ToLower(name), "svc-0.") ||
				strings.Contains(strings.ToLower(name), ".tenant-0.")
			if want := !strings.Contains(name, "nowhere"); hit != want {
				b.Fatalf("%s: GetCert(%q) hit = %v", kind, name, hit)
			}
			if old, _ := w.old.getCert(hello); old != got {
				b.Fatalf("%s: the index before issue 15 and GetCert disagree on %q", kind, name)
			}
			if kind != "mixedcase" && lowerBound(w.lower, w.main, name) != got {
				b.Fatalf("%s: lower bound and GetCert disagree on %q", kind, name)
			}
		}
	}
	return w
}

// sniLoop runs f(i) for i = 0, 1, ... under b.Loop and, where the CPU
// time of a thread is known, also reports it per operation as
// "cpu-ns/op": on a shared machine the time the benchmark waits for a CPU
// inflates ns/op, not cpu-ns/op. f must not allocate (the garbage
// collector's work on other threads would be left out).
func sniLoop(b *testing.B, f func(i int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu0 time.Duration
	ok := false
	n := 0
	for i := 0; b.Loop(); i++ {
		if i == 0 {
			cpu0, ok = sniThreadCPU()
		}
		f(i)
		n++
	}
	if cpu1, ok1 := sniThreadCPU(); ok && ok1 && n > 0 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(n), "cpu-ns/op")
	}
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
				sniLoop(b, func(i int) {
					hello.ServerName = asks[i&(sniBenchAsks-1)]
					if c, err := w.p.GetCert(hello); c == nil || err != nil {
						b.Fatal(c, err)
					}
				})
			})
		}
		asks := w.asks["mixed"]
		b.Run(fmt.Sprintf("parallel/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				hello := &tls.ClientHelloInfo{}
				for i := mrand.IntN(sniBenchAsks); pb.Next(); i++ {
					hello.ServerName = asks[i&(sniBenchAsks-1)]
					if c, err := w.p.GetCert(hello); c == nil || err != nil {
						b.Fatal(c, err)
					}
				}
			})
		})
	}
}

// BenchmarkGetCertRebuild is BenchmarkGetCert on the index as it was
// before issue 15 (one map, rebuilt at every change), for comparison in
// the same run.
func BenchmarkGetCertRebuild(b *testing.B) {
	for _, n := range sniBenchSizes {
		w := newSNIBench(b, n)
		for _, kind := range []string{"exact", "wildcard", "miss", "mixedcase"} {
			asks := w.asks[kind]
			b.Run(fmt.Sprintf("%s/n=%d", kind, n), func(b *testing.B) {
				b.ReportAllocs()
				hello := &tls.ClientHelloInfo{}
				sniLoop(b, func(i int) {
					hello.ServerName = asks[i&(sniBenchAsks-1)]
					if c, err := w.old.getCert(hello); c == nil || err != nil {
						b.Fatal(c, err)
					}
				})
			})
		}
		asks := w.asks["mixed"]
		b.Run(fmt.Sprintf("parallel/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				hello := &tls.ClientHelloInfo{}
				for i := mrand.IntN(sniBenchAsks); pb.Next(); i++ {
					hello.ServerName = asks[i&(sniBenchAsks-1)]
					if c, err := w.old.getCert(hello); c == nil || err != nil {
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
				sniLoop(b, func(i int) {
					if lowerBound(w.lower, w.main, asks[i&(sniBenchAsks-1)]) == nil {
						b.Fatal("nil")
					}
				})
			})
		}
		asks := w.asks["mixed"]
		b.Run(fmt.Sprintf("parallel/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := mrand.IntN(sniBenchAsks); pb.Next(); i++ {
					if lowerBound(w.lower, w.main, asks[i&(sniBenchAsks-1)]) == nil {
						b.Fatal("nil")
					}
				}
			})
		})
	}
}

// BenchmarkSNIPublish measures one change of the certificate of one
// provider among n, as the SNI index takes it: "renew" replaces it with a
// certificate of the same names (a renewal, or a reload of what another
// instance stored), "rename" with one whose name differs, and
// "remove-add" removes it and serves it again (two changes an operation).
// "incremental" is the index GetCert reads, changed through
// certificate.setCert as obtain and reload serve; "rebuild" is the index
// before issue 15, which rebuilt its map from every certificate.
func BenchmarkSNIPublish(b *testing.B) {
	const changed = 256 // the providers changed in turn
	for _, n := range sniChangeSizes {
		w := newSNIBench(b, n)
		var pos []int
		for k := range min(changed, n) {
			pos = append(pos, k*n/min(changed, n))
		}
		for _, kind := range []string{"renew", "rename", "remove-add"} {
			// versions[k] are the two certificates position pos[k] alternates
			// between (remove-add: the certificate and none).
			versions := make([][2]*tls.Certificate, len(pos))
			for k, at := range pos {
				switch kind {
				case "renew":
					versions[k] = [2]*tls.Certificate{sniNamesOnly(w.main, w.names[at]...), w.certs[at]}
				case "rename":
					versions[k] = [2]*tls.Certificate{sniNamesOnly(w.main, sniBenchNames(n, at, "-renamed")...), w.certs[at]}
				case "remove-add":
					versions[k] = [2]*tls.Certificate{nil, w.certs[at]}
				}
			}
			b.Run(fmt.Sprintf("%s/incremental/n=%d", kind, n), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					k := i % len(pos)
					q := w.p.certs[pos[k]]
					q.setCert(versions[k][i/len(pos)%2])
					if kind == "remove-add" {
						q.setCert(versions[k][1])
					}
				}
				for k, at := range pos {
					w.p.certs[at].setCert(versions[k][1])
				}
			})
			b.Run(fmt.Sprintf("%s/rebuild/n=%d", kind, n), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					k := i % len(pos)
					w.old.publish(pos[k], versions[k][i/len(pos)%2])
					if kind == "remove-add" {
						w.old.publish(pos[k], versions[k][1])
					}
				}
				for k, at := range pos {
					w.old.publish(at, versions[k][1])
				}
			})
		}
		runtime.KeepAlive(w)
	}
}

// BenchmarkSNIPublishStartup measures serving n certificates one after
// the other into an index that holds none, as the start-up and
// Provider.Load do: one operation publishes all n. It also reports the
// memory the index keeps per certificate: "index-B/cert", all of it
// (snapshot and the writer's bookkeeping), and "snapshot-B/cert", the
// tries GetCert reads (the rebuild index keeps only its map). The rebuild
// index runs up to n = 1,000: it is quadratic.
func BenchmarkSNIPublishStartup(b *testing.B) {
	for _, n := range sniChangeSizes {
		w := newSNIBench(b, n)
		// The certificates of a Provider of n, as New makes them.
		certs := make([]*certificate, n)
		for i := range certs {
			certs[i] = &certificate{name: w.p.certs[i].name}
		}
		var x *sniIndex
		start := func() {
			x = &sniIndex{certs: certs}
			for _, c := range certs {
				c.sni = x
				c.served.Store(nil)
			}
		}
		load := func() {
			for i, c := range certs {
				c.setCert(w.certs[i])
			}
		}
		b.Run(fmt.Sprintf("incremental/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				start()
				b.StartTimer()
				load()
			}
			b.StopTimer()
			start()
			base := sniHeap()
			load()
			total := sniHeap() - base
			b.ReportMetric(float64(total)/float64(n), "index-B/cert")
			b.ReportMetric(float64(x.snap.Load().bytes())/float64(n), "snapshot-B/cert")
		})
		if n > 1000 {
			continue
		}
		b.Run(fmt.Sprintf("rebuild/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var old *rebuildIndex
			for b.Loop() {
				old = &rebuildIndex{served: make([]*tls.Certificate, n)}
				for i, c := range w.certs {
					old.publish(i, c)
				}
			}
			old = nil
			base := sniHeap()
			old = &rebuildIndex{served: make([]*tls.Certificate, n)}
			for i, c := range w.certs {
				old.publish(i, c)
			}
			total := sniHeap() - base
			runtime.KeepAlive(old)
			b.ReportMetric(float64(total)/float64(n), "index-B/cert")
		})
	}
}

// sniHeap returns the bytes of the heap in use by live objects.
func sniHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// bytes returns what the tries of s take: their node arrays, leaves
// included, rounded to the sizes the allocator gives (the names
// themselves are the certificates' strings when already in canonical
// form, and are not counted).
func (s *sniSnapshot) bytes() int {
	var walk func(t *sniSlot) int
	walk = func(t *sniSlot) int {
		size := sniAllocSize(cap(t.kids) * int(unsafe.Sizeof(sniSlot{})))
		for i := range t.kids {
			if k := &t.kids[i]; k.kids != nil {
				size += walk(k)
			}
		}
		return size
	}
	size := 0
	for _, t := range []*sniTrie{&s.exact, &s.wild} {
		size += sniAllocSize(cap(t.roots) * int(unsafe.Sizeof(sniSlot{})))
		for i := range t.roots {
			size += walk(&t.roots[i])
		}
	}
	return size
}

// sniAllocSize rounds n up roughly as the allocator's size classes do.
func sniAllocSize(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= 64:
		return (n + 15) &^ 15
	case n <= 1024:
		return (n + 127) &^ 127
	}
	return (n + 1023) &^ 1023
}

// BenchmarkSNICertMemory parses certificates and keys as a Provider
// serves them (a P-256 key, as certificate_key_type EC256 makes, and a
// leaf with one name followed by its intermediate, as an ACME CA sends
// them) and reports what each keeps: "served-B/cert" is the memory of a
// tls.Certificate with its Leaf and PrivateKey, the PEM text read from
// storage being dropped as the Provider drops it, "der-B/cert" the part
// of it that is the DER of the chain, and "signed-B/cert" the memory once
// each key has signed a handshake.
func BenchmarkSNICertMemory(b *testing.B) {
	const n = 1000
	ca := newSNIBenchCA(b)
	type pair struct{ cert, key []byte }
	pairs := make([]pair, n)
	der := 0
	for i := range pairs {
		pairs[i].cert, pairs[i].key = ca.issue(b, fmt.Sprintf("host-%d.example.com", i))
		if i == 0 {
			for rest := pairs[i].cert; ; {
				var blk *pem.Block
				if blk, rest = pem.Decode(rest); blk == nil {
					break
				}
				der += len(blk.Bytes)
			}
		}
	}
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p := pairs[i%n]
			if _, err := parseKeyPair(p.cert, p.key); err != nil {
				b.Fatal(err)
			}
		}
		served := make([]*tls.Certificate, n)
		base := sniHeap()
		for i, p := range pairs {
			c, err := parseKeyPair(p.cert, p.key)
			if err != nil {
				b.Fatal(err)
			}
			served[i] = c
		}
		total := sniHeap() - base
		b.ReportMetric(float64(total)/n, "served-B/cert")
		b.ReportMetric(float64(der), "der-B/cert")
		// A handshake signs with the key: crypto/ecdsa then keeps the key
		// a second time, in the form it signs with, for as long as the
		// key lives.
		digest := make([]byte, 32)
		for _, c := range served {
			if _, err := c.PrivateKey.(crypto.Signer).Sign(rand.Reader, digest, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
		signed := sniHeap() - base
		runtime.KeepAlive(served)
		b.ReportMetric(float64(signed)/n, "signed-B/cert")
	})
}

// sniBenchCA is a root and an intermediate issuing P-256 leaves.
type sniBenchCA struct {
	inter    *x509.Certificate
	interKey *ecdsa.PrivateKey
	interPEM []byte
}

func newSNIBenchCA(b *testing.B) *sniBenchCA {
	rootKey, interKey := sniKey(b).(*ecdsa.PrivateKey), sniKey(b).(*ecdsa.PrivateKey)
	now := time.Now()
	ca := func(cn string, serial int64) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{Organization: []string{"autocert bench"}, CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageCertSign,
			BasicConstraintsValid: true, IsCA: true}
	}
	root := ca("bench root", 1)
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, rootKey.Public(), rootKey)
	if err != nil {
		b.Fatal(err)
	}
	if root, err = x509.ParseCertificate(rootDER); err != nil {
		b.Fatal(err)
	}
	interDER, err := x509.CreateCertificate(rand.Reader, ca("bench intermediate", 2), root, interKey.Public(), rootKey)
	if err != nil {
		b.Fatal(err)
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		b.Fatal(err)
	}
	return &sniBenchCA{inter, interKey, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER})}
}

// issue returns the PEM chain and key of a new leaf for name.
func (ca *sniBenchCA) issue(b *testing.B, name string) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, key.Public(), ca.interKey)
	if err != nil {
		b.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.interPEM...)
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
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
