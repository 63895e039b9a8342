package autocert_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/autocert-dev/autocert"
	"github.com/rs/zerolog"
)

// An HTTPS server whose certificates autocert keeps: TLSConfig chooses the
// certificate by the name the client asks for, and offers HTTP/2.
func ExampleProvider_TLSConfig() {
	dir, err := os.MkdirTemp("", "autocert-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A self-signed certificate stands in for one from a CA, so that the
	// example runs anywhere; with a DNS provider the code is the same.
	cfg := &autocert.Config{
		Provider: autocert.ProviderPseudo,
		Domains:  []string{"example.com", "*.example.com"},
		CertPath: filepath.Join(dir, "cert.crt"),
		KeyPath:  filepath.Join(dir, "priv.key"),
	}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		log.Fatal(err)
	}
	p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		log.Fatal(err)
	}

	srv := &http.Server{
		TLSConfig: p.TLSConfig(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s over %s\n", r.Host, r.Proto)
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "") // the certificates come from TLSConfig
	defer srv.Close()

	// A client that trusts the self-signed certificate and reaches the
	// server above whatever the host name.
	roots := x509.NewCertPool()
	certPEM, err := os.ReadFile(cfg.CertPath)
	if err != nil {
		log.Fatal(err)
	}
	roots.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, network, ln.Addr().String())
		},
	}}
	defer client.CloseIdleConnections()

	resp, err := client.Get("https://www.example.com/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(body))
	// Output: www.example.com over HTTP/2.0
}
