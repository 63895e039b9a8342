package autocert

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/miekg/dns"
)

// dnsQueryTimeout bounds one question to one resolver.
const dnsQueryTimeout = 5 * time.Second

// txtVisible reports whether every resolver answers the TXT record fqdn
// with value among its values. An unreachable resolver is an error (the
// caller polls again); a resolver that does not have the value yet is
// simply false.
func txtVisible(ctx context.Context, resolvers []string, fqdn, value string) (bool, error) {
	for _, ns := range resolvers {
		values, err := lookupTXT(ctx, ns, fqdn)
		if err != nil {
			return false, err
		}
		found := false
		for _, v := range values {
			if v == value {
				found = true
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// lookupTXT asks one resolver for the TXT values of fqdn, giving up when
// ctx ends.
func lookupTXT(ctx context.Context, resolver, fqdn string) ([]string, error) {
	in, err := exchange(ctx, resolver, fqdn, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("DNS resolver %s: TXT %s: %s", resolver, fqdn, dns.RcodeToString[in.Rcode])
	}
	var values []string
	for _, rr := range in.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			values = append(values, strings.Join(txt.Txt, ""))
		}
	}
	return values, nil
}

// exchange asks one resolver one question, with recursion desired, over
// UDP and, if the answer is truncated, over TCP, giving up when ctx ends.
// Only a failure to get an answer is an error; the caller judges the
// answer's code.
func exchange(ctx context.Context, resolver, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", Timeout: dnsQueryTimeout}
	in, _, err := c.ExchangeContext(ctx, m, resolver)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, resolver)
	}
	if err != nil {
		return nil, fmt.Errorf("DNS resolver %s: %s %s: %w", resolver, dns.TypeToString[qtype], name, err)
	}
	return in, nil
}

// ask asks the resolvers in turn until one answers NOERROR or NXDOMAIN,
// and returns that answer. When none does, the error names each
// resolver and what it answered.
func ask(ctx context.Context, resolvers []string, name string, qtype uint16) (*dns.Msg, error) {
	if len(resolvers) == 0 {
		return nil, errors.New("no DNS resolver to ask")
	}
	var errs []error
	for _, ns := range resolvers {
		in, err := exchange(ctx, ns, name, qtype)
		switch {
		case err != nil:
			errs = append(errs, err)
		case in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError:
			errs = append(errs, fmt.Errorf("DNS resolver %s: %s %s: %s", ns, dns.TypeToString[qtype], name, dns.RcodeToString[in.Rcode]))
		default:
			return in, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// A CNAME question is asked of each resolver up to cnameAttempts times,
// each bounded by cnameQueryTimeout: its answer says where a record is
// written, so a lost packet is worth another try, and a silent resolver
// costs 2 seconds before the propagation check (which waits on it).
const (
	cnameQueryTimeout = time.Second
	cnameAttempts     = 2
)

// lookupCNAME returns the target of the CNAME record at name, as the
// resolvers answer it (the first that answers NOERROR or NXDOMAIN),
// lowercased and fully qualified; ok is false when name has no CNAME (or
// does not exist).
func lookupCNAME(ctx context.Context, resolvers []string, name string) (target string, ok bool, err error) {
	if len(resolvers) == 0 {
		return "", false, errors.New("no DNS resolver to ask")
	}
	var errs []error
	for _, ns := range resolvers {
		var in *dns.Msg
		for range cnameAttempts {
			actx, cancel := context.WithTimeout(ctx, cnameQueryTimeout)
			in, err = exchange(actx, ns, name, dns.TypeCNAME)
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
		}
		switch {
		case err != nil:
			errs = append(errs, err)
		case in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError:
			errs = append(errs, fmt.Errorf("DNS resolver %s: CNAME %s: %s", ns, name, dns.RcodeToString[in.Rcode]))
		default:
			for _, rr := range in.Answer {
				if cn, isCNAME := rr.(*dns.CNAME); isCNAME && strings.EqualFold(cn.Hdr.Name, dns.Fqdn(name)) {
					return strings.ToLower(dns.Fqdn(cn.Target)), true, nil
				}
			}
			return "", false, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return "", false, errors.Join(errs...)
}

// findZone returns the apex of the zone that holds fqdn, as the resolvers
// see it: the closest enclosing name that answers its SOA record (not
// through a CNAME). It asks as lego's zone lookup does, so that the two
// can be compared.
func findZone(ctx context.Context, resolvers []string, fqdn string) (string, error) {
	for name := range dns01.DomainsSeq(dns.Fqdn(fqdn)) {
		in, err := ask(ctx, resolvers, name, dns.TypeSOA)
		if err != nil {
			return "", err
		}
		if in.Rcode != dns.RcodeSuccess {
			continue
		}
		cname := false
		for _, rr := range in.Answer {
			if _, ok := rr.(*dns.CNAME); ok {
				cname = true
			}
		}
		if cname {
			continue
		}
		for _, rr := range in.Answer {
			if soa, ok := rr.(*dns.SOA); ok {
				return strings.ToLower(soa.Hdr.Name), nil
			}
		}
	}
	return "", fmt.Errorf("no zone found for %s: no SOA record at any of its parents", fqdn)
}

// systemResolvers returns the resolvers of /etc/resolv.conf, with their
// port, as lego reads them at start-up; nil when there are none.
func systemResolvers() []string {
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(conf.Servers) == 0 {
		return nil
	}
	out := make([]string, len(conf.Servers))
	for i, s := range conf.Servers {
		out[i] = net.JoinHostPort(s, conf.Port)
	}
	return out
}
