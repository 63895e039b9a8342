package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/httpapi"
	"github.com/autocert-dev/autocert/internal/sdnotify"
	"github.com/rs/zerolog"
)

// service tells the service manager (systemd, with Type=notify) what
// "autocert run" is doing: STATUS= lines from the start, READY=1 once the
// start-up obtain has finished and the API listens, STOPPING=1 when a
// signal asks it to stop, and WATCHDOG=1 pings when the unit has a
// watchdog. A nil *service (NOTIFY_SOCKET unset) does nothing.
type service struct {
	n        *sdnotify.Notifier
	watchdog time.Duration // ping interval; 0: no watchdog
	scrub    func(string) string

	provider *autocert.Provider
	logger   zerolog.Logger
	kick     chan struct{} // something changed: send the status again
	done     chan struct{} // closed when the goroutine of start has ended

	mu       sync.Mutex
	orders   map[string]string // provider: what its order is doing now
	ready    bool
	stopping bool

	sendMu sync.Mutex
	last   string // the STATUS= assignment sent last
	warned bool   // a failed send was logged at warn level

	started bool // start was called; read by wait, on the same goroutine
}

// statusRefresh is how often the status is worked out again when no
// event says that it changed: the scheduler plans the next renewal (and
// asks the CA's renewal window) after the start without telling.
const statusRefresh = 2 * time.Second

// maxStatusError bounds the error quoted in a STATUS= line.
const maxStatusError = 200

// newService reads the service manager's variables and removes them from
// the environment, so that the processes started later (the deploy hook,
// the program of the "exec" DNS provider) do not notify in autocert's name;
// the service is nil when NOTIFY_SOCKET is unset.
func newService(scrub func(string) string) (*service, error) {
	n, watchdog, err := sdnotify.FromEnv(os.Getenv, os.Getpid())
	// The service manager speaks to its main process only.
	for _, k := range []string{sdnotify.EnvSocket, sdnotify.EnvWatchdogUSec, sdnotify.EnvWatchdogPID} {
		os.Unsetenv(k)
	}
	if err != nil || n == nil {
		return nil, err
	}
	return &service{
		n: n, watchdog: watchdog, scrub: scrub,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		orders: map[string]string{},
	}, nil
}

// start sends the first status and starts the goroutine that pings the
// watchdog and keeps the status current; when ctx ends (SIGINT, SIGTERM)
// it sends STOPPING=1 and ends. wait waits for it.
func (v *service) start(ctx context.Context, p *autocert.Provider, logger zerolog.Logger) {
	if v == nil {
		return
	}
	v.provider, v.logger = p, logger.With().Str("component", "systemd").Logger()
	v.started = true
	n := len(p.RenewalStatus())
	v.sendStatus(fmt.Sprintf("starting: loading %s, obtaining what is missing", plural(n, "certificate")))
	v.logger.Debug().Str("socket", v.n.String()).Dur("watchdog", v.watchdog).Msg("notifying the service manager")
	go v.loop(ctx)
}

func (v *service) loop(ctx context.Context) {
	defer close(v.done)
	refresh := time.NewTicker(statusRefresh)
	defer refresh.Stop()
	var ping <-chan time.Time
	if v.watchdog > 0 {
		t := time.NewTicker(v.watchdog)
		defer t.Stop()
		ping = t.C
		v.send(sdnotify.Watchdog)
	}
	for {
		select {
		case <-ctx.Done():
			// Under sendMu, as markReady: READY=1 never follows STOPPING=1.
			v.sendMu.Lock()
			v.mu.Lock()
			v.stopping = true
			v.mu.Unlock()
			v.sendLocked(sdnotify.Stopping, v.statusAssignment("stopping: finishing the work in progress"))
			v.sendMu.Unlock()
			return
		case <-ping:
			v.send(sdnotify.Watchdog)
		case <-refresh.C:
			v.update()
		case <-v.kick:
			v.update()
		}
	}
}

// wait waits for the goroutine of start to end (after its context).
func (v *service) wait() {
	if v == nil || !v.started {
		return
	}
	<-v.done
}

// markReady sends READY=1 with the status: the start-up obtain has
// finished (each certificate served, or its failure recorded and its
// retry scheduled) and the API, when configured, listens. Nothing is
// sent once stopping.
func (v *service) markReady() {
	if v == nil {
		return
	}
	v.sendMu.Lock()
	defer v.sendMu.Unlock()
	v.mu.Lock()
	if v.stopping || v.ready {
		v.mu.Unlock()
		return
	}
	v.ready = true
	v.mu.Unlock()
	v.sendLocked(sdnotify.Ready, v.statusAssignment(v.statusLine(time.Now())))
}

// Notify hears the outcome of orders: the status changes.
func (v *service) Notify(_ context.Context, ev autocert.Event) error {
	var provider string
	switch e := ev.(type) {
	case *autocert.CertObtained:
		provider = e.Provider
	case *autocert.CertRenewed:
		provider = e.Provider
	case *autocert.CertReloaded:
		provider = e.Provider
	case *autocert.RenewalFailed:
		provider = e.Provider
	default:
		return nil
	}
	v.mu.Lock()
	delete(v.orders, provider)
	v.mu.Unlock()
	v.poke()
	return nil
}

// progress hears the steps of orders (for autocert.WithProgress).
func (v *service) progress(pr autocert.Progress) {
	if v == nil {
		return
	}
	v.mu.Lock()
	if pr.Step == autocert.StepSaved {
		delete(v.orders, pr.Provider)
	} else {
		v.orders[pr.Provider] = describeStep(pr)
	}
	v.mu.Unlock()
	v.poke()
}

// describeStep is Progress.String without the elapsed time of the
// propagation wait, which would change the status at every check.
func describeStep(pr autocert.Progress) string {
	if pr.Step == autocert.StepPropagation {
		return fmt.Sprintf("%s: waiting for the DNS record of %s to propagate", pr.Provider, pr.Domain)
	}
	return pr.String()
}

func (v *service) poke() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// update sends the status when it changed.
func (v *service) update() {
	v.mu.Lock()
	stopping := v.stopping
	v.mu.Unlock()
	if !stopping {
		v.sendStatus(v.statusLine(time.Now()))
	}
}

// statusLine describes what the command does now: the orders in progress
// ("starting" before READY when there is none), how many certificates are
// served, the failures waiting for their retry, and the next renewal.
func (v *service) statusLine(now time.Time) string {
	v.mu.Lock()
	orders := make(map[string]string, len(v.orders))
	for k, s := range v.orders {
		orders[k] = s
	}
	ready := v.ready
	v.mu.Unlock()

	sts := httpapi.Statuses(v.provider)
	var parts []string
	for _, st := range sts {
		if what, ok := orders[st.Provider]; ok {
			verb := "obtaining "
			if st.Served() {
				verb = "renewing "
			}
			parts = append(parts, verb+what)
		} else if st.Renewing {
			parts = append(parts, "renewing "+st.Provider)
		}
	}
	served := 0
	for _, st := range sts {
		if st.Served() {
			served++
		}
	}
	if served == len(sts) {
		parts = append(parts, "serving "+plural(served, "certificate"))
	} else {
		parts = append(parts, fmt.Sprintf("serving %d of %s", served, plural(len(sts), "certificate")))
	}
	var next time.Time
	nextOf := ""
	for _, st := range sts {
		if st.LastFailure != 0 {
			what := "renewal of " + st.Provider
			if !st.Served() {
				what = "obtaining " + st.Provider
			}
			line := fmt.Sprintf("%s failed: %s", what, truncate(st.LastError, maxStatusError))
			if st.RetryAt != 0 {
				line += "; retry " + formatWhen(time.Unix(st.RetryAt, 0), now)
			}
			parts = append(parts, line)
			continue
		}
		if st.NextRenewal != 0 && (next.IsZero() || time.Unix(st.NextRenewal, 0).Before(next)) {
			next, nextOf = time.Unix(st.NextRenewal, 0), st.Provider
		}
	}
	if !next.IsZero() {
		parts = append(parts, fmt.Sprintf("next renewal %s (%s)", formatWhen(next, now), nextOf))
	}
	line := strings.Join(parts, "; ")
	if !ready && len(orders) == 0 {
		line = "starting: " + line
	}
	return line
}

// statusAssignment is STATUS= for line, scrubbed of the config's secrets.
func (v *service) statusAssignment(line string) string {
	return sdnotify.Status(v.scrub(line))
}

// sendStatus sends line as the status, unless it is the one sent last.
func (v *service) sendStatus(line string) {
	a := v.statusAssignment(line)
	v.sendMu.Lock()
	same := a == v.last
	v.sendMu.Unlock()
	if !same {
		v.send(a)
	}
}

// send sends the assignments; a failure is logged, at warn level the
// first time only (the watchdog would repeat it every few seconds).
func (v *service) send(assignments ...string) {
	v.sendMu.Lock()
	defer v.sendMu.Unlock()
	v.sendLocked(assignments...)
}

// sendLocked is send with sendMu held.
func (v *service) sendLocked(assignments ...string) {
	for _, a := range assignments {
		if strings.HasPrefix(a, "STATUS=") {
			v.last = a
		}
	}
	err := v.n.Send(assignments...)
	if err == nil {
		return
	}
	if !v.warned {
		v.warned = true
		v.logger.Warn().Err(err).Msg("notifying the service manager")
		return
	}
	v.logger.Debug().Err(err).Msg("notifying the service manager")
}

// plural returns "1 certificate", "2 certificates".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// truncate shortens s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
