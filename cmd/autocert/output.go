package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/redact"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// display shows the progress of orders on the error stream: on a
// terminal, a spinner line with the step in progress, redrawn in place,
// and a line per finished certificate; elsewhere, a plain line per step.
// Log lines go through Write, which keeps them apart from the spinner.
type display struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	muted   bool
	current map[string]string        // provider -> step in progress (terminal)
	order   []string                 // providers in current, oldest first
	shown   map[string]time.Duration // provider|domain -> elapsed last printed (plain)
	drawn   bool                     // a spinner line is on screen
	frame   int
	every   time.Duration // spinner turn
	ticker  *time.Ticker
	stop    chan struct{}
	stopped chan struct{}
}

// spinnerInterval is how often the spinner turns.
const spinnerInterval = 120 * time.Millisecond

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newDisplay(w io.Writer) *display {
	return &display{w: w, tty: isTerminal(w), every: spinnerInterval, current: map[string]string{}, shown: map[string]time.Duration{}}
}

// Write writes log output, clearing the spinner line first.
func (d *display) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clearLocked()
	n, err := d.w.Write(p)
	d.drawLocked()
	return n, err
}

// Through returns a writer to w (another stream on the same terminal,
// such as standard output) that clears the spinner line before writing
// and draws it again after.
func (d *display) Through(w io.Writer) io.Writer { return throughWriter{d, w} }

type throughWriter struct {
	d *display
	w io.Writer
}

// Write writes p to the other stream, around the spinner.
func (t throughWriter) Write(p []byte) (int, error) {
	t.d.mu.Lock()
	defer t.d.mu.Unlock()
	t.d.clearLocked()
	n, err := t.w.Write(p)
	t.d.drawLocked()
	return n, err
}

// Progress shows a progress report (for autocert.WithProgress).
func (d *display) Progress(pr autocert.Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.muted {
		return
	}
	if !d.tty {
		if pr.Step == autocert.StepPropagation {
			key := pr.Provider + "|" + pr.Domain
			if last, ok := d.shown[key]; ok && pr.Elapsed != 0 && pr.Elapsed-last < 2*time.Second {
				return
			}
			d.shown[key] = pr.Elapsed
		}
		fmt.Fprintln(d.w, pr.String())
		return
	}
	if pr.Step == autocert.StepSaved {
		d.finishLocked(pr.Provider, "✓ "+pr.String())
		return
	}
	if _, ok := d.current[pr.Provider]; !ok {
		d.order = append(d.order, pr.Provider)
	}
	d.current[pr.Provider] = pr.String()
	if d.ticker == nil {
		d.ticker = time.NewTicker(d.every)
		d.stop, d.stopped = make(chan struct{}), make(chan struct{})
		go d.spin(d.ticker, d.stop, d.stopped)
	}
	d.clearLocked()
	d.drawLocked()
}

// Event shows the outcome of a failed order, which no progress report
// tells.
func (d *display) Event(ev autocert.Event) {
	f, ok := ev.(*autocert.RenewalFailed)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.muted {
		return
	}
	line := f.Provider + ": failed: " + f.Error
	if !d.tty {
		fmt.Fprintln(d.w, line)
		return
	}
	d.finishLocked(f.Provider, "✗ "+line)
}

// finishLocked prints a lasting line for provider and takes it off the
// spinner.
func (d *display) finishLocked(provider, line string) {
	d.clearLocked()
	fmt.Fprintln(d.w, line)
	delete(d.current, provider)
	for i, p := range d.order {
		if p == provider {
			d.order = append(d.order[:i], d.order[i+1:]...)
			break
		}
	}
	for key := range d.shown {
		if strings.HasPrefix(key, provider+"|") {
			delete(d.shown, key)
		}
	}
	d.drawLocked()
}

func (d *display) spin(t *time.Ticker, stop, stopped chan struct{}) {
	defer close(stopped)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			d.mu.Lock()
			d.frame++
			d.clearLocked()
			d.drawLocked()
			d.mu.Unlock()
		}
	}
}

// drawLocked draws the spinner line of the step last reported.
func (d *display) drawLocked() {
	if !d.tty || d.muted || len(d.order) == 0 {
		return
	}
	line := d.current[d.order[len(d.order)-1]]
	if n := len(d.order); n > 1 {
		line += fmt.Sprintf(" (+%d more)", n-1)
	}
	if width := d.width(); width > 4 && len([]rune(line)) > width-3 {
		line = string([]rune(line)[:width-4]) + "…"
	}
	fmt.Fprintf(d.w, "%s %s", spinnerFrames[d.frame%len(spinnerFrames)], line)
	d.drawn = true
}

func (d *display) clearLocked() {
	if d.drawn {
		fmt.Fprint(d.w, "\r\033[K")
		d.drawn = false
	}
}

func (d *display) width() int {
	if f, ok := d.w.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil {
			return w
		}
	}
	return 80
}

// Mute stops showing progress and removes the spinner.
func (d *display) Mute() {
	d.mu.Lock()
	d.muted = true
	d.clearLocked()
	d.mu.Unlock()
	d.Close()
}

// Close stops the spinner.
func (d *display) Close() {
	d.mu.Lock()
	t, stop, stopped := d.ticker, d.stop, d.stopped
	d.ticker = nil
	d.clearLocked()
	d.current, d.order = map[string]string{}, nil
	d.mu.Unlock()
	if t != nil {
		t.Stop()
		close(stop)
		<-stopped
	}
}

// newLogger builds the logger of the command from --log-level and
// --log-format, writing to w (the display), and sends lego's log to it
// (see legoLogger), scrubbed of the secrets of the config once it is
// loaded (a.secrets).
func (a *app) newLogger(w io.Writer, defaultLevel zerolog.Level) (zerolog.Logger, error) {
	level := defaultLevel
	if a.logLevel != "" {
		l, err := zerolog.ParseLevel(strings.ToLower(a.logLevel))
		if err != nil || l == zerolog.NoLevel {
			return zerolog.Logger{}, fmt.Errorf("-log-level: unknown level %q (use debug, info, warn or error)", a.logLevel)
		}
		level = l
	}
	var logger zerolog.Logger
	switch strings.ToLower(a.logFormat) {
	case "", "console":
		logger = zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05", NoColor: !isTerminal(a.stderr)})
	case "json":
		logger = zerolog.New(w)
	default:
		return zerolog.Logger{}, fmt.Errorf("-log-format: unknown format %q (use console or json)", a.logFormat)
	}
	logger = logger.Level(level).With().Timestamp().Logger()
	legolog.Logger = legoLogger{l: logger.With().Str("component", "lego").Logger(), secrets: a.secrets}
	return logger, nil
}

// secretScrubber scrubs the secrets of the config from text. It is made
// before the config is loaded (the logger needs it from the start) and
// filled once the config is read; until then it scrubs nothing, there
// being no secret yet to scrub. The nil *secretScrubber scrubs nothing.
type secretScrubber struct {
	s atomic.Pointer[redact.Scrubber]
}

// set makes s scrub secrets from now on.
func (s *secretScrubber) set(secrets []string) { s.s.Store(redact.New(secrets...)) }

// Scrub returns text without the secrets.
func (s *secretScrubber) Scrub(text string) string {
	if s == nil {
		return text
	}
	return s.s.Load().Scrub(text)
}

// legoLogger passes lego's log lines to zerolog, scrubbed of the
// config's secrets: a DNS provider's error may quote a credential, and
// lego logs the failure of a clean-up. Lines lego marks "[WARN]" (such as
// that failure, which leaves a TXT record behind) are logged at warn
// level, the others (lego's "[INFO]" lines, a DNS provider's own output)
// at debug level, without the marker.
type legoLogger struct {
	l       zerolog.Logger
	secrets *secretScrubber
}

// Print logs a line.
func (g legoLogger) Print(args ...any) { g.log(fmt.Sprint(args...)) }

// Println logs a line.
func (g legoLogger) Println(args ...any) { g.log(fmt.Sprintln(args...)) }

// Printf logs a line.
func (g legoLogger) Printf(format string, args ...any) { g.log(fmt.Sprintf(format, args...)) }

// Fatal logs at error level and exits.
func (g legoLogger) Fatal(args ...any) { g.fatal(fmt.Sprint(args...)) }

// Fatalln logs at error level and exits.
func (g legoLogger) Fatalln(args ...any) { g.fatal(fmt.Sprintln(args...)) }

// Fatalf logs at error level and exits.
func (g legoLogger) Fatalf(format string, args ...any) { g.fatal(fmt.Sprintf(format, args...)) }

// Markers lego puts before its lines (lego/log.Warnf and Infof).
const (
	legoWarn = "[WARN] "
	legoInfo = "[INFO] "
)

func (g legoLogger) log(msg string) {
	msg = strings.TrimSpace(msg)
	level := zerolog.DebugLevel
	if rest, ok := strings.CutPrefix(msg, legoWarn); ok {
		level, msg = zerolog.WarnLevel, rest
	} else if rest, ok := strings.CutPrefix(msg, legoInfo); ok {
		msg = rest
	}
	if e := g.l.WithLevel(level); e != nil {
		e.Msg(g.secrets.Scrub(msg))
	}
}

// fatal keeps the contract of log.Fatal, which lego's command-line tool
// relies on: log, then exit.
func (g legoLogger) fatal(msg string) {
	g.l.Error().Msg(g.secrets.Scrub(strings.TrimSpace(msg)))
	os.Exit(exitFailed)
}
