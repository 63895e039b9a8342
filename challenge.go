package autocert

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
)

// maxCNAMEHops is the longest CNAME chain followed from a challenge
// record's name.
const maxCNAMEHops = 8

// challengePrefix is the label under which DNS-01 records live.
const challengePrefix = "_acme-challenge."

// challengeTarget is where the TXT record of one name goes.
type challengeTarget struct {
	// chain starts at _acme-challenge.<name> (or <alias>) and lists the
	// CNAME targets that follow, each fully qualified and lowercased;
	// the record is written and checked at the last.
	chain []string
	// domain is what the DNS provider is given: it writes at
	// _acme-challenge.<domain>, the last name of the chain under that
	// label, and lego follows the rest of the chain, if any.
	domain string
	// unanswered is set when the resolvers did not answer a CNAME
	// question: the chain ends there, and nothing more is asked of them
	// before the propagation check.
	unanswered bool
}

// fqdn returns the name the TXT record is written at.
func (t challengeTarget) fqdn() string { return t.chain[len(t.chain)-1] }

func (t challengeTarget) String() string { return strings.Join(t.chain, " -> ") }

// challengeDNS is the DNS provider of one order: the certificate's
// provider, told to write each record where the certificate's
// configuration and resolvers say (dns_challenge_alias, the CNAME chain),
// and the state of that order's challenges. It is made for each lego
// client (see certificate.client), so for each order.
type challengeDNS struct {
	inner challenge.Provider
	c     *certificate
	ctx   context.Context
	// resolvers are the certificate's, or the system's when it names
	// none; configured says which.
	resolvers  []string
	configured bool

	mu      sync.Mutex
	targets map[string]challengeTarget // by name, "*." removed
	need    []string                   // the list lego must have for this order; nil: any
	checked bool                       // every name was checked against lego's view
	held    map[string]func()          // challenges presented and not cleaned up: their hold on lego's list
	silent  bool                       // the resolvers did not answer a CNAME question: ask no more
}

// newChallengeDNS wraps dns, the certificate's provider, for one order
// under ctx. A provider with a Sequential method keeps it.
func (c *certificate) newChallengeDNS(ctx context.Context, dns challenge.Provider) (*challengeDNS, challenge.Provider) {
	d := &challengeDNS{
		inner:      dns,
		c:          c,
		ctx:        ctx,
		resolvers:  c.cfg.Resolvers,
		configured: len(c.cfg.Resolvers) > 0,
		targets:    make(map[string]challengeTarget),
		held:       make(map[string]func()),
	}
	if !d.configured {
		d.resolvers = systemResolvers()
	}
	if _, ok := dns.(interface{ Sequential() time.Duration }); ok {
		return d, sequentialChallengeDNS{d}
	}
	return d, d
}

// sequentialChallengeDNS is challengeDNS for providers that solve one
// name at a time.
type sequentialChallengeDNS struct{ *challengeDNS }

func (d sequentialChallengeDNS) Sequential() time.Duration {
	return d.inner.(interface{ Sequential() time.Duration }).Sequential()
}

// Timeout returns the provider's propagation timing.
func (d *challengeDNS) Timeout() (timeout, interval time.Duration) {
	if t, ok := d.inner.(challenge.ProviderTimeout); ok {
		return t.Timeout()
	}
	return dns01.DefaultPropagationTimeout, dns01.DefaultPollingInterval
}

// target returns where the record of name goes, resolving the chain the
// first time. name may start with "*.".
func (d *challengeDNS) target(name string) (challengeTarget, error) {
	name = strings.TrimPrefix(name, "*.")
	d.mu.Lock()
	t, ok := d.targets[name]
	d.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := d.resolve(name)
	if err != nil {
		return challengeTarget{}, err
	}
	d.mu.Lock()
	d.targets[name] = t
	d.mu.Unlock()
	return t, nil
}

// resolve finds where the record of name goes: _acme-challenge.<alias>
// or _acme-challenge.<name>, then, unless dns_follow_cname is false, the
// end of the CNAME chain from there, asking the certificate's resolvers.
// A loop or a chain too long is an error. Resolvers that do not answer
// end the chain where it is, with a warning, as lego does: the record is
// written there, and the propagation check then waits on them.
func (d *challengeDNS) resolve(name string) (challengeTarget, error) {
	base := name
	if a := d.c.cfg.DNSChallengeAlias; a != "" {
		base = a
	}
	start := strings.ToLower(challengePrefix + strings.TrimSuffix(base, ".") + ".")
	t := challengeTarget{chain: []string{start}, domain: strings.TrimSuffix(base, ".")}
	d.mu.Lock()
	silent := d.silent
	d.mu.Unlock()
	if !d.c.cfg.followCNAME() || len(d.resolvers) == 0 || silent {
		t.unanswered = silent
		return t, nil
	}
	for {
		cur := t.fqdn()
		next, ok, err := lookupCNAME(d.ctx, d.resolvers, cur)
		if err != nil {
			d.c.logger.Warn().Err(err).Str("domain", name).Str("chain", t.String()).
				Msg("the resolvers did not answer whether the DNS-01 record's name is a CNAME: the record is written at the end of the chain so far")
			t.unanswered = true
			d.mu.Lock()
			d.silent = true
			d.mu.Unlock()
			break
		}
		if !ok {
			break
		}
		for _, seen := range t.chain {
			if seen == next {
				t.chain = append(t.chain, next)
				return t, fmt.Errorf("DNS-01 record of %s: CNAME loop: %s (fix the CNAME records, or set dns_follow_cname: false)", name, t)
			}
		}
		t.chain = append(t.chain, next)
		if len(t.chain) > maxCNAMEHops+1 {
			return t, fmt.Errorf("DNS-01 record of %s: CNAME chain longer than %d hops: %s (point _acme-challenge.%s closer to where the record goes)", name, maxCNAMEHops, t, name)
		}
		if strings.HasPrefix(next, challengePrefix) {
			t.domain = strings.TrimSuffix(strings.TrimPrefix(next, challengePrefix), ".")
		}
	}
	return t, nil
}

// legoFollowsCNAMEs reports whether lego's DNS providers follow CNAMEs:
// LEGO_DISABLE_CNAME_SUPPORT turns that off for the whole process.
func legoFollowsCNAMEs() bool {
	off, _ := strconv.ParseBool(os.Getenv("LEGO_DISABLE_CNAME_SUPPORT"))
	return !off
}

// legoView returns where lego's DNS providers write the record of t:
// lego's own CNAME following from _acme-challenge.<t.domain>, with its
// process-wide resolvers. Call it while holding lego's list.
func legoView(t challengeTarget) string {
	return dns01.GetChallengeInfo(t.domain, "").EffectiveFQDN
}

// agrees reports whether lego writes the record of t where it belongs.
func agrees(t challengeTarget) bool {
	return strings.EqualFold(legoView(t), t.fqdn())
}

// Present writes the record of domain (an authorization's name, without
// "*.") at its target.
func (d *challengeDNS) Present(domain, token, keyAuth string) error {
	t, err := d.target(domain)
	if err != nil {
		return err
	}
	release, err := d.holdFor(t)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.held[domain+"\x00"+token] = release
	d.mu.Unlock()
	if d.configured && !t.unanswered {
		d.answerZone(t)
	}
	return d.inner.Present(t.domain, token, keyAuth)
}

// CleanUp removes the record of domain, from where Present wrote it.
func (d *challengeDNS) CleanUp(domain, token, keyAuth string) error {
	key := domain + "\x00" + token
	d.mu.Lock()
	release, presented := d.held[key]
	delete(d.held, key)
	t, ok := d.targets[strings.TrimPrefix(domain, "*.")]
	d.mu.Unlock()
	if !presented || !ok {
		return nil // Present failed before writing anything
	}
	defer release()
	return d.inner.CleanUp(t.domain, token, keyAuth)
}

// holdFor holds lego's resolver list for the challenge of t, such that
// lego's DNS provider writes at t. The first time, it checks every name
// of the certificate against lego's view: when lego would write one
// elsewhere, the order needs lego's list to be the certificate's
// resolvers, and takes it (waiting until no other challenge is in
// progress).
func (d *challengeDNS) holdFor(t challengeTarget) (func(), error) {
	if !d.c.cfg.followCNAME() || len(d.resolvers) == 0 {
		return legoResolvers.hold(d.ctx, nil, d.c.name, d.c.logger)
	}
	d.mu.Lock()
	need, checked, others := d.need, d.checked, len(d.held)
	d.checked = true
	d.mu.Unlock()
	release, err := legoResolvers.hold(d.ctx, need, d.c.name, d.c.logger)
	if err != nil {
		return nil, err
	}
	check := []challengeTarget{t}
	if !checked {
		check = d.allTargets(t)
	}
	// The list can change only while this order holds none of it: in
	// the middle of a parallel order, a name lego disagrees on fails.
	if need == nil && others == 0 && !allAgree(check) {
		release()
		need = d.resolvers
		if release, err = legoResolvers.hold(d.ctx, need, d.c.name, d.c.logger); err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.need = need
		d.mu.Unlock()
	}
	if !agrees(t) {
		release()
		return nil, d.disagreement(t)
	}
	return release, nil
}

func allAgree(ts []challengeTarget) bool {
	for _, t := range ts {
		if !agrees(t) {
			return false
		}
	}
	return true
}

// allTargets returns t and the targets of the certificate's other names
// that resolve without error (those that do not fail at their own
// Present).
func (d *challengeDNS) allTargets(t challengeTarget) []challengeTarget {
	out := []challengeTarget{t}
	seen := map[string]bool{}
	for _, name := range d.c.cfg.Domains {
		name = strings.TrimPrefix(name, "*.")
		if seen[name] {
			continue
		}
		seen[name] = true
		if o, err := d.target(name); err == nil && o.fqdn() != t.fqdn() {
			out = append(out, o)
		}
	}
	return out
}

// disagreement explains why lego's DNS provider would not write the
// record of t where it belongs.
func (d *challengeDNS) disagreement(t challengeTarget) error {
	got := legoView(t)
	if !legoFollowsCNAMEs() && !strings.HasPrefix(t.fqdn(), challengePrefix) {
		return fmt.Errorf("DNS-01 record must be written at %s (CNAME chain %s), which lego's DNS providers reach only by following the CNAME themselves, and LEGO_DISABLE_CNAME_SUPPORT turns that off: unset it, or point the CNAME at a name that starts with _acme-challenge", t.fqdn(), t)
	}
	whose := "the system's resolvers"
	if d.configured {
		whose = "resolvers " + strings.Join(d.resolvers, ", ")
	}
	return fmt.Errorf("DNS-01 record must be written at %s (CNAME chain %s, as %s answer), but lego's DNS provider, which follows CNAMEs with lego's process-wide resolvers, would write it at %s: another name of this order holds those resolvers as they are, or the program changed them", t.fqdn(), t, whose, got)
}

// answerZone looks up the zone of t's record with the certificate's
// resolvers and leaves the answer in lego's zone cache, which lego's DNS
// providers consult before asking their own resolvers (lego's
// process-wide list, or rfc2136's nameserver). A cached answer from other
// resolvers is replaced. It is best effort: a provider that finds no
// cached zone asks as it would have.
func (d *challengeDNS) answerZone(t challengeTarget) {
	fqdn := legoView(t) // the name, as spelled, that the provider looks up
	zone, err := findZone(d.ctx, d.resolvers, fqdn)
	if err != nil {
		d.c.logger.Debug().Err(err).Str("record", fqdn).Msg("zone of the DNS-01 record not found with the certificate's resolvers")
		return
	}
	if cached, err := dns01.FindZoneByFqdnCustom(fqdn, d.resolvers); err == nil && strings.EqualFold(cached, zone) {
		return
	}
	// lego's cache held another view: it can only be emptied whole.
	dns01.ClearFqdnCache()
	_, _ = dns01.FindZoneByFqdnCustom(fqdn, d.resolvers)
}

// recordName returns the name whose TXT record the propagation check of
// domain (as lego names it, "*." for a wildcard) looks at: the target
// Present wrote, or fqdn, lego's own choice, when there is none.
func (d *challengeDNS) recordName(domain, fqdn string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.targets[strings.TrimPrefix(domain, "*.")]; ok {
		return t.fqdn()
	}
	return fqdn
}
