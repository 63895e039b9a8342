package autocert

import (
	"crypto/tls"
	"errors"
	"strings"
)

// ErrNoCertificate is returned by GetCert while no certificate is loaded.
var ErrNoCertificate = errors.New("autocert: no certificate available")

// sniSnapshot is the immutable view GetCert reads: rebuilt and swapped
// whenever a certificate changes.
type sniSnapshot struct {
	exact map[string]*tls.Certificate
	wild  map[string]*tls.Certificate // keyed by the parent of "*.": "example.com"
	main  *tls.Certificate
}

// publish rebuilds the SNI snapshot from the certificates served by main
// and the extras, in configured order: the first to claim a name keeps it.
func (p *Provider) publish() {
	p.publishMu.Lock()
	defer p.publishMu.Unlock()
	s := &sniSnapshot{
		exact: make(map[string]*tls.Certificate),
		wild:  make(map[string]*tls.Certificate),
	}
	for _, q := range p.all() {
		c := q.cert.Load()
		if c == nil {
			continue
		}
		if s.main == nil {
			s.main = c
		}
		names := c.Leaf.DNSNames
		if c.Leaf.Subject.CommonName != "" {
			names = append(names[:len(names):len(names)], c.Leaf.Subject.CommonName)
		}
		for _, n := range names {
			n = strings.TrimSuffix(strings.ToLower(n), ".")
			if parent, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := s.wild[parent]; !dup {
					s.wild[parent] = c
				}
			} else if _, dup := s.exact[n]; !dup {
				s.exact[n] = c
			}
		}
	}
	if c := p.cert.Load(); c != nil {
		s.main = c
	}
	p.sni.Store(s)
}

// GetCert returns the certificate for a TLS handshake, chosen by the
// server name the client asked for: an exact name first, then a wildcard,
// then the main certificate. Set it as tls.Config.GetCertificate.
func (p *Provider) GetCert(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := p.sni.Load()
	if s == nil || s.main == nil {
		return nil, ErrNoCertificate
	}
	if hello == nil || hello.ServerName == "" {
		return s.main, nil
	}
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if c, ok := s.exact[name]; ok {
		return c, nil
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c, ok := s.wild[parent]; ok {
			return c, nil
		}
	}
	return s.main, nil
}
