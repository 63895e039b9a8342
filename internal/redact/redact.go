// Package redact removes secrets from text before it is logged or shown:
// the values themselves and the forms in which a remote API or a library
// reflects them (base64 alone or inside an HTTP Basic credential,
// URL-escaped, hex, JSON-escaped).
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Text replaces every secret found.
const Text = "[REDACTED]"

// MinLen is the length in bytes under which a value is not treated as a
// secret: a TTL, a flag or a short name is no secret, and replacing it
// would garble messages.
const MinLen = 4

// Scrubber replaces secrets in text. Build it once with New; it is safe
// for concurrent use, and the nil *Scrubber scrubs nothing.
type Scrubber struct {
	// needles are the forms looked for, longest first: literals are
	// replaced as they are; a base64 core (a substring found in every
	// base64 encoding of a text that holds a secret, wherever the secret
	// sits in it) has the whole base64 run around it replaced.
	needles []needle
	// byPrefix indexes needles by their first four bytes (every needle
	// has at least four); filter has the bit of each such prefix's hash
	// set, so that most positions of a text are passed over at the cost
	// of one bit test.
	byPrefix map[uint32][]int32
	filter   *[filterBits / 64]uint64
}

type needle struct {
	s    string
	core bool
}

// filterBits is the size of the prefix filter: 8 KiB.
const filterBits = 1 << 16

func prefixOf(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func filterBit(prefix uint32) uint32 { return (prefix * 0x9E3779B1) >> 16 }

// New returns a Scrubber for secrets. Values shorter than MinLen bytes
// are ignored; duplicates are harmless.
//
// For each secret it finds the value itself; its lower and upper case
// hex; url.QueryEscape and url.PathEscape (also with lower case escapes);
// its JSON and Go string escapes; and any base64 text, standard or URL
// alphabet, padded or not, that encodes a string containing the secret
// at any offset, such as "user:secret" of an HTTP Basic credential: such
// a base64 run is replaced whole.
func New(secrets ...string) *Scrubber {
	lits := make(map[string]bool)
	cores := make(map[string]bool)
	seen := make(map[string]bool)
	for _, sec := range secrets {
		if len(sec) < MinLen || seen[sec] {
			continue
		}
		seen[sec] = true
		for _, f := range literalForms(sec) {
			lits[f] = true
		}
		for _, c := range base64Cores(sec) {
			cores[c] = true
		}
	}
	s := &Scrubber{byPrefix: make(map[uint32][]int32), filter: new([filterBits / 64]uint64)}
	for _, l := range sortedLongestFirst(lits) {
		s.needles = append(s.needles, needle{s: l})
	}
	for _, c := range sortedLongestFirst(cores) {
		if !lits[c] {
			s.needles = append(s.needles, needle{s: c, core: true})
		}
	}
	for i, n := range s.needles {
		p := prefixOf(n.s)
		s.byPrefix[p] = append(s.byPrefix[p], int32(i))
		b := filterBit(p)
		s.filter[b/64] |= 1 << (b % 64)
	}
	return s
}

// Empty reports whether s has no secret to look for.
func (s *Scrubber) Empty() bool { return s == nil || len(s.needles) == 0 }

// literalForms returns the forms of sec that are matched as they are.
func literalForms(sec string) []string {
	forms := []string{sec, hex.EncodeToString([]byte(sec)), strings.ToUpper(hex.EncodeToString([]byte(sec)))}
	for _, esc := range []string{url.QueryEscape(sec), url.PathEscape(sec)} {
		forms = append(forms, esc, lowerEscapes(esc))
	}
	// JSON as Go writes it (<, > and & escaped), as most other encoders
	// write it, and with "/" escaped too; Go's %q.
	if j, err := json.Marshal(sec); err == nil {
		forms = append(forms, unquote(j))
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sec); err == nil {
		plain := unquote(bytes.TrimSpace(b.Bytes()))
		forms = append(forms, plain, strings.ReplaceAll(plain, "/", `\/`))
	}
	forms = append(forms, strings.TrimSuffix(strings.TrimPrefix(strconv.Quote(sec), `"`), `"`))
	return forms
}

func unquote(j []byte) string {
	return string(bytes.TrimSuffix(bytes.TrimPrefix(j, []byte(`"`)), []byte(`"`)))
}

// lowerEscapes returns esc with the hex digits of its %XX escapes in
// lower case, as some encoders write them.
func lowerEscapes(esc string) string {
	if !strings.Contains(esc, "%") {
		return esc
	}
	b := []byte(esc)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lowerHex(b[i+1]), lowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// base64Cores returns, for each alphabet and each of the three offsets
// of sec within a group of three bytes, the characters of the encoding
// that depend on sec alone. Base64 encodes each group of three bytes into
// four characters independently of the others, so any encoding of a text
// holding sec at offset o holds the core of offset o mod 3.
func base64Cores(sec string) []string {
	var cores []string
	n := len(sec)
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := 0; k < 3; k++ {
			buf := make([]byte, k+n)
			copy(buf[k:], sec)
			e := enc.EncodeToString(buf)
			// Character i holds bits 6i to 6i+6: it depends on sec alone
			// when those bits lie within sec's, which span bits 8k to
			// 8(k+n).
			from, to := (8*k+5)/6, 8*(k+n)/6
			cores = append(cores, e[from:to])
		}
	}
	return cores
}

func sortedLongestFirst(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return out
}

// span is a range of bytes to replace.
type span struct{ start, end int }

// Scrub returns text with every form of every secret replaced by Text.
// Overlapping or adjacent matches are replaced by one Text. Text without
// a secret is returned as it is, without allocating.
func (s *Scrubber) Scrub(text string) string {
	if s.Empty() || len(text) < MinLen {
		return text
	}
	var spans []span
	runEnd := 0 // end of the last base64 run replaced
	filter := s.filter
	// p holds the four bytes at i, rolled in one byte at a time.
	p := uint32(text[0])<<8 | uint32(text[1])<<16 | uint32(text[2])<<24
	for i := 0; i+MinLen <= len(text); i++ {
		p = p>>8 | uint32(text[i+3])<<24
		if b := filterBit(p); filter[b/64]&(1<<(b%64)) == 0 {
			continue
		}
		for _, ni := range s.byPrefix[p] {
			n := s.needles[ni]
			if !strings.HasPrefix(text[i:], n.s) {
				continue
			}
			start, end := i, i+len(n.s)
			if n.core {
				if i < runEnd {
					continue // inside a run already replaced whole
				}
				for start > 0 && isBase64(text[start-1]) {
					start--
				}
				for end < len(text) && isBase64(text[end]) {
					end++
				}
				for pad := 0; pad < 2 && end < len(text) && text[end] == '='; pad++ {
					end++
				}
				runEnd = end
			}
			spans = append(spans, span{start, end})
		}
	}
	if len(spans) == 0 {
		return text
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	var b strings.Builder
	b.Grow(len(text))
	last := 0 // end of what is written
	for i := 0; i < len(spans); {
		start, end := spans[i].start, spans[i].end
		for i++; i < len(spans) && spans[i].start <= end; i++ {
			end = max(end, spans[i].end)
		}
		b.WriteString(text[last:start])
		b.WriteString(Text)
		last = end
	}
	b.WriteString(text[last:])
	return b.String()
}

// Error returns err with the secrets removed from its message: the
// returned error's Error method gives the message scrubbed, and its Unwrap
// method gives err, so that errors.Is and errors.As still find the causes.
// It returns nil for nil, and err itself when its message holds no
// secret. The causes' own messages are not scrubbed: print the returned
// error, not what it unwraps to.
func (s *Scrubber) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	scrubbed := s.Scrub(msg)
	if scrubbed == msg {
		return err
	}
	return &scrubbedError{msg: scrubbed, err: err}
}

// scrubbedError is an error of Scrubber.Error.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// isBase64 reports whether c is a character of the standard or the URL
// base64 alphabet (padding aside).
func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
}

// DSNSecrets returns the secrets of a database DSN: the DSN itself, the
// password of a URL DSN ("postgres://user:password@host/db"), and the
// value of a password key of a key=value DSN ("host=db password=...").
func DSNSecrets(dsn string) []string {
	if dsn == "" {
		return nil
	}
	secrets := []string{dsn}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	for _, field := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(field, "="); ok && strings.EqualFold(k, "password") {
			secrets = append(secrets, strings.Trim(v, `'"`))
		}
	}
	return secrets
}

// URLSecrets returns the parts of a URL that may be credentials, as in a
// webhook URL: the URL itself, the password of its user information, the
// values of its query (a Gotify token), the path when there is no query
// (an ntfy topic) and each segment of the path that looks like a token,
// of 16 bytes or more, or of 8 or more with a digit (a Slack or Discord
// webhook's key), but not words such as "services" or "webhooks".
func URLSecrets(raw string) []string {
	if raw == "" {
		return nil
	}
	secrets := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return secrets
	}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	path := strings.Trim(u.Path, "/")
	if path != "" && u.RawQuery == "" {
		secrets = append(secrets, path)
	}
	for _, seg := range strings.Split(path, "/") {
		if len(seg) >= 16 || len(seg) >= 8 && strings.ContainsAny(seg, "0123456789") {
			secrets = append(secrets, seg)
		}
	}
	for _, vals := range u.Query() {
		secrets = append(secrets, vals...)
	}
	return secrets
}

// Lazy is a Scrubber built on first use: most are never used, since they
// are needed only when an error or a log message is scrubbed. It is safe
// for concurrent use; the nil *Lazy scrubs nothing.
type Lazy struct {
	once    sync.Once
	secrets []string
	s       *Scrubber
}

// NewLazy returns a Lazy for secrets, which it keeps (the caller must not
// change them).
func NewLazy(secrets ...string) *Lazy { return &Lazy{secrets: secrets} }

// Scrubber returns the Scrubber of l, building it the first time.
func (l *Lazy) Scrubber() *Scrubber {
	if l == nil {
		return nil
	}
	l.once.Do(func() {
		l.s = New(l.secrets...)
		l.secrets = nil
	})
	return l.s
}

// Scrub is Scrubber().Scrub.
func (l *Lazy) Scrub(text string) string { return l.Scrubber().Scrub(text) }

// Error is Scrubber().Error.
func (l *Lazy) Error(err error) error {
	if err == nil {
		return nil
	}
	return l.Scrubber().Error(err)
}

// Pool hands out one Lazy per distinct set of secrets, so that the many
// certificates of a configuration that share their secrets (those of the
// main block, inherited by every extra) share one Scrubber. Its zero
// value is ready to use; it is safe for concurrent use. The nil *Pool
// shares nothing: each Get returns a Lazy of its own.
type Pool struct {
	mu sync.Mutex
	m  map[string]*Lazy // by the secrets of MinLen bytes or more, sorted and deduplicated, joined
}

// Get returns the Lazy of secrets: the same for the same set of secrets,
// whatever their order and duplicates.
func (p *Pool) Get(secrets ...string) *Lazy {
	kept := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if len(s) >= MinLen {
			kept = append(kept, s)
		}
	}
	slices.Sort(kept)
	kept = slices.Compact(kept)
	var key strings.Builder
	for _, s := range kept {
		// The length first: secrets may hold any byte.
		key.WriteString(strconv.Itoa(len(s)))
		key.WriteByte(':')
		key.WriteString(s)
	}
	if p == nil {
		return NewLazy(slices.Clip(kept)...)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.m[key.String()]; ok {
		return l
	}
	if p.m == nil {
		p.m = make(map[string]*Lazy)
	}
	l := NewLazy(slices.Clip(kept)...)
	p.m[key.String()] = l
	return l
}
