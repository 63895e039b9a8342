package autocert

import (
	"fmt"
	"slices"
	"sync"

	"github.com/go-acme/lego/v4/challenge"
)

// Reserved provider names that do not use a DNS provider.
const (
	// ProviderLocal serves certificate files that another tool maintains.
	ProviderLocal = "local"
	// ProviderPseudo creates a self-signed certificate, for development.
	ProviderPseudo = "pseudo"
)

// DNSProviderFactory builds the DNS-01 challenge provider that a config
// block names in its provider key, from that block's options.
//
// NewDNSProvider must not contact the network: it runs when a Provider is
// built, before any certificate is needed.
type DNSProviderFactory interface {
	NewDNSProvider(opts Options) (challenge.Provider, error)
}

// DNSProviderFunc adapts a function to DNSProviderFactory.
type DNSProviderFunc func(opts Options) (challenge.Provider, error)

// NewDNSProvider calls f.
func (f DNSProviderFunc) NewDNSProvider(opts Options) (challenge.Provider, error) { return f(opts) }

// OptionsValidator is implemented by factories that can check options
// without building a provider. Config.Validate calls it; its errors must
// name keys, never values.
type OptionsValidator interface {
	ValidateOptions(opts Options) error
}

// OptionKey describes one option a DNS provider accepts.
type OptionKey struct {
	Name     string   // snake_case key, as written under options
	Aliases  []string // other accepted spellings, such as environment variable names
	Required bool     // whether the provider cannot work without it
}

// OptionsDescriber is implemented by factories that can list their option
// keys (shown by "autocert providers NAME").
type OptionsDescriber interface {
	OptionKeys() []OptionKey
}

// registry maps provider names to factories. Like database/sql drivers,
// providers register themselves from init functions.
var registry namedRegistry[DNSProviderFactory]

// RegisterProvider makes a DNS provider available under name, for the
// provider key of a Config. It panics if name is empty, reserved ("local",
// "pseudo") or already registered, or if f is nil.
func RegisterProvider(name string, f DNSProviderFactory) {
	if name == "" || name == ProviderLocal || name == ProviderPseudo {
		panic(fmt.Sprintf("autocert: RegisterProvider: reserved name %q", name))
	}
	if f == nil {
		panic("autocert: RegisterProvider: nil factory for " + name)
	}
	registry.add("RegisterProvider", name, f)
}

// LookupProvider returns the factory registered under name.
func LookupProvider(name string) (DNSProviderFactory, bool) { return registry.lookup(name) }

// Providers returns the sorted names of the registered DNS providers.
func Providers() []string { return registry.names() }

// namedRegistry maps names to the factories registered under them from
// init functions: DNS providers and storage types.
type namedRegistry[F any] struct {
	mu        sync.RWMutex
	factories map[string]F
}

// add registers f under name; register names the public function in the
// panic of a name registered twice.
func (r *namedRegistry[F]) add(register, name string, f F) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[name]; dup {
		panic("autocert: " + register + " called twice for " + name)
	}
	if r.factories == nil {
		r.factories = make(map[string]F)
	}
	r.factories[name] = f
}

func (r *namedRegistry[F]) lookup(name string) (F, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.factories[name]
	return f, ok
}

// names returns the registered names, sorted.
func (r *namedRegistry[F]) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.factories))
	for name := range r.factories {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
