package autocert

import (
	"crypto/tls"
	"math/bits"
	"slices"
)

// The names of a snapshot are kept in persistent hash tries (hash array
// mapped tries). The low bits of a name's 64-bit hash choose one of the
// roots (16, or 64 once a trie holds more than sniGrowAt names); from
// there, a node holds up to 64 entries, one per 6 more bits of the hash,
// each a leaf or a child node, stored in one array in the order of the
// node's bitmap. A leaf sits at the shallowest depth its hash is alone at,
// so a trie of n names is about 1 + log64(n/roots) deep: a lookup among
// 5,000 or 50,000 names reads two node arrays (three for one name in
// ten), and one that misses usually stops at a bitmap after the first;
// with 16 roots, half the names among 50,000 would be three deep. A
// change copies the nodes on the path to the leaf it changes, and the
// roots, and shares every other node with the snapshot it started from,
// which is never written again: a reader holding an older snapshot keeps
// reading it whole.
//
// Two names of one trie never share a hash: the writer chooses another
// seed and rehashes the trie when one would (see sniIndex.touch), which
// the seed, random and unknown outside the process, makes an event of
// probability about n/2^64 per name added.
const (
	sniRootBits = 4 // of the roots of a trie at first
	sniMoreBits = 6 // of the roots of a trie of more than sniGrowAt names
	sniGrowAt   = 640 << sniRootBits
	sniTrieBits = 6
	sniTrieMask = 1<<sniTrieBits - 1
)

// sniTrie is a trie.
type sniTrie struct {
	// roots, chosen by the low bits of a hash, are nodes that are never
	// leaves; 1<<shift of them.
	roots  []sniSlot
	shift  uint
	leaves int
}

// newSNITrie returns an empty trie of 1<<bits roots, made by e.
func newSNITrie(e *sniEdit, bits uint) sniTrie {
	return sniTrie{roots: e.alloc(1 << bits), shift: bits}
}

// sniSlot is one entry of a trie node: a leaf, or a child node. A leaf is
// a name and the certificate that answers for it, in one cache line with
// the fields a lookup reads.
type sniSlot struct {
	kids []sniSlot        // a node's entries, one per bit of bits, in bit order; nil for a leaf
	bits uint64           // a node's bitmap; a leaf's hash
	key  string           // a leaf's name in canonical form: an exact name, or a wildcard's parent
	cert *tls.Certificate // a leaf's certificate: that of the name's first holder
	// hold is the set of the positions holding a leaf's name. It is the
	// writer's (under sniIndex.mu), changed in place and never read by
	// GetCert; every copy of a leaf points to the same set.
	hold *sniHolders
}

// find returns the leaf of hash h, nil when there is none.
func (t *sniTrie) find(h uint64) *sniSlot {
	s := &t.roots[h&(1<<t.shift-1)]
	for rest := h >> t.shift; ; rest >>= sniTrieBits {
		bit := uint64(1) << (rest & sniTrieMask)
		if s.bits&bit == 0 {
			return nil
		}
		if s = &s.kids[bits.OnesCount64(s.bits&(bit-1))]; s.kids == nil {
			if s.bits != h {
				return nil
			}
			return s
		}
	}
}

// each calls f for each leaf of the trie.
func (t *sniTrie) each(f func(*sniSlot)) {
	for i := range t.roots {
		t.roots[i].each(f)
	}
}

// each calls f for each leaf under node n.
func (n *sniSlot) each(f func(*sniSlot)) {
	for i := range n.kids {
		if s := &n.kids[i]; s.kids == nil {
			f(s)
		} else {
			s.each(f)
		}
	}
}

// sniEdit changes tries by path copying. The node arrays it makes are its
// own: a second change in the same edit writes them in place, so that an
// edit copies each node at most once however many names it changes.
type sniEdit struct {
	few  [8]*sniSlot       // the first entries of the first arrays the edit made
	nfew int               // in few
	many map[*sniSlot]bool // by first entry, the other arrays the edit made
}

// owns reports whether the edit made the node array kids, not empty.
func (e *sniEdit) owns(kids []sniSlot) bool {
	p := &kids[0]
	for _, q := range e.few[:e.nfew] {
		if q == p {
			return true
		}
	}
	return e.many[p]
}

// alloc returns a new node array of n > 0 entries, owned by the edit.
func (e *sniEdit) alloc(n int) []sniSlot {
	kids := make([]sniSlot, n)
	switch {
	case e.nfew < len(e.few):
		e.few[e.nfew] = &kids[0]
		e.nfew++
	case e.many == nil:
		e.many = map[*sniSlot]bool{&kids[0]: true}
	default:
		e.many[&kids[0]] = true
	}
	return kids
}

// writable returns the entries of node n, copied first unless the edit
// owns them. n itself must be writable: the root of the edit's snapshot,
// or an entry of an array the edit owns.
func (e *sniEdit) writable(n *sniSlot) []sniSlot {
	if !e.owns(n.kids) {
		kids := e.alloc(len(n.kids))
		copy(kids, n.kids)
		n.kids = kids
	}
	return n.kids
}

// rootsOf returns the roots of trie t, of the snapshot the edit is
// making, copied first unless the edit owns them.
func (e *sniEdit) rootsOf(t *sniTrie) []sniSlot {
	if !e.owns(t.roots) {
		roots := e.alloc(len(t.roots))
		copy(roots, t.roots)
		t.roots = roots
	}
	return t.roots
}

// put sets the leaf l in trie t, of the snapshot the edit is making,
// replacing the leaf of the same hash if there is one.
func (e *sniEdit) put(t *sniTrie, l sniSlot) {
	e.putUnder(&e.rootsOf(t)[l.bits&(1<<t.shift-1)], l, t.shift)
}

// add is put for a leaf whose hash t does not hold. It gives t more roots
// when it grows past sniGrowAt names.
func (e *sniEdit) add(t *sniTrie, l sniSlot) {
	e.put(t, l)
	if t.leaves++; t.leaves > sniGrowAt && t.shift < sniMoreBits {
		grown := newSNITrie(e, sniMoreBits)
		t.each(func(l *sniSlot) { e.put(&grown, *l) })
		grown.leaves = t.leaves
		*t = grown
	}
}

// putUnder is put under node n, whose entries are at depth shift.
func (e *sniEdit) putUnder(n *sniSlot, l sniSlot, shift uint) {
	bit := uint64(1) << (l.bits >> shift & sniTrieMask)
	i := bits.OnesCount64(n.bits & (bit - 1))
	if n.bits&bit == 0 {
		kids := e.alloc(len(n.kids) + 1)
		copy(kids, n.kids[:i])
		kids[i] = l
		copy(kids[i+1:], n.kids[i:])
		n.kids, n.bits = kids, n.bits|bit
		return
	}
	s := &e.writable(n)[i]
	switch {
	case s.kids != nil:
		e.putUnder(s, l, shift+sniTrieBits)
	case s.bits == l.bits:
		*s = l
	default:
		e.split(s, *s, l, shift+sniTrieBits)
	}
}

// split makes s a node holding leaves a and b, of different hashes, at
// depth shift.
func (e *sniEdit) split(s *sniSlot, a, b sniSlot, shift uint) {
	ia, ib := a.bits>>shift&sniTrieMask, b.bits>>shift&sniTrieMask
	if ia == ib {
		kids := e.alloc(1)
		*s = sniSlot{kids: kids, bits: 1 << ia}
		e.split(&kids[0], a, b, shift+sniTrieBits)
		return
	}
	if ia > ib {
		a, b, ia, ib = b, a, ib, ia
	}
	kids := e.alloc(2)
	kids[0], kids[1] = a, b
	*s = sniSlot{kids: kids, bits: 1<<ia | 1<<ib}
}

// del removes the leaf of hash h from trie t, of the snapshot the edit
// is making.
func (e *sniEdit) del(t *sniTrie, h uint64) {
	if t.find(h) == nil {
		return
	}
	t.leaves--
	e.delUnder(&e.rootsOf(t)[h&(1<<t.shift-1)], h, t.shift)
}

// delUnder is del under node n, whose entries are at depth shift. A node
// left with a single leaf gives way to it, so that every leaf stays at the
// shallowest depth its hash is alone at.
func (e *sniEdit) delUnder(n *sniSlot, h uint64, shift uint) {
	bit := uint64(1) << (h >> shift & sniTrieMask)
	if n.bits&bit == 0 {
		return
	}
	i := bits.OnesCount64(n.bits & (bit - 1))
	if s := &n.kids[i]; s.kids != nil {
		s = &e.writable(n)[i]
		e.delUnder(s, h, shift+sniTrieBits)
		switch {
		case len(s.kids) == 1 && s.kids[0].kids == nil:
			*s = s.kids[0]
			return
		case len(s.kids) > 0:
			return
		}
	} else if s.bits != h {
		return
	}
	// Entry i goes.
	n.bits &^= bit
	switch {
	case len(n.kids) == 1:
		n.kids = nil
	case e.owns(n.kids):
		n.kids = slices.Delete(n.kids, i, i+1) // zeroes the freed entry
	default:
		kids := e.alloc(len(n.kids) - 1)
		copy(kids, n.kids[:i])
		copy(kids[i:], n.kids[i+1:])
		n.kids = kids
	}
}

// sniHolders is the set of positions (main 0, then the extras in
// configured order) whose certificate holds one name: the smallest wins
// the name. It is a min-heap with lazy deletion: a position removed stays
// in the heap until it comes to the top, or until the heap holds more
// than twice as many entries as the set and is compacted; a position may
// be in the heap twice. Adding, removing and finding the first holder
// cost O(log k) amortised for k holders, and the heap holds at most
// 2k + 9 entries. It is the writer's, under sniIndex.mu.
type sniHolders struct {
	heap []int32
	live int32 // the number of positions in the set
}

// add adds p, which is not in the set.
func (s *sniHolders) add(p int32) {
	s.heap = append(s.heap, p)
	for i := len(s.heap) - 1; i > 0; {
		up := (i - 1) / 2
		if s.heap[up] <= s.heap[i] {
			break
		}
		s.heap[up], s.heap[i] = s.heap[i], s.heap[up]
		i = up
	}
	s.live++
}

// remove notes that a position left the set; in reports whether a
// position is in the set, the one that left no longer being in it.
func (s *sniHolders) remove(in func(int32) bool) {
	s.live--
	if len(s.heap) > 2*int(s.live)+8 {
		keep := s.heap[:0]
		for _, q := range s.heap {
			if in(q) {
				keep = append(keep, q)
			}
		}
		slices.Sort(keep) // a sorted array is a min-heap
		s.heap = slices.Clip(slices.Compact(keep))
		if cap(s.heap) > 2*len(s.heap)+8 {
			s.heap = slices.Clone(s.heap)
		}
	}
}

// first returns the smallest position of the set; in reports whether a
// position is in the set.
func (s *sniHolders) first(in func(int32) bool) (int32, bool) {
	for len(s.heap) > 0 && !in(s.heap[0]) {
		last := len(s.heap) - 1
		s.heap[0] = s.heap[last]
		s.heap = s.heap[:last]
		for i := 0; ; {
			m := i
			if l := 2*i + 1; l < last && s.heap[l] < s.heap[m] {
				m = l
			}
			if r := 2*i + 2; r < last && s.heap[r] < s.heap[m] {
				m = r
			}
			if m == i {
				break
			}
			s.heap[i], s.heap[m] = s.heap[m], s.heap[i]
			i = m
		}
	}
	if len(s.heap) == 0 {
		return 0, false
	}
	return s.heap[0], true
}

// The hash of a name ignores ASCII case: every byte is read with bit 0x20
// set, which maps each upper-case letter to its lower-case one (and a few
// bytes no host name holds onto others: a lookup compares the names after
// the hashes). It is seeded per index, so that names chosen to collide
// cannot be computed offline, and reads 8 bytes at a time, mixing each
// word into the state with the high and low halves of a 128-bit product.
const (
	sniK0   = 0xa0761d6478bd642f
	sniK1   = 0xe7037ed1a0b428db // has a byte without bit 0x20, so k1^(w|fold) is never 0
	sniK2   = 0x8ebc6af09c88c6e3
	sniK3   = 0x589965cc75374cc3
	sniFold = 0x2020202020202020
)

func sniMix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// sniHash hashes s, ignoring ASCII case, from seed. Like wyhash, it
// reads the string 16 bytes a round, the last round's words overlapping
// the previous one's when the length is not a multiple of 16.
func sniHash(s string, seed uint64) uint64 {
	n := len(s)
	h := seed ^ uint64(n)
	var a, b uint64
	switch {
	case n > 16:
		t := s
		for len(t) > 16 {
			h = sniMix((sniLoad8(t)|sniFold)^sniK1, (sniLoad8(t[8:])|sniFold)^h)
			t = t[16:]
		}
		a, b = sniLoad8(s[n-16:]), sniLoad8(s[n-8:])
	case n > 8:
		a, b = sniLoad8(s), sniLoad8(s[n-8:])
	case n >= 4:
		a = sniLoad4(s)<<32 | sniLoad4(s[n-4:])
	case n > 0:
		a = uint64(s[0])<<16 | uint64(s[n>>1])<<8 | uint64(s[n-1])
	}
	return sniMix((a|sniFold)^sniK1, (b|sniFold)^h^sniK2)
}

// sniLoad8 reads the first 8 bytes of s, little-endian (one load).
func sniLoad8(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// sniLoad4 reads the first 4 bytes of s, little-endian (one load).
func sniLoad4(s string) uint64 {
	_ = s[3]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
}

// sniFirstDot returns the index of the first '.' of s, -1 if none, 8
// bytes at a time: a first label is seldom longer.
func sniFirstDot(s string) int {
	const ones, highs, dots = 0x0101010101010101, 0x8080808080808080, 0x2e2e2e2e2e2e2e2e
	i := 0
	for ; i+8 <= len(s); i += 8 {
		// The lowest high bit set is that of the first byte that was a dot.
		x := sniLoad8(s[i:]) ^ dots
		if t := (x - ones) &^ x & highs; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// sniSameName reports whether name, a server name, is key, a name in
// canonical form, but for the case of its letters.
func sniSameName(key, name string) bool {
	return key == name || len(key) == len(name) && sniFoldedEqual(key, name)
}

// sniFoldedEqual is sniSameName for strings of the same length, 8 bytes
// at a time.
func sniFoldedEqual(key, name string) bool {
	n := len(key)
	if n < 8 {
		for i := 0; i < n; i++ {
			if b, k := name[i], key[i]; b != k && (b|0x20 != k || k < 'a' || k > 'z') {
				return false
			}
		}
		return true
	}
	for i := 0; ; i += 8 {
		i = min(i, n-8) // the last word overlaps the one before
		if !sniSameWord(sniLoad8(key[i:]), sniLoad8(name[i:])) {
			return false
		}
		if i == n-8 {
			return true
		}
	}
}

// sniSameWord reports whether b, 8 bytes of a server name, are k, 8 bytes
// of a name in canonical form (bytes below 0x7b), but for case: they
// differ at most in bit 0x20 of bytes where k holds a lower-case letter.
func sniSameWord(k, b uint64) bool {
	d := k ^ b
	if d == 0 {
		return true
	}
	// The high bit of each byte of k from 'a' (0x61) to 'z' (0x7a): no
	// sum carries into the next byte.
	lower := (k + 0x1f1f1f1f1f1f1f1f) &^ (k + 0x0505050505050505) & 0x8080808080808080
	return d&^(lower>>2) == 0
}
