package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/httpapi"
	"github.com/autocert-dev/autocert/internal/suggest"
	"github.com/rs/zerolog"
)

// signalContext returns a context ended by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// shutdownTimeout bounds the shutdown of the API server.
const shutdownTimeout = 5 * time.Second

// run obtains what is missing, then keeps renewing until a signal.
func (a *app) run(args []string) int {
	fs := a.flagSet("run")
	if code, ok := a.parseCommand(fs, args, "run [flags]", 0); !ok {
		return code
	}
	// Read before anything starts a process, which must not inherit it.
	svc, err := newService(a.secrets.Scrub)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	a.service = svc
	s, status := a.open(modeRun)
	if s == nil {
		return status
	}
	ctx, stop := signalContext()
	svc.start(ctx, s.provider, s.logger)
	defer func() {
		stop()
		svc.wait() // it ends with ctx
	}()

	if err := s.provider.ObtainCertIfNotExistsAll(); err != nil {
		// The scheduler tries again, waiting after failures; a restart
		// loop would not do better.
		s.logger.Error().Str("error", err.Error()).Msg("not every certificate could be obtained; retrying in the background")
	}
	s.provider.ScheduleRenewalAll(autocert.ContextParent(ctx))

	var srv *http.Server
	var serveErr chan error
	if api := s.cc.API; api != nil {
		ln, err := net.Listen("tcp", api.Listen)
		if err != nil {
			stop()
			<-s.provider.SchedulerDone()
			s.close()
			return a.fail(exitFailed, "serving the HTTP API: %v", err)
		}
		srv = &http.Server{
			Handler:           httpapi.New(s.provider, httpapi.Options{Token: api.Token, Events: s.events, Logger: s.logger}),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          log.New(zerologWriter{s.logger}, "", 0),
		}
		scheme := "http"
		serveErr = make(chan error, 1)
		if api.TLS {
			scheme = "https"
			srv.TLSConfig = s.provider.TLSConfig()
			go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
		} else {
			go func() { serveErr <- srv.Serve(ln) }()
		}
		s.logger.Info().Str("addr", ln.Addr().String()).Str("url", scheme+"://"+ln.Addr().String()+httpapi.PathInfo).
			Bool("token", api.Token != "").Msg("serving the HTTP API")
	}
	s.logger.Info().Msg("running: certificates are renewed in the background until SIGINT or SIGTERM")
	svc.markReady()

	exit := exitOK
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		s.logger.Error().Err(err).Msg("the HTTP API stopped")
		exit = exitFailed
	}
	stop()
	s.logger.Info().Msg("shutting down")
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	<-s.provider.SchedulerDone()
	s.close()
	s.logger.Info().Msg("stopped")
	return exit
}

// zerologWriter passes the lines of a log.Logger to zerolog.
type zerologWriter struct{ l zerolog.Logger }

// Write logs p, one line of the standard logger, at debug level.
func (w zerologWriter) Write(p []byte) (int, error) {
	w.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// obtain obtains what is missing, expired or no longer matches; with
// --force also while a recorded failure asks to wait.
func (a *app) obtain(args []string) int {
	fs := a.flagSet("obtain")
	force := fs.Bool("force", false, "order now what is missing or no longer matches, even while waiting after a failure")
	if code, ok := a.parseCommand(fs, args, "obtain [--force] [flags]", 0); !ok {
		return code
	}
	s, status := a.open(modeOneShot)
	if s == nil {
		return status
	}
	ctx, stop := signalContext()
	defer stop()
	err := s.provider.ObtainAll(ctx, *force)
	s.close()
	a.printOutcomes(s)
	if err != nil {
		return a.fail(exitFailed, "%v", err)
	}
	return exitOK
}

// renew renews what is due, or everything with --force.
func (a *app) renew(args []string) int {
	fs := a.flagSet("renew")
	force := fs.Bool("force", false, "renew every certificate now, whatever its expiry")
	if code, ok := a.parseCommand(fs, args, "renew [--force] [flags]", 0); !ok {
		return code
	}
	s, status := a.open(modeOneShot)
	if s == nil {
		return status
	}
	ctx, stop := signalContext()
	defer stop()
	// Serve what is stored, so that only what needs it is ordered; a
	// missing certificate is obtained.
	_ = s.provider.LoadCertsAll()
	var err error
	if *force {
		err = forceRenewal(ctx, s.provider)
	} else {
		err = renewDue(ctx, s.provider)
	}
	s.close()
	a.printOutcomes(s)
	if err == nil {
		err = failures(s)
	}
	if err != nil {
		return a.fail(exitFailed, "%v", err)
	}
	return exitOK
}

// forceRenewal renews every certificate and waits for the outcome.
func forceRenewal(ctx context.Context, p *autocert.Provider) error {
	if !p.ForceExpiryAll() {
		return errors.New("nothing to renew: every certificate is \"local\"")
	}
	if !p.WaitRenewalDone(ctx) {
		return errors.New("interrupted: a renewal may still have been in progress")
	}
	return nil
}

// settlePoll is how often renewDue looks whether the scheduler is done.
const settlePoll = 50 * time.Millisecond

// renewDue runs the scheduler until it has looked at every certificate
// once: those due (by the CA's renewal window, their lifetime, a changed
// config) are renewed, the others left alone.
func renewDue(ctx context.Context, p *autocert.Provider) error {
	sctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		<-p.SchedulerDone()
	}()
	p.ScheduleRenewalAll(autocert.ContextParent(sctx))
	managed := managedProviders(p.Config())
	t := time.NewTicker(settlePoll)
	defer t.Stop()
	for {
		now := time.Now()
		settled := true
		for _, st := range p.RenewalStatus() {
			if managed[st.Provider] && (st.Renewing || !st.NextRenewal.After(now)) {
				settled = false
			}
		}
		if settled {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted: a renewal may still have been in progress")
		case <-t.C:
		}
	}
}

// managedProviders names the certificates that autocert renews (not
// "local").
func managedProviders(cfg *autocert.Config) map[string]bool {
	out := map[string]bool{"main": cfg.Provider != autocert.ProviderLocal}
	for i := range cfg.Extra {
		m := autocert.MergeExtraConfig(cfg, &cfg.Extra[i])
		out[fmt.Sprintf("extra[%d]", i)] = m.Provider != autocert.ProviderLocal
	}
	return out
}

// failures returns an error naming the certificates whose last attempt
// failed during the command.
func failures(s *session) error {
	var errs []error
	for _, st := range s.provider.RenewalStatus() {
		if f, ok := s.outcomes.last(st.Provider).(*autocert.RenewalFailed); ok {
			errs = append(errs, fmt.Errorf("%s: %s", f.Provider, f.Error))
		}
	}
	return errors.Join(errs...)
}

// printOutcomes prints a line per certificate: what the command did and
// what is served now.
func (a *app) printOutcomes(s *session) {
	now := time.Now()
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, st := range httpapi.Statuses(s.provider) {
		what := "unchanged"
		switch s.outcomes.last(st.Provider).(type) {
		case *autocert.CertObtained:
			what = "obtained"
		case *autocert.CertRenewed:
			what = "renewed"
		case *autocert.RenewalFailed:
			what = "failed"
		}
		cert := "no certificate"
		if st.Served() {
			cert = fmt.Sprintf("valid until %s (serial %s)", formatTime(time.Unix(st.NotAfter, 0)), st.Serial)
		}
		next := ""
		if st.NextRenewal != 0 && what != "failed" {
			next = "next renewal " + formatWhen(time.Unix(st.NextRenewal, 0), now)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Provider, what, strings.Join(st.Domains, ", "), cert, next)
	}
	tw.Flush()
}

// status shows the certificates from the files alone.
func (a *app) status(args []string) int {
	fs := a.flagSet("status")
	asJSON := fs.Bool("json", false, "print the JSON list of the API's /api/v1/cert/info")
	if code, ok := a.parseCommand(fs, args, "status [--json] [flags]", 0); !ok {
		return code
	}
	s, status := a.open(modeStatus)
	if s == nil {
		return status
	}
	defer s.close()
	loadErr := s.provider.LoadCertsAll()
	s.provider.LoadRenewalStatus(context.Background())
	sts := httpapi.Statuses(s.provider)
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sts); err != nil {
			return a.fail(exitFailed, "%v", err)
		}
	} else {
		printStatusTable(a.stdout, sts, time.Now())
	}
	// Files that exist but do not load are worth a message; missing ones
	// show in the table.
	for _, e := range flatten(loadErr) {
		if !strings.Contains(e.Error(), "does not exist") {
			fmt.Fprintf(a.stderr, "autocert: %v\n", e)
		}
	}
	now := time.Now().Unix()
	for _, st := range sts {
		if !st.Served() || st.NotAfter <= now {
			return exitFailed
		}
	}
	return exitOK
}

// printStatusTable prints the status table and the last error of each
// certificate that has one.
func printStatusTable(w io.Writer, sts []httpapi.CertStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tNAMES\tISSUER\tNOT AFTER\tNEXT RENEWAL\tLAST FAILURE")
	var notes []string
	for _, st := range sts {
		names, issuer, notAfter := strings.Join(st.Domains, ", "), "-", "no certificate"
		if st.Served() {
			names, issuer = strings.Join(st.DNSNames, ", "), st.Issuer
			notAfter = formatTime(time.Unix(st.NotAfter, 0))
			if st.NotAfter <= now.Unix() {
				notAfter += " (expired)"
			}
		}
		next := "-"
		if st.NextRenewal != 0 {
			next = formatWhen(time.Unix(st.NextRenewal, 0), now)
			if st.RenewalReason != "" {
				next += " (" + st.RenewalReason + ")"
			}
		}
		failure := "-"
		if st.LastFailure != 0 {
			failure = fmt.Sprintf("%s (%d in a row)", formatTime(time.Unix(st.LastFailure, 0)), st.Failures)
			if st.LastError != "" {
				notes = append(notes, st.Provider+": "+st.LastError)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Provider, names, issuer, notAfter, next, failure)
	}
	tw.Flush()
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nLast errors:\n  %s\n", strings.Join(notes, "\n  "))
	}
}

func formatTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") }

// formatWhen is formatTime, or "now" for a time already past.
func formatWhen(t, now time.Time) string {
	if !t.After(now) {
		return "now"
	}
	return formatTime(t)
}

// providers lists the DNS providers, or the options of one.
func (a *app) providers(args []string) int {
	fs := a.flagSet("providers")
	if code, ok := a.parseCommand(fs, args, "providers [NAME]", 1); !ok {
		return code
	}
	names := autocert.Providers()
	if fs.NArg() == 0 {
		fmt.Fprintf(a.stdout, "%d DNS providers (the provider key of a config block); also %q and %q:\n",
			len(names), autocert.ProviderLocal, autocert.ProviderPseudo)
		for _, n := range names {
			fmt.Fprintln(a.stdout, n)
		}
		return exitOK
	}
	name := fs.Arg(0)
	f, ok := autocert.LookupProvider(name)
	if !ok {
		msg := fmt.Sprintf("unknown DNS provider %q", name)
		if s := suggest.Nearest(name, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		return a.fail(exitUsage, "%s; \"autocert providers\" lists them", msg)
	}
	d, ok := f.(autocert.OptionsDescriber)
	if !ok {
		fmt.Fprintf(a.stdout, "%s: its options are not listed; see docs/providers.md\n", name)
		return exitOK
	}
	keys := d.OptionKeys()
	fmt.Fprintf(a.stdout, "Options of %s (under options: in its config block; values are secrets, never printed):\n", name)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tREQUIRED\tALIASES")
	for _, k := range keys {
		req := "no"
		if k.Required {
			req = "yes"
		}
		aliases := strings.Join(k.Aliases, ", ")
		if aliases == "" {
			aliases = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, req, aliases)
	}
	tw.Flush()
	return exitOK
}
