package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/syncbuf"
)

// TestDisplayTerminal: on a terminal the progress is one spinner line,
// rewritten in place; a log line clears it first; a finished certificate
// leaves a lasting line; Close removes the spinner.
func TestDisplayTerminal(t *testing.T) {
	var buf syncbuf.Buffer
	d := newDisplay(&buf)
	d.tty, d.every = true, time.Hour // a terminal whose spinner does not turn during the test
	d.Progress(autocert.Progress{Provider: "main", Step: autocert.StepOrder, Detail: "example.com"})
	d.Progress(autocert.Progress{Provider: "main", Step: autocert.StepPropagation, Domain: "example.com", Elapsed: 1500 * time.Millisecond})
	if _, err := d.Write([]byte("09:00:00 INF a log line\n")); err != nil {
		t.Fatal(err)
	}
	d.Progress(autocert.Progress{Provider: "main", Step: autocert.StepSaved, Detail: "certs/cert.crt"})
	d.Close()
	out := buf.String()
	for _, want := range []string{
		"⠋ main: ordering a certificate for example.com",
		"\r\033[K⠋ main: waiting for the DNS record of example.com to propagate (1.5s)",
		"\r\033[K09:00:00 INF a log line\n⠋ main: waiting for the DNS record of example.com to propagate (1.5s)",
		"\r\033[K✓ main: certificate saved to certs/cert.crt\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "certs/cert.crt\n") {
		t.Errorf("the spinner was left on screen: %q", out)
	}
}

// TestDisplayPlain: elsewhere, one line per step, the propagation wait at
// most every two seconds, and a failure.
func TestDisplayPlain(t *testing.T) {
	var buf bytes.Buffer
	d := newDisplay(&buf)
	if d.tty {
		t.Fatal("a buffer taken for a terminal")
	}
	for _, e := range []time.Duration{0, 500 * time.Millisecond, 2 * time.Second, 3 * time.Second} {
		d.Progress(autocert.Progress{Provider: "extra[0]", Step: autocert.StepPropagation, Domain: "api.example.com", Elapsed: e})
	}
	d.Event(&autocert.RenewalFailed{Provider: "extra[0]", Error: "DNS provider refused the record"})
	d.Close()
	want := "extra[0]: waiting for the DNS record of api.example.com to propagate (0s)\n" +
		"extra[0]: waiting for the DNS record of api.example.com to propagate (2s)\n" +
		"extra[0]: failed: DNS provider refused the record\n"
	if buf.String() != want {
		t.Errorf("output\n%q\nwant\n%q", buf.String(), want)
	}
}

// TestLoopback: which API addresses may go without a token.
func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9443": true, "[::1]:9443": true, "localhost:9443": true, "127.1.2.3:1": true,
		":9443": false, "0.0.0.0:9443": false, "[::]:9443": false, "10.0.0.1:9443": false, "example.com:9443": false, "nonsense": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v", addr, got)
		}
	}
}
