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
var registry struct {
	mu        sync.RWMutex
	factories map[string]DNSProviderFactory
}

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
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if _, dup := registry.factories[name]; dup {
		panic("autocert: RegisterProvider called twice for " + name)
	}
	if registry.factories == nil {
		registry.factories = make(map[string]DNSProviderFactory)
	}
	registry.factories[name] = f
}

// LookupProvider returns the factory registered under name.
func LookupProvider(name string) (DNSProviderFactory, bool) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	f, ok := registry.factories[name]
	return f, ok
}

// Providers returns the sorted names of the registered DNS providers.
func Providers() []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	names := make([]string, 0, len(registry.factories))
	for name := range registry.factories {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
