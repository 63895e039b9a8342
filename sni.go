package autocert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
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

// sniSnapshot is the immutable view GetCert reads. It is rebuilt and
// swapped whole whenever a certificate changes, so a handshake sees either
// the old set of certificates or the new one, never a mix.
//
// It holds the seed's tree of DNS labels read right to left (com, then
// example, then api), with a wildcard stored at the node of its parent name:
// "*.api.example.com" lives at the node "api.example.com". A wildcard covers
// exactly one label, so for a server name only two nodes of the tree can
// answer: the name's own node (an exact name) and its parent's node (the
// wildcard one level up, which is also the most specific wildcard that can
// match). The nodes are therefore kept in one map keyed by their path from
// the root, written as the DNS name it spells, and a lookup reaches each of
// the two in a single map access instead of a walk of one access per label.
type sniSnapshot struct {
	nodes map[string]sniNode // by lowercase name without trailing dot
	main  *tls.Certificate   // the answer when no name matches
	from  []*tls.Certificate // the certificate of main and of each extra it was built from
}

// sniNode is a node of the name tree.
type sniNode struct {
	exact   *tls.Certificate // the first certificate holding the node's name
	wild    *tls.Certificate // the first certificate holding "*." + the node's name
	numeric bool             // the name holds only digits and dots
}

// sniIndex owns the snapshot GetCert reads. The certificates of a
// Provider publish to it whenever the certificate one serves changes.
type sniIndex struct {
	snap  atomic.Pointer[sniSnapshot]
	mu    sync.Mutex     // one rebuild at a time
	certs []*certificate // main first, then the extras; set once by New
}

// publish rebuilds the snapshot from the certificates served, in
// configured order, and swaps it in. Concurrent calls coalesce: a call
// that finds the snapshot already built from the current certificates
// does nothing.
func (x *sniIndex) publish() {
	x.mu.Lock()
	defer x.mu.Unlock()
	certs := make([]*tls.Certificate, len(x.certs))
	for i, c := range x.certs {
		certs[i] = c.current()
	}
	if s := x.snap.Load(); s != nil && slices.Equal(s.from, certs) {
		return
	}
	x.snap.Store(newSNISnapshot(certs))
}

// newSNISnapshot indexes the names of certs, given in configured order
// (main first; nil for a provider without a certificate). The main
// certificate is certs[0], or the first certificate present when main has
// none yet. Where two certificates hold the same name, the first keeps it.
func newSNISnapshot(certs []*tls.Certificate) *sniSnapshot {
	s := &sniSnapshot{nodes: make(map[string]sniNode), from: certs}
	for _, c := range certs {
		if c == nil {
			continue
		}
		if s.main == nil {
			s.main = c
		}
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			var err error
			if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				continue
			}
		}
		if leaf == nil {
			continue
		}
		// Only the DNS names, as clients verify them: the subject common
		// name is ignored (by Go clients since Go 1.15, and by browsers).
		for _, name := range leaf.DNSNames {
			s.add(name, c)
		}
	}
	return s
}

// add indexes one DNS name of certificate c: an exact name at its own
// node, a wildcard "*.parent" at the parent's node, both under the name's
// canonical form (see hostKey). Every key of the index is thus a host name
// in canonical form, and no exact key is an IP address: match relies on
// it. A name that is neither a host name nor a wildcard over one can never
// be asked for and is left out, and so is an exact name that is an IP
// address, since GetCert answers those with the main certificate.
//
// So is a name written with a trailing dot: crypto/x509 takes it for no
// pattern and matches it only against a server name spelled the same,
// dot included, which a client does not send (RFC 6066 leaves the dot out
// of the SNI, and Go clients drop it), so a verifying client would refuse
// the certificate for the name without the dot.
func (s *sniSnapshot) add(name string, c *tls.Certificate) {
	if len(name) == 0 || name[len(name)-1] == '.' {
		return
	}
	wild := len(name) > 2 && name[0] == '*' && name[1] == '.'
	if wild {
		name = name[2:]
	}
	var buf [maxHostLen]byte
	n, _, numeric, _, ok := hostKey(&buf, name)
	if !ok || !wild && numeric && isIPLiteral(buf[:n]) {
		return
	}
	key := string(buf[:n])
	nd := s.nodes[key]
	nd.numeric = numeric
	switch {
	case wild && nd.wild == nil:
		nd.wild = c
	case !wild && nd.exact == nil:
		nd.exact = c
	default:
		return
	}
	s.nodes[key] = nd
}

// match returns the certificate for a server name: exact name, else the
// wildcard one label up, else main.
func (s *sniSnapshot) match(name string) *tls.Certificate {
	// The fast path, for a name in canonical form, as nearly every client
	// sends it. A name found as it is in the index is a canonical host name
	// and no IP address, so it needs no checking; for the wildcard, only
	// the first label, which is not part of the key, does.
	if nd, ok := s.nodes[name]; ok && nd.exact != nil {
		return nd.exact
	}
	if i := strings.IndexByte(name, '.'); i > 0 && len(name) <= maxHostLen {
		nd, ok := s.nodes[name[i+1:]]
		if ok && nd.wild != nil && canonicalLabel(name[:i]) && !(nd.numeric && isIPLiteral(name)) {
			return nd.wild
		}
	}
	return s.matchFolded(name)
}

// matchFolded is match for a name not found as it is: it checks the name
// and puts it in canonical form; when that changes it, it looks again.
func (s *sniSnapshot) matchFolded(name string) *tls.Certificate {
	var buf [maxHostLen]byte
	n, parent, numeric, changed, ok := hostKey(&buf, name)
	if !ok || !changed || numeric && isIPLiteral(buf[:n]) {
		// Not a host name, an IP address, or a canonical name that the
		// fast path already looked up.
		return s.main
	}
	// The index expressions convert the bytes in place: no copy.
	if nd := s.nodes[string(buf[:n])]; nd.exact != nil {
		return nd.exact
	}
	if parent > 0 {
		if nd := s.nodes[string(buf[parent:n])]; nd.wild != nil {
			return nd.wild
		}
	}
	return s.main
}

// canonicalLabel reports whether label is one label of a host name in
// canonical form: lower-case letters, digits, '_', and '-' but not first.
func canonicalLabel(label string) bool {
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' && i > 0) {
			return false
		}
	}
	return len(label) > 0
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
