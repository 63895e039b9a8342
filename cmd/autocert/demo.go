package main

import (
	"github.com/autocert-dev/autocert/internal/demo"
	"github.com/rs/zerolog"
)

// demo obtains certificates from a CA started in this process, serves them
// over HTTPS by SNI, and shows a short-lived one renewed live (package
// internal/demo, which the command autocert-demo runs too, without the
// DNS providers).
func (a *app) demo(args []string) int {
	fs := a.flagSet("demo")
	serve := fs.Bool("serve", false, "keep serving HTTPS after the demo, until SIGINT or SIGTERM")
	listen := fs.String("listen", "127.0.0.1:0", "the `address` of the demo's HTTPS server")
	if code, ok := a.parseCommand(fs, args, "demo [--serve] [--listen 127.0.0.1:8443] [flags]", 0); !ok {
		return code
	}
	d := newDisplay(a.stderr)
	defer d.Close()
	logger, err := a.newLogger(d, zerolog.ErrorLevel)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	ctx, stop := signalContext()
	defer stop()
	err = demo.Run(ctx, demo.Options{
		Out:      d.Through(a.stdout),
		Logger:   logger,
		Progress: d.Progress,
		Event:    d.Event,
		Serving:  d.Mute,
		Listen:   *listen,
		Serve:    *serve,
	})
	if err != nil {
		return a.fail(exitFailed, "%v", err)
	}
	return exitOK
}
