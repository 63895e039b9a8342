package acmetest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"
)

// An Option changes how Start and New set up a Server.
type Option func(*settings)

// settings collects the options of one Server.
type settings struct {
	eab        map[string]string // kid -> base64url HMAC key
	profiles   map[string]profile
	noProfiles bool   // WithoutProfiles
	resolver   string // DNS server the CA validates against; "" for the shared one
	log        io.Writer
	orderLimit rateLimit        // WithOrderRateLimit
	certLimit  rateLimit        // WithDomainRateLimit
	now        func() time.Time // WithClock; nil for time.Now
	errs       []error
}

// rateLimit is one simulated limit: n within window; zero n for none.
type rateLimit struct {
	n      int
	window time.Duration
}

// profile is one certificate profile of the CA.
type profile struct {
	description string
	validity    time.Duration
}

// Defaults when no WithProfile option is given.
const (
	defaultProfile  = "default"
	defaultValidity = 90 * 24 * time.Hour
)

// WithEAB makes the CA require External Account Binding and accepts the
// key ID kid with the HMAC key hmacKey (base64url without padding, as CAs
// hand them out). Give it several times to accept several keys;
// Server.Config uses the smallest kid.
func WithEAB(kid, hmacKey string) Option {
	return func(s *settings) {
		switch {
		case kid == "":
			s.errs = append(s.errs, errors.New("WithEAB: empty key ID"))
			return
		case hmacKey == "":
			s.errs = append(s.errs, fmt.Errorf("WithEAB: empty HMAC key for key ID %q", kid))
			return
		}
		if _, err := base64.RawURLEncoding.DecodeString(hmacKey); err != nil {
			// The key is a secret: name the key ID only.
			s.errs = append(s.errs, fmt.Errorf("WithEAB: HMAC key for key ID %q is not base64url without padding", kid))
			return
		}
		if _, dup := s.eab[kid]; dup {
			s.errs = append(s.errs, fmt.Errorf("WithEAB: key ID %q given twice", kid))
			return
		}
		if s.eab == nil {
			s.eab = make(map[string]string)
		}
		s.eab[kid] = hmacKey
	}
}

// WithProfile adds the certificate profile name, whose certificates are
// valid for validity (whole seconds, at least one; Pebble makes NotAfter
// one second less than NotBefore+validity). Without this option the CA has
// one profile, "default", of 90 days.
//
// With several profiles an order must name one: the CA answers an order
// without a profile with an ACME "malformed" problem listing the profiles.
// (Pebble itself would pick one at random.) With one profile, an order
// without a profile gets it.
func WithProfile(name, description string, validity time.Duration) Option {
	return func(s *settings) {
		switch {
		case name == "":
			s.errs = append(s.errs, errors.New("WithProfile: empty profile name"))
			return
		case validity < time.Second || validity%time.Second != 0:
			s.errs = append(s.errs, fmt.Errorf("WithProfile %q: validity %v is not a whole number of seconds >= 1s", name, validity))
			return
		}
		if _, dup := s.profiles[name]; dup {
			s.errs = append(s.errs, fmt.Errorf("WithProfile: profile %q given twice", name))
			return
		}
		if s.profiles == nil {
			s.profiles = make(map[string]profile)
		}
		s.profiles[name] = profile{description: description, validity: validity}
	}
}

// WithoutProfiles makes the CA offer no certificate profiles, like a CA
// without the ACME profiles extension (smallstep step-ca, for example): its
// directory has no "profiles" in its meta object. Orders that name no
// profile get certificates valid for 90 days; an order that names one is
// refused with an "invalidProfile" problem, as Pebble checks the name
// (where such a CA may ignore it instead). It cannot be combined with
// WithProfile.
func WithoutProfiles() Option {
	return func(s *settings) { s.noProfiles = true }
}

// WithValidationResolver makes the CA look up challenge TXT records at
// addr (host:port, asked over TCP) instead of the built-in DNS server, for
// example at a BIND server that a DNS provider updates.
func WithValidationResolver(addr string) Option {
	return func(s *settings) {
		if addr == "" {
			s.errs = append(s.errs, errors.New("WithValidationResolver: empty address"))
			return
		}
		s.resolver = addr
	}
}

// WithLogWriter sends the CA's log and the HTTPS server's errors to w
// (default: discarded). The CA keeps logging from its own goroutines for a
// moment after a test ends, so w must stay usable: never a writer that
// calls testing.T.Log.
func WithLogWriter(w io.Writer) Option {
	return func(s *settings) {
		if w == nil {
			w = io.Discard
		}
		s.log = w
	}
}

// WithOrderRateLimit makes the CA limit the new orders of each account to
// n within window, as Let's Encrypt's "new orders per account" limit does
// (300 per 3 hours): a token bucket per account that holds n and refills
// evenly over window, so n orders are accepted at once, then one every
// window/n. A new-order request with no token left is answered with a
// "rateLimited" problem (HTTP 429) whose Retry-After says when the next
// token comes, and is recorded in Orders with that problem; it takes no
// token. The limits read the clock set by WithClock.
func WithOrderRateLimit(n int, window time.Duration) Option {
	return func(s *settings) {
		if n < 1 || window <= 0 {
			s.errs = append(s.errs, fmt.Errorf("WithOrderRateLimit: %d per %v: want at least 1 per a positive window", n, window))
			return
		}
		s.orderLimit = rateLimit{n, window}
	}
}

// WithDomainRateLimit makes the CA limit the orders naming each
// registered domain (the name one label under its public suffix, such as
// example.com for www.example.com) to n within window, whatever the
// account, as Let's Encrypt's "certificates per registered domain" limit
// does (50 per week), with a token bucket per registered domain as
// WithOrderRateLimit has per account. An order for exactly the names of a
// certificate the CA issued before is a renewal and is not limited, as at
// Let's Encrypt. The CA counts an order when it accepts it rather than
// when it issues its certificate.
func WithDomainRateLimit(n int, window time.Duration) Option {
	return func(s *settings) {
		if n < 1 || window <= 0 {
			s.errs = append(s.errs, fmt.Errorf("WithDomainRateLimit: %d per %v: want at least 1 per a positive window", n, window))
			return
		}
		s.certLimit = rateLimit{n, window}
	}
}

// WithClock sets the clock that the simulated rate limits read (default
// time.Now), such as the Now method of the clock a test drives its client
// with, so that the CA's limits refill as the client's time passes. The
// rest of the CA (validity of certificates and authorizations) keeps real
// time.
func WithClock(now func() time.Time) Option {
	return func(s *settings) {
		if now == nil {
			s.errs = append(s.errs, errors.New("WithClock: nil clock"))
			return
		}
		s.now = now
	}
}
