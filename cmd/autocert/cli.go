package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/autocert-dev/autocert"
	_ "github.com/autocert-dev/autocert/acmetest"         // the "acmetest" DNS provider, for the demo and tests
	_ "github.com/autocert-dev/autocert/dnsproviders/all" // every DNS provider
	_ "github.com/autocert-dev/autocert/storage/postgres" // the "postgres" storage type
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // an operation failed: a certificate could not be obtained, a hook...
	exitUsage   = 2 // bad flags, arguments or configuration
	defaultConf = "autocert.yml"
)

const usageText = `autocert keeps TLS certificates issued and renewed through ACME (DNS-01).

Usage:
  autocert [flags] <command> [command flags]

Commands:
  run                 obtain what is missing, then keep renewing until SIGINT/SIGTERM;
                      run the deploy hook after each new certificate; serve the HTTP API
  obtain [--force]    obtain the certificates that are missing, expired or no longer match;
                      --force: also while waiting after a recorded failure
  renew [--force]     renew the certificates that are due; --force: all of them, now
  status [--json]     show the certificates and their renewal state, from the files alone
  check [--json]      the pre-flight check: reach each CA, look up the account, write,
                      see and remove a test TXT record per certificate; orders nothing
                      (--timeout: the wait for each record, default 2m)
  providers [NAME]    list the DNS provider names; with a name, its option keys
  demo [--serve]      obtain and serve certificates from a CA and DNS server started in
                      this process: no domain, account or internet needed

Flags (before or after the command):
  -config FILE        the configuration file (default autocert.yml)
  -log-level LEVEL    debug, info, warn or error (default info; error for demo)
  -log-format FORMAT  console or json (default console)

Exit status: 0 success, 1 an operation failed, 2 bad usage or configuration.
`

// app is one run of the command.
type app struct {
	stdout, stderr io.Writer
	configPath     string
	logLevel       string
	logFormat      string
	// secrets scrubs the secrets of the config, once loaded, from the
	// log and the errors printed.
	secrets *secretScrubber
	// service is the service manager told of "run"'s progress; nil
	// outside a Type=notify unit.
	service *service
}

// Main runs the command with args (without the program name) and returns
// its exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, secrets: &secretScrubber{}}
	fs := a.flagSet("autocert")
	fs.Usage = func() { fmt.Fprint(stderr, usageText) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return a.run(rest)
	case "obtain":
		return a.obtain(rest)
	case "renew":
		return a.renew(rest)
	case "status":
		return a.status(rest)
	case "check":
		return a.check(rest)
	case "providers":
		return a.providers(rest)
	case "demo":
		return a.demo(rest)
	case "help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	case "version":
		fmt.Fprintln(stdout, "autocert", autocert.Version)
		return exitOK
	}
	fmt.Fprintf(stderr, "autocert: unknown command %q\n\n%s", cmd, usageText)
	return exitUsage
}

// flagSet returns a flag set holding the flags every command accepts.
func (a *app) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	if a.configPath == "" {
		a.configPath = defaultConf
	}
	fs.StringVar(&a.configPath, "config", a.configPath, "the configuration `file`")
	fs.StringVar(&a.logLevel, "log-level", a.logLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&a.logFormat, "log-format", a.logFormat, "log `format`: console or json")
	return fs
}

// parseCommand parses the flags of a command; usage describes its
// arguments. When it returns false, it has printed the problem (or the
// help asked for) and code is the exit status.
func (a *app) parseCommand(fs *flag.FlagSet, args []string, usage string, maxArgs int) (code int, ok bool) {
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: autocert %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > maxArgs {
		fmt.Fprintf(a.stderr, "autocert %s: unexpected argument %q\n", fs.Name(), fs.Arg(maxArgs))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// fail prints an error of the command and returns status.
func (a *app) fail(status int, format string, args ...any) int {
	msg := a.secrets.Scrub(fmt.Sprintf(format, args...))
	fmt.Fprintln(a.stderr, "autocert: "+indentLines(msg))
	return status
}

// indentLines indents every line after the first, for errors joined with
// errors.Join.
func indentLines(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// configError prints a configuration problem, one per line.
func (a *app) configError(err error) int {
	var lines []string
	for _, e := range flatten(err) {
		lines = append(lines, e.Error())
	}
	if len(lines) == 1 {
		fmt.Fprintf(a.stderr, "autocert: invalid configuration: %s\n", lines[0])
	} else {
		fmt.Fprintf(a.stderr, "autocert: invalid configuration (%d problems):\n  %s\n", len(lines), strings.Join(lines, "\n  "))
	}
	return exitUsage
}

// flatten returns the errors joined in err (by errors.Join), recursively.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, field := err.(*autocert.FieldError); !field {
			var out []error
			for _, e := range j.Unwrap() {
				out = append(out, flatten(e)...)
			}
			return out
		}
	}
	return []error{err}
}
