package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/autocert-dev/autocert/httpapi"
	"github.com/coder/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// webhookReceiver records the notifications the command posts.
type webhookReceiver struct {
	mu    sync.Mutex
	posts []map[string]any
	srv   *httptest.Server
}

func newWebhookReceiver(t *testing.T, token string) *webhookReceiver {
	w := &webhookReceiver{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != token {
			http.Error(rw, "bad token", http.StatusForbidden)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.posts = append(w.posts, body)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// kinds returns the kinds of the notifications received, with the
// provider: "renewed main".
func (w *webhookReceiver) kinds() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.posts {
		ev, _ := p["event"].(map[string]any)
		prov, _ := ev["provider"].(string)
		out = append(out, strings.TrimSpace(fmt.Sprintf("%v %s", p["kind"], prov)))
	}
	return out
}

func (w *webhookReceiver) find(kind, provider string) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.posts {
		ev, _ := p["event"].(map[string]any)
		if p["kind"] == kind && ev["provider"] == provider {
			return p
		}
	}
	return nil
}

// failingHook records its runs like hookScript, and fails for extra[0].
const failingHook = hookScript + `if [ "$AUTOCERT_PROVIDER" = "extra[0]" ]; then
  echo "nginx: reload failed" >&2
  exit 3
fi
`

// TestRunUntilSignal: "run" obtains both certificates, runs the deploy
// hook for each (a failing hook is logged and notified, and the command
// keeps running), serves the HTTP API on loopback with a token (info,
// 401s, a forced renewal streamed over a WebSocket, Prometheus metrics),
// posts notifications to the webhook, and on SIGTERM stops with exit 0.
// No secret shows in its output.
func TestRunUntilSignal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const apiToken, webhookToken = "api-token-0123456789", "webhook-token-9876543210"
	hooks := newWebhookReceiver(t, webhookToken)
	if err := os.WriteFile(filepath.Join(f.dir, "hook.sh"), []byte(failingHook), 0o755); err != nil {
		t.Fatal(err)
	}
	f.writeConfig(t, fmt.Sprintf(`command:
  deploy_hook: sh ./hook.sh
  deploy_timeout: 30s
  api:
    listen: 127.0.0.1:0
    token: ${API_TOKEN}
  webhooks:
    - url: %s/notify?token=${WEBHOOK_TOKEN}
      format: json
`, hooks.srv.URL))
	env := append(slices.Clone(f.env), "API_TOKEN="+apiToken, "WEBHOOK_TOKEN="+webhookToken)
	p := start(t, f.dir, env, "run", "--log-format", "json")
	m := p.waitOutput(t, p.stderr, regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving the HTTP API"`))
	base := "http://" + m[1]

	api := func(path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(body), apiToken) || strings.Contains(string(body), webhookToken) {
			t.Errorf("%s: the response holds a token", path)
		}
		f.noSecret(t, string(body))
		return resp.StatusCode, body
	}
	for _, tok := range []string{"", "wrong-token"} {
		for _, path := range []string{httpapi.PathInfo, httpapi.PathRenew, httpapi.PathMetrics} {
			if status, _ := api(path, tok); status != http.StatusUnauthorized {
				t.Errorf("%s with token %q: status %d, want 401", path, tok, status)
			}
		}
	}

	// Both certificates obtained and served; the hook ran for each.
	status, body := api(httpapi.PathInfo, apiToken)
	var sts []httpapi.CertStatus
	if err := json.Unmarshal(body, &sts); err != nil || status != http.StatusOK {
		t.Fatalf("info: %d %s (%v)", status, body, err)
	}
	if len(sts) != 2 || !sts[0].Served() || !sts[1].Served() || sts[0].Serial != serialOf(t, filepath.Join(f.dir, "certs", "example.com.crt")) {
		t.Fatalf("info: %+v", sts)
	}
	eventually(t, "the deploy hook ran for both certificates", func() bool {
		runs := hookRuns(t, f.dir)
		return len(runs["main"]) == 1 && len(runs["extra[0]"]) == 1
	})
	checkHookRun(t, f.dir, hookRuns(t, f.dir), "main", "obtained", "example.com", "example.com *.example.com")
	before := map[string]string{"main": sts[0].Serial, "extra[0]": sts[1].Serial}

	// A forced renewal over a WebSocket, with its progress streamed.
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+m[1]+httpapi.PathRenew, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + apiToken}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	var lines []string
	var final httpapi.Message
	for final.Type != httpapi.TypeResult {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("renewal stream: %v; got %q", err, lines)
		}
		f.noSecret(t, string(data))
		if err := json.Unmarshal(data, &final); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, final.Line)
	}
	for _, want := range []string{"main: ordering a certificate for example.com, *.example.com", "extra[0]: DNS record presented for api.example.com",
		"main: the CA is issuing the certificate", "certificate renewed: main", "certificate renewed: extra[0]"} {
		if !slices.Contains(lines, want) {
			t.Errorf("stream has no line %q: %q", want, lines)
		}
	}
	if len(final.Results) != 2 {
		t.Fatalf("result %+v", final)
	}
	for _, r := range final.Results {
		if !r.OK || r.Serial == before[r.Provider] {
			t.Errorf("result %+v, serial before %s", r, before[r.Provider])
		}
	}

	// Metrics: they parse, and carry the expiry of both certificates.
	status, body = api(httpapi.PathMetrics, apiToken)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil || status != http.StatusOK {
		t.Fatalf("metrics: %d, %v\n%s", status, err, body)
	}
	expiry := map[string]float64{}
	for _, mm := range families[httpapi.MetricExpiry].GetMetric() {
		for _, l := range mm.GetLabel() {
			if l.GetName() == "provider" {
				expiry[l.GetValue()] = mm.GetGauge().GetValue()
			}
		}
	}
	mainLeaf := leaf(t, filepath.Join(f.dir, "certs", "example.com.crt"))
	if expiry["main"] != float64(mainLeaf.NotAfter.Unix()) || expiry["extra[0]"] == 0 {
		t.Errorf("expiry gauges %v; main certificate expires %d", expiry, mainLeaf.NotAfter.Unix())
	}
	if mainLeaf.SerialNumber.Text(16) == before["main"] {
		t.Error("the renewed certificate was not written")
	}

	// The hook ran again; its failures for extra[0] were logged and
	// posted to the webhook, and the command kept running.
	eventually(t, "the deploy hook ran for the renewals", func() bool {
		runs := hookRuns(t, f.dir)
		return len(runs["main"]) == 2 && len(runs["extra[0]"]) == 2
	})
	checkHookRun(t, f.dir, hookRuns(t, f.dir), "main", "renewed", "example.com", "example.com *.example.com")
	eventually(t, "notifications posted", func() bool {
		k := hooks.kinds()
		return slices.Contains(k, "renewed main") && slices.Contains(k, "renewed extra[0]") &&
			slices.Contains(k, "expiry_summary") && slices.Contains(k, "deploy_failed extra[0]")
	})
	failed := hooks.find("deploy_failed", "extra[0]")
	if msg, _ := failed["message"].(string); !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "nginx: reload failed") {
		t.Errorf("deploy failure notification: %v", failed)
	}
	if hooks.find("deploy_failed", "main") != nil {
		t.Error("a deploy failure was notified for main, whose hook succeeded")
	}
	p.waitOutput(t, p.stderr, regexp.MustCompile(`"level":"warn"[^\n]*"provider":"extra\[0\]"[^\n]*"message":"deploy hook failed"`))
	select {
	case <-p.done:
		t.Fatalf("run ended (exit %d) after a failed deploy hook:\n%s", p.code, p.stderr)
	default:
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != exitOK {
		t.Fatalf("run after SIGTERM: exit %d\n%s", code, p.stderr)
	}
	out := p.stdout.String() + p.stderr.String()
	noStackTrace(t, result{p.stdout.String(), p.stderr.String(), p.code})
	if !strings.Contains(out, `"message":"stopped"`) {
		t.Errorf("no clean stop logged:\n%s", out)
	}
	for _, secret := range []string{apiToken, webhookToken} {
		if strings.Contains(out, secret) {
			t.Errorf("the output holds a token")
		}
	}
	f.noSecret(t, out)
	if n := strings.Count(out, `"level":"error"`); n != 0 {
		t.Errorf("%d errors logged:\n%s", n, out)
	}
}

// TestRunRefusesOpenAPI: serving the API beyond loopback without a token
// is refused before anything starts, naming the file, line and key.
func TestRunRefusesOpenAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.writeConfig(t, "command:\n  api:\n    listen: 0.0.0.0:9443\n")
	r := f.run(t, "run")
	wantExit(t, r, exitUsage, "run with an open API")
	if !regexp.MustCompile(`autocert\.yml:20: command\.api\.token: required: the API would listen on 0\.0\.0\.0:9443`).MatchString(r.stderr) {
		t.Errorf("message:\n%s", r.stderr)
	}
	if len(f.ca.Orders()) != 0 {
		t.Error("an order was placed before refusing the config")
	}
}

// TestRunAPIOverTLS: with api.tls the API is served over HTTPS with the
// managed certificate, which a client verifies against the CA; SIGINT
// stops the command with exit 0.
func TestRunAPIOverTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.writeConfig(t, "command:\n  api:\n    listen: 127.0.0.1:0\n    token: tls-api-token\n    tls: true\n")
	p := start(t, f.dir, f.env, "run", "--log-format", "json")
	m := p.waitOutput(t, p.stderr, regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"url":"(https://[^"]+)"[^\n]*"message":"serving the HTTP API"`))
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, m[1])
		},
		TLSClientConfig: &tls.Config{RootCAs: f.ca.Roots()},
	}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://api.example.com"+httpapi.PathInfo, nil)
	req.Header.Set("Authorization", "Bearer tls-api-token")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("HTTPS request to the API (%s): %v", m[2], err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS.PeerCertificates[0].SerialNumber.Text(16) != serialOf(t, filepath.Join(f.dir, "certs", "api.example.com.crt")) {
		t.Errorf("status %s, body %s", resp.Status, body)
	}
	p.signal(t, os.Interrupt)
	if code := p.wait(t); code != exitOK {
		t.Fatalf("run after SIGINT: exit %d\n%s", code, p.stderr)
	}
}
