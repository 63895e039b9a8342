package autocert

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/rs/zerolog"
)

// Notifier receives the events of a Provider: certificates obtained and
// renewed, failed attempts, certificates about to expire without a
// successful renewal, and the summary of expiries sent when renewal
// scheduling starts. Give one to NewProvider with WithNotifier; package
// notify/webhook has one that posts to a URL.
//
// Notify is called from the goroutine that did the work, one event at a
// time per certificate, with a context that ends after notifyTimeout; an
// error is logged. Events never hold secrets (DNS provider options, EAB
// keys, private keys).
type Notifier interface {
	Notify(ctx context.Context, e Event) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, e Event) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, e Event) error { return f(ctx, e) }

// WithNotifier adds a Notifier. Several may be given; each receives every
// event, in the order given.
func WithNotifier(n Notifier) Option {
	return func(s *settings) {
		if n != nil {
			s.notifiers = append(s.notifiers, n)
		}
	}
}

// notifyTimeout bounds the delivery of one event to one Notifier.
const notifyTimeout = 30 * time.Second

// notifier delivers events to the Notifiers of a Provider, logging their
// errors.
type notifier struct {
	notifiers []Notifier
	logger    zerolog.Logger
	scrubber  *redact.Lazy // the secrets of every certificate's config
}

// notifyAll delivers events in order.
func (n *notifier) notifyAll(ctx context.Context, events []Event) {
	for _, e := range events {
		n.notify(ctx, e)
	}
}

// notify delivers e to every Notifier. It is given a context that is not
// cancelled with ctx (an event about work that finished after its parent
// ended is still delivered) but ends after notifyTimeout. Errors are
// logged without the config's secrets.
func (n *notifier) notify(ctx context.Context, e Event) {
	for _, to := range n.notifiers {
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
		err := to.Notify(nctx, e)
		cancel()
		if err != nil {
			n.logger.Warn().Str("event", string(e.Kind())).Str("error", n.scrubber.Scrub(err.Error())).Msg("notification failed")
		}
	}
}

// serialHex formats a serial number as CertInfo does.
func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
