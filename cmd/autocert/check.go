package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/autocert-dev/autocert"
	"github.com/rs/zerolog"
)

// check runs the pre-flight check of the config (autocert.Check): one
// line per step on standard output, or the report as JSON with -json.
// It exits 1 when a step failed, 2 when the config does not load or is
// invalid.
func (a *app) check(args []string) int {
	fs := a.flagSet("check")
	asJSON := fs.Bool("json", false, "print the report as JSON when the check ends, instead of a line per step")
	timeout := fs.Duration("timeout", autocert.DefaultCheckTimeout, "how long to wait for the resolvers to see each test TXT record")
	if code, ok := a.parseCommand(fs, args, "check [--json] [--timeout 2m] [flags]", 0); !ok {
		return code
	}
	d := newDisplay(a.stderr)
	defer d.Close()
	logger, err := a.newLogger(d, zerolog.WarnLevel)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	cfg, cc, err := loadConfig(a.configPath, false)
	if err != nil {
		var lines []string
		for _, e := range flatten(err) {
			lines = append(lines, e.Error())
		}
		st := autocert.CheckStep{Step: autocert.CheckStepConfig, Verdict: autocert.CheckFail,
			Detail: a.secrets.Scrub(strings.Join(lines, "\n")), Fix: "correct each key named"}
		if *asJSON {
			a.printJSON(&autocert.CheckReport{Steps: []autocert.CheckStep{st}})
		} else {
			fmt.Fprintln(a.stdout, st)
		}
		return exitUsage
	}
	a.secrets.set(configSecrets(cfg, cc))
	opts := []autocert.Option{autocert.WithLogger(logger), autocert.WithCheckTimeout(*timeout)}
	if !*asJSON {
		opts = append(opts, autocert.WithCheckProgress(func(st autocert.CheckStep) {
			fmt.Fprintln(d.Through(a.stdout), a.secrets.Scrub(st.String()))
		}))
	}
	ctx, stop := signalContext()
	defer stop()
	report, err := autocert.Check(ctx, cfg, opts...)
	if report == nil {
		return a.fail(exitFailed, "%v", err)
	}
	if *asJSON {
		a.printJSON(report)
	} else if len(report.NotChecked) > 0 {
		fmt.Fprintf(d.Through(a.stdout), "not checked, after the first certificate that would fail: %s\n", strings.Join(report.NotChecked, ", "))
	}
	switch f := report.Failed(); {
	case f == nil:
		if !*asJSON {
			fmt.Fprintln(d.Through(a.stdout), "check passed: nothing was ordered; the first obtain can go ahead")
		}
		return exitOK
	case f.Step == autocert.CheckStepConfig:
		return exitUsage
	}
	return exitFailed
}

// printJSON prints the report, scrubbed of the config's secrets.
func (a *app) printJSON(r *autocert.CheckReport) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		a.fail(exitFailed, "%v", err)
		return
	}
	fmt.Fprintln(a.stdout, a.secrets.Scrub(string(data)))
}
