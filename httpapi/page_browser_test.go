//go:build unix

package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/httpapi"
)

const (
	// playwrightVersion is the playwright-core release .ci/browser.sh
	// installs; keep the two equal.
	playwrightVersion = "1.65.1"
	// nodeModulesEnv names a node_modules directory holding
	// playwright-core, instead of the one .ci/browser.sh fills.
	nodeModulesEnv = "AUTOCERT_TEST_NODE_MODULES"
	// chromiumEnv names the browser, instead of Debian's.
	chromiumEnv = "AUTOCERT_TEST_CHROMIUM"
	// artifactsEnv names the directory the screenshots go to, instead of
	// autocert-artifacts in the temporary directory.
	artifactsEnv = "AUTOCERT_ARTIFACTS"
	// browserTimeout bounds each wait of the browser on a busy machine;
	// it is a deadline for a failure, not a measurement.
	browserTimeout = 90 * time.Second
)

// inCI reports whether the tests run in continuous integration, where
// nothing may be skipped.
func inCI() bool { return os.Getenv("CI") != "" }

// browserTools returns node, the node_modules directory holding
// playwright-core and the browser. Without one of them the test fails in
// CI and is skipped elsewhere.
func browserTools(t *testing.T) (node, modules, chromium string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + " (run `bash .ci/browser.sh`)"
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	chromium = os.Getenv(chromiumEnv)
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(chromium); err != nil || fi.Mode().Perm()&0o111 == 0 {
		missing("Chromium is not installed at %s (or set %s to a browser)", chromium, chromiumEnv)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("Node.js is not installed: %v", err)
	}
	modules = os.Getenv(nodeModulesEnv)
	if modules == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no cache directory to look for playwright-core in (set %s): %v", nodeModulesEnv, err)
		}
		modules = filepath.Join(cache, "autocert-browser", "playwright-core-"+playwrightVersion, "node_modules")
	}
	if _, err := os.Stat(filepath.Join(modules, "playwright-core", "package.json")); err != nil {
		missing("playwright-core %s is not installed in %s (or set %s to a node_modules directory holding it)", playwrightVersion, modules, nodeModulesEnv)
	}
	return node, modules, chromium
}

// artifactDir returns the directory the screenshots are kept in, after
// the test too.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "autocert-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact directory: %v", err)
	}
	return dir
}

// browser is testdata/browser.js running Chromium.
type browser struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *bytes.Buffer
	home   string // the directory in the command line of its processes
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	node, modules, chromium := browserTools(t)
	script, err := filepath.Abs(filepath.Join("testdata", "browser.js"))
	if err != nil {
		t.Fatal(err)
	}
	// Everything the browser writes goes into one directory of the
	// test: its profile, and the crash reports and caches it would keep
	// in the home directory. The directory is also in the command line of
	// each of its processes, so that a leftover is found by it.
	home := t.TempDir()
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "AUTOCERT_CHROMIUM="+chromium,
		"AUTOCERT_PROFILE="+filepath.Join(home, "profile"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	// Its own process group, so that nothing it starts can outlive the
	// test (playwright-core starts the browser in a group of its own, and
	// Chromium's crash handlers have theirs: those are found by home).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out), stderr: &bytes.Buffer{}, home: home}
	b.out.Buffer(nil, 16<<20)
	cmd.Stderr = &lockedWriter{w: b.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %s: %v", node, script, err)
	}
	t.Cleanup(b.stop)
	return b
}

// stop closes the browser, waits for the driver and checks that no
// process of the browser is left.
func (b *browser) stop() {
	b.t.Helper()
	_, _ = io.WriteString(b.in, `{"op":"close"}`+"\n")
	b.in.Close()
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b.t.Errorf("browser driver: %v\n%s", err, b.stderr)
		}
	case <-time.After(browserTimeout):
		b.t.Errorf("browser driver did not exit; killed\n%s", b.stderr)
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) // the driver's group, if anything is left
	// The browser's helpers (crash handlers, zygotes) exit by themselves
	// shortly after it.
	deadline := time.Now().Add(browserTimeout)
	for {
		left := processesWith(b.home)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			b.t.Errorf("browser processes left behind (killed): %v", left)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesWith returns the processes whose command line holds s. Those
// that have exited but wait for init to reap them have no command line:
// they are gone.
func processesWith(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// do runs one command of the driver and returns its value; an error of
// the page (a missing element, a timeout) fails the test.
func (b *browser) do(op string, args ...any) json.RawMessage {
	b.t.Helper()
	v, err := b.try(op, args...)
	if err != nil {
		b.t.Fatalf("browser %s %v: %v", op, args, err)
	}
	return v
}

// try runs one command; args are key, value pairs.
func (b *browser) try(op string, args ...any) (json.RawMessage, error) {
	b.t.Helper()
	c := map[string]any{"op": op}
	for i := 0; i+1 < len(args); i += 2 {
		c[args[i].(string)] = args[i+1]
	}
	if _, ok := c["timeout"]; !ok && op == "wait" {
		c["timeout"] = browserTimeout.Milliseconds()
	}
	line, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("driver gone: %w\n%s", err, b.stderr)
	}
	if !b.out.Scan() {
		return nil, fmt.Errorf("driver gone: %v\n%s", b.out.Err(), b.stderr)
	}
	var reply struct {
		Value json.RawMessage `json:"value"`
		Error *string         `json:"error"`
	}
	if err := json.Unmarshal(b.out.Bytes(), &reply); err != nil {
		return nil, fmt.Errorf("driver answered %q: %w", b.out.Bytes(), err)
	}
	if reply.Error != nil {
		return nil, errors.New(*reply.Error)
	}
	return reply.Value, nil
}

func (b *browser) text(selector string) string {
	b.t.Helper()
	var s string
	if err := json.Unmarshal(b.do("text", "selector", selector), &s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

func (b *browser) texts(selector string) []string {
	b.t.Helper()
	var s []string
	if err := json.Unmarshal(b.do("texts", "selector", selector), &s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

func (b *browser) visible(selector string) bool {
	b.t.Helper()
	var v bool
	if err := json.Unmarshal(b.do("visible", "selector", selector), &v); err != nil {
		b.t.Fatal(err)
	}
	return v
}

// wait waits until an element matching selector and holding text (any
// text when "") is visible.
func (b *browser) wait(selector, text string) {
	b.t.Helper()
	b.do("wait", "selector", selector, "text", text)
}

// screenshot keeps a picture of the page under name in the artifact
// directory, and says where.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	path := filepath.Join(artifactDir(b.t), name)
	b.do("screenshot", "path", path)
	b.t.Logf("screenshot of the status page: %s", path)
}

// problems returns what the page logged as errors or warnings but the
// refused requests the test made on purpose.
func (b *browser) problems() []string {
	b.t.Helper()
	var all, out []string
	if err := json.Unmarshal(b.do("problems"), &all); err != nil {
		b.t.Fatal(err)
	}
	for _, p := range all {
		if strings.Contains(p, "status of 401") {
			continue
		}
		out = append(out, p)
	}
	return out
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// requestLog records the requests a handler gets.
type requestLog struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Clone(r.Context()))
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) all() []*http.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*http.Request(nil), l.reqs...)
}

// utc is how the page writes a time.
func utc(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04") + " UTC" }

var percent = regexp.MustCompile(`left: ([0-9.]+)%`)

// barLeft returns where the element of the lifetime bar is, in percent of
// the bar's width.
func barLeft(t *testing.T, b *browser, selector string) float64 {
	t.Helper()
	var style string
	if err := json.Unmarshal(b.do("attr", "selector", selector, "name", "style"), &style); err != nil {
		t.Fatal(err)
	}
	m := percent.FindStringSubmatch(style)
	if m == nil {
		t.Fatalf("%s: style %q has no position", selector, style)
	}
	left, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// TestStatusPageBrowser loads the status page in headless Chromium, as a
// person would: behind a token it asks for the token, says 401 for a
// wrong one and shows the certificates with the right one (names,
// issuer, serial, days left, the lifetime bar with the renewal window,
// the next renewal and why, no failure); "Renew now" streams the
// renewal's progress and shows the new serials. The token is never in a
// URL, and the strict Content-Security-Policy refuses nothing the page
// does. Without a token the page shows the certificates at once, and a
// failed renewal shows the CA's error as the last failure. Once the CA
// suggests a renewal window (ACME ARI), the bar marks that one. Screenshots
// are kept in $AUTOCERT_ARTIFACTS (default: autocert-artifacts in the
// temporary directory).
func TestStatusPageBrowser(t *testing.T) {
	b := startBrowser(t)
	f := newFixture(t) // its server wants the token
	f.p.LoadRenewalStatus(t.Context())
	var log requestLog
	srv := httptest.NewServer(log.wrap(f.srv.Config.Handler))
	t.Cleanup(srv.Close)
	open := httptest.NewServer(log.wrap(httpapi.New(f.p, httpapi.Options{Events: f.events})))
	t.Cleanup(open.Close)

	t.Run("token", func(t *testing.T) {
		b.t = t
		b.do("goto", "url", srv.URL+"/")
		b.wait("#login", "")
		if msg := b.text("#login-message"); !strings.Contains(msg, "401") {
			t.Errorf("the page asks for the token with %q; want it to say the API answered 401", msg)
		}
		if b.visible("#panel") {
			t.Error("certificates shown without the token")
		}

		b.do("fill", "selector", "#token", "value", "not-the-"+token)
		b.do("click", "selector", "#login-submit")
		b.wait("#login-error", "401")
		if b.visible("#panel") {
			t.Error("certificates shown with a wrong token")
		}
		b.screenshot("status-page-token.png")

		b.do("fill", "selector", "#token", "value", token)
		b.do("click", "selector", "#login-submit")
		b.wait(`article[data-provider="extra[0]"]`, "")
		if b.visible("#login") {
			t.Error("the form is still shown with the right token")
		}
		var stored *string
		if err := json.Unmarshal(b.do("session", "key", "autocert.api.token"), &stored); err != nil || stored == nil || *stored != token {
			t.Errorf("session storage does not hold the token (%v)", err)
		}

		checkCertificates(t, b, f)

		before := serials(t, f.p)
		b.do("click", "selector", "#renew")
		b.wait("#result.ok", "renewed")
		after := serials(t, f.p)
		for _, prov := range []string{"main", "extra[0]"} {
			if after[prov] == before[prov] {
				t.Fatalf("%s: serial %s not renewed", prov, after[prov])
			}
			// The list is read again once the stream ends.
			b.wait(fmt.Sprintf(`article[data-provider=%q] .serial`, prov), after[prov])
			b.wait("#results li.ok", prov+": renewed, serial "+after[prov])
		}
		lines := strings.Join(b.texts("#log li"), "\n")
		for _, want := range []string{"main: ordering a certificate", "extra[0]: ordering a certificate", "certificate renewed: main", "certificate renewed: extra[0]", "renewal finished"} {
			if !strings.Contains(lines, want) {
				t.Errorf("progress lines lack %q:\n%s", want, lines)
			}
		}
		b.screenshot("status-page.png")
		if p := b.problems(); len(p) > 0 {
			t.Errorf("the page logged problems (a refused CSP directive?):\n%s", strings.Join(p, "\n"))
		}
	})

	t.Run("open", func(t *testing.T) {
		b.t = t
		b.do("goto", "url", open.URL+"/")
		b.wait(`article[data-provider="main"]`, "")
		if b.visible("#login") {
			t.Error("the page asks for a token the API does not have")
		}
		f.ca.FailOrders(2, acmetest.Problem{Type: "serverInternal", Detail: "the CA is having a bad day"})
		before := serials(t, f.p)
		b.do("click", "selector", "#renew")
		b.wait("#result.failed", "renewal failed")
		b.wait(`article[data-provider="main"] .failure.failed`, "bad day")
		b.wait("#results li.failed", "main: failed:")
		if got := b.text(`article[data-provider="main"] .serial`); got != before["main"] {
			t.Errorf("serial shown %q after a failed renewal, want the one still served %q", got, before["main"])
		}
		b.screenshot("status-page-failure.png")
		if p := b.problems(); len(p) > 0 {
			t.Errorf("the page logged problems:\n%s", strings.Join(p, "\n"))
		}
	})
	t.Run("ari", func(t *testing.T) {
		b.t = t
		hello := &tls.ClientHelloInfo{ServerName: "example.com"}
		cert, err := f.p.TLSConfig().GetCertificate(hello)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		start, end := now.Add(10*24*time.Hour).Truncate(time.Second), now.Add(20*24*time.Hour).Truncate(time.Second)
		if err := f.ca.SetRenewalWindow(cert.Leaf, start, end); err != nil {
			t.Fatal(err)
		}
		// The scheduler asks the CA for its renewal window.
		ctx, cancel := context.WithCancel(t.Context())
		f.p.ScheduleRenewalAll(autocert.ContextParent(ctx))
		defer func() {
			cancel()
			select {
			case <-f.p.SchedulerDone():
			case <-time.After(browserTimeout):
				t.Error("the scheduler did not stop")
			}
		}()
		var st httpapi.CertStatus
		for deadline := time.Now().Add(browserTimeout); ; time.Sleep(20 * time.Millisecond) {
			if st = httpapi.Statuses(f.p)[0]; st.WindowStart == start.Unix() && st.RenewalReason == "ari" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the scheduler did not take the CA's window: %+v", st)
			}
		}
		b.do("goto", "url", open.URL+"/")
		main := `article[data-provider="main"] `
		b.wait(main+".legend", "CA's renewal window "+utc(start.Unix())[:10]+" to "+utc(end.Unix())[:10])
		b.wait(main+".next-renewal", utc(st.NextRenewal)+": in the renewal window the CA suggested")
		span := float64(st.NotAfter - st.NotBefore)
		for part, at := range map[string]int64{"bar .window": st.WindowStart, "bar .next": st.NextRenewal} {
			want := float64(at-st.NotBefore) / span * 100
			if got := barLeft(t, b, main+"."+part); math.Abs(got-want) > 0.01 {
				t.Errorf("%s at %.3f%% of the lifetime, want %.3f%%", part, got, want)
			}
		}
		b.screenshot("status-page-ari.png")
		if p := b.problems(); len(p) > 0 {
			t.Errorf("the page logged problems:\n%s", strings.Join(p, "\n"))
		}
	})
	b.t = t

	var sawSubprotocol bool
	for _, r := range log.all() {
		if strings.Contains(r.URL.String(), token) || r.URL.RawQuery != "" {
			t.Errorf("request URL %s holds the token or a query", r.URL)
		}
		if strings.Contains(r.Header.Get("Sec-WebSocket-Protocol"), httpapi.SubprotocolTokenPrefix) {
			sawSubprotocol = true
		}
	}
	if !sawSubprotocol {
		t.Error("the page's WebSocket did not offer the token as a subprotocol")
	}
}

// checkCertificates compares what the page shows for each certificate
// with the Provider's status.
func checkCertificates(t *testing.T, b *browser, f *fixture) {
	t.Helper()
	for _, st := range httpapi.Statuses(f.p) {
		sel := func(cls string) string { return fmt.Sprintf(`article[data-provider=%q] .%s`, st.Provider, cls) }
		// Days left, before and after the page is read.
		hi := int(math.Floor(time.Until(time.Unix(st.NotAfter, 0)).Hours() / 24))
		want := map[string]string{
			"names":  strings.Join(st.DNSNames, ", "),
			"issuer": st.Issuer,
			"serial": st.Serial,
		}
		for cls, w := range want {
			if got := b.text(sel(cls)); got != w || w == "" {
				t.Errorf("%s: %s shown %q, want %q", st.Provider, cls, got, w)
			}
		}
		days := b.text(sel("days"))
		lo := int(math.Floor(time.Until(time.Unix(st.NotAfter, 0)).Hours() / 24))
		if days != fmt.Sprintf("%d days", hi) && days != fmt.Sprintf("%d days", lo) {
			t.Errorf("%s: days left %q, want %d days", st.Provider, days, lo)
		}
		next := b.text(sel("next-renewal"))
		if st.NextRenewal == 0 || !strings.Contains(next, utc(st.NextRenewal)) || !strings.Contains(next, "lifetime rule") {
			t.Errorf("%s: next renewal %q, want %s by the lifetime rule", st.Provider, next, utc(st.NextRenewal))
		}
		if got := b.text(sel("failure")); got != "none" {
			t.Errorf("%s: last failure %q, want none", st.Provider, got)
		}
		// Without a window from the CA, the renewal window runs from the
		// next renewal to expiry; the next renewal's mark is at its start.
		span := float64(st.NotAfter - st.NotBefore)
		wantLeft := float64(st.NextRenewal-st.NotBefore) / span * 100
		for _, part := range []string{"bar .window", "bar .next"} {
			if left := barLeft(t, b, sel(part)); math.Abs(left-wantLeft) > 0.01 {
				t.Errorf("%s: %s at %.3f%% of the lifetime, want %.3f%%", st.Provider, part, left, wantLeft)
			}
		}
		if legend := b.text(sel("legend")); !strings.Contains(legend, "renewal window "+utc(st.NextRenewal)[:10]) {
			t.Errorf("%s: legend %q does not give the renewal window", st.Provider, legend)
		}
	}
}
