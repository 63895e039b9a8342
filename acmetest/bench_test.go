package acmetest_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/certificate"
)

// BenchmarkIssue measures one issuance by a registered lego client: new
// order, DNS-01 challenge through the acmetest provider, finalization,
// download.
func BenchmarkIssue(b *testing.B) {
	s := acmetest.New(b)
	c := newAccount(b, s)
	i := 0
	for b.Loop() {
		obtain(b, c, certificate.ObtainRequest{Domains: []string{fmt.Sprintf("bench%d.example.com", i)}})
		i++
	}
}

// BenchmarkIssueParallel measures issuances by concurrent clients of one
// CA.
func BenchmarkIssueParallel(b *testing.B) {
	s := acmetest.New(b)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		c := newAccount(b, s)
		for pb.Next() {
			obtain(b, c, certificate.ObtainRequest{Domains: []string{fmt.Sprintf("par%d.example.com", n.Add(1))}})
		}
	})
}
