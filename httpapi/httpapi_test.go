package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/httpapi"
	"github.com/coder/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
)

const token = "s3cret-api-token"

// fixture is a Provider with a main certificate and an extra, obtained from
// an in-process CA, and its API served over real HTTP.
type fixture struct {
	ca     *acmetest.Server
	cfg    *autocert.Config
	p      *autocert.Provider
	events *httpapi.Events
	srv    *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := ca.Config("example.com", "*.example.com")
	cfg.CertPath, cfg.KeyPath = filepath.Join(dir, "main.crt"), filepath.Join(dir, "main.key")
	cfg.ACMEKeyPath = filepath.Join(dir, "acme.key")
	cfg.Extra = []autocert.ConfigExtra{{
		Domains:  []string{"api.example.com"},
		CertPath: filepath.Join(dir, "api.crt"), KeyPath: filepath.Join(dir, "api.key"),
	}}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatal(err)
	}
	events := httpapi.NewEvents()
	p, err := autocert.NewProvider(cfg, user, legoCfg, append(events.Options(), autocert.WithLogger(zerolog.Nop()))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(p, httpapi.Options{Token: token, Events: events}))
	t.Cleanup(srv.Close)
	return &fixture{ca: ca, cfg: cfg, p: p, events: events, srv: srv}
}

// get makes a request with the given Authorization header ("" for none)
// and returns the status and body. No response may hold a secret.
func (f *fixture) get(t *testing.T, path, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f.noSecret(t, path, body)
	return resp.StatusCode, resp.Header, body
}

// noSecret fails when body holds a credential of the config.
func (f *fixture) noSecret(t *testing.T, what string, body []byte) {
	t.Helper()
	for key, v := range f.cfg.Options {
		if strings.Contains(string(body), v.Value()) {
			t.Errorf("%s: the response holds the value of option %s", what, key)
		}
	}
	if strings.Contains(string(body), token) {
		t.Errorf("%s: the response holds the API token", what)
	}
}

func serials(t *testing.T, p *autocert.Provider) map[string]string {
	t.Helper()
	infos, err := p.GetCertInfos()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, ci := range infos {
		out[ci.Provider] = ci.Serial
	}
	return out
}

// TestAuthentication: every endpoint answers 401 with a Bearer challenge
// without the token, with a wrong one or another scheme; a refused renew
// starts nothing.
func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	orders := len(f.ca.Orders())
	for _, path := range []string{httpapi.PathInfo, httpapi.PathRenew, httpapi.PathMetrics} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, token} {
			status, h, body := f.get(t, path, auth)
			if status != http.StatusUnauthorized {
				t.Errorf("%s with Authorization %q: status %d, want 401", path, auth, status)
			}
			if got := h.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q", path, got)
			}
			if !strings.Contains(string(body), "bearer token") {
				t.Errorf("%s: body %s does not say why", path, body)
			}
		}
	}
	if status, _, _ := f.get(t, httpapi.PathInfo, "bearer "+token); status != http.StatusOK {
		t.Errorf("with the token (scheme in lower case): status %d", status)
	}
	if n := len(f.ca.Orders()); n != orders {
		t.Errorf("refused requests placed %d orders", n-orders)
	}
	// A WebSocket without the token is refused before the upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+httpapi.PathRenew, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("WebSocket without token: %v, response %v", err, resp)
	}
}

// TestInfo: the list has the seed's certificate fields in snake_case for
// main and the extra, with the configured domains and the next renewal.
func TestInfo(t *testing.T) {
	f := newFixture(t)
	f.p.LoadRenewalStatus(context.Background())
	status, h, body := f.get(t, httpapi.PathInfo, "Bearer "+token)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q: %s", status, h.Get("Content-Type"), body)
	}
	var raw []map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 {
		t.Fatalf("%d entries, want main and extra[0]: %s", len(raw), body)
	}
	for _, key := range []string{"provider", "domains", "subject", "issuer", "serial", "not_before", "not_after", "dns_names", "next_renewal", "renewal_reason"} {
		if _, ok := raw[0][key]; !ok {
			t.Errorf("key %q missing: %s", key, body)
		}
	}
	var list []httpapi.CertStatus
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	main, extra := list[0], list[1]
	if main.Provider != "main" || extra.Provider != "extra[0]" {
		t.Fatalf("providers %q, %q", main.Provider, extra.Provider)
	}
	if !slices.Equal(main.DNSNames, []string{"example.com", "*.example.com"}) || !slices.Equal(extra.Domains, []string{"api.example.com"}) {
		t.Errorf("names %v, extra domains %v", main.DNSNames, extra.Domains)
	}
	if main.Serial != serials(t, f.p)["main"] || main.Issuer == "" {
		t.Errorf("main: issuer %q serial %q", main.Issuer, main.Serial)
	}
	// A 90-day certificate is renewed 30 days before it expires, less a
	// jitter of at most 6 hours.
	due := time.Unix(main.NotAfter, 0).Add(-30 * 24 * time.Hour)
	if next := time.Unix(main.NextRenewal, 0); next.After(due) || next.Before(due.Add(-6*time.Hour-time.Second)) || main.RenewalReason != "lifetime" {
		t.Errorf("next renewal %v (%s), want up to 6 h before %v", next, main.RenewalReason, due)
	}
	if main.LastFailure != 0 || main.LastError != "" {
		t.Errorf("failure reported: %+v", main)
	}
}

// TestRenewWebSocket: a WebSocket client sees the forced renewal's steps
// streamed as they happen, then the outcome per certificate, and a normal
// close.
func TestRenewWebSocket(t *testing.T) {
	f := newFixture(t)
	before := serials(t, f.p)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+httpapi.PathRenew, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	steps := map[string][]autocert.Step{}
	var renewed []string
	var result *httpapi.Message
	for result == nil {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		f.noSecret(t, "stream", data)
		var m httpapi.Message
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("message %s: %v", data, err)
		}
		if m.Line == "" {
			t.Errorf("message without a line: %s", data)
		}
		switch m.Type {
		case httpapi.TypeProgress:
			steps[m.Provider] = append(steps[m.Provider], m.Step)
		case httpapi.TypeEvent:
			if m.Kind == autocert.KindRenewed {
				renewed = append(renewed, m.Provider)
			}
		case httpapi.TypeResult:
			result = &m
		default:
			t.Errorf("unknown message type %q", m.Type)
		}
	}
	for _, prov := range []string{"main", "extra[0]"} {
		for _, want := range []autocert.Step{autocert.StepOrder, autocert.StepPresent, autocert.StepPropagation, autocert.StepValidation, autocert.StepFinalize, autocert.StepSaved} {
			if !slices.Contains(steps[prov], want) {
				t.Errorf("%s: step %s not streamed; got %v", prov, want, steps[prov])
			}
		}
	}
	slices.Sort(renewed)
	if !slices.Equal(renewed, []string{"extra[0]", "main"}) {
		t.Errorf("renewed events for %v", renewed)
	}
	after := serials(t, f.p)
	if len(result.Results) != 2 {
		t.Fatalf("result %+v", result)
	}
	for _, r := range result.Results {
		if !r.OK || r.Error != "" || r.Serial != after[r.Provider] || r.Serial == before[r.Provider] {
			t.Errorf("result %+v; serial before %s, now %s", r, before[r.Provider], after[r.Provider])
		}
	}
	if !strings.Contains(result.Line, "renewed") {
		t.Errorf("result line %q", result.Line)
	}
	_, _, err = c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after the result: %v, want a normal close", err)
	}
}

// TestRenewPlain: without the upgrade the answer comes once the renewal
// is done; a failure says which certificate and why, with status 500, and
// shows in the info list.
func TestRenewPlain(t *testing.T) {
	f := newFixture(t)
	before := serials(t, f.p)
	status, _, body := f.get(t, httpapi.PathRenew, "Bearer "+token)
	var res httpapi.RenewResponse
	if err := json.Unmarshal(body, &res); err != nil || status != http.StatusOK {
		t.Fatalf("status %d, body %s (%v)", status, body, err)
	}
	after := serials(t, f.p)
	if len(res.Results) != 2 {
		t.Fatalf("results %+v", res.Results)
	}
	for _, r := range res.Results {
		if !r.OK || r.Serial != after[r.Provider] || r.Serial == before[r.Provider] {
			t.Errorf("%+v; before %s", r, before[r.Provider])
		}
	}

	f.ca.FailOrders(2, acmetest.Problem{Type: "serverInternal", Detail: "the CA is having a bad day"})
	status, _, body = f.get(t, httpapi.PathRenew, "Bearer "+token)
	if err := json.Unmarshal(body, &res); err != nil || status != http.StatusInternalServerError {
		t.Fatalf("failing CA: status %d, body %s (%v)", status, body, err)
	}
	for _, r := range res.Results {
		if r.OK || !strings.Contains(r.Error, "bad day") || r.Serial != after[r.Provider] {
			t.Errorf("failing CA: %+v, want the failure and the certificate still served", r)
		}
	}
	_, _, body = f.get(t, httpapi.PathInfo, "Bearer "+token)
	var list []httpapi.CertStatus
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if list[0].LastFailure == 0 || !strings.Contains(list[0].LastError, "bad day") || list[0].Failures != 1 || list[0].RetryAt <= list[0].LastFailure {
		t.Errorf("info after the failure: %+v", list[0])
	}
}

// TestMetrics: the Prometheus text parses and carries the expiry of each
// certificate, the renewal counters, durations and next renewal times.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	if !f.p.ForceExpiryAll() || !f.p.WaitRenewalDone(context.Background()) {
		t.Fatal("forced renewal did not run")
	}
	f.ca.FailOrders(1, acmetest.Problem{Type: "serverInternal"})
	f.p.ForceExpiryAll()
	f.p.WaitRenewalDone(context.Background())
	f.p.LoadRenewalStatus(context.Background())

	status, h, body := f.get(t, httpapi.PathMetrics, "Bearer "+token)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, content type %q", status, h.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, body)
	}
	value := func(name, provider string) (float64, bool) {
		fam := families[name]
		if fam == nil {
			return 0, false
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" && l.GetValue() == provider {
					switch {
					case m.GetGauge() != nil:
						return m.GetGauge().GetValue(), true
					case m.GetCounter() != nil:
						return m.GetCounter().GetValue(), true
					}
				}
			}
		}
		return 0, false
	}
	statuses := httpapi.Statuses(f.p)
	for _, st := range statuses {
		if v, ok := value(httpapi.MetricExpiry, st.Provider); !ok || int64(v) != st.NotAfter {
			t.Errorf("%s: expiry gauge %v (present %v), want %d", st.Provider, v, ok, st.NotAfter)
		}
		if v, ok := value(httpapi.MetricNextRenewal, st.Provider); !ok || int64(v) != st.NextRenewal {
			t.Errorf("%s: next renewal gauge %v (present %v), want %d", st.Provider, v, ok, st.NextRenewal)
		}
		if v, ok := value(httpapi.MetricLastRenewalDuration, st.Provider); !ok || v <= 0 {
			t.Errorf("%s: last duration %v (present %v)", st.Provider, v, ok)
		}
	}
	// Obtained, then renewed; then one of the two orders failed.
	s0, _ := value(httpapi.MetricRenewalSuccesses, "main")
	s1, _ := value(httpapi.MetricRenewalSuccesses, "extra[0]")
	f0, _ := value(httpapi.MetricRenewalFailures, "main")
	f1, _ := value(httpapi.MetricRenewalFailures, "extra[0]")
	if s0+s1 != 5 || f0+f1 != 1 {
		t.Errorf("successes %v+%v, failures %v+%v; want 5 (2 obtained, 2 renewed, 1 renewed after the failure of the other) and 1", s0, s1, f0, f1)
	}
	if fam := families[httpapi.MetricExpiry]; fam.GetType().String() != "GAUGE" {
		t.Errorf("expiry metric type %v", fam.GetType())
	}
}

// TestEventsSubscribers: a subscriber that does not read never holds up
// the Provider; propagation reports are passed on at most once a second;
// an ended subscription is closed.
func TestEventsSubscribers(t *testing.T) {
	e := httpapi.NewEvents()
	slow, endSlow := e.Subscribe(1)
	fast, endFast := e.Subscribe(16)
	e.Progress(autocert.Progress{Provider: "main", Step: autocert.StepAccount})
	time.Sleep(10 * time.Millisecond)
	ordered := time.Now()
	e.Progress(autocert.Progress{Provider: "main", Step: autocert.StepOrder, Detail: "example.com"})
	for _, d := range []time.Duration{0, 100 * time.Millisecond, 900 * time.Millisecond, 1200 * time.Millisecond, 1500 * time.Millisecond} {
		e.Progress(autocert.Progress{Provider: "main", Step: autocert.StepPropagation, Domain: "example.com", Elapsed: d})
	}
	_ = e.Notify(context.Background(), &autocert.RenewalFailed{Provider: "main", Error: "boom"})
	window := time.Since(ordered)
	endFast()
	var got []string
	for m := range fast {
		got = append(got, m.Line)
	}
	want := []string{
		"main: looking up the ACME account",
		"main: ordering a certificate for example.com",
		"main: waiting for the DNS record of example.com to propagate (0s)",
		"main: waiting for the DNS record of example.com to propagate (1.2s)",
		"certificate renewal failed: main: boom",
	}
	if !slices.Equal(got, want) {
		t.Errorf("messages\n%q\nwant\n%q", got, want)
	}
	if len(slow) != 1 || (<-slow).Step != autocert.StepAccount {
		t.Errorf("slow subscriber holds %d messages", len(slow))
	}
	endSlow()
	endSlow() // twice is harmless
	// The attempt is timed from its order, not from the account lookup.
	if st := e.Stats("main"); st.Failures != 1 || st.Successes != 0 || st.LastDuration <= 0 || st.LastDuration > window {
		t.Errorf("stats %+v", st)
	}
	if st := e.Stats("extra[9]"); st != (httpapi.RenewalStats{}) {
		t.Errorf("stats of an unknown provider %+v", st)
	}
}

// TestNothingToRenew: with "local" certificates only, a renewal request
// says there is nothing to renew, plain (409) or streamed.
func TestNothingToRenew(t *testing.T) {
	dir := t.TempDir()
	pseudo := &autocert.Config{Provider: autocert.ProviderPseudo, Domains: []string{"local.example.com"},
		CertPath: filepath.Join(dir, "c.crt"), KeyPath: filepath.Join(dir, "c.key")}
	maker, err := autocert.NewProvider(pseudo, nil, nil, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := maker.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	local := &autocert.Config{Provider: autocert.ProviderLocal, CertPath: pseudo.CertPath, KeyPath: pseudo.KeyPath}
	p, err := autocert.NewProvider(local, nil, nil, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(p, httpapi.Options{}))
	defer srv.Close()

	resp, err := http.Post(srv.URL+httpapi.PathRenew, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var res httpapi.RenewResponse
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusConflict || !strings.Contains(res.Error, "nothing to renew") || res.Results == nil {
		t.Errorf("plain: %d %+v (%v)", resp.StatusCode, res, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+httpapi.PathRenew, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, data, err := c.Read(ctx)
	var m httpapi.Message
	if err != nil || json.Unmarshal(data, &m) != nil || m.Type != httpapi.TypeResult || !strings.Contains(m.Line, "nothing to renew") {
		t.Errorf("stream: %s (%v)", data, err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("then: %v, want a normal close", err)
	}
}

// TestRenewRefusedFromAnotherOrigin: a renewal asked by a page of another
// web site (a form posted to the API, an image or link loaded from it) is
// refused with 403 and orders nothing, with or without a token, whatever
// the method; a same-origin request (the status page) and one from a tool
// that sends no browser headers (curl) are served.
func TestRenewRefusedFromAnotherOrigin(t *testing.T) {
	f := newFixture(t)
	orders := len(f.ca.Orders())
	for _, tc := range []struct {
		name, method string
		header       map[string]string
	}{
		{"form posted from another site", http.MethodPost, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"image loaded by another site", http.MethodGet, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same site, other origin", http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"old browser, other origin", http.MethodPost, map[string]string{"Origin": "http://evil.example"}},
	} {
		for _, auth := range []string{"", "Bearer " + token} {
			req, err := http.NewRequest(tc.method, f.srv.URL+httpapi.PathRenew, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s (token %v): status %d, want 403", tc.name, auth != "", resp.StatusCode)
			}
		}
	}
	if n := len(f.ca.Orders()); n != orders {
		t.Errorf("%d orders sent by refused renewals", n-orders)
	}
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "same-origin"}, {}} {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+httpapi.PathRenew, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("renewal with headers %v: status %d, want 200", h, resp.StatusCode)
		}
	}
}
