package provider_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/rs/zerolog"
)

// TestLastFailureFileAsGoDoxyWritesIt: after a failed order the
// last-failure file holds one RFC 3339 time and nothing else, as GoDoxy
// (and the seed) write it and read it whole with time.Parse, while the
// attempts, retry time and error live in autocert's own record beside it;
// both are 0600 and both go with a success. A failure GoDoxy recorded
// after autocert's (an installation gone back to it and returned) is
// honoured at the next start: no order inside its cool-down.
func TestLastFailureFileAsGoDoxyWritesIt(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := ca.Config("example.com")
	cfg.CertPath, cfg.KeyPath, cfg.ACMEKeyPath = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), filepath.Join(dir, "acme.key")
	last := filepath.Join(dir, ".last_failure-"+recordHash(cfg))
	detail := filepath.Join(dir, ".autocert_failure-"+recordHash(cfg))

	ca.FailOrders(1, acmetest.Problem{Type: "rateLimited", Detail: "too many certificates already issued"})
	if err := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop())).ObtainCertIfNotExistsAll(); !errors.Is(err, autocert.ErrObtain) {
		t.Fatalf("obtain against a refusing CA: %v", err)
	}
	data, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	when, err := time.Parse(time.RFC3339, string(data)) // what GoDoxy does with the whole file
	if err != nil {
		t.Fatalf("GoDoxy cannot read the last-failure file %q: %v", data, err)
	}
	if d := time.Since(when); d < -time.Second || d > time.Minute {
		t.Errorf("last failure at %v, not just now", when)
	}
	text, err := os.ReadFile(detail)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"attempts: 1\n", "retry_at: ", "error: ", "too many certificates"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the detail record lacks %q:\n%s", want, text)
		}
	}
	for _, f := range []string{last, detail} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}

	// GoDoxy fails again later, writing only its file.
	later := time.Now().UTC().Truncate(time.Second)
	if err := os.WriteFile(last, later.AppendFormat(nil, time.RFC3339), 0o600); err != nil {
		t.Fatal(err)
	}
	orders := len(ca.Orders())
	err = newProvider(t, cfg, autocert.WithLogger(zerolog.Nop())).ObtainCertIfNotExistsAll()
	if !errors.Is(err, autocert.ErrCoolingDown) || !strings.Contains(err.Error(), later.Format(time.RFC3339)) {
		t.Errorf("start after GoDoxy's later failure: %v; want ErrCoolingDown naming %s", err, later.Format(time.RFC3339))
	}
	if len(ca.Orders()) != orders {
		t.Error("an order was sent inside GoDoxy's cool-down")
	}

	p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainAll(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{last, detail} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after a success: %v; want it removed", f, err)
		}
	}
}
