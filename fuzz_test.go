package autocert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// fuzzSecretMark starts every secret FuzzParseConfig places in a
// configuration; inputs that hold it elsewhere are not checked.
const fuzzSecretMark = "s3cr3t"

// FuzzParseConfig parses arbitrary YAML and JSON documents. It never
// panics; an error always wraps ErrInvalidConfig; a configuration it
// accepts validates again unchanged in its domains. Then the document gets
// secrets in every secret place (options of the main block and of every
// extra, eab_hmac, storage.dsn), including an option the test provider
// "cfgtest-dns" quotes in its own errors: no error may show them.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"provider: pseudo\ndomains: [example.com]\n",
		"autocert:\n  provider: cfgtest-dns\n  email: a@example.com\n  domains: [\"*.example.com\", example.com]\n  options:\n    api_token: ${TOKEN}\n",
		`{"provider": "cfgtest-dns", "email": "a@example.com", "domains": ["example.com"], "extra": [{"cert_path": "x.crt", "key_path": "x.key", "domains": ["x.example.com"]}]}`,
		"provider: local\ncert_path: a.crt\nkey_path: a.key\nextra:\n  - domains: [b.example.com]\n",
		"a: &x {provider: pseudo}\nautocert: *x\n",
		"provider: cfgtest-dns\nemail: a@example.com\ndomains: [ex ample.com, ../../etc]\neab_kid: k\neab_hmac: '!!'\n",
		"storage:\n  type: postgress\n  dsn: x\n",
		"- a\n- b\n",
		"autocert:\n  <<: {provider: pseudo, domains: [a.example.com]}\n",
	} {
		f.Add([]byte(seed), "-password-0")
	}
	f.Fuzz(func(t *testing.T, data []byte, secret string) {
		lookup := func(name string) (string, bool) {
			if name == "TOKEN" {
				return "token-from-env", true
			}
			return "", false
		}
		cfg, err := parseConfig(data, "fuzz.yaml", lookup)
		switch {
		case err != nil && !errors.Is(err, ErrInvalidConfig):
			t.Fatalf("error does not wrap ErrInvalidConfig: %v", err)
		case err == nil:
			domains := append([]string(nil), cfg.Domains...)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("an accepted configuration no longer validates: %v", err)
			}
			for i, d := range cfg.Domains {
				if d != domains[i] {
					t.Fatalf("Validate changed domain %q to %q", domains[i], d)
				}
				if n, err := normalizeDomain(d); err != nil || n != d {
					t.Fatalf("accepted domain %q is not normalised (%q, %v)", d, n, err)
				}
			}
		}

		if bytes.Contains(bytes.ToLower(data), []byte(fuzzSecretMark)) {
			return
		}
		s := fuzzSecretMark + secret
		doc := withSecrets(data, s)
		if doc == nil {
			return
		}
		_, err = parseConfig(doc, "fuzz.yaml", lookup)
		if err != nil && strings.Contains(err.Error(), s) {
			t.Fatalf("an error shows a secret:\n%v\ndocument:\n%s", err, doc)
		}
	})
}

// withSecrets returns the document data with secret set in every secret
// place of its configuration block, or nil when data holds no mapping.
func withSecrets(data []byte, secret string) []byte {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	block := doc.Content[0]
	if block.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(block.Content); i += 2 {
		if block.Content[i].Value == "autocert" && block.Content[i+1].Kind == yaml.MappingNode {
			block = block.Content[i+1]
		}
	}
	setSecrets(block, secret, true)
	for i := 0; i+1 < len(block.Content); i += 2 {
		if block.Content[i].Value == "extra" && block.Content[i+1].Kind == yaml.SequenceNode {
			for _, e := range block.Content[i+1].Content {
				if e.Kind == yaml.MappingNode {
					setSecrets(e, secret, false)
				}
			}
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil
	}
	return out
}

// setSecrets puts secret in the options, eab_hmac and (main block only)
// storage.dsn of the mapping m, replacing what was there.
func setSecrets(m *yaml.Node, secret string, main bool) {
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	set := func(key string, value *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				m.Content[i+1] = value
				return
			}
		}
		m.Content = append(m.Content, str(key), value)
	}
	set("options", &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		str("api_token"), str(secret), str("leaky"), str(secret), str("other"), str(secret + "-2"),
	}})
	set("eab_hmac", str(secret))
	if main {
		set("storage", &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			str("type"), str("postgress"), str("dsn"), str(secret),
		}})
	}
}

// FuzzParseKeyPair loads arbitrary certificate and key files as a stored
// certificate is loaded: never a panic, and a pair that loads has its leaf
// parsed and its key belonging to it.
func FuzzParseKeyPair(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		c, err := parseKeyPair(certPEM, keyPEM)
		if err != nil {
			return
		}
		if c.Leaf == nil || len(c.Certificate) == 0 || !bytes.Equal(c.Leaf.Raw, c.Certificate[0]) {
			t.Fatal("a loaded pair has no parsed leaf")
		}
		var ok bool
		switch k := c.PrivateKey.(type) {
		case *ecdsa.PrivateKey:
			ok = k.PublicKey.Equal(c.Leaf.PublicKey)
		case *rsa.PrivateKey:
			ok = k.PublicKey.Equal(c.Leaf.PublicKey)
		default:
			ok = true // ed25519: tls.X509KeyPair checked it
		}
		if !ok {
			t.Fatal("a loaded pair's key does not belong to its certificate")
		}
		_ = keyTypeName(c.PrivateKey)
	})
}

// FuzzParseAccountKey reads arbitrary account key files: never a panic,
// and a key it accepts is one lego can sign with (ECDSA P-256 or P-384, RSA
// of 2048 bits or more).
func FuzzParseAccountKey(f *testing.F) {
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte{0x30, 0x77, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := parseAccountKey(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			if n := k.Curve.Params().Name; n != "P-256" && n != "P-384" {
				t.Fatalf("accepted curve %s", n)
			}
		case *rsa.PrivateKey:
			if k.N.BitLen() < 2048 {
				t.Fatalf("accepted RSA key of %d bits", k.N.BitLen())
			}
		default:
			t.Fatalf("accepted key %T", key)
		}
	})
}

// FuzzParseFailureRecord reads arbitrary last-failure files: never a
// panic; a record that parses has at least one attempt and is written back
// in a form that parses to the same record.
func FuzzParseFailureRecord(f *testing.F) {
	f.Add([]byte("2026-03-04T05:06:07Z"))
	f.Add([]byte("2026-03-04T05:06:07Z\nattempts: 3\nretry_at: 2026-03-04T09:06:07Z\nerror: boom: bad\n"))
	f.Add([]byte("2026-03-04T05:06:07.5+02:00\r\nattempts: -1\nerror:\x00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseFailureRecord(data)
		if err != nil {
			return
		}
		if r.Attempts < 1 {
			t.Fatalf("record with %d attempts", r.Attempts)
		}
		_ = r.retryAt(time.Time{})
		_ = r.retryAt(r.Time.Add(time.Hour))
		if y := r.Time.UTC().Year(); y < 1 || y > 9999 {
			// RFC 3339 has no other years: a hand-written record such
			// as "0000-01-01T00:00:00+01:00" parses, but its time in UTC
			// cannot be written (the library writes times of its clock).
			return
		}
		once, err := parseFailureRecord(r.marshal())
		if err != nil {
			t.Fatalf("a written record does not parse: %v\n%q", err, r.marshal())
		}
		twice, err := parseFailureRecord(once.marshal())
		if err != nil || !twice.Time.Equal(once.Time) || twice.Attempts != once.Attempts ||
			!twice.RetryAt.Equal(once.RetryAt) || twice.Message != once.Message {
			t.Fatalf("record changes when written again: %+v, then %+v (%v)", once, twice, err)
		}
		if once.Attempts != r.Attempts || !once.Time.Equal(r.Time.Truncate(time.Second)) && !once.Time.Equal(r.Time) {
			t.Fatalf("writing the record lost data: %+v became %+v", r, once)
		}
	})
}

// FuzzParseARIRecord reads arbitrary renewal-information records: never a
// panic, and what parses is written back in a form that parses the same.
func FuzzParseARIRecord(f *testing.F) {
	f.Add([]byte("cert: abc.def\nwindow_start: 2026-01-01T00:00:00Z\nwindow_end: 2026-01-02T00:00:00Z\nrenew_at: 2026-01-01T12:00:00.5Z\nnext_fetch: 2026-01-01T06:00:00Z\n"))
	f.Add([]byte("cert:\nrenew_at: nonsense\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseARIRecord(data)
		if err != nil {
			return
		}
		again, err := parseARIRecord(r.marshal())
		if err != nil {
			t.Fatalf("a written record does not parse: %v", err)
		}
		if again.CertID != r.CertID || !again.RenewAt.Equal(r.RenewAt) || !again.NextFetch.Equal(r.NextFetch) ||
			!again.Start.Equal(r.Start) || !again.End.Equal(r.End) {
			t.Fatalf("record changes when written again: %+v, then %+v", r, again)
		}
	})
}
