package main

import (
	"context"
	"errors"
	"sync"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/httpapi"
	"github.com/autocert-dev/autocert/notify/webhook"
	"github.com/go-acme/lego/v4/lego"
	"github.com/rs/zerolog"
)

// session is the Provider of a config file and what the command attaches
// to it: logger, progress display, deploy hook, webhooks, API events.
type session struct {
	cfg      *autocert.Config
	cc       *commandConfig
	logger   zerolog.Logger
	display  *display
	provider *autocert.Provider
	deployer *deployer
	events   *httpapi.Events // nil unless the API is served
	outcomes *outcomes
}

// sessionMode says what a command needs of its session.
type sessionMode int

const (
	modeOneShot sessionMode = iota // obtain, renew: no start-up expiry summary to webhooks
	modeRun                        // run: the API events, every notification
	modeStatus                     // status: no account key, no CA, no hooks
)

// open reads the config and builds the session; on failure it has printed
// the problem and returns the exit status.
func (a *app) open(mode sessionMode) (*session, int) {
	d := newDisplay(a.stderr)
	logger, err := a.newLogger(d, zerolog.InfoLevel)
	if err != nil {
		return nil, a.fail(exitUsage, "%v", err)
	}
	// status needs no secret: the variables only secrets use may be
	// unset.
	cfg, cc, err := loadConfig(a.configPath, mode == modeStatus)
	if err != nil {
		return nil, a.configError(err)
	}
	// From now on, lego's log and the errors printed are scrubbed of the
	// config's secrets.
	a.secrets.set(configSecrets(cfg, cc))
	s := &session{cfg: cfg, cc: cc, logger: logger, display: d, outcomes: &outcomes{}}
	var hooks []autocert.Notifier
	if mode != modeStatus { // status notifies no one
		for _, w := range cc.Webhooks {
			n, err := webhook.New(w.URL, webhook.WithFormat(w.Format))
			if err != nil {
				return nil, a.fail(exitUsage, "command.webhooks: %v", err)
			}
			hooks = append(hooks, n)
		}
	}

	var user *autocert.User
	var legoCfg *lego.Config
	if mode == modeStatus {
		// Nothing is ordered: a user without a key, rather than reading
		// (or creating) the account keys of the main block and extras.
		user = &autocert.User{Email: cfg.Email}
		legoCfg = lego.NewConfig(user)
	} else if user, legoCfg, err = cfg.GetLegoConfig(); err != nil {
		return nil, a.setupError(err)
	}

	opts := []autocert.Option{autocert.WithLogger(logger)}
	if mode != modeStatus {
		s.deployer = newDeployer(cc, filesOf(cfg), logger, hooks)
		if s.deployer != nil {
			opts = append(opts, autocert.WithNotifier(s.deployer))
		}
		opts = append(opts, autocert.WithNotifier(autocert.NotifierFunc(func(_ context.Context, ev autocert.Event) error {
			d.Event(ev)
			s.outcomes.add(ev)
			return nil
		})))
		progress := d.Progress
		if mode == modeRun && cc.API != nil {
			s.events = httpapi.NewEvents()
			opts = append(opts, autocert.WithNotifier(s.events))
			progress = func(pr autocert.Progress) {
				d.Progress(pr)
				s.events.Progress(pr)
			}
		}
		if mode == modeRun && a.service != nil {
			svc, shown := a.service, progress
			opts = append(opts, autocert.WithNotifier(svc))
			progress = func(pr autocert.Progress) {
				shown(pr)
				svc.progress(pr)
			}
		}
		opts = append(opts, autocert.WithProgress(progress))
		for _, h := range hooks {
			if mode == modeOneShot {
				h = skipSummary{h}
			}
			opts = append(opts, autocert.WithNotifier(h))
		}
	}
	p, err := autocert.NewProvider(cfg, user, legoCfg, opts...)
	if err != nil {
		s.deployer.Close()
		return nil, a.setupError(err)
	}
	s.provider = p
	return s, exitOK
}

// setupError prints an error of GetLegoConfig or NewProvider: a
// configuration problem (exit 2) or another failure (exit 1).
func (a *app) setupError(err error) int {
	if isConfigError(err) {
		return a.configError(err)
	}
	return a.fail(exitFailed, "%v", err)
}

func isConfigError(err error) bool {
	for _, e := range flatten(err) {
		if !errors.Is(e, autocert.ErrInvalidConfig) {
			return false
		}
	}
	return true
}

// close waits for the deploy hooks and the display, and closes the
// Provider's storage. A failed deploy hook does not fail the command: it
// was logged and notified.
func (s *session) close() {
	s.deployer.Close()
	s.display.Close()
	if err := s.provider.Close(); err != nil {
		s.logger.Warn().Err(err).Msg("closing the storage")
	}
}

// skipSummary passes every event but the expiry summary, which a one-shot
// command would otherwise send on each run.
type skipSummary struct{ n autocert.Notifier }

// Notify passes ev on, unless it is an ExpirySummary.
func (s skipSummary) Notify(ctx context.Context, ev autocert.Event) error {
	if ev.Kind() == autocert.KindExpirySummary {
		return nil
	}
	return s.n.Notify(ctx, ev)
}

// outcomes records what happened to each certificate during a command.
type outcomes struct {
	mu     sync.Mutex
	events []autocert.Event
}

func (o *outcomes) add(ev autocert.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

// last returns the last outcome (obtained, renewed or failed) of provider,
// or nil.
func (o *outcomes) last(provider string) autocert.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.events) - 1; i >= 0; i-- {
		switch e := o.events[i].(type) {
		case *autocert.CertObtained:
			if e.Provider == provider {
				return e
			}
		case *autocert.CertRenewed:
			if e.Provider == provider {
				return e
			}
		case *autocert.RenewalFailed:
			if e.Provider == provider {
				return e
			}
		}
	}
	return nil
}
