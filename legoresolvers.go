package autocert

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/rs/zerolog"
)

// lego's dns01 package keeps one list of recursive resolvers for the
// whole process (set by dns01.AddRecursiveNameservers, /etc/resolv.conf
// until then), in a variable without a lock. Its DNS providers ask that
// list for the CNAME at the challenge record's name (in
// dns01.GetChallengeInfo) and, most of them, for the record's zone
// (dns01.FindZoneByFqdn); dns01.Challenge.Solve reads it for a log line.
// autocert asks every question of its own with each certificate's
// resolvers, answers the zone lookup in advance (lego caches it), and
// checks before each record is written that lego's list leads the
// provider to the record's name. When it does not (a CNAME chain that
// only the certificate's resolvers see), the list must be changed, which
// is only safe while no DNS-01 challenge is being solved in the process:
// legoResolverList is the lease that makes it so.
//
// legoResolvers is package state on purpose, the one exception to the
// rule: it guards lego's package state, which every Provider of the
// process shares.
var legoResolvers legoResolverList

// legoResolverList counts the DNS-01 challenges autocert is solving and
// remembers what it set lego's resolver list to. While a challenge is in
// progress the list stays as it is; a challenge that needs another list
// waits until none is in progress, then sets it.
type legoResolverList struct {
	mu       sync.Mutex
	set      []string      // what autocert gave lego; nil until then
	by       string        // the certificate that needed it, for messages
	inflight int           // challenges in progress, each holding the list
	idle     chan struct{} // closed when a challenge ends; nil when nobody waits
}

// hold marks a challenge in progress until release is called. With need
// nil, any list will do; otherwise lego's list must be need: hold sets it
// when no challenge is in progress, and waits for that (until ctx ends)
// when others are. who names the certificate in the log.
func (l *legoResolverList) hold(ctx context.Context, need []string, who string, logger zerolog.Logger) (release func(), err error) {
	l.mu.Lock()
	for need != nil && !slices.Equal(l.set, need) && l.inflight > 0 {
		if l.idle == nil {
			l.idle = make(chan struct{})
		}
		idle, by := l.idle, l.by
		l.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			now := "the system's or the program's"
			if by != "" {
				now = "those of " + by
			}
			return nil, fmt.Errorf("waiting for the DNS-01 challenges of other certificates to end, to point lego's process-wide DNS resolvers (now %s) at %s: %w",
				now, strings.Join(need, ", "), ctx.Err())
		}
		l.mu.Lock()
	}
	if need != nil && !slices.Equal(l.set, need) {
		prev := "the system's (or the program's)"
		if l.set != nil {
			prev = strings.Join(l.set, ", ") + " (for " + l.by + ")"
		}
		dns01.AddRecursiveNameservers(need)(nil) // the option only sets the list
		l.set, l.by = slices.Clone(need), who
		logger.Info().Str("resolvers", strings.Join(need, ", ")).Str("previous", prev).
			Msg("lego's process-wide DNS resolvers set to the certificate's: lego must follow a CNAME of its challenge that only they see")
	}
	l.inflight++
	l.mu.Unlock()
	var once sync.Once
	return func() { once.Do(l.release) }, nil
}

func (l *legoResolverList) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if l.idle != nil && l.inflight == 0 {
		close(l.idle)
		l.idle = nil
	}
}

// current returns what autocert last set lego's list to, nil if never.
func (l *legoResolverList) current() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.set)
}

// logResolverSharing says, when a Provider starts, which of its
// certificates' resolvers lego's own lookups do not use. lego has one
// resolver list per process; certs are the ACME certificates (name and
// merged block) of the Provider.
func logResolverSharing(certs []namedConfig, logger zerolog.Logger) {
	groups := map[string][]string{} // resolvers joined -> certificate names
	var order []string
	for _, nc := range certs {
		key := strings.Join(nc.cfg.Resolvers, ", ")
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], nc.name)
	}
	if lego := legoResolvers.current(); len(order) == 1 && order[0] != "" && lego != nil && strings.Join(lego, ", ") != order[0] {
		logger.Info().Strs("certificates", groups[order[0]]).Str("resolvers", order[0]).Str("lego_resolvers", strings.Join(lego, ", ")).
			Msg("lego's process-wide DNS resolvers are another Provider's: lego's DNS providers ask them for the CNAME at each challenge record's name; autocert asks these certificates' own resolvers everything else, and points lego's list at them, between challenges, when its answer would send a record elsewhere")
	}
	if len(order) < 2 {
		return
	}
	var parts []string
	for _, key := range order {
		r := key
		if r == "" {
			r = "the system's (none configured)"
		}
		parts = append(parts, strings.Join(groups[key], ", ")+": "+r)
	}
	logger.Warn().Str("resolvers", strings.Join(parts, "; ")).
		Msg("certificates name different DNS resolvers, and lego keeps one list per process: its DNS providers ask that list, not these certificates' resolvers, for the CNAME at each challenge record's name; autocert asks each certificate's own resolvers everything else (CNAME chain, zone, propagation), and when lego's answer would send a record elsewhere it points lego's list at that certificate's resolvers once no other challenge is in progress, so such orders wait for each other")
}

// namedConfig is a certificate's name ("main", "extra[N]") and merged block.
type namedConfig struct {
	name string
	cfg  *Config
}

// acmeConfigs returns the ACME certificates of cfg (a validated main
// block): main first, then the extras, merged.
func acmeConfigs(cfg *Config) []namedConfig {
	var out []namedConfig
	if isACME(cfg.Provider) {
		out = append(out, namedConfig{"main", cfg})
	}
	for i := range cfg.Extra {
		merged := MergeExtraConfig(cfg, &cfg.Extra[i])
		if isACME(merged.Provider) {
			out = append(out, namedConfig{fmt.Sprintf("extra[%d]", i), (*Config)(&merged)})
		}
	}
	return out
}
