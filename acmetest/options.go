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
	errs       []error
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
