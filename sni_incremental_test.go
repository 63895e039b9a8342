package autocert

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/bits"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

// TestGetCertNameFallsToNextHolder: a name several certificates hold
// belongs to the first configured of them that holds it now: when that
// one drops it, the next one gets it, and it comes back when the first
// holds it again; the main certificate falls back the same way.
func TestGetCertNameFallsToNextHolder(t *testing.T) {
	key := sniKey(t)
	p := sniProvider(t, 3)
	const shared, wild = "shared.example.com", "x.wild.example.com"
	steps := []struct {
		set  int      // the provider given a new certificate
		with []string // its names; nil: no certificate
		want map[string]string
	}{
		{0, []string{"main.test"}, map[string]string{shared: "main", wild: "main"}},
		{3, []string{shared, "*.wild.example.com"}, map[string]string{shared: "extra[2]", wild: "extra[2]"}},
		{2, []string{shared, "*.wild.example.com"}, map[string]string{shared: "extra[1]", wild: "extra[1]"}},
		{1, []string{shared, "*.wild.example.com"}, map[string]string{shared: "extra[0]", wild: "extra[0]"}},
		{1, []string{"other.example.com", "*.wild.example.com"}, map[string]string{shared: "extra[1]", wild: "extra[0]"}},
		{2, []string{"*.wild.example.com"}, map[string]string{shared: "extra[2]", wild: "extra[0]"}},
		{1, []string{"other.example.com"}, map[string]string{shared: "extra[2]", wild: "extra[1]"}},
		{2, []string{shared}, map[string]string{shared: "extra[1]", wild: "extra[2]"}},
		{1, []string{"SHARED.example.com"}, map[string]string{shared: "extra[0]", wild: "extra[2]"}},
		{3, nil, map[string]string{shared: "extra[0]", wild: "main"}},
		{0, nil, map[string]string{shared: "extra[0]", wild: "extra[0]", "": "extra[0]"}},
		{1, nil, map[string]string{shared: "extra[1]", wild: "extra[1]", "": "extra[1]"}},
		{0, []string{shared}, map[string]string{shared: "main", wild: "main", "": "main"}},
	}
	certs := make([]*tls.Certificate, len(p.certs))
	for i, st := range steps {
		certs[st.set] = nil
		if st.with != nil {
			certs[st.set] = sniCert(t, key, "", st.with...)
		}
		p.certs[st.set].setCert(certs[st.set])
		for server, want := range st.want {
			c, err := p.GetCert(&tls.ClientHelloInfo{ServerName: server})
			if err != nil {
				t.Fatalf("step %d: GetCert(%q): %v", i, server, err)
			}
			if got := servedBy(p, certs, c); got != want {
				t.Errorf("step %d: GetCert(%q) = certificate of %s, want %s", i, server, got, want)
			}
			if want := sniReference(certs, server); c != want {
				t.Errorf("step %d: GetCert(%q) is not what sniReference chooses", i, server)
			}
		}
	}
}

// TestGetCertIncremental changes the certificates of a Provider one at a
// time, at random, among names that overlap (exact, wildcard, in upper
// case, with trailing dots), removing some and serving them again; after
// each change GetCert answers every name as sniReference does for the
// certificates served, and the snapshot from before the change still
// answers as it did: a change never writes a snapshot already published.
func TestGetCertIncremental(t *testing.T) {
	hosts := []string{"example.com", "a.example.com", "b.example.com", "a.a.example.com", "b.a.example.com", "example.net", "x.example.net", "1.2.3.4", "2.3.4"}
	var asks []string
	for _, h := range hosts {
		asks = append(asks, h, "z."+h, strings.ToUpper(h)+".", "1."+h)
	}
	r := mrand.New(mrand.NewPCG(15, 1))
	name := func() string {
		n := hosts[r.IntN(len(hosts))]
		switch r.IntN(8) {
		case 0, 1, 2:
			n = "*." + n
		case 3:
			n = strings.ToUpper(n)
		case 4:
			n += "."
		}
		return n
	}
	const slots, steps = 6, 600
	key := sniKey(t)
	p := sniProvider(t, slots-1)
	certs := make([]*tls.Certificate, slots)
	answers := func(s *sniSnapshot) []*tls.Certificate {
		var got []*tls.Certificate
		for _, server := range asks {
			got = append(got, s.match(server))
		}
		return got
	}
	var before *sniSnapshot
	var beforeAnswers []*tls.Certificate
	for step := range steps {
		i := r.IntN(slots)
		switch {
		case r.IntN(5) == 0:
			certs[i] = nil
		case r.IntN(4) == 0 && certs[i] != nil:
			// A renewal: the same names in a new certificate.
			certs[i] = sniCert(t, key, "", certs[i].Leaf.DNSNames...)
		default:
			var names []string
			for range 1 + r.IntN(4) {
				names = append(names, name())
			}
			certs[i] = sniCert(t, key, "", names...)
		}
		p.certs[i].setCert(certs[i])

		if before != nil && !slices.Equal(answers(before), beforeAnswers) {
			t.Fatalf("step %d: the snapshot before the change answers differently after it", step)
		}
		s := p.sni.snap.Load()
		checkSNITries(t, s)
		for _, server := range asks {
			got, err := p.GetCert(&tls.ClientHelloInfo{ServerName: server})
			if want := sniReference(certs, server); got != want {
				t.Fatalf("step %d: GetCert(%q) chose certificate %d, reference %d (%v)", step, server, slices.Index(certs, got), slices.Index(certs, want), err)
			}
			if got == nil {
				continue
			}
			if err := sniCheckVerifies(certs, s.main, server, got); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		before, beforeAnswers = s, answers(s)
	}
}

// TestGetCertNeverMixes: while one certificate alternates between one
// holding "w.example.com" and one holding "*.example.com" instead,
// concurrent lookups of w.example.com get one of the two, never the main
// certificate that a lookup seeing the name dropped and the wildcard not
// yet added would fall back to.
func TestGetCertNeverMixes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	key := sniKey(t)
	p, _ := sniServe(t, sniNames("main.test"), nil)
	versions := []*tls.Certificate{sniCert(t, key, "", "w.example.com", "other.test"), sniCert(t, key, "", "*.example.com")}
	p.certs[1].setCert(versions[0])
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 2 {
		wg.Go(func() {
			hello := &tls.ClientHelloInfo{ServerName: "w.example.com"}
			for !stop.Load() {
				if c, _ := p.GetCert(hello); c != versions[0] && c != versions[1] {
					bad.Add(1)
				}
			}
		})
	}
	for i := range 2000 {
		p.certs[1].setCert(versions[i%2])
	}
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d lookups got neither certificate", n)
	}
}

// TestSNIReseed: rehashing the index with another seed, as a change does
// when two names would share a hash, keeps every answer.
func TestSNIReseed(t *testing.T) {
	key := sniKey(t)
	var specs []*sniCertSpec
	for i := range 200 {
		specs = append(specs, sniNames(fmt.Sprintf("h%d.example.com", i), fmt.Sprintf("*.w%d.example.com", i%50)))
	}
	p, certs := sniServe(t, specs...)
	var asks []string
	for i := range 200 {
		asks = append(asks, fmt.Sprintf("h%d.example.com", i), fmt.Sprintf("x.w%d.example.com", i), fmt.Sprintf("H%d.EXAMPLE.com.", i))
	}
	x := &p.sni
	x.mu.Lock()
	s := new(sniSnapshot)
	*s = *x.snap.Load()
	var e sniEdit
	x.reseed(&e, s)
	x.snap.Store(s)
	x.mu.Unlock()
	if s.seed == 0 {
		t.Fatal("no seed")
	}
	checkSNITries(t, s)
	for _, server := range asks {
		got, _ := p.GetCert(&tls.ClientHelloInfo{ServerName: server})
		if want := sniReference(certs, server); got != want {
			t.Errorf("after reseed, GetCert(%q) chose certificate %d, reference %d", server, slices.Index(certs, got), slices.Index(certs, want))
		}
	}
	// And the index still changes.
	c := sniCert(t, key, "", "h7.example.com", "*.w7.example.com")
	p.certs[3].setCert(c)
	certs[3] = c
	for _, server := range asks {
		got, _ := p.GetCert(&tls.ClientHelloInfo{ServerName: server})
		if want := sniReference(certs, server); got != want {
			t.Errorf("after reseed and a change, GetCert(%q) chose certificate %d, reference %d", server, slices.Index(certs, got), slices.Index(certs, want))
		}
	}
}

// TestSNITrieScale adds, renames and removes thousands of names at random
// and checks the tries after each batch: what they hold is what the
// certificates served hold, and they are as shallow as their hashes
// allow. At the larger size, the tries grow past sniGrowAt names and get
// more roots on the way.
func TestSNITrieScale(t *testing.T) {
	for _, n := range []int{3000, 3 * sniGrowAt} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { testSNITrieScale(t, n) })
	}
}

func testSNITrieScale(t *testing.T, n int) {
	const rounds = 6
	r := mrand.New(mrand.NewPCG(3, 5))
	var x sniIndex
	certs := make([]*tls.Certificate, n)
	x.reset(certs)
	named := func(names ...string) *tls.Certificate {
		return &tls.Certificate{Leaf: &x509.Certificate{DNSNames: names}}
	}
	for round := range rounds {
		for i := range n {
			switch r.IntN(4) {
			case 0:
				certs[i] = nil
			case 1:
				if certs[i] != nil {
					certs[i] = named(certs[i].Leaf.DNSNames...) // renewed
					break
				}
				fallthrough
			default:
				// Names shared by about two certificates each.
				certs[i] = named(fmt.Sprintf("h%d.example.com", r.IntN(n/2)), fmt.Sprintf("*.w%d.example.net", r.IntN(n/2)))
			}
			x.set(i, certs[i])
		}
		s := x.snap.Load()
		checkSNITries(t, s)
		if want := uint(map[bool]int{false: sniRootBits, true: sniMoreBits}[n > sniGrowAt]); s.exact.shift != want {
			t.Fatalf("round %d: a trie of %d names has %d roots, want %d", round, s.exact.leaves, len(s.exact.roots), 1<<want)
		}
		// Every name held is found with its first holder's certificate.
		want := map[sniName]*tls.Certificate{}
		for _, c := range certs {
			for _, k := range certSNINames(c) {
				if _, ok := want[k]; !ok {
					want[k] = c
				}
			}
		}
		got := map[sniName]*tls.Certificate{}
		s.exact.each(func(l *sniSlot) { got[sniName{name: l.key}] = l.cert })
		s.wild.each(func(l *sniSlot) { got[sniName{name: l.key, wild: true}] = l.cert })
		if len(got) != len(want) {
			t.Fatalf("round %d: the tries hold %d names, the certificates %d", round, len(got), len(want))
		}
		for k, c := range want {
			if got[k] != c {
				t.Fatalf("round %d: %v answered by the wrong certificate", round, k)
			}
		}
		first := slices.IndexFunc(certs, func(c *tls.Certificate) bool { return c != nil })
		if first >= 0 && s.main != certs[first] || first < 0 && s.main != nil {
			t.Fatalf("round %d: main is not the first certificate served", round)
		}
	}
	// Removing everything leaves empty tries.
	for i := range n {
		x.set(i, nil)
	}
	s := x.snap.Load()
	for _, trie := range []*sniTrie{&s.exact, &s.wild} {
		for i := range trie.roots {
			if trie.roots[i].kids != nil || trie.leaves != 0 {
				t.Fatalf("an index without certificates holds nodes")
			}
		}
	}
	if s.main != nil || len(x.present.heap) > 9 {
		t.Errorf("an index without certificates has a main certificate or positions")
	}
}

// checkSNITries checks the shape of the tries of s: each node's bitmap
// has a bit per entry, each leaf lies on the path of its hash and holds
// its name's hash, no two leaves share a hash, and no node but the root
// holds a single leaf.
func checkSNITries(t *testing.T, s *sniSnapshot) {
	t.Helper()
	for _, trie := range []*sniTrie{&s.exact, &s.wild} {
		seen := map[uint64]bool{}
		var walk func(n *sniSlot, prefix uint64, shift uint)
		walk = func(n *sniSlot, prefix uint64, shift uint) {
			if bits.OnesCount64(n.bits) != len(n.kids) {
				t.Fatalf("a node's bitmap has %d bits for %d entries", bits.OnesCount64(n.bits), len(n.kids))
			}
			if shift > trie.shift && len(n.kids) == 1 && n.kids[0].kids == nil {
				t.Fatalf("a node holds a single leaf")
			}
			bm := n.bits
			for i := range n.kids {
				idx := uint64(bits.TrailingZeros64(bm))
				bm &= bm - 1
				k := &n.kids[i]
				p := prefix | idx<<shift
				if k.kids != nil {
					walk(k, p, shift+sniTrieBits)
					continue
				}
				mask := uint64(1)<<(shift+sniTrieBits) - 1 // all ones past 64 bits
				if k.bits&mask != p {
					t.Fatalf("leaf %q off the path of its hash", k.key)
				}
				if k.bits != sniHash(k.key, s.seed) {
					t.Fatalf("leaf %q holds another hash than its name's", k.key)
				}
				if seen[k.bits] {
					t.Fatalf("two leaves of one hash")
				}
				seen[k.bits] = true
				if k.cert == nil || k.hold == nil || k.hold.live == 0 {
					t.Fatalf("leaf %q without certificate or holder", k.key)
				}
			}
		}
		for i := range trie.roots {
			walk(&trie.roots[i], uint64(i), trie.shift)
		}
		if len(seen) != trie.leaves {
			t.Fatalf("a trie of %d leaves counts %d", len(seen), trie.leaves)
		}
	}
}

// TestGetCertFoldedLookalikes asks for names that differ from the names
// held in bit 0x20 of one byte: upper-case letters, which match, and
// control bytes, DEL and '?' in place of digits, '-', '.', '_' and letters,
// which hash alike but must not match.
func TestGetCertFoldedLookalikes(t *testing.T) {
	held := []string{"a-b.c", "x_1.example.com", "www-1.example-2.com", "ab.cd", "9.example.net"}
	wild := []string{"w_x.example.org", "a.b", "long-label-01.example.com"}
	specs := []*sniCertSpec{sniNames("main.test")}
	for _, n := range held {
		specs = append(specs, sniNames(n))
	}
	for _, n := range wild {
		specs = append(specs, sniNames("*."+n))
	}
	p, certs := sniServe(t, specs...)
	var asks []string
	for _, n := range held {
		asks = append(asks, n)
		for j := range len(n) {
			b := []byte(n)
			b[j] ^= 0x20
			asks = append(asks, string(b))
		}
	}
	for _, n := range wild {
		for j := range len(n) {
			b := []byte("q." + n)
			b[2+j] ^= 0x20
			asks = append(asks, "q."+n, string(b))
		}
	}
	hits := 0
	for _, server := range asks {
		got, err := p.GetCert(&tls.ClientHelloInfo{ServerName: server})
		if err != nil {
			t.Fatal(err)
		}
		if want := sniReference(certs, server); got != want {
			t.Errorf("GetCert(%q) chose certificate %d, reference %d", server, slices.Index(certs, got), slices.Index(certs, want))
		}
		if got != certs[0] {
			hits++
		}
	}
	if hits < len(asks)/3 {
		t.Errorf("only %d of %d asks matched a name", hits, len(asks))
	}
}
