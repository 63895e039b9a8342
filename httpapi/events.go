package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/autocert-dev/autocert"
)

// Message is one line of the renewal stream of /api/v1/cert/renew, sent as
// a JSON text message over the WebSocket. Line is always set, for a person
// to read; the other fields are for programs.
type Message struct {
	// Type is "progress" (a step of an order), "event" (a certificate
	// obtained or renewed, a failure) or "result" (the last message: the
	// outcome of the forced renewal per certificate).
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Line describes the message, such as "main: DNS record presented
	// for example.com".
	Line     string `json:"line"`
	Provider string `json:"provider,omitempty"`
	// Step, Domain and ElapsedSeconds are those of a progress report.
	Step           autocert.Step `json:"step,omitempty"`
	Domain         string        `json:"domain,omitempty"`
	ElapsedSeconds float64       `json:"elapsed_seconds,omitempty"`
	// Kind is that of a notification, and Event its fields (those of
	// autocert.CertRenewed, autocert.RenewalFailed...) as JSON.
	Kind  autocert.EventKind `json:"kind,omitempty"`
	Event json.RawMessage    `json:"event,omitempty"`
	// Results is the outcome per certificate, in a "result" message.
	Results []Result `json:"results,omitempty"`
}

// Message types.
const (
	TypeProgress = "progress"
	TypeEvent    = "event"
	TypeResult   = "result"
)

// propagationEvery is how often a subscriber hears that a DNS record is
// still propagating: the provider reports every check, which may be many
// a second.
const propagationEvery = time.Second

// Events passes the progress reports and notifications of one Provider to
// the streams of /api/v1/cert/renew, and counts renewals for /metrics.
// Create it before the Provider and give it to NewProvider:
//
//	events := httpapi.NewEvents()
//	p, err := autocert.NewProvider(cfg, user, legoCfg, events.Options()...)
//	handler := httpapi.New(p, httpapi.Options{Token: token, Events: events})
//
// A program that shows progress itself passes one function to
// autocert.WithProgress that calls both its own display and
// Events.Progress, and gives Events to autocert.WithNotifier.
//
// Events holds no global state; its methods are safe for concurrent use.
type Events struct {
	mu    sync.Mutex
	subs  map[chan Message]struct{}
	stats map[string]*renewalStats
	shown map[string]time.Duration // provider|domain -> elapsed last passed on
}

// renewalStats counts the outcomes of one certificate's orders.
type renewalStats struct {
	successes, failures uint64
	started             time.Time     // when the order in progress was placed; zero when none
	lastDuration        time.Duration // of the last finished order; zero when unknown
}

var _ autocert.Notifier = (*Events)(nil)

// NewEvents returns an Events without subscribers.
func NewEvents() *Events {
	return &Events{
		subs:  make(map[chan Message]struct{}),
		stats: make(map[string]*renewalStats),
		shown: make(map[string]time.Duration),
	}
}

// Options returns the options that connect e to a Provider:
// autocert.WithProgress(e.Progress) and autocert.WithNotifier(e).
func (e *Events) Options() []autocert.Option {
	return []autocert.Option{autocert.WithProgress(e.Progress), autocert.WithNotifier(e)}
}

// Progress takes a progress report of the Provider (the function to give
// to autocert.WithProgress). It never blocks.
func (e *Events) Progress(pr autocert.Progress) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if pr.Step == autocert.StepOrder {
		// An attempt's time counts from its order: the account is looked
		// up once per process, maybe long before (for renewal
		// information).
		e.statsLocked(pr.Provider).started = now
	}
	if pr.Step == autocert.StepPropagation {
		key := pr.Provider + "|" + pr.Domain
		last, seen := e.shown[key]
		if seen && pr.Elapsed != 0 && pr.Elapsed-last < propagationEvery {
			return
		}
		e.shown[key] = pr.Elapsed
	}
	e.publishLocked(Message{
		Type: TypeProgress, Time: now, Line: pr.String(), Provider: pr.Provider,
		Step: pr.Step, Domain: pr.Domain, ElapsedSeconds: pr.Elapsed.Seconds(),
	})
}

// Notify takes an event of the Provider (Events is an autocert.Notifier):
// it passes it on to the subscribers and counts obtained and renewed
// certificates as successes and failed attempts as failures. It never
// blocks and never fails.
func (e *Events) Notify(_ context.Context, ev autocert.Event) error {
	now := time.Now()
	m := Message{Type: TypeEvent, Time: now, Line: ev.Title(), Kind: ev.Kind()}
	if data, err := json.Marshal(ev); err == nil {
		m.Event = data
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ev := ev.(type) {
	case *autocert.CertObtained:
		m.Provider = ev.Provider
		e.finishLocked(ev.Provider, now, true)
	case *autocert.CertRenewed:
		m.Provider = ev.Provider
		e.finishLocked(ev.Provider, now, true)
	case *autocert.RenewalFailed:
		m.Provider = ev.Provider
		m.Line += ": " + ev.Error
		e.finishLocked(ev.Provider, now, false)
	case *autocert.CertExpiring:
		m.Provider = ev.Provider
	}
	e.publishLocked(m)
	return nil
}

// finishLocked counts the outcome of provider's order.
func (e *Events) finishLocked(provider string, now time.Time, ok bool) {
	st := e.statsLocked(provider)
	if ok {
		st.successes++
	} else {
		st.failures++
	}
	if !st.started.IsZero() {
		st.lastDuration = now.Sub(st.started)
		st.started = time.Time{}
	}
	for key := range e.shown {
		if strings.HasPrefix(key, provider+"|") {
			delete(e.shown, key)
		}
	}
}

func (e *Events) statsLocked(provider string) *renewalStats {
	st := e.stats[provider]
	if st == nil {
		st = &renewalStats{}
		e.stats[provider] = st
	}
	return st
}

// publishLocked sends m to every subscriber that has room for it; a
// subscriber that does not keep up misses messages rather than holding up
// the Provider.
func (e *Events) publishLocked(m Message) {
	for ch := range e.subs {
		select {
		case ch <- m:
		default:
		}
	}
}

// Subscribe returns a channel receiving every message from now on, with
// room for buffer messages, and a function that ends the subscription and
// closes the channel.
func (e *Events) Subscribe(buffer int) (<-chan Message, func()) {
	ch := make(chan Message, buffer)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			e.mu.Lock()
			delete(e.subs, ch)
			e.mu.Unlock()
			close(ch)
		})
	}
}

// RenewalStats is what Events counted for one certificate.
type RenewalStats struct {
	// Successes counts certificates obtained or renewed, Failures the
	// attempts that failed, since Events was created.
	Successes, Failures uint64
	// LastDuration is how long the last attempt took, from its order to
	// its outcome; zero when unknown.
	LastDuration time.Duration
}

// Stats returns the counts of the certificate of provider ("main",
// "extra[N]").
func (e *Events) Stats(provider string) RenewalStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats[provider]
	if st == nil {
		return RenewalStats{}
	}
	return RenewalStats{Successes: st.successes, Failures: st.failures, LastDuration: st.lastDuration}
}
