package autocert

import (
	"crypto/tls"
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkMemoryPerCertificate reports what a Provider keeps per
// certificate it serves, for n certificates of one CA (a P-256 key, as
// certificate_key_type EC256 makes, and a leaf of one name followed by its
// intermediate, as an ACME CA sends them), each measured on the live heap
// after garbage collection:
//
//   - "parsed-B/cert": a tls.Certificate as tls.X509KeyPair and
//     parseKeyPair leave it (chain DER, parsed leaf, key), each chain
//     holding its own copy of the intermediate;
//   - "served-B/cert": the same certificates as the Provider keeps them,
//     the intermediate shared (sniIndex.share);
//   - "index-B/cert": the SNI index of their names (snapshot and the
//     writer's bookkeeping);
//   - "der-B/cert": the DER of one chain, leaf and intermediate, for
//     scale.
//
// One operation parses and shares one certificate.
func BenchmarkMemoryPerCertificate(b *testing.B) {
	ca := newSNIBenchCA(b)
	for _, n := range []int{1000, 10000} {
		pairs := make([]memPair, n)
		for i := range pairs {
			pairs[i].cert, pairs[i].key = ca.issue(b, fmt.Sprintf("host-%d.example.com", i))
		}
		parse := func(x *sniIndex, p memPair) *tls.Certificate {
			c, err := parseKeyPair(p.cert, p.key)
			if err != nil {
				b.Fatal(err)
			}
			x.share(c)
			return c
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var x sniIndex
			for i := 0; b.Loop(); i++ {
				parse(&x, pairs[i%n])
			}

			before, _, _ := keepCerts(b, n, parse, pairs, false)
			after, index, der := keepCerts(b, n, parse, pairs, true)
			b.ReportMetric(float64(before), "parsed-B/cert")
			b.ReportMetric(float64(after), "served-B/cert")
			b.ReportMetric(float64(index), "index-B/cert")
			b.ReportMetric(float64(der), "der-B/cert")
		})
	}
}

type memPair struct{ cert, key []byte }

// keepCerts parses the n pairs, sharing their CA certificates if share,
// and returns the heap they take, that of an SNI index of them (share
// only), and the DER of one chain, per certificate, all freed on return.
func keepCerts(b *testing.B, n int, parse func(*sniIndex, memPair) *tls.Certificate, pairs []memPair, share bool) (certs, index int64, der int) {
	var x *sniIndex
	if share {
		x = new(sniIndex)
	}
	served := make([]*tls.Certificate, n)
	base := sniHeap()
	for i, p := range pairs {
		served[i] = parse(x, p)
	}
	certs = (sniHeap() - base) / int64(n)
	for _, d := range served[0].Certificate {
		der += len(d)
	}
	if share {
		// The index, as a Provider of n certificates fills it.
		holders := make([]*certificate, n)
		for i := range holders {
			holders[i] = &certificate{name: fmt.Sprintf("extra[%d]", i), sni: x}
		}
		x.certs = holders
		base = sniHeap()
		for i, c := range holders {
			c.setCert(served[i])
		}
		index = (sniHeap() - base) / int64(n)
	}
	runtime.KeepAlive(served)
	runtime.KeepAlive(x)
	return certs, index, der
}
