package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/rs/zerolog"
)

// deployer runs the deploy hook after each certificate obtained, renewed
// or reloaded from a shared storage, one run at a time and in order, off the goroutine that renewed
// (a slow hook does not hold up renewals). A failed hook is logged and
// notified, never fatal.
type deployer struct {
	argv    []string
	timeout time.Duration
	files   map[string]certFiles
	logger  zerolog.Logger
	notify  []autocert.Notifier // told of failures

	mu     sync.Mutex
	closed bool
	queue  chan deployJob
	done   chan struct{}
}

type deployJob struct {
	event    autocert.EventKind
	provider string
	domains  []string
	serial   string
	notAfter time.Time
}

// deployBacklog is how many hook runs may wait for the one running.
const deployBacklog = 64

// newDeployer returns a deployer for the hook of cc, or nil when there is
// none.
func newDeployer(cc *commandConfig, files map[string]certFiles, logger zerolog.Logger, notify []autocert.Notifier) *deployer {
	if len(cc.DeployHook) == 0 {
		return nil
	}
	argv := cc.DeployHook
	if cc.DeployShell {
		argv = shellCommand(cc.DeployHook[0])
	}
	d := &deployer{
		argv: argv, timeout: cc.DeployTimeout, files: files, notify: notify,
		logger: logger.With().Str("component", "deploy_hook").Logger(),
		queue:  make(chan deployJob, deployBacklog), done: make(chan struct{}),
	}
	go d.work()
	return d
}

// Notify queues a hook run for each certificate obtained, renewed or
// reloaded.
func (d *deployer) Notify(_ context.Context, ev autocert.Event) error {
	var job deployJob
	switch e := ev.(type) {
	case *autocert.CertObtained:
		job = deployJob{e.Kind(), e.Provider, e.Domains, e.Serial, e.NotAfter}
	case *autocert.CertRenewed:
		job = deployJob{e.Kind(), e.Provider, e.Domains, e.Serial, e.NotAfter}
	case *autocert.CertReloaded:
		// Another instance sharing the storage obtained it, or another
		// tool replaced "local" files: the service reloads all the same.
		job = deployJob{e.Kind(), e.Provider, e.Domains, e.Serial, e.NotAfter}
	default:
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.logger.Warn().Str("provider", job.provider).Msg("deploy hook not run: shutting down")
		return nil
	}
	select {
	case d.queue <- job:
	default:
		d.logger.Warn().Str("provider", job.provider).Msg("deploy hook not run: too many runs waiting")
	}
	return nil
}

func (d *deployer) work() {
	defer close(d.done)
	for job := range d.queue {
		d.run(job)
	}
}

// run runs the hook once.
func (d *deployer) run(job deployJob) {
	files := d.files[job.provider]
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.argv[0], d.argv[1:]...)
	cmd.WaitDelay = 5 * time.Second // a child keeping the output open does not hang us
	cmd.Env = append(os.Environ(),
		"AUTOCERT_EVENT="+string(job.event),
		"AUTOCERT_PROVIDER="+job.provider,
		"AUTOCERT_CERT_PATH="+files.cert,
		"AUTOCERT_KEY_PATH="+files.key,
		"AUTOCERT_DOMAINS="+strings.Join(job.domains, " "),
		"AUTOCERT_SERIAL="+job.serial,
		"AUTOCERT_NOT_AFTER="+job.notAfter.UTC().Format(time.RFC3339),
	)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	if err == nil {
		d.logger.Info().Str("provider", job.provider).Str("took", took.String()).Msg("deploy hook ran")
		return
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", d.timeout, err)
	}
	output := strings.TrimSpace(out.String())
	d.logger.Warn().Str("provider", job.provider).Err(err).Str("output", output).Msg("deploy hook failed")
	ev := &deployFailed{Provider: job.provider, Domains: job.domains, Error: err.Error(), Output: output, Time: time.Now()}
	for _, n := range d.notify {
		nctx, ncancel := context.WithTimeout(context.Background(), 30*time.Second)
		if nerr := n.Notify(nctx, ev); nerr != nil {
			d.logger.Warn().Err(nerr).Msg("deploy hook failure not notified")
		}
		ncancel()
	}
}

// Close waits for the hook runs queued to finish; later events run no
// hook.
func (d *deployer) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.queue)
	}
	d.mu.Unlock()
	<-d.done
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const tailSize = 2048

// Write keeps the end of what was written so far.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if t.buf.Len() > tailSize {
		b := t.buf.Bytes()[t.buf.Len()-tailSize:]
		t.buf = *bytes.NewBuffer(append([]byte(nil), b...))
	}
	return len(p), nil
}

// String returns the bytes kept.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// deployFailed is the notification of a failed deploy hook.
type deployFailed struct {
	Provider string    `json:"provider"`
	Domains  []string  `json:"domains"`
	Error    string    `json:"error"`
	Output   string    `json:"output,omitempty"`
	Time     time.Time `json:"time"`
}

// kindDeployFailed is the kind of deployFailed.
const kindDeployFailed autocert.EventKind = "deploy_failed"

// Kind returns kindDeployFailed.
func (*deployFailed) Kind() autocert.EventKind { return kindDeployFailed }

// Title returns a one-line summary.
func (e *deployFailed) Title() string { return "deploy hook failed: " + e.Provider }

// Message describes the failure, with the end of the hook's output.
func (e *deployFailed) Message() string {
	msg := fmt.Sprintf("Domains: %s\nError: %s\nThe new certificate is in place; the service may still use the previous one.",
		strings.Join(e.Domains, ", "), e.Error)
	if e.Output != "" {
		msg += "\nOutput:\n" + e.Output
	}
	return msg
}
