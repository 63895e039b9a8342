package acmetest_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/autocert-dev/autocert/acmetest"
)

// A program (such as a demo) starts a CA and gets a configuration that
// obtains certificates from it; a test would call acmetest.New(t) instead
// and let the test's end stop it.
func ExampleStart() {
	s, err := acmetest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	cfg := s.Config("www.example.com", "*.example.com")
	cfg.CertPath = "certs/cert.crt"
	cfg.KeyPath = "certs/priv.key"

	fmt.Println(cfg.Provider, cfg.Domains)
	fmt.Println(strings.HasPrefix(cfg.CADirURL, "https://127.0.0.1:"))
	fmt.Println(cfg.Resolvers[0] == s.DNSAddr())
	fmt.Println(cfg.Options["api_token"]) // option values are never printed
	// Output:
	// acmetest [www.example.com *.example.com]
	// true
	// true
	// [REDACTED]
}
