// Package demo is the demonstration of autocert run by "autocert demo" and
// by the command autocert-demo: it obtains certificates through DNS-01 from
// an ACME CA and DNS server started in the process (package acmetest),
// serves them over HTTPS by SNI, and shows a short-lived one renewed while
// it is served.
//
// It needs the library and its test CA only, no DNS provider: the command
// autocert-demo, which links nothing else, builds from an empty module cache
// in a fraction of the time the full command takes.
package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/rs/zerolog"
)

// Options are what Run shows its progress on and how it serves.
type Options struct {
	// Out receives the demo's report (standard output).
	Out io.Writer
	// Logger receives the library's log.
	Logger zerolog.Logger
	// Progress, if not nil, is given every progress report of the orders
	// (see autocert.WithProgress).
	Progress func(autocert.Progress)
	// Event, if not nil, is given every event of the certificates (see
	// autocert.WithNotifier).
	Event func(autocert.Event)
	// Serving, if not nil, is called once before the demo goes on serving
	// (Serve), after which Progress and Event are no longer of interest:
	// the report says what renews.
	Serving func()
	// Listen is the address of the HTTPS server; "" is 127.0.0.1 on a
	// free port.
	Listen string
	// Serve keeps serving after the demo, until the context of Run ends.
	Serve bool
}

// The demo's certificate profiles: a usual one, and a short-lived one whose
// renewal can be watched.
const (
	demoProfile  = "classic"
	liveProfile  = "shortlived"
	liveValidity = 12 * time.Second
	// liveWait bounds the wait for the live renewal (due at half the
	// lifetime).
	liveWait = 3 * liveValidity
	// shutdownTimeout bounds the shutdown of the HTTPS server.
	shutdownTimeout = 5 * time.Second
)

// The demo's certificates, in the order of the config: main, extra[0],
// extra[1]; and the names it asks its server for.
var (
	demoMain  = []string{"example.test", "*.example.test"}
	demoAPI   = []string{"api.example.test", "*.api.example.test"}
	demoLive  = []string{"live.example.test"}
	demoHosts = []string{
		"example.test",        // main, exact name
		"www.example.test",    // main, through *.example.test
		"api.example.test",    // extra[0], exact name
		"v2.api.example.test", // extra[0]: *.api.example.test is more specific than *.example.test
		"live.example.test",   // extra[1], exact name
		"a.b.example.test",    // no certificate: a wildcard covers one label only
	}
)

// CAOptions are the options of the demo's CA: its two profiles.
func CAOptions() []acmetest.Option {
	return []acmetest.Option{
		acmetest.WithProfile(demoProfile, "90 days", 90*24*time.Hour),
		acmetest.WithProfile(liveProfile, "12 seconds, to watch a renewal", liveValidity),
	}
}

// Config returns the demo's configuration on ca (started with CAOptions),
// its files in dir: the main certificate, extra[0] and the short-lived
// extra[1].
func Config(ca *acmetest.Server, dir string) *autocert.Config {
	cfg := ca.Config(demoMain...)
	cfg.Profile = demoProfile
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "example.test.crt"), filepath.Join(dir, "example.test.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	cfg.Extra = []autocert.ConfigExtra{
		{Domains: demoAPI, CertPath: filepath.Join(dir, "api.example.test.crt"), KeyPath: filepath.Join(dir, "api.example.test.key")},
		{Domains: demoLive, CertPath: filepath.Join(dir, "live.example.test.crt"), KeyPath: filepath.Join(dir, "live.example.test.key"), Profile: liveProfile},
	}
	return cfg
}

// Run obtains certificates from a CA started in the process, serves them
// over HTTPS by SNI, and shows a short-lived one renewed live; with
// o.Serve it then serves until ctx ends, which is no error. Otherwise the
// end of ctx interrupts the demo with an error. Run removes the files it
// wrote before it returns.
func Run(ctx context.Context, o Options) error {
	began := time.Now()
	out := o.Out
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	dir, err := os.MkdirTemp("", "autocert-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := acmetest.Start(CAOptions()...)
	if err != nil {
		return fmt.Errorf("starting the demo CA: %w", err)
	}
	defer ca.Close()
	fmt.Fprintf(out, "autocert demo: a real ACME CA (Pebble) and DNS server run inside this process, on loopback.\n")
	fmt.Fprintf(out, "  CA directory  %s\n  DNS server    %s\n  files         %s\n\n", ca.DirectoryURL(), ca.DNSAddr(), dir)

	cfg := Config(ca, dir)
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		return err
	}
	renewed := make(chan *autocert.CertRenewed, 16)
	opts := []autocert.Option{
		autocert.WithLogger(o.Logger),
		autocert.WithNotifier(autocert.NotifierFunc(func(_ context.Context, ev autocert.Event) error {
			if o.Event != nil {
				o.Event(ev)
			}
			if r, ok := ev.(*autocert.CertRenewed); ok {
				select {
				case renewed <- r:
				default:
				}
			}
			return nil
		})),
	}
	if o.Progress != nil {
		opts = append(opts, autocert.WithProgress(o.Progress))
	}
	p, err := autocert.NewProvider(cfg, user, legoCfg, opts...)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "Obtaining 3 certificates through DNS-01: account, order, TXT record, propagation, validation, issuance...\n")
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		return err
	}
	infos, _ := p.GetCertInfos()
	for _, ci := range infos {
		life := time.Unix(ci.NotAfter, 0).Sub(time.Unix(ci.NotBefore, 0)).Round(time.Second)
		fmt.Fprintf(out, "  %-9s %-40s serial %s, valid %s\n", ci.Provider, strings.Join(ci.DNSNames, ", "), short(ci.Serial), lifetime(life))
	}

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("demo HTTPS server: %w", err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{
		Handler:           handler(p),
		TLSConfig:         p.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // the refused handshake of a.b.example.test is expected
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		_ = srv.Shutdown(sctx)
		cancel()
	}()

	fmt.Fprintf(out, "\nHTTPS server on %s; each handshake gets the certificate its SNI name selects (Provider.GetCert):\n", addr)
	for _, host := range demoHosts {
		fmt.Fprintln(out, "  "+describeFetch(ctx, p, addr, host, ca.Roots()))
	}

	// The live renewal, by the scheduler, on the real clock.
	sctx, stopSched := context.WithCancel(ctx)
	defer func() {
		stopSched()
		<-p.SchedulerDone()
	}()
	liveInfo, _ := infoOf(p, "extra[1]")
	issued := time.Unix(liveInfo.NotBefore, 0)
	fmt.Fprintf(out, "\nLive renewal: the certificate of live.example.test is valid for %s (serial %s).\n",
		lifetime(time.Unix(liveInfo.NotAfter, 0).Sub(issued)), short(liveInfo.Serial))
	fmt.Fprintf(out, "The scheduler renews it at a point in the renewal window the CA suggests (ACME ARI) or when half\n"+
		"its lifetime is left, whichever comes first; the server keeps serving meanwhile...\n")
	p.ScheduleRenewalAll(autocert.ContextParent(sctx))
	timeout := time.NewTimer(liveWait)
	defer timeout.Stop()
	var r *autocert.CertRenewed
	for r == nil {
		select {
		case ev := <-renewed:
			if ev.Provider == "extra[1]" {
				r = ev
			}
		case <-timeout.C:
			return fmt.Errorf("the short-lived certificate was not renewed within %s", liveWait)
		case <-ctx.Done():
			return errors.New("interrupted")
		}
	}
	fmt.Fprintf(out, "  renewed about %s after it was issued: serial %s -> %s (%s)\n",
		r.Time.Sub(issued).Round(time.Second), short(r.PreviousSerial), short(r.Serial), r.Reason)
	fmt.Fprintln(out, "  "+describeFetch(ctx, p, addr, "live.example.test", ca.Roots())+" (the new certificate, without a restart)")

	if !o.Serve {
		fmt.Fprintf(out, "\nDone in %.1fs.\n", time.Since(began).Seconds())
		return nil
	}

	root := filepath.Join(dir, "demo-root.pem")
	if err := os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root().Raw}), 0o644); err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	if o.Serving != nil {
		o.Serving()
	}
	fmt.Fprintf(out, "\nServing on https://%s until Ctrl-C (live.example.test keeps being renewed). Try:\n", addr)
	fmt.Fprintf(out, "  curl --cacert %s --resolve api.example.test:%s:127.0.0.1 https://api.example.test:%s/\n", root, port, port)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "Stopped.")
			return nil
		case ev := <-renewed:
			fmt.Fprintf(out, "  %s renewed: serial %s, valid until %s\n", strings.Join(ev.Domains, ", "), short(ev.Serial), ev.NotAfter.Local().Format(time.TimeOnly))
		}
	}
}

// handler answers with the certificate the connection was given.
func handler(p *autocert.Provider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		name := ""
		if r.TLS != nil {
			name = r.TLS.ServerName
		}
		cert, err := p.GetCert(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		owner, _ := ownerOf(p, cert.Leaf)
		fmt.Fprintf(w, "Hello from the autocert demo.\nYou asked for %s; this connection got the certificate of %s (%s), serial %s, valid until %s.\n",
			r.Host, owner, strings.Join(cert.Leaf.DNSNames, ", "), short(cert.Leaf.SerialNumber.Text(16)), cert.Leaf.NotAfter.Format(time.RFC3339))
	})
}

// describeFetch makes an HTTPS request for host to the server at addr and
// says which certificate answered, and why.
func describeFetch(ctx context.Context, p *autocert.Provider, addr, host string, roots *x509.CertPool) string {
	url := "https://" + host + "/"
	leaf, err := fetch(ctx, addr, host, roots)
	if leaf == nil {
		return fmt.Sprintf("%-28s -> no answer: %v", url, err)
	}
	owner, _ := ownerOf(p, leaf)
	line := fmt.Sprintf("%-28s -> %-9s %-40s serial %s", url, owner, strings.Join(leaf.DNSNames, ", "), short(leaf.SerialNumber.Text(16)))
	if err != nil {
		var herr x509.HostnameError
		if errors.As(err, &herr) {
			return line + "\n" + strings.Repeat(" ", 34) + "no certificate covers this name (a wildcard covers one label): the main one is the default, and the client refuses it"
		}
		return line + ": " + err.Error()
	}
	return line
}

// fetch makes an HTTPS GET for host to addr and returns the certificate
// the server sent (also when the client refuses it) and the error.
func fetch(ctx context.Context, addr, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr) // every demo name is served here
		},
		TLSClientConfig: &tls.Config{
			// Verified in VerifyConnection, after noting the certificate,
			// so that a refused one can be shown too.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				leaf = cs.PeerCertificates[0]
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := leaf.Verify(x509.VerifyOptions{DNSName: cs.ServerName, Roots: roots, Intermediates: inter})
				return err
			},
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return leaf, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return leaf, fmt.Errorf("HTTP status %s", resp.Status)
	}
	return leaf, nil
}

// ownerOf names the provider serving leaf.
func ownerOf(p *autocert.Provider, leaf *x509.Certificate) (string, bool) {
	infos, _ := p.GetCertInfos()
	serial := leaf.SerialNumber.Text(16)
	i := slices.IndexFunc(infos, func(ci autocert.CertInfo) bool { return ci.Serial == serial })
	if i < 0 {
		return "unknown", false
	}
	return infos[i].Provider, true
}

// infoOf returns the information of provider's certificate.
func infoOf(p *autocert.Provider, provider string) (autocert.CertInfo, bool) {
	infos, _ := p.GetCertInfos()
	for _, ci := range infos {
		if ci.Provider == provider {
			return ci, true
		}
	}
	return autocert.CertInfo{}, false
}

// short abbreviates a serial number.
func short(serial string) string {
	if len(serial) > 12 {
		return serial[:12] + "…"
	}
	return serial
}

// lifetime formats a certificate's validity.
func lifetime(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int((d+time.Hour)/(24*time.Hour)))
	}
	return d.String()
}
