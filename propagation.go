package autocert

import (
	"context"
	"fmt"
	"strings"
	"time"

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

// lookupTXT asks one resolver for the TXT values of fqdn, over UDP and, if
// the answer is truncated, over TCP, giving up when ctx ends.
func lookupTXT(ctx context.Context, resolver, fqdn string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(fqdn), dns.TypeTXT)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", Timeout: dnsQueryTimeout}
	in, _, err := c.ExchangeContext(ctx, m, resolver)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, resolver)
	}
	if err != nil {
		return nil, fmt.Errorf("DNS resolver %s: TXT %s: %w", resolver, fqdn, err)
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
