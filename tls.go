package autocert

import "crypto/tls"

// TLSConfig returns a new tls.Config that serves the provider's
// certificates through GetCert, ready for http.Server.TLSConfig: TLS 1.2 at
// least, and HTTP/2 ("h2") offered before HTTP/1.1 through ALPN.
//
// The config is the caller's to change; the provider keeps no reference to
// it. Start the server with ServeTLS or ListenAndServeTLS and empty file
// names, since the certificates come from GetCert.
func (p *Provider) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: p.GetCert,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
