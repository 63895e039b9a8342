package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/acmetest"
)

// TestRestartLoopAfterRateLimit: after the CA answered rateLimited with a
// Retry-After of a day, "autocert run" restarted in a loop (as systemd's
// Restart=always would) and "obtain" send no order, each saying until when
// and why; "obtain --force" orders at once.
func TestRestartLoopAfterRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.writeConfig(t, "")
	f.ca.FailOrders(2, acmetest.Problem{Type: "rateLimited", Detail: "too many new orders recently", RetryAfter: 24 * time.Hour})

	r := f.run(t, "obtain")
	wantExit(t, r, exitFailed, "obtain against a rate limit")
	orders := len(f.ca.Orders())
	if orders != 2 {
		t.Fatalf("%d orders, want one per certificate", orders)
	}
	until := time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15")
	// As if the failures were a minute old: past the 15 s within which no
	// start orders whatever the record says.
	// Each record is two files: the last-failure time and its detail.
	records, _ := filepath.Glob(filepath.Join(f.dir, "certs", ".last_failure-*"))
	details, _ := filepath.Glob(filepath.Join(f.dir, "certs", ".autocert_failure-*"))
	if len(records) != 2 || len(details) != 2 {
		t.Fatalf("last-failure records %v and details %v, want 2 of each", records, details)
	}
	records = append(records, details...)
	for _, rec := range records {
		data, err := os.ReadFile(rec)
		if err != nil {
			t.Fatal(err)
		}
		first, rest, _ := strings.Cut(string(data), "\n")
		at, err := time.Parse(time.RFC3339, first)
		if err != nil {
			t.Fatalf("%s: first line %q", rec, first)
		}
		data = []byte(at.Add(-time.Minute).Format(time.RFC3339) + "\n" + rest)
		if err := os.WriteFile(rec, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for i := range 5 {
		p := start(t, f.dir, f.env, "run", "--log-format", "json")
		p.waitOutput(t, p.stderr, regexp.MustCompile(`running: certificates are renewed in the background`))
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t); code != exitOK {
			t.Fatalf("run %d: exit %d\n%s", i+1, code, p.stderr)
		}
		if i == 0 && (!strings.Contains(p.stderr.String(), "not retrying before "+until) || !strings.Contains(p.stderr.String(), "too many new orders recently")) {
			t.Errorf("run %d does not say until when and why it waits:\n%s", i+1, p.stderr)
		}
	}
	r = f.run(t, "obtain")
	wantExit(t, r, exitFailed, "obtain inside the wait")
	if !strings.Contains(r.stderr, "not retrying before "+until) || !strings.Contains(r.stderr, "--force") {
		t.Errorf("obtain inside the wait:\n%s", r.stderr)
	}
	if n := len(f.ca.Orders()) - orders; n != 0 {
		t.Fatalf("restarts inside the wait sent %d orders", n)
	}

	r = f.run(t, "obtain", "--force")
	wantExit(t, r, exitOK, "obtain --force")
	if n := len(f.ca.Orders()) - orders; n != 2 {
		t.Errorf("obtain --force: %d orders, want 2", n)
	}
}
