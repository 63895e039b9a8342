package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/httpapi"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// instanceHook records each run of the deploy hook with the instance that
// ran it: "A|reloaded|main|<serial>".
const instanceHook = `#!/bin/sh
printf '%s|%s|%s|%s\n' "$INSTANCE" "$AUTOCERT_EVENT" "$AUTOCERT_PROVIDER" "$AUTOCERT_SERIAL" >> hook.log
`

// apiInstance is a running "autocert run" serving its API over HTTPS with
// the managed certificate.
type apiInstance struct {
	*proc
	name, addr string
}

// info returns the serials the instance's API reports, by provider.
func (in *apiInstance) info(t *testing.T, roots *tls.Config) map[string]string {
	t.Helper()
	resp, err := in.client(roots).Do(authorized(t, "https://api.example.com"+httpapi.PathInfo, "sync-api-token"))
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sts []httpapi.CertStatus
	if err := json.Unmarshal(body, &sts); err != nil {
		t.Fatalf("info: %s: %v", body, err)
	}
	out := map[string]string{}
	for _, st := range sts {
		out[st.Provider] = st.Serial
	}
	return out
}

// served returns the serial of the certificate the instance presents in a
// TLS handshake for serverName, verified against the CA.
func (in *apiInstance) served(t *testing.T, roots *tls.Config, serverName string) string {
	t.Helper()
	cfg := roots.Clone()
	cfg.ServerName = serverName
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", in.addr, cfg)
	if err != nil {
		t.Fatalf("TLS handshake with %s for %s: %v", in.addr, serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

func (in *apiInstance) client(roots *tls.Config) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, in.addr)
		},
		TLSClientConfig: roots,
	}}
}

// TestRunServesWhatAnotherProcessStored: two "autocert run" sharing certs/
// (as two replicas on one host, or a service beside a cron job); a
// "renew --force" by a third process replaces both certificates. Within
// seconds each running instance serves the new certificates over HTTPS,
// reports them in /api/v1/cert/info and /metrics, and runs its deploy hook
// with the "reloaded" event; neither orders anything itself.
func TestRunServesWhatAnotherProcessStored(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.dir, "hook.sh"), []byte(instanceHook), 0o755); err != nil {
		t.Fatal(err)
	}
	f.writeConfig(t, "command:\n  deploy_hook: sh ./hook.sh\n  api:\n    listen: 127.0.0.1:0\n    token: sync-api-token\n    tls: true\n")
	roots := &tls.Config{RootCAs: f.ca.Roots()}
	startRun := func(name string) *apiInstance {
		p := start(t, f.dir, append(slices.Clone(f.env), "INSTANCE="+name), "run", "--log-format", "json")
		m := p.waitOutput(t, p.stderr, regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving the HTTP API"`))
		return &apiInstance{p, name, m[1]}
	}
	a := startRun("A")
	b := startRun("B")
	certs := map[string]string{"main": filepath.Join(f.dir, "certs", "example.com.crt"), "extra[0]": filepath.Join(f.dir, "certs", "api.example.com.crt")}
	before := map[string]string{"main": serialOf(t, certs["main"]), "extra[0]": serialOf(t, certs["extra[0]"])}
	if got := b.info(t, roots); got["main"] != before["main"] || got["extra[0]"] != before["extra[0]"] {
		t.Fatalf("B serves %v, want what A stored: %v", got, before)
	}
	orders := len(f.ca.Orders())

	r := run(t, f.dir, append(slices.Clone(f.env), "INSTANCE=C"), "renew", "--force")
	wantExit(t, r, exitOK, "renew --force")
	after := map[string]string{"main": serialOf(t, certs["main"]), "extra[0]": serialOf(t, certs["extra[0]"])}
	if after["main"] == before["main"] || after["extra[0]"] == before["extra[0]"] {
		t.Fatalf("renew --force did not replace the files: %v then %v", before, after)
	}
	if n := len(f.ca.Orders()) - orders; n != 2 {
		t.Fatalf("%d orders for the forced renewal of 2 certificates, want 2", n)
	}

	// Within seconds: the file-system notification, or at worst the
	// periodic look every five seconds.
	deadline := time.Now().Add(15 * time.Second)
	for _, in := range []*apiInstance{a, b} {
		for {
			got := in.info(t, roots)
			if got["main"] == after["main"] && got["extra[0]"] == after["extra[0]"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %s still serves %v, want %v\n%s", in.name, got, after, in.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if s := in.served(t, roots, "api.example.com"); s != after["extra[0]"] {
			t.Errorf("HTTPS for api.example.com presents serial %s, want %s", s, after["extra[0]"])
		}
		if s := in.served(t, roots, "www.example.com"); s != after["main"] {
			t.Errorf("HTTPS for www.example.com presents serial %s, want %s", s, after["main"])
		}
		resp, err := in.client(roots).Do(authorized(t, "https://api.example.com"+httpapi.PathMetrics, "sync-api-token"))
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		expiry := map[string]float64{}
		for _, m := range families[httpapi.MetricExpiry].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" {
					expiry[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		for prov, path := range certs {
			if want := float64(leaf(t, path).NotAfter.Unix()); expiry[prov] != want {
				t.Errorf("instance %s: metrics show expiry %v for %s, want the new certificate's %v", in.name, expiry[prov], prov, want)
			}
		}
	}
	eventually(t, "both instances ran their deploy hook for the reloaded certificates", func() bool {
		data, _ := os.ReadFile(filepath.Join(f.dir, "hook.log"))
		for _, in := range []string{"A", "B"} {
			for _, prov := range []string{"main", "extra[0]"} {
				if !strings.Contains(string(data), fmt.Sprintf("%s|reloaded|%s|%s\n", in, prov, after[prov])) {
					return false
				}
			}
		}
		return true
	})
	if n := len(f.ca.Orders()) - orders; n != 2 {
		t.Errorf("%d orders in all, want only the 2 of renew --force", n)
	}
	for _, in := range []*apiInstance{a, b} {
		in.signal(t, syscall.SIGTERM)
		if code := in.wait(t); code != exitOK {
			t.Errorf("exit %d\n%s", code, in.stderr)
		}
		if n := strings.Count(in.stderr.String(), `"level":"error"`); n != 0 {
			t.Errorf("%d errors logged:\n%s", n, in.stderr)
		}
	}
}

// authorized is a GET request for url with the bearer token.
func authorized(t *testing.T, url, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}
