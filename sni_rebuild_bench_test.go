package autocert

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
)

// The SNI index as it was before it became incremental (issue 15), kept
// for the benchmarks to measure both in one run: one Go map of every name,
// rebuilt from every certificate whenever one changes. Only its type
// names differ from the code it was.

// rebuildIndex publishes as sniIndex.publish did: it rebuilds the
// snapshot from the certificates served, unless it was built from them.
type rebuildIndex struct {
	snap   *rebuildSnapshot
	served []*tls.Certificate // by position, as the certificates serve them
}

// publish serves cert at position pos and republishes.
func (x *rebuildIndex) publish(pos int, cert *tls.Certificate) {
	x.served[pos] = cert
	certs := make([]*tls.Certificate, len(x.served))
	copy(certs, x.served)
	if s := x.snap; s != nil && slices.Equal(s.from, certs) {
		return
	}
	x.snap = newRebuildSnapshot(certs)
}

// getCert is GetCert over the snapshot.
func (x *rebuildIndex) getCert(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := x.snap
	if s == nil || s.main == nil {
		return nil, ErrNoCertificate
	}
	if hello == nil {
		return s.main, nil
	}
	return s.match(hello.ServerName), nil
}

// rebuildSnapshot is the immutable view GetCert reads. It is rebuilt and
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
type rebuildSnapshot struct {
	nodes map[string]rebuildNode // by lowercase name without trailing dot
	main  *tls.Certificate       // the answer when no name matches
	from  []*tls.Certificate     // the certificate of main and of each extra it was built from
}

// rebuildNode is a node of the name tree.
type rebuildNode struct {
	exact   *tls.Certificate // the first certificate holding the node's name
	wild    *tls.Certificate // the first certificate holding "*." + the node's name
	numeric bool             // the name holds only digits and dots
}

// newRebuildSnapshot indexes the names of certs, given in configured order
// (main first; nil for a provider without a certificate). The main
// certificate is certs[0], or the first certificate present when main has
// none yet. Where two certificates hold the same name, the first keeps it.
func newRebuildSnapshot(certs []*tls.Certificate) *rebuildSnapshot {
	s := &rebuildSnapshot{nodes: make(map[string]rebuildNode), from: certs}
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
func (s *rebuildSnapshot) add(name string, c *tls.Certificate) {
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
func (s *rebuildSnapshot) match(name string) *tls.Certificate {
	// The fast path, for a name in canonical form, as nearly every client
	// sends it. A name found as it is in the index is a canonical host name
	// and no IP address, so it needs no checking; for the wildcard, only
	// the first label, which is not part of the key, does.
	if nd, ok := s.nodes[name]; ok && nd.exact != nil {
		return nd.exact
	}
	if i := strings.IndexByte(name, '.'); i > 0 && len(name) <= maxHostLen {
		nd, ok := s.nodes[name[i+1:]]
		if ok && nd.wild != nil && rebuildLabel(name[:i]) && !(nd.numeric && isIPLiteral(name)) {
			return nd.wild
		}
	}
	return s.matchFolded(name)
}

// matchFolded is match for a name not found as it is: it checks the name
// and puts it in canonical form; when that changes it, it looks again.
func (s *rebuildSnapshot) matchFolded(name string) *tls.Certificate {
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

// rebuildLabel reports whether label is one label of a host name in
// canonical form: lower-case letters, digits, '_', and '-' but not first.
func rebuildLabel(label string) bool {
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' && i > 0) {
			return false
		}
	}
	return len(label) > 0
}
