// Command autocert-demo runs the demo of autocert, the one "autocert demo"
// runs: it obtains certificates through DNS-01 from an ACME CA and DNS
// server started in this process, serves them over HTTPS by SNI and shows
// a short-lived one renewed while it is served. No domain, account or
// internet is needed.
//
// It links the library and its test CA only, none of the DNS providers
// the command autocert carries, so that "go run ./cmd/autocert-demo"
// builds from an empty module cache in a fraction of the time.
//
// Usage:
//
//	autocert-demo [--serve] [--listen 127.0.0.1:8443] [-log-level error] [-log-format console|json]
//
// Exit status: 0 on success, 1 when the demo failed, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/demo"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/rs/zerolog"
)

// Exit statuses, those of the command autocert.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the demo with args (without the program name) and returns the
// exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("autocert-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serve := fs.Bool("serve", false, "keep serving HTTPS after the demo, until SIGINT or SIGTERM")
	listen := fs.String("listen", "127.0.0.1:0", "the `address` of the demo's HTTPS server")
	logLevel := fs.String("log-level", "error", "log `level`: debug, info, warn or error")
	logFormat := fs.String("log-format", "console", "log `format`: console or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: autocert-demo [--serve] [--listen 127.0.0.1:8443] [flags]\n\n"+
			"The demo of autocert (the same as \"autocert demo\"), on a CA and DNS server started in this process.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "autocert-demo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	lines := &lines{w: stderr, shown: map[string]time.Duration{}}
	logger, err := newLogger(lines, *logLevel, *logFormat, isTerminal(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "autocert-demo: "+err.Error())
		return exitUsage
	}
	legolog.Logger = log.New(legoWriter{logger.With().Str("component", "lego").Logger()}, "", 0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = demo.Run(ctx, demo.Options{
		Out:      stdout,
		Logger:   logger,
		Progress: lines.Progress,
		Event:    lines.Event,
		Serving:  lines.Mute,
		Listen:   *listen,
		Serve:    *serve,
	})
	if err != nil {
		fmt.Fprintln(stderr, "autocert-demo: "+strings.ReplaceAll(strings.TrimRight(err.Error(), "\n"), "\n", "\n  "))
		return exitFailed
	}
	return exitOK
}

// newLogger returns the logger of the demo, writing to w.
func newLogger(w io.Writer, level, format string, color bool) (zerolog.Logger, error) {
	l, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || l == zerolog.NoLevel {
		return zerolog.Logger{}, fmt.Errorf("-log-level: unknown level %q (use debug, info, warn or error)", level)
	}
	var logger zerolog.Logger
	switch strings.ToLower(format) {
	case "console":
		logger = zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05", NoColor: !color})
	case "json":
		logger = zerolog.New(w)
	default:
		return zerolog.Logger{}, fmt.Errorf("-log-format: unknown format %q (use console or json)", format)
	}
	return logger.Level(l).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// lines shows the progress of the orders on the error stream, a line per
// step, and carries the log lines.
type lines struct {
	mu    sync.Mutex
	w     io.Writer
	muted bool
	shown map[string]time.Duration // provider|domain -> elapsed last printed, for StepPropagation
}

// Write writes log output.
func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Progress shows a progress report, the repeated checks of a DNS record's
// propagation at most every two seconds.
func (l *lines) Progress(pr autocert.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.muted {
		return
	}
	key := pr.Provider + "|" + pr.Domain
	switch pr.Step {
	case autocert.StepPropagation:
		if last, ok := l.shown[key]; ok && pr.Elapsed != 0 && pr.Elapsed-last < 2*time.Second {
			return
		}
		l.shown[key] = pr.Elapsed
	case autocert.StepSaved:
		for k := range l.shown {
			if strings.HasPrefix(k, pr.Provider+"|") {
				delete(l.shown, k)
			}
		}
	}
	fmt.Fprintln(l.w, pr.String())
}

// Event shows the failure of an order, which no progress report tells.
func (l *lines) Event(ev autocert.Event) {
	f, ok := ev.(*autocert.RenewalFailed)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.muted {
		fmt.Fprintln(l.w, f.Provider+": failed: "+f.Error)
	}
}

// Mute stops showing progress.
func (l *lines) Mute() {
	l.mu.Lock()
	l.muted = true
	l.mu.Unlock()
}

// legoWriter passes lego's log lines to the logger: those lego marks
// "[WARN] " at warn level, the others at debug level.
type legoWriter struct{ l zerolog.Logger }

// Write logs one line of lego's.
func (g legoWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := zerolog.DebugLevel
	if rest, ok := strings.CutPrefix(msg, "[WARN] "); ok {
		level, msg = zerolog.WarnLevel, rest
	} else if rest, ok := strings.CutPrefix(msg, "[INFO] "); ok {
		msg = rest
	}
	if e := g.l.WithLevel(level); e != nil {
		e.Msg(msg)
	}
	return len(p), nil
}
