package legodns

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/autocert-dev/autocert/internal/suggest"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
)

// legoDNSPrefix is the import path of lego's DNS provider packages.
const legoDNSPrefix = "github.com/go-acme/lego/v4/providers/dns/"

// Factory builds the DNS provider of one lego package from options. It
// implements autocert.DNSProviderFactory, autocert.OptionsValidator and
// autocert.OptionsDescriber; register it with autocert.RegisterProvider.
// A Factory is immutable once New returns (except through WithPrepare
// and WithCheck, which are meant for the registering package's init) and
// safe for concurrent use.
type Factory[C any] struct {
	pkg         string // lego package name, "cloudflare"
	newConfig   func() *C
	newProvider func(*C) (challenge.Provider, error)
	keys        []*key          // in field order
	byName      map[string]*key // key names and aliases
	extra       []autocert.OptionKey
	extraByName map[string]string // extra key names and aliases -> name
	required    [][]string        // alternatives; each a set of key names
	lazy        bool
	prepare     func(*C, map[string]string) error
	check       func(map[string]string) error
}

var (
	_ autocert.DNSProviderFactory = (*Factory[struct{}])(nil)
	_ autocert.OptionsValidator   = (*Factory[struct{}])(nil)
	_ autocert.OptionsDescriber   = (*Factory[struct{}])(nil)
)

// An Option adjusts what New derives from lego.
type Option func(*spec)

type spec struct {
	required [][]string
	hidden   map[string]bool
	lazy     bool
	extra    []autocert.OptionKey
	aliases  [][]string // key, then its extra aliases
}

// RequireOneOf replaces the required keys lego's source shows with
// alternatives: each set is a space-separated list of keys that together
// are enough ("auth_token", "auth_email auth_key"). With no set, nothing
// is required (a provider that falls back to ambient credentials).
func RequireOneOf(sets ...string) Option {
	return func(s *spec) {
		s.required = [][]string{}
		for _, set := range sets {
			s.required = append(s.required, strings.Fields(set))
		}
	}
}

// Hide keeps Config fields from being options, by Go field path
// ("HTTPClient", "Environment") or key.
func Hide(fields ...string) Option {
	return func(s *spec) {
		for _, f := range fields {
			s.hidden[f] = true
		}
	}
}

// Alias accepts more spellings of a key, such as the names another tool
// documents for it.
func Alias(key string, names ...string) Option {
	return func(s *spec) { s.aliases = append(s.aliases, append([]string{key}, names...)) }
}

// Lazy defers lego's constructor to the first Present or CleanUp, for
// providers whose constructor contacts the provider's API. The timeouts
// lego asks for come from the Config's PropagationTimeout and
// PollingInterval fields.
func Lazy() Option { return func(s *spec) { s.lazy = true } }

// ExtraKeys declares options that are not Config fields; their values
// reach the functions given to WithCheck and WithPrepare.
func ExtraKeys(keys ...autocert.OptionKey) Option {
	return func(s *spec) { s.extra = append(s.extra, keys...) }
}

// New returns the Factory of the lego provider package whose Config
// constructors are newConfig (NewDefaultConfig) and newProvider
// (NewDNSProviderConfig):
//
//	legodns.New(cloudflare.NewDefaultConfig, cloudflare.NewDNSProviderConfig)
//
// It panics if an option names a key that does not exist: that is a
// mistake in the registering code, found when its package initialises.
func New[C any, P challenge.Provider](newConfig func() *C, newProvider func(*C) (P, error), opts ...Option) *Factory[C] {
	s := spec{hidden: make(map[string]bool)}
	for _, o := range opts {
		o(&s)
	}
	t := reflect.TypeFor[C]()
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("legodns.New: %v is not a struct", t))
	}
	f := &Factory[C]{
		pkg:       legoPackage(newProvider),
		newConfig: newConfig,
		newProvider: func(c *C) (challenge.Provider, error) {
			p, err := newProvider(c)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
		keys:        collectKeys(t, s.hidden),
		byName:      make(map[string]*key),
		extra:       s.extra,
		extraByName: make(map[string]string),
		lazy:        s.lazy,
	}
	m := legoMeta[f.pkg]
	byPath := make(map[string]*key, len(f.keys))
	for _, k := range f.keys {
		byPath[k.goPath] = k
		f.byName[k.name] = k
	}
	for _, fe := range m.env {
		if k := byPath[fe.path]; k != nil {
			for _, alias := range fe.names {
				if _, taken := f.byName[alias]; !taken {
					k.aliases = append(k.aliases, alias)
					f.byName[alias] = k
				}
			}
		}
	}
	for _, a := range s.aliases {
		k := f.byName[a[0]]
		if k == nil || k.name != a[0] {
			panic(fmt.Sprintf("legodns.New(%s): Alias of unknown key %q", f.pkg, a[0]))
		}
		for _, alias := range a[1:] {
			if _, taken := f.byName[alias]; taken {
				panic(fmt.Sprintf("legodns.New(%s): Alias %q is already a key or alias", f.pkg, alias))
			}
			k.aliases = append(k.aliases, alias)
			f.byName[alias] = k
		}
	}
	for _, e := range f.extra {
		for _, n := range append([]string{e.Name}, e.Aliases...) {
			if _, dup := f.byName[n]; dup {
				panic(fmt.Sprintf("legodns.New(%s): extra key %q is already a key", f.pkg, n))
			}
			f.extraByName[n] = e.Name
		}
	}
	if s.required != nil {
		f.required = s.required
	} else {
		var set []string
		for _, path := range m.required {
			if k := byPath[path]; k != nil {
				set = append(set, k.name)
			}
		}
		if len(set) > 0 {
			f.required = [][]string{set}
		}
	}
	for _, set := range f.required {
		for _, name := range set {
			if f.byName[name] == nil && f.extraByName[name] != name {
				panic(fmt.Sprintf("legodns.New(%s): required key %q does not exist", f.pkg, name))
			}
		}
	}
	return f
}

// legoPackage returns the name of the lego provider package that defines
// fn ("cloudflare"), or its full import path when it is not one of lego's.
// The function tells it better than the Config type, which may be an alias
// of a type in a package shared by several providers.
func legoPackage(fn any) string {
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	// "path/to/pkg.Func": the package ends at the first dot after the last slash.
	slash := strings.LastIndexByte(name, '/')
	if dot := strings.IndexByte(name[slash+1:], '.'); dot >= 0 {
		name = name[:slash+1+dot]
	}
	return strings.TrimPrefix(name, legoDNSPrefix)
}

// WithCheck sets a function that validates the values of the extra keys
// (by key name; absent keys are missing from the map). Its errors must
// name keys, never values. It returns f.
func (f *Factory[C]) WithCheck(check func(extra map[string]string) error) *Factory[C] {
	f.check = check
	return f
}

// WithPrepare sets a function that completes the Config from the extra
// keys before lego's constructor runs (for example, building an
// authenticated HTTP client from a credentials file). It must not contact
// the network unless the Factory is Lazy. It returns f.
func (f *Factory[C]) WithPrepare(prepare func(cfg *C, extra map[string]string) error) *Factory[C] {
	f.prepare = prepare
	return f
}

// OptionKeys lists the provider's options: the Config fields in their
// order, then the extra keys. A key is Required when the provider cannot
// work without it whatever else is set.
func (f *Factory[C]) OptionKeys() []autocert.OptionKey {
	always := make(map[string]bool)
	if len(f.required) == 1 {
		for _, n := range f.required[0] {
			always[n] = true
		}
	}
	out := make([]autocert.OptionKey, 0, len(f.keys)+len(f.extra))
	for _, k := range f.keys {
		out = append(out, autocert.OptionKey{Name: k.name, Aliases: slices.Clone(k.aliases), Required: always[k.name]})
	}
	for _, e := range f.extra {
		e.Aliases = slices.Clone(e.Aliases)
		e.Required = e.Required || always[e.Name]
		out = append(out, e)
	}
	return out
}

// RequiredOptions returns the alternative sets of keys that satisfy the
// provider: one set when some keys are always needed, several when the
// provider takes one of several kinds of credentials, none when it needs
// nothing (it may then use credentials from its environment).
func (f *Factory[C]) RequiredOptions() [][]string {
	out := make([][]string, len(f.required))
	for i, s := range f.required {
		out[i] = slices.Clone(s)
	}
	return out
}

// ValidateOptions checks opts without building the provider and without
// contacting the network. It reports every problem, each naming its key.
func (f *Factory[C]) ValidateOptions(opts autocert.Options) error {
	_, _, err := f.config(opts)
	return err
}

// NewDNSProvider builds the lego provider from opts: lego's defaults,
// overridden by the options, then lego's constructor. A panic in lego
// becomes an error; no error quotes an option's value.
func (f *Factory[C]) NewDNSProvider(opts autocert.Options) (challenge.Provider, error) {
	cfg, extra, err := f.config(opts)
	if err != nil {
		return nil, err
	}
	build := func() (p challenge.Provider, err error) {
		defer func() {
			if r := recover(); r != nil {
				p, err = nil, scrub(fmt.Errorf("%s: the lego provider panicked: %v", f.pkg, r), opts)
			}
		}()
		if f.prepare != nil {
			if err := f.prepare(cfg, extra); err != nil {
				return nil, scrub(err, opts)
			}
		}
		p, err = f.newProvider(cfg)
		if err != nil {
			return nil, scrub(err, opts)
		}
		return p, nil
	}
	if f.lazy {
		timeout, interval := timeouts(cfg)
		return &lazyProvider{build: build, timeout: timeout, interval: interval}, nil
	}
	return build()
}

// config builds the Config from lego's defaults and opts, and collects
// the values of the extra keys.
func (f *Factory[C]) config(opts autocert.Options) (*C, map[string]string, error) {
	cfg := f.newConfig()
	if cfg == nil {
		cfg = new(C)
	}
	root := reflect.ValueOf(cfg).Elem()
	var errs []error
	given := make(map[string]string) // key name -> option name used
	extra := make(map[string]string)
	names := make([]string, 0, len(opts))
	for n := range opts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		val := strings.TrimSpace(opts[n].Value())
		canonical := ""
		k := f.byName[n]
		switch {
		case k != nil:
			canonical = k.name
		case f.extraByName[n] != "":
			canonical = f.extraByName[n]
		default:
			errs = append(errs, f.unknown(n))
			continue
		}
		if first, dup := given[canonical]; dup {
			errs = append(errs, fmt.Errorf("options %q and %q both set %s: keep one", first, n, canonical))
			continue
		}
		given[canonical] = n
		if val == "" {
			continue // unset: lego's default stays
		}
		if k == nil {
			extra[canonical] = val
			continue
		}
		if err := k.set(root, val); err != nil {
			errs = append(errs, fmt.Errorf("option %q: %w", n, err))
		}
	}
	errs = append(errs, f.missing(opts, given)...)
	if f.check != nil {
		if err := f.check(extra); err != nil {
			errs = append(errs, scrub(err, opts))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return cfg, extra, nil
}

// unknown describes an option that is not a key of the provider.
func (f *Factory[C]) unknown(name string) error {
	valid := f.keyNames()
	msg := fmt.Sprintf("unknown option %q", name)
	if s := suggest.Nearest(name, valid); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return fmt.Errorf("%s; valid options: %s (or lego's environment variable names)", msg, strings.Join(valid, ", "))
}

func (f *Factory[C]) keyNames() []string {
	names := make([]string, 0, len(f.keys)+len(f.extra))
	for _, k := range f.keys {
		names = append(names, k.name)
	}
	for _, e := range f.extra {
		names = append(names, e.Name)
	}
	return names
}

// missing reports the required keys that opts leave unset.
func (f *Factory[C]) missing(opts autocert.Options, given map[string]string) []error {
	if len(f.required) == 0 {
		return nil
	}
	set := func(name string) bool {
		n, ok := given[name]
		return ok && strings.TrimSpace(opts[n].Value()) != ""
	}
	var best []string // the unset keys of the closest alternative
	for _, alt := range f.required {
		var unset []string
		for _, name := range alt {
			if !set(name) {
				unset = append(unset, name)
			}
		}
		if len(unset) == 0 {
			return nil
		}
		if best == nil || len(unset) < len(best) {
			best = unset
		}
	}
	if len(f.required) == 1 {
		errs := make([]error, 0, len(best))
		for _, name := range best {
			errs = append(errs, fmt.Errorf("missing required option %s%s", name, f.aliasHint(name)))
		}
		return errs
	}
	alts := make([]string, len(f.required))
	for i, alt := range f.required {
		alts[i] = strings.Join(alt, " and ")
	}
	return []error{fmt.Errorf("missing credentials: set %s", strings.Join(alts, ", or "))}
}

// aliasHint returns " (or ALIAS, ...)" for a key with aliases.
func (f *Factory[C]) aliasHint(name string) string {
	var aliases []string
	if k := f.byName[name]; k != nil {
		aliases = k.aliases
	}
	for _, e := range f.extra {
		if e.Name == name {
			aliases = e.Aliases
		}
	}
	if len(aliases) == 0 {
		return ""
	}
	return " (or " + strings.Join(aliases, ", ") + ")"
}

// timeouts returns the PropagationTimeout and PollingInterval fields of
// cfg, or lego's defaults.
func timeouts(cfg any) (timeout, interval time.Duration) {
	timeout, interval = dns01.DefaultPropagationTimeout, dns01.DefaultPollingInterval
	v := reflect.ValueOf(cfg).Elem()
	if f := v.FieldByName("PropagationTimeout"); f.IsValid() && f.Type() == durationType && f.Int() > 0 {
		timeout = time.Duration(f.Int())
	}
	if f := v.FieldByName("PollingInterval"); f.IsValid() && f.Type() == durationType && f.Int() > 0 {
		interval = time.Duration(f.Int())
	}
	return timeout, interval
}

// lazyProvider builds its lego provider on first use, and again after a
// failed build.
type lazyProvider struct {
	build             func() (challenge.Provider, error)
	timeout, interval time.Duration

	mu sync.Mutex
	p  challenge.Provider
}

var _ challenge.ProviderTimeout = (*lazyProvider)(nil)

func (l *lazyProvider) get() (challenge.Provider, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p == nil {
		p, err := l.build()
		if err != nil {
			return nil, err
		}
		l.p = p
	}
	return l.p, nil
}

// Present builds the provider if needed and creates the TXT record.
func (l *lazyProvider) Present(domain, token, keyAuth string) error {
	p, err := l.get()
	if err != nil {
		return err
	}
	return p.Present(domain, token, keyAuth)
}

// CleanUp builds the provider if needed and removes the TXT record.
func (l *lazyProvider) CleanUp(domain, token, keyAuth string) error {
	p, err := l.get()
	if err != nil {
		return err
	}
	return p.CleanUp(domain, token, keyAuth)
}

// Timeout returns the propagation timeout and polling interval.
func (l *lazyProvider) Timeout() (timeout, interval time.Duration) {
	return l.timeout, l.interval
}

// scrub returns err with the option values removed from its message, in
// case lego quotes one; errors.Is and errors.As still find its causes.
func scrub(err error, opts autocert.Options) error {
	vals := make([]string, 0, len(opts))
	for _, v := range opts {
		vals = append(vals, v.Value())
	}
	return redact.New(vals...).Error(err)
}
