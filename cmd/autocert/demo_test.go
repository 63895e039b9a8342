package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoLimit is the bound on the demo's run time.
const demoLimit = 30 * time.Second

// TestDemo: "autocert demo" needs nothing but itself: it obtains three
// certificates from its embedded CA through DNS-01, shows which one
// answered each HTTPS request by SNI, watches a short-lived certificate
// being renewed, and exits 0 within 30 seconds.
func TestDemo(t *testing.T) {
	t.Parallel()
	began := time.Now()
	p := start(t, t.TempDir(), nil, "demo")
	select {
	case <-p.done:
	case <-time.After(demoLimit):
		t.Fatalf("demo still running after %v\nstdout:\n%s\nstderr:\n%s", demoLimit, p.stdout, p.stderr)
	}
	took := time.Since(began)
	t.Logf("demo ran in %v", took.Round(10*time.Millisecond))
	r := result{p.stdout.String(), p.stderr.String(), p.code}
	noStackTrace(t, r)
	wantExit(t, r, exitOK, "demo")
	for _, re := range []string{
		`(?m)^  main\s+example\.test, \*\.example\.test\s+serial \S+, valid 90 days$`,
		`(?m)^  extra\[0\]\s+api\.example\.test, \*\.api\.example\.test\s+serial \S+, valid 90 days$`,
		`(?m)^  extra\[1\]\s+live\.example\.test\s+serial \S+, valid 11s$`,
		`(?m)^  https://example\.test/\s+-> main\s+example\.test, \*\.example\.test\s+serial`,
		`(?m)^  https://www\.example\.test/\s+-> main\s`,
		`(?m)^  https://api\.example\.test/\s+-> extra\[0\]\s+api\.example\.test`,
		`(?m)^  https://v2\.api\.example\.test/\s+-> extra\[0\]\s`,
		`(?m)^  https://live\.example\.test/\s+-> extra\[1\]\s+live\.example\.test`,
		`(?m)^  https://a\.b\.example\.test/\s+-> main\s.*\n\s+no certificate covers this name.*the client refuses it$`,
		`(?m)^Done in \d+\.\ds\.$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("demo output does not match %s", re)
		}
	}
	m := regexp.MustCompile(`(?m)^  renewed about \d+s after it was issued: serial (\S+) -> (\S+) \((?:renewal due by the certificate's lifetime|renewal window suggested by the CA)\)\n  https://live\.example\.test/\s+-> extra\[1\]\s+live\.example\.test\s+serial (\S+) \(the new certificate`).FindStringSubmatch(r.stdout)
	// (A certificate of 11 s may even have been renewed again meanwhile.)
	if m == nil || m[1] == m[2] || m[3] == m[1] {
		t.Errorf("live renewal not shown, or the new certificate not served: %q", m)
	}
	// The first live certificate answered before the renewal.
	if m != nil && !regexp.MustCompile(`(?m)^  https://live\.example\.test/\s+-> extra\[1\]\s+live\.example\.test\s+serial `+regexp.QuoteMeta(m[1])+`$`).MatchString(r.stdout) {
		t.Errorf("the first live certificate was not the one served before the renewal")
	}
	for _, step := range []string{"ordering a certificate for", "DNS record presented for", "waiting for the DNS record of", "the CA is validating", "the CA is issuing", "certificate saved to"} {
		if !strings.Contains(r.stderr, step) {
			t.Errorf("progress step %q not shown", step)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

// TestDemoServe: "demo --serve" keeps serving and prints a curl line that
// works (here done with Go's client), until SIGINT.
func TestDemoServe(t *testing.T) {
	t.Parallel()
	p := start(t, t.TempDir(), nil, "demo", "--serve")
	m := p.waitOutput(t, p.stdout, regexp.MustCompile(`(?m)^Serving on https://127\.0\.0\.1:(\d+) until Ctrl-C.*\n  curl --cacert (\S+) --resolve api\.example\.test:(\d+):127\.0\.0\.1 https://api\.example\.test:(\d+)/$`))
	if m[1] != m[3] || m[3] != m[4] {
		t.Fatalf("ports in %q", m[0])
	}
	rootPEM, err := os.ReadFile(m[2])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("the --cacert file holds no certificate")
	}
	tr := &http.Transport{
		// curl --resolve: the name resolves to the demo's loopback address.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:"+m[1])
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://api.example.test:" + m[1] + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "this connection got the certificate of extra[0] (api.example.test, *.api.example.test)") {
		t.Errorf("answer %s: %s", resp.Status, body)
	}
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t); code != exitOK {
		t.Fatalf("demo --serve after SIGINT: exit %d\n%s", code, p.stderr)
	}
	r := result{p.stdout.String(), p.stderr.String(), p.code}
	noStackTrace(t, r)
	if !strings.HasSuffix(r.stdout, "Stopped.\n") {
		t.Errorf("stdout ends with %q", r.stdout[max(0, len(r.stdout)-80):])
	}
	if _, err := os.Stat(m[2]); !os.IsNotExist(err) {
		t.Errorf("the demo's files were left behind: %v", err)
	}
}
