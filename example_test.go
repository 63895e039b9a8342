package autocert_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

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

// A program keeps its own settings in autocert's file, under a top-level
// key of its own, and reads them with the same decoder: variables are
// expanded, and unknown keys, wrong types and unset variables are errors
// naming the file, line and key.
func ExampleLoadConfigFile() {
	dir, err := os.MkdirTemp("", "autocert-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.yml")
	write := func(app string) {
		doc := "autocert:\n  provider: pseudo\n  domains: [example.com]\napp:\n" + app
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			log.Fatal(err)
		}
	}

	var app struct {
		Listen  string        `yaml:"listen"`
		Timeout time.Duration `yaml:"timeout"`
		Admins  []string      `yaml:"admins"`
		Debug   bool          `yaml:"debug"`
	}
	write("  listen: ${EXAMPLE_APP_LISTEN:-:8443}\n  timeout: 30s\n  admins: [ops@example.com]\n")
	cfg, err := autocert.LoadConfigFile(path, autocert.WithSection("app", &app))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Domains, app.Listen, app.Timeout, app.Admins, app.Debug)

	write("  listen: :8443\n  timeot: 30s\n")
	_, err = autocert.LoadConfigFile(path, autocert.WithSection("app", &app))
	var fe *autocert.FieldError
	if errors.As(err, &fe) {
		fmt.Printf("line %d: %s: %s\n", fe.Line, fe.Path, fe.Msg)
	}
	// Output:
	// [example.com] :8443 30s [ops@example.com] false
	// line 6: app.timeot: unknown key (known: listen, timeout, admins, debug)
}
