package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/notify/webhook"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// request is what the test server received.
type request struct {
	path   string
	header http.Header
	body   string
}

// server answers with the statuses given, in turn (the last one for every
// further request), and records the requests.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []request
	statuses []int
	header   http.Header // sent with non-2xx answers
	hold     time.Duration
}

func newServer(t *testing.T, statuses ...int) *server {
	s := &server{statuses: statuses, header: make(http.Header)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, request{r.URL.RequestURI(), r.Header.Clone(), string(b)})
		code := s.statuses[min(len(s.reqs), len(s.statuses))-1]
		hold := s.hold
		s.mu.Unlock()
		if hold > 0 {
			select {
			case <-time.After(hold):
			case <-r.Context().Done():
			}
		}
		if code >= 300 {
			for k, v := range s.header {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(code)
		fmt.Fprint(w, "answer body")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

var when = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func failed() *autocert.RenewalFailed {
	err := fmt.Errorf("%w: the CA is offline", autocert.ErrObtain)
	return &autocert.RenewalFailed{Provider: "main", Domains: []string{"example.com"}, Err: err, Error: err.Error(),
		Failures: 2, RetryAt: when.Add(2 * time.Hour), NotAfter: when.Add(20 * 24 * time.Hour), Time: when}
}

func renewed() *autocert.CertRenewed {
	return &autocert.CertRenewed{Provider: "extra[0]", Domains: []string{"a.example.com", "*.a.example.com"},
		Reason: "forced", Serial: "abc", NotAfter: when.Add(90 * 24 * time.Hour), PreviousSerial: "def", Time: when}
}

func TestFormats(t *testing.T) {
	tests := []struct {
		name  string
		opts  []webhook.Option
		event autocert.Event
		check func(t *testing.T, r request)
	}{
		{"JSON", nil, failed(), func(t *testing.T, r request) {
			var m struct {
				Kind, Title, Message string
				Event                map[string]any
			}
			if err := json.Unmarshal([]byte(r.body), &m); err != nil {
				t.Fatal(err)
			}
			if m.Kind != "renewal_failed" || m.Title != "certificate renewal failed: main" ||
				m.Event["error"] != "obtaining certificate failed: the CA is offline" || m.Event["failures"] != 2.0 ||
				m.Event["retry_at"] != "2026-05-06T09:08:09Z" {
				t.Errorf("body %s", r.body)
			}
			if !strings.Contains(m.Message, "still served") || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("message %q, content type %q", m.Message, r.header.Get("Content-Type"))
			}
		}},
		{"Slack", []webhook.Option{webhook.WithFormat(webhook.Slack)}, renewed(), func(t *testing.T, r request) {
			var m map[string]string
			if err := json.Unmarshal([]byte(r.body), &m); err != nil {
				t.Fatal(err)
			}
			if len(m) != 1 || !strings.HasPrefix(m["text"], "*certificate renewed: extra[0]*\nDomains: a.example.com, *.a.example.com") {
				t.Errorf("body %s", r.body)
			}
		}},
		{"Gotify", []webhook.Option{webhook.WithFormat(webhook.Gotify)}, failed(), func(t *testing.T, r request) {
			var m struct {
				Title, Message string
				Priority       int
			}
			if err := json.Unmarshal([]byte(r.body), &m); err != nil {
				t.Fatal(err)
			}
			if m.Title != "certificate renewal failed: main" || m.Priority != 8 || !strings.Contains(m.Message, "Consecutive failures: 2") {
				t.Errorf("body %s", r.body)
			}
		}},
		{"ntfy", []webhook.Option{webhook.WithFormat(webhook.Ntfy)}, failed(), func(t *testing.T, r request) {
			if r.header.Get("Title") != "certificate renewal failed: main" || r.header.Get("Priority") != "high" ||
				!strings.Contains(r.header.Get("Tags"), "warning") || !strings.HasPrefix(r.body, "Domains: example.com\n") ||
				!strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
				t.Errorf("headers %v, body %q", r.header, r.body)
			}
		}},
		{"ntfy, good news", []webhook.Option{webhook.WithFormat(webhook.Ntfy)}, renewed(), func(t *testing.T, r request) {
			if r.header.Get("Priority") != "default" {
				t.Errorf("priority %q", r.header.Get("Priority"))
			}
		}},
		{"template", []webhook.Option{webhook.WithTemplate(`{"content": {{json .Title}}, "names": {{json .Event.Domains}}}`, "application/json")},
			renewed(), func(t *testing.T, r request) {
				var m struct {
					Content string
					Names   []string
				}
				if err := json.Unmarshal([]byte(r.body), &m); err != nil {
					t.Fatalf("%v: %s", err, r.body)
				}
				if m.Content != "certificate renewed: extra[0]" || len(m.Names) != 2 {
					t.Errorf("body %s", r.body)
				}
			}},
		{"header", []webhook.Option{webhook.WithHeader("Authorization", "Bearer tk_1")}, renewed(), func(t *testing.T, r request) {
			if r.header.Get("Authorization") != "Bearer tk_1" || !strings.HasPrefix(r.header.Get("User-Agent"), "autocert/") {
				t.Errorf("headers %v", r.header)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, http.StatusOK)
			n, err := webhook.New(s.URL+"/topic?token=x", tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Notify(context.Background(), tt.event); err != nil {
				t.Fatal(err)
			}
			reqs := s.requests()
			if len(reqs) != 1 || reqs[0].path != "/topic?token=x" {
				t.Fatalf("requests %+v", reqs)
			}
			tt.check(t, reqs[0])
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		attempts int
		wantReqs int
		wantErr  string
	}{
		{"success", []int{204}, 3, 1, ""},
		{"503 then success", []int{503, 502, 200}, 3, 3, ""},
		{"429 then success", []int{429, 200}, 3, 2, ""},
		{"always 500: bounded", []int{500}, 3, 3, "500 Internal Server Error: answer body"},
		{"400: not retried", []int{400}, 3, 1, "400 Bad Request"},
		{"404: not retried", []int{404, 200}, 3, 1, "404 Not Found"},
		{"one attempt only", []int{503, 200}, 1, 1, "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.statuses...)
			n, err := webhook.New(s.URL, webhook.WithRetry(tt.attempts, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			err = n.Notify(context.Background(), renewed())
			if got := len(s.requests()); got != tt.wantReqs {
				t.Errorf("%d requests, want %d", got, tt.wantReqs)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestRetryAfterHonoured: a 429 with Retry-After: 1 waits a second before
// the next try, although the configured back-off is a millisecond.
func TestRetryAfterHonoured(t *testing.T) {
	s := newServer(t, 429, 200)
	s.header.Set("Retry-After", "1")
	n, err := webhook.New(s.URL, webhook.WithRetry(2, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := n.Notify(context.Background(), renewed()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("second try after %v, want the Retry-After second", d)
	}
}

// TestTimeoutAndCancel: a server that does not answer is given up on
// after the timeout of each try; a cancelled context stops the retries.
func TestTimeoutAndCancel(t *testing.T) {
	s := newServer(t, 200)
	s.hold = 5 * time.Second
	w := newTripWatch(t)
	n, err := webhook.New(s.URL, webhook.WithTimeout(50*time.Millisecond), webhook.WithRetry(2, time.Millisecond),
		webhook.WithHTTPClient(&http.Client{Transport: w}))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(context.Background(), renewed())
	// The tries are counted as sent: on a loaded machine a try can time
	// out before the server has read it.
	if !errors.Is(err, context.DeadlineExceeded) || w.tries.Load() != 2 || len(s.requests()) > 2 {
		t.Errorf("error %v after %d tries (%d seen by the server), want a timeout after 2",
			err, w.tries.Load(), len(s.requests()))
	}

	s2 := newServer(t, 503)
	w2 := newTripWatch(t)
	n2, err := webhook.New(s2.URL, webhook.WithRetry(5, time.Hour), webhook.WithHTTPClient(&http.Client{Transport: w2}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Bool
	go func() {
		// Cancelled once the first try is over (its answer read and
		// closed): the Notifier is then waiting out the hour of back-off.
		select {
		case <-w2.closed:
		case <-time.After(time.Minute):
			t.Error("the first try did not end within a minute")
		}
		done.Store(true)
		cancel()
	}()
	err = n2.Notify(ctx, renewed())
	if !done.Load() || !errors.Is(err, context.Canceled) || len(s2.requests()) != 1 {
		t.Errorf("error %v after %d requests, want cancellation during the back-off", err, len(s2.requests()))
	}
}

// tripWatch is an HTTP transport that counts the tries sent through it
// and says when the body of an answer is closed, which ends a try.
type tripWatch struct {
	tr     *http.Transport
	tries  atomic.Int64
	closed chan struct{} // receives once per answer closed
}

func newTripWatch(t *testing.T) *tripWatch {
	w := &tripWatch{tr: &http.Transport{}, closed: make(chan struct{}, 16)}
	t.Cleanup(w.tr.CloseIdleConnections)
	return w
}

func (w *tripWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	w.tries.Add(1)
	resp, err := w.tr.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &closeSignal{ReadCloser: resp.Body, closed: w.closed}
	return resp, nil
}

// closeSignal is a response body that tells when it is closed.
type closeSignal struct {
	io.ReadCloser
	closed chan<- struct{}
	once   sync.Once
}

func (c *closeSignal) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(func() { c.closed <- struct{}{} })
	return err
}

// TestSecretsNeverShown: the URL (a Slack webhook path, a token in the
// query) and header values appear neither in errors nor when printed.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "T000-B000-XXXXSECRET"
	s := newServer(t, 500)
	n, err := webhook.New(s.URL+"/services/"+secret+"?token="+secret, webhook.WithRetry(1, 0),
		webhook.WithHeader("Authorization", "Bearer "+secret))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(context.Background(), renewed())
	if err == nil {
		t.Fatal("no error from a 500")
	}
	unreachable, err2 := webhook.New("http://127.0.0.1:1/services/"+secret, webhook.WithRetry(1, 0))
	if err2 != nil {
		t.Fatal(err2)
	}
	err2 = unreachable.Notify(context.Background(), renewed())
	_, err3 := webhook.New("ftp://host/" + secret)
	for _, s := range []string{err.Error(), err2.Error(), err3.Error(), fmt.Sprint(n), fmt.Sprintf("%+v", n), fmt.Sprintf("%#v", n)} {
		if strings.Contains(s, secret) {
			t.Errorf("secret shown: %s", s)
		}
	}
	if !strings.Contains(err2.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable error %q does not name the host", err2)
	}
}

func TestNewRejects(t *testing.T) {
	for name, c := range map[string]struct {
		url  string
		opts []webhook.Option
	}{
		"no scheme":    {"example.com/hook", nil},
		"bad template": {"https://example.com", []webhook.Option{webhook.WithTemplate("{{.Nope", "text/plain")}},
		"bad format":   {"https://example.com", []webhook.Option{webhook.WithFormat(webhook.Format(42))}},
		"bad retry":    {"https://example.com", []webhook.Option{webhook.WithRetry(0, 0)}},
		"bad timeout":  {"https://example.com", []webhook.Option{webhook.WithTimeout(0)}},
		"nil client":   {"https://example.com", []webhook.Option{webhook.WithHTTPClient(nil)}},
	} {
		if _, err := webhook.New(c.url, c.opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
