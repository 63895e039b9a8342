package autocert

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sniHostileSpecs are the certificates of TestGetCertHostileNames, in
// configured order: names that hostile server names come close to.
var sniHostileSpecs = [][]string{
	{"example.com", "*.example.com"},
	{"*.api.example.com", "api.example.com"},
	{"xn--bcher-kva.example", "_acme.example.org"},
	{"192.0.2.1", "*.0.2.1", "1.2.3.4.example.net"},
	{"dotted.example.org.", "*.dotted.example.org.", "www.example.com."},
}

// sniHostileNames are server names a client can send: too long, empty
// labels, dots alone, NUL and other control bytes, non-ASCII and invalid
// UTF-8, IP literals in every form, trailing dots, upper case, wildcards
// and other characters a DNS name cannot hold.
func sniHostileNames() []string {
	label63 := strings.Repeat("a", 63)
	long253 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 57)}, ".") + ".com"
	return []string{
		"", ".", "..", "...", "example.com..", ".example.com", "a..example.com", "..example.com",
		"example.com.", "EXAMPLE.COM", "WwW.ExAmPlE.cOm.", "API.EXAMPLE.COM", "X.API.EXAMPLE.COM.",
		long253, long253 + ".", long253 + "x", strings.Repeat("a.", 200) + "example.com",
		strings.Repeat("x", 64) + ".example.com", strings.Repeat("a", 100000),
		"ex\x00ample.com", "example.com\x00", "\x00", "x.example.com\x00.evil", "\x7f.example.com",
		"a\nb.example.com", "a b.example.com", "a\t.example.com",
		"bücher.example", "BÜCHER.example", "xn--bcher-kva.example", "XN--BCHER-KVA.EXAMPLE.",
		"\xff\xfe.example.com", strings.Repeat("\xff", 300), "é.example.com", "ａ.example.com",
		"192.0.2.1", "192.0.2.1.", "x.0.2.1", "1.2.3.4", "01.2.3.4", "256.0.2.1", "1.2.3.4.example.net",
		"[::1]", "::1", "2001:db8::1", "[2001:db8::1]:443", "::ffff:192.0.2.1", "0x7f.0.0.1", "4294967295",
		"*", "*.example.com", "**.example.com", "*.api.example.com", "a.*.example.com", "?.example.com",
		"-a.example.com", "a-.example.com", "_acme.example.org", "a_b.example.com", "a.b.api.example.com",
		"example.com/../../etc", "example.com:443", "user@example.com", "%2e.example.com",
		"dotted.example.org", "dotted.example.org.", "x.dotted.example.org", "DOTTED.EXAMPLE.ORG.",
	}
}

// TestGetCertHostileNames asks for every hostile server name, with a real
// certificate set: GetCert picks what the reference matcher (built on
// crypto/x509's VerifyHostname) picks, never panics, and allocates
// nothing. It also keeps the names as seeds of FuzzSNI's corpus.
func TestGetCertHostileNames(t *testing.T) {
	specs := make([]*sniCertSpec, len(sniHostileSpecs))
	for i, names := range sniHostileSpecs {
		specs[i] = sniNames(names...)
	}
	p, certs := sniServe(t, specs...)
	for _, name := range sniHostileNames() {
		hello := &tls.ClientHelloInfo{ServerName: name}
		got, err := p.GetCert(hello)
		if err != nil {
			t.Fatalf("GetCert(%q): %v", name, err)
		}
		if want := sniReference(certs, name); got != want {
			t.Errorf("GetCert(%.80q) chose certificate %d, want %d", name, slices.Index(certs, got), slices.Index(certs, want))
		}
		if err := sniCheckVerifies(certs, certs[0], name, got); err != nil {
			t.Error(err)
		}
		if n := testing.AllocsPerRun(50, func() { _, _ = p.GetCert(hello) }); n != 0 {
			t.Errorf("GetCert(%.80q) allocates %v times", name, n)
		}
	}
	if os.Getenv("AUTOCERT_WRITE_SNI_CORPUS") != "" {
		writeSNICorpus(t)
	}
}

// writeSNICorpus writes the hostile names as seeds of FuzzSNI (run the
// test with AUTOCERT_WRITE_SNI_CORPUS=1 after adding names).
func writeSNICorpus(t *testing.T) {
	var spec []string
	for _, names := range sniHostileSpecs {
		spec = append(spec, strings.Join(names, ","))
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzSNI")
	for i, name := range sniHostileNames() {
		if len(name) > 4096 {
			continue
		}
		data := fmt.Sprintf("go test fuzz v1\nstring(%s)\nstring(%s)\n", strconv.Quote(strings.Join(spec, "\n")), strconv.Quote(name))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("hostile_%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
