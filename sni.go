package autocert

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrNoCertificate is returned by GetCert while no certificate is loaded.
var ErrNoCertificate = errors.New("autocert: no certificate available")

// maxHostLen is the length of the longest DNS name, in bytes, written
// without a trailing dot.
const maxHostLen = 253

// sniSnapshot is the immutable view GetCert reads. A change of the
// certificate of one provider makes a new snapshot from the current one
// and swaps it in, so a handshake sees either the old set of certificates
// or the new one, never a mix.
//
// A wildcard covers exactly one label, so for a server name only two
// names of the index can answer: the server name itself (an exact name)
// and its parent, the name without its first label (a wildcard one label
// up, which is also the most specific wildcard that can match). The exact
// names are therefore kept by name in one trie, the wildcards by parent in
// another ("*.api.example.com" under "api.example.com"), and a lookup
// reaches each of the two names directly, as a map lookup would. The hash
// ignores ASCII case, and the comparison that follows accepts a server
// name only if it is the name found but for case; since every name of the
// index is a host name in canonical form, a server name found needs no
// other check, and one in any case no other pass: a miss reads the server
// name once for each of the two hashes, and once to find its first dot.
//
// The tries are persistent (see sni_trie.go): a new snapshot shares all
// but the changed paths with the one it was made from, so that a change
// of one certificate costs O(m log n) for the m names it changes among n,
// not a rebuild.
type sniSnapshot struct {
	exact sniTrie          // the exact names, by canonical name
	wild  sniTrie          // the wildcards, by the canonical name of their parent
	main  *tls.Certificate // the answer when no name matches
	seed  uint64           // of the hashes of both tries
}

// sniIndex owns the snapshot GetCert reads. The certificates of a
// Provider publish to it whenever the certificate one serves changes.
type sniIndex struct {
	snap  atomic.Pointer[sniSnapshot]
	mu    sync.Mutex     // one change at a time; guards the fields below
	certs []*certificate // main first, then the extras; set once by New

	served  []*tls.Certificate // by position (main 0, then the extras), the certificate indexed
	names   [][]sniName        // by position, the names indexed for it, sorted
	present sniHolders         // the positions with a certificate: the first is main

	chains sniChains // the CA certificates of the chains parsed, kept once
}

// sniChains keeps one copy of each CA certificate (DER) of the chains a
// Provider parses, so that the certificates of one CA share their
// intermediates: parsed alone, each chain holds its own copy, as large as
// the leaf itself. It keeps at most maxSharedCAs certificates, the first
// seen; a chain of others keeps its own copies.
type sniChains struct {
	mu  sync.Mutex
	der map[[sha256.Size]byte][]byte // by SHA-256 of the DER
}

// maxSharedCAs bounds sniChains: a CA rotates its intermediates a few
// times a year.
const maxSharedCAs = 64

// share makes the CA certificates of cert's chain, all but the leaf, the
// copies kept, when the same certificates were seen before. It is called
// on a certificate just parsed, before anything else reads it.
func (x *sniIndex) share(cert *tls.Certificate) {
	if x == nil || len(cert.Certificate) < 2 {
		return
	}
	p := &x.chains
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, der := range cert.Certificate[1:] {
		sum := sha256.Sum256(der)
		switch kept, ok := p.der[sum]; {
		case ok && bytes.Equal(kept, der):
			cert.Certificate[i+1] = kept
		case !ok && len(p.der) < maxSharedCAs:
			if p.der == nil {
				p.der = make(map[[sha256.Size]byte][]byte)
			}
			p.der[sum] = der
		}
	}
}

// sniName is a name a certificate holds: an exact name, or the parent of a
// wildcard, in canonical form.
type sniName struct {
	name string
	wild bool
}

func compareSNINames(a, b sniName) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	switch {
	case a.wild == b.wild:
		return 0
	case b.wild:
		return -1
	}
	return 1
}

// update indexes the certificate c serves now. The first update indexes
// every certificate of the Provider, and gives each its position; the
// next ones change what c's certificate changes, and cost O(m log n) for
// the m names of its old and new certificates among n (amortised: a name
// held by k certificates adds O(log k)).
func (x *sniIndex) update(c *certificate) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.served) != len(x.certs) || x.snap.Load() == nil {
		certs := make([]*tls.Certificate, len(x.certs))
		for i, q := range x.certs {
			q.sniPos = i
			certs[i] = q.current()
		}
		x.reset(certs)
		return
	}
	x.set(c.sniPos, c.current())
}

// reset indexes certs, in configured order (main first; nil for a
// provider without a certificate), afresh.
func (x *sniIndex) reset(certs []*tls.Certificate) {
	x.served = make([]*tls.Certificate, len(certs))
	x.names = make([][]sniName, len(certs))
	x.present = sniHolders{}
	var e sniEdit
	s := &sniSnapshot{seed: rand.Uint64(), exact: newSNITrie(&e, sniRootBits), wild: newSNITrie(&e, sniRootBits)}
	for i, c := range certs {
		x.change(&e, s, i, c)
	}
	s.main = x.main()
	x.snap.Store(s)
}

// set indexes cert as the certificate of position pos.
func (x *sniIndex) set(pos int, cert *tls.Certificate) {
	if x.served[pos] == cert {
		return
	}
	s := new(sniSnapshot)
	*s = *x.snap.Load()
	var e sniEdit
	x.change(&e, s, pos, cert)
	s.main = x.main()
	x.snap.Store(s)
}

// change makes cert the certificate of position pos in s, a snapshot the
// edit e is making.
func (x *sniIndex) change(e *sniEdit, s *sniSnapshot, pos int, cert *tls.Certificate) {
	old, names := x.names[pos], certSNINames(cert)
	was := x.served[pos] != nil
	x.served[pos], x.names[pos] = cert, names
	p := int32(pos)
	for i, j := 0, 0; i < len(old) || j < len(names); {
		var c int // 0: a name of both
		switch {
		case j == len(names):
			c = -1
		case i == len(old):
			c = 1
		default:
			c = compareSNINames(old[i], names[j])
		}
		switch {
		case c < 0:
			x.touch(e, s, old[i], p, -1)
			i++
		case c > 0:
			x.touch(e, s, names[j], p, 1)
			j++
		default:
			x.touch(e, s, names[j], p, 0)
			i++
			j++
		}
	}
	switch is := cert != nil; {
	case is && !was:
		x.present.add(p)
	case was && !is:
		x.present.remove(x.isServed)
	}
}

// touch updates in s the name k, which position p adds (d = 1), drops
// (d = -1) or keeps with a new certificate (d = 0): the name goes to the
// certificate of its first holder.
func (x *sniIndex) touch(e *sniEdit, s *sniSnapshot, k sniName, p int32, d int) {
	t := &s.exact
	if k.wild {
		t = &s.wild
	}
	h := sniHash(k.name, s.seed)
	old := t.find(h)
	if old != nil && old.key != k.name {
		x.reseed(e, s)
		x.touch(e, s, k, p, d)
		return
	}
	var hold *sniHolders
	switch {
	case old != nil:
		hold = old.hold
	case d == 1:
		hold = new(sniHolders)
	default:
		return // not indexed: cannot happen
	}
	holds := func(q int32) bool {
		_, ok := slices.BinarySearchFunc(x.names[q], k, compareSNINames)
		return ok
	}
	switch d {
	case 1:
		hold.add(p)
	case -1:
		hold.remove(holds)
	}
	w, ok := hold.first(holds)
	if !ok {
		e.del(t, h)
		return
	}
	cert := x.served[w]
	if old != nil && old.cert == cert {
		return
	}
	if old != nil {
		e.put(t, sniSlot{bits: h, key: old.key, cert: cert, hold: hold})
		return
	}
	e.add(t, sniSlot{bits: h, key: k.name, cert: cert, hold: hold})
}

// reseed rehashes both tries of s, that e is making, with a new seed
// under which no two names of a trie share a hash (see sni_trie.go).
func (x *sniIndex) reseed(e *sniEdit, s *sniSnapshot) {
	from := *s
	for {
		s.seed = rand.Uint64()
		s.exact, s.wild = newSNITrie(e, from.exact.shift), newSNITrie(e, from.wild.shift)
		ok := true
		for _, t := range [][2]*sniTrie{{&from.exact, &s.exact}, {&from.wild, &s.wild}} {
			t[0].each(func(l *sniSlot) {
				c := *l
				c.bits = sniHash(c.key, s.seed)
				if t[1].find(c.bits) != nil {
					ok = false
				}
				e.put(t[1], c)
			})
			t[1].leaves = t[0].leaves
		}
		if ok {
			return
		}
	}
}

// main returns the main certificate: that of the first position that has
// one.
func (x *sniIndex) main() *tls.Certificate {
	if p, ok := x.present.first(x.isServed); ok {
		return x.served[p]
	}
	return nil
}

func (x *sniIndex) isServed(p int32) bool { return x.served[p] != nil }

// certSNINames returns the names of cert that GetCert can match, as
// parseSNIName reads them, sorted, each once.
func certSNINames(cert *tls.Certificate) []sniName {
	if cert == nil {
		return nil
	}
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil
		}
	}
	if leaf == nil {
		return nil
	}
	var names []sniName
	// Only the DNS names, as clients verify them: the subject common name
	// is ignored (by Go clients since Go 1.15, and by browsers).
	for _, dns := range leaf.DNSNames {
		if k, ok := parseSNIName(dns); ok {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, compareSNINames)
	return slices.CompactFunc(names, func(a, b sniName) bool { return compareSNINames(a, b) == 0 })
}

// parseSNIName reads one DNS name of a certificate: an exact name, or a
// wildcard "*.parent" under its parent, both in canonical form (see
// hostKey). Every name of the index is thus a host name in canonical
// form, and no exact name is an IP address: match relies on it. A name
// that is neither a host name nor a wildcard over one can never be asked
// for and is left out, and so is an exact name that is an IP address,
// since GetCert answers those with the main certificate.
//
// So is a name written with a trailing dot: crypto/x509 takes it for no
// pattern and matches it only against a server name spelled the same,
// dot included, which a client does not send (RFC 6066 leaves the dot out
// of the SNI, and Go clients drop it), so a verifying client would refuse
// the certificate for the name without the dot.
func parseSNIName(name string) (sniName, bool) {
	if len(name) == 0 || name[len(name)-1] == '.' {
		return sniName{}, false
	}
	wild := len(name) > 2 && name[0] == '*' && name[1] == '.'
	if wild {
		name = name[2:]
	}
	var buf [maxHostLen]byte
	n, _, numeric, changed, ok := hostKey(&buf, name)
	if !ok || !wild && numeric && isIPLiteral(buf[:n]) {
		return sniName{}, false
	}
	if changed {
		name = string(buf[:n])
	}
	return sniName{name: name, wild: wild}, true
}

// match returns the certificate for a server name: exact name, else the
// wildcard one label up, else main.
func (s *sniSnapshot) match(name string) *tls.Certificate {
	if n := len(name); n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if len(name) == 0 || len(name) > maxHostLen {
		return s.main
	}
	// A name found is a host name but for case, and no IP address (see
	// parseSNIName): it needs no other check.
	if l := s.exact.find(sniHash(name, s.seed)); l != nil && sniSameName(l.key, name) {
		return l.cert
	}
	dot := sniFirstDot(name)
	if dot <= 0 {
		return s.main
	}
	// For the wildcard, the first label is not part of the name found,
	// and the server name may be an IPv4 address over a numeric parent.
	parent := name[dot+1:]
	if l := s.wild.find(sniHash(parent, s.seed)); l != nil && sniSameName(l.key, parent) {
		if ok, digits := hostLabel(name[:dot]); ok && !(digits && isIPLiteral(name)) {
			return l.cert
		}
	}
	return s.main
}

// hostLabel reports whether label is one label of a host name (ASCII
// letters, digits, '_', and '-' but not first), and whether it holds only
// digits.
func hostLabel(label string) (ok, digits bool) {
	digits = true
	for i := 0; i < len(label); i++ {
		switch c := label[i]; {
		case '0' <= c && c <= '9':
		case 'a' <= c|0x20 && c|0x20 <= 'z', c == '_', c == '-' && i > 0:
			digits = false
		default:
			return false, false
		}
	}
	return len(label) > 0, digits
}

// hostKey writes into buf the canonical form of a host name: without one
// trailing dot, in lower case. It returns the length written, the offset
// of the parent name (after the first dot; 0 for a single label), whether
// the name holds only digits and dots (it may be an IPv4 address), whether
// the canonical form differs from name, and whether name is a host name at
// all.
//
// A host name is what crypto/x509 accepts for wildcard matching when a
// client verifies a certificate: non-empty labels of ASCII letters, digits,
// '_' and '-' (not first), here also 253 bytes at most.
func hostKey(buf *[maxHostLen]byte, name string) (n, parent int, numeric, changed, ok bool) {
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
		changed = true
	}
	if len(name) == 0 || len(name) > maxHostLen {
		return 0, 0, false, false, false
	}
	var fold, word byte // fold: 0x20 once an upper-case letter is seen; word: 1 once a non-digit is
	start := 0          // of the current label
	for i := 0; i < len(name); i++ {
		c := name[i]
		// c|0x20 is a lower-case letter exactly when c is a letter: one
		// branch for both cases, as random case would mislead a predictor.
		if l := c | 0x20; 'a' <= l && l <= 'z' {
			fold |= c ^ l
			word = 1
			buf[i] = l
			continue
		}
		switch {
		case '0' <= c && c <= '9':
		case c == '_' || c == '-' && i != start:
			word = 1
		case c == '.' && i != start:
			if parent == 0 {
				parent = i + 1
			}
			start = i + 1
		default:
			return 0, 0, false, false, false
		}
		buf[i] = c
	}
	numeric, changed = word == 0, changed || fold != 0
	if start == len(name) { // empty last label: the name had two trailing dots
		return 0, 0, false, false, false
	}
	return len(name), parent, numeric, changed, true
}

// isIPLiteral reports whether s, made of digits and dots, is an IPv4
// address as crypto/x509 (through net.ParseIP) reads one: four decimal
// fields of at most 255, without leading zeros.
func isIPLiteral[S string | []byte](s S) bool {
	fields, v, digits := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || v > 255 {
				return false
			}
			fields++
			v, digits = 0, 0
			continue
		}
		if s[i] < '0' || s[i] > '9' || digits > 0 && v == 0 || digits == 3 {
			return false // not a digit, a leading zero, or too long
		}
		v = v*10 + int(s[i]-'0')
		digits++
	}
	return fields == 4
}

// GetCert returns the certificate for a TLS handshake, chosen by the
// server name the client asked for (SNI). Set it as
// tls.Config.GetCertificate, or use TLSConfig.
//
// The names of a certificate are its DNS names (subject alternative
// names), as crypto/x509's VerifyHostname reads them when a client
// verifies the certificate: the subject common name is not one, since Go
// clients (since Go 1.15) and browsers ignore it, and neither is a DNS
// name written with a trailing dot, which VerifyHostname does not match
// against a server name sent without it. Names are compared without regard
// to ASCII case, and a trailing dot of the server name is ignored. The
// certificate holding the server name itself wins; else the one holding
// the wildcard one label up ("*.example.com" covers "a.example.com", but
// neither "example.com" nor "a.b.example.com"); else the main certificate.
// When several certificates hold the same name, the first configured wins:
// main, then the extras in order. A certificate chosen by name thus always
// verifies for the server name, and for a host name (see below) one is
// chosen whenever a configured certificate would verify. The main
// certificate is served when nothing matches, even if none of its own
// names is usable.
//
// The main certificate also answers a handshake without a server name, and
// one whose server name is an IPv4 or IPv6 address, bracketed or not (Go
// clients send no server name for an address; GetCert never matches one
// against DNS names or IP SANs), or is not a host name as crypto/x509 reads
// one when it verifies a certificate: non-empty labels of ASCII letters,
// digits, '_' and '-' (not first), here also 253 bytes at most. While the
// main block has no certificate yet, the first extra that has one stands
// in for it.
//
// GetCert takes no lock, does not allocate and does no I/O: it reads an
// immutable snapshot that is replaced whenever a certificate is obtained,
// renewed or reloaded. It returns ErrNoCertificate, and only then a nil
// certificate, while no certificate is loaded at all.
func (p *Provider) GetCert(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := p.sni.snap.Load()
	if s == nil || s.main == nil {
		return nil, ErrNoCertificate
	}
	if hello == nil {
		return s.main, nil
	}
	return s.match(hello.ServerName), nil
}
