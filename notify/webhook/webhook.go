// Package webhook is an autocert.Notifier that posts each event to a URL:
// as JSON for a program of your own, as a message for a chat or push
// service (Slack and the services that accept Slack's incoming-webhook
// format, ntfy, Gotify), or as the body a text/template makes.
//
// A request that fails with a network error, 408, 425, 429 or a 5xx status
// is tried again a bounded number of times, honouring a Retry-After of at
// most a minute; each try has a timeout. The URL and header values are
// treated as secrets (a Slack webhook URL, a Gotify token in the query, an
// ntfy access token): they never appear in errors or when the Notifier is
// printed.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/autocert-dev/autocert"
)

// Format says what request a Notifier sends.
type Format int

const (
	// JSON posts {"kind", "title", "message", "event"} with the event's
	// own fields under "event" (application/json). The default.
	JSON Format = iota
	// Slack posts {"text": "*title*\nmessage"}, the incoming-webhook body of
	// Slack, also accepted by Mattermost, Rocket.Chat, Google Chat and
	// Discord's /slack webhook endpoint.
	Slack
	// Ntfy posts the message as plain text with the Title, Priority and
	// Tags headers that ntfy reads; the URL is the topic's
	// (https://ntfy.sh/mytopic).
	Ntfy
	// Gotify posts {"title", "message", "priority"} to a Gotify server's
	// /message endpoint; give the application token in the URL (?token=)
	// or with WithHeader("X-Gotify-Key", token).
	Gotify
)

// Defaults of a Notifier.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultAttempts = 3
	DefaultBackoff  = time.Second
	maxRetryAfter   = time.Minute
	maxErrorBody    = 512
)

// Notifier posts events to a URL. Build it with New; it is safe for
// concurrent use.
type Notifier struct {
	url      *url.URL
	format   Format
	tmpl     *template.Template
	ctype    string
	header   http.Header
	client   *http.Client
	timeout  time.Duration
	attempts int
	backoff  time.Duration
}

var _ autocert.Notifier = (*Notifier)(nil)

// Option configures a Notifier.
type Option func(*Notifier) error

// WithFormat chooses the format of the requests (default JSON).
func WithFormat(f Format) Option {
	return func(n *Notifier) error {
		if f < JSON || f > Gotify {
			return fmt.Errorf("webhook: unknown format %d", f)
		}
		n.format = f
		return nil
	}
}

// WithTemplate makes the body with a text/template instead of a Format,
// sent with the given Content-Type. The template receives a value with the
// fields Kind, Title and Message (strings) and Event (the
// autocert.Event, to reach its own fields such as .Event.Domains); the
// function json renders a value as JSON, for building JSON bodies safely:
//
//	{"content": {{json .Title}}}
func WithTemplate(text, contentType string) Option {
	return func(n *Notifier) error {
		t, err := template.New("webhook").Funcs(template.FuncMap{"json": toJSON}).Parse(text)
		if err != nil {
			return fmt.Errorf("webhook: template: %w", err)
		}
		n.tmpl, n.ctype = t, contentType
		return nil
	}
}

// WithHeader adds a header to every request, such as "Authorization" with
// an access token. Values are never printed.
func WithHeader(key, value string) Option {
	return func(n *Notifier) error {
		n.header.Add(key, value)
		return nil
	}
}

// WithHTTPClient sets the client that sends the requests (default: a
// client of its own with the default transport).
func WithHTTPClient(c *http.Client) Option {
	return func(n *Notifier) error {
		if c == nil {
			return errors.New("webhook: nil HTTP client")
		}
		n.client = c
		return nil
	}
}

// WithTimeout bounds each try (default 10 s).
func WithTimeout(d time.Duration) Option {
	return func(n *Notifier) error {
		if d <= 0 {
			return fmt.Errorf("webhook: timeout %v is not positive", d)
		}
		n.timeout = d
		return nil
	}
}

// WithRetry sets how many times a request is tried in all (default 3) and
// the wait before the second try (default 1 s), doubled before each
// further one.
func WithRetry(attempts int, backoff time.Duration) Option {
	return func(n *Notifier) error {
		if attempts < 1 || backoff < 0 {
			return fmt.Errorf("webhook: retry: %d attempts, back-off %v", attempts, backoff)
		}
		n.attempts, n.backoff = attempts, backoff
		return nil
	}
}

// New returns a Notifier posting to rawURL, an http or https URL.
func New(rawURL string, opts ...Option) (*Notifier, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may hold a secret: do not repeat it.
		return nil, errors.New("webhook: the URL is not an http or https URL")
	}
	n := &Notifier{
		url:      u,
		header:   make(http.Header),
		client:   &http.Client{},
		timeout:  DefaultTimeout,
		attempts: DefaultAttempts,
		backoff:  DefaultBackoff,
	}
	for _, o := range opts {
		if err := o(n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// String describes the Notifier without its secrets: the scheme and host
// of its URL.
func (n *Notifier) String() string { return "webhook " + n.url.Scheme + "://" + n.url.Host }

// Format implements fmt.Formatter, so that no verb prints the URL or the
// headers.
func (n *Notifier) Format(f fmt.State, verb rune) { fmt.Fprint(f, n.String()) }

// Notify posts e, trying again after a temporary failure, until it is
// delivered, the tries are used up or ctx ends.
func (n *Notifier) Notify(ctx context.Context, e autocert.Event) error {
	body, ctype, header, err := n.request(e)
	if err != nil {
		return err
	}
	wait := n.backoff
	for attempt := 1; ; attempt++ {
		retry, after, err := n.post(ctx, body, ctype, header)
		if err == nil {
			return nil
		}
		if !retry || attempt >= n.attempts {
			return err
		}
		d := max(wait, after)
		wait *= 2
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// post sends one try. It reports whether a failure is worth another try,
// and the Retry-After the server asked for.
func (n *Notifier) post(ctx context.Context, body []byte, ctype string, header http.Header) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url.String(), bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("%v: cannot make the request", n)
	}
	for k, vs := range n.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	for k, vs := range header {
		if req.Header.Get(k) == "" {
			req.Header[k] = vs
		}
	}
	req.Header.Set("Content-Type", ctype)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "autocert/"+autocert.Version)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// A *url.Error repeats the URL: keep only its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded), 0, fmt.Errorf("%v: %w", n, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0, nil
	}
	err = fmt.Errorf("%v: %s: %s", n, resp.Status, strings.TrimSpace(string(msg)))
	switch c := resp.StatusCode; {
	case c == http.StatusRequestTimeout, c == http.StatusTooEarly, c == http.StatusTooManyRequests, c >= 500:
		return true, retryAfter(resp.Header.Get("Retry-After")), err
	}
	return false, 0, err
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), capped
// at a minute.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}

// templateData is what a template receives.
type templateData struct {
	Kind    string
	Title   string
	Message string
	Event   autocert.Event
}

// request builds the body, its content type and the headers of the format.
func (n *Notifier) request(e autocert.Event) ([]byte, string, http.Header, error) {
	h := make(http.Header)
	if n.tmpl != nil {
		var b bytes.Buffer
		err := n.tmpl.Execute(&b, templateData{string(e.Kind()), e.Title(), e.Message(), e})
		if err != nil {
			return nil, "", nil, fmt.Errorf("webhook: template: %w", err)
		}
		return b.Bytes(), n.ctype, h, nil
	}
	var v any
	switch n.format {
	case Slack:
		v = map[string]string{"text": "*" + e.Title() + "*\n" + e.Message()}
	case Gotify:
		v = struct {
			Title    string `json:"title"`
			Message  string `json:"message"`
			Priority int    `json:"priority"`
		}{e.Title(), e.Message(), gotifyPriority(e)}
	case Ntfy:
		h.Set("Title", e.Title())
		h.Set("Priority", ntfyPriority(e))
		h.Set("Tags", ntfyTags(e))
		return []byte(e.Message()), "text/plain; charset=utf-8", h, nil
	default:
		v = struct {
			Kind    autocert.EventKind `json:"kind"`
			Title   string             `json:"title"`
			Message string             `json:"message"`
			Event   autocert.Event     `json:"event"`
		}{e.Kind(), e.Title(), e.Message(), e}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "", nil, fmt.Errorf("webhook: %w", err)
	}
	return b, "application/json", h, nil
}

// urgent reports whether e asks for attention.
func urgent(e autocert.Event) bool {
	k := e.Kind()
	return k == autocert.KindRenewalFailed || k == autocert.KindExpiring
}

func gotifyPriority(e autocert.Event) int {
	if urgent(e) {
		return 8
	}
	return 4
}

func ntfyPriority(e autocert.Event) string {
	if urgent(e) {
		return "high"
	}
	return "default"
}

func ntfyTags(e autocert.Event) string {
	switch e.Kind() {
	case autocert.KindRenewalFailed:
		return "warning,lock"
	case autocert.KindExpiring:
		return "hourglass,lock"
	}
	return "lock"
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
