package reliability_test

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/challenge"
)

// faultyProvider is a DNS provider that writes the challenge records into
// acmetest's DNS server, as the "acmetest" provider does, but can be told
// to misbehave the way a real DNS vendor's API does: refuse to publish,
// report success without publishing, publish late, or fail to clean up.
const faultyProvider = "reliability-faulty"

// optionFaults names the dnsFaults a faulty provider obtains its behaviour
// from; the other options are those of the "acmetest" provider.
const optionFaults = "faults"

// Propagation timing of the faulty provider: short, so that a record that
// never appears fails an order within a second.
const (
	faultyTimeout  = 800 * time.Millisecond
	faultyInterval = 20 * time.Millisecond
)

// dnsFaults is the behaviour of the faulty providers built with its id.
type dnsFaults struct {
	mu         sync.Mutex
	presentErr error         // Present fails with it, publishing nothing
	cleanUpErr error         // CleanUp fails with it, removing nothing
	hide       bool          // Present reports success but publishes nothing
	late       time.Duration // Present publishes this long after returning

	presents, cleanUps atomic.Int64
	pending            sync.WaitGroup // late publications
}

func (f *dnsFaults) set(fn func(f *dnsFaults)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var faultSets struct {
	mu   sync.Mutex
	next int
	byID map[string]*dnsFaults
}

// newDNSFaults registers a behaviour and returns it with its id.
func newDNSFaults() (*dnsFaults, string) {
	faultSets.mu.Lock()
	defer faultSets.mu.Unlock()
	faultSets.next++
	id := strconv.Itoa(faultSets.next)
	if faultSets.byID == nil {
		faultSets.byID = make(map[string]*dnsFaults)
	}
	f := &dnsFaults{}
	faultSets.byID[id] = f
	return f, id
}

// faultyConfig turns an acmetest configuration into one using the faulty
// provider driven by a new dnsFaults, which it returns.
func faultyConfig(cfg *autocert.Config) *dnsFaults {
	f, id := newDNSFaults()
	opts := maps.Clone(cfg.Options)
	opts[optionFaults] = autocert.Redacted(id)
	cfg.Provider, cfg.Options = faultyProvider, opts
	return f
}

func init() {
	autocert.RegisterProvider(faultyProvider, autocert.DNSProviderFunc(newFaultyDNS))
}

func newFaultyDNS(opts autocert.Options) (challenge.Provider, error) {
	faultSets.mu.Lock()
	f := faultSets.byID[opts[optionFaults].Value()]
	faultSets.mu.Unlock()
	if f == nil {
		return nil, errors.New("faulty DNS provider: unknown faults id")
	}
	inner := maps.Clone(opts)
	delete(inner, optionFaults)
	base, ok := autocert.LookupProvider(acmetest.ProviderName)
	if !ok {
		return nil, errors.New("faulty DNS provider: acmetest provider not registered")
	}
	p, err := base.NewDNSProvider(inner)
	if err != nil {
		return nil, err
	}
	return &faultyDNS{base: p, f: f}, nil
}

type faultyDNS struct {
	base challenge.Provider
	f    *dnsFaults
}

func (d *faultyDNS) Present(domain, token, keyAuth string) error {
	d.f.presents.Add(1)
	d.f.mu.Lock()
	err, hide, late := d.f.presentErr, d.f.hide, d.f.late
	d.f.mu.Unlock()
	switch {
	case err != nil:
		return fmt.Errorf("publishing the TXT record of %s: %w", domain, err)
	case hide:
		return nil
	case late > 0:
		d.f.pending.Add(1)
		time.AfterFunc(late, func() {
			defer d.f.pending.Done()
			_ = d.base.Present(domain, token, keyAuth)
		})
		return nil
	}
	return d.base.Present(domain, token, keyAuth)
}

func (d *faultyDNS) CleanUp(domain, token, keyAuth string) error {
	d.f.cleanUps.Add(1)
	d.f.mu.Lock()
	err := d.f.cleanUpErr
	d.f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("removing the TXT record of %s: %w", domain, err)
	}
	return d.base.CleanUp(domain, token, keyAuth)
}

func (d *faultyDNS) Timeout() (timeout, interval time.Duration) {
	return faultyTimeout, faultyInterval
}
