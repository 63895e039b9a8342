package autocert

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
)

// KnownCA is a well-known ACME directory that the ca key names.
type KnownCA struct {
	// Name is the value of the ca key, such as "letsencrypt".
	Name string
	// DirURL is the ACME directory URL.
	DirURL string
	// EAB says the CA requires External Account Binding for a new
	// account: Validate then requires eab_kid and eab_hmac.
	EAB bool
	// EABFrom says where the CA hands out the EAB key ID and HMAC key.
	EABFrom string
}

// KnownCAs returns the CAs that the ca key names, as checked in December
// 2026. Buypass is not among them: it stopped taking ACME orders on 15
// October 2025 and issued its last certificates on 31 October 2025.
func KnownCAs() []KnownCA {
	return []KnownCA{
		{Name: "letsencrypt", DirURL: lego.LEDirectoryProduction},
		{Name: "letsencrypt-staging", DirURL: lego.LEDirectoryStaging},
		{Name: "zerossl", DirURL: "https://acme.zerossl.com/v2/DV90", EAB: true,
			EABFrom: "the ZeroSSL dashboard, Developer section (https://app.zerossl.com/developer)"},
		{Name: "google", DirURL: "https://dv.acme-v02.api.pki.goog/directory", EAB: true,
			EABFrom: "Google Cloud: gcloud publicca external-account-keys create (Certificate Manager, public CA)"},
		{Name: "google-staging", DirURL: "https://dv.acme-v02.test-api.pki.goog/directory", EAB: true,
			EABFrom: "Google Cloud: gcloud publicca external-account-keys create, with the staging endpoint (Certificate Manager, public CA)"},
	}
}

// knownCA returns the known CA of name (any case), or of a directory URL.
func knownCA(name, dirURL string) (KnownCA, bool) {
	for _, k := range KnownCAs() {
		if name != "" && strings.EqualFold(strings.TrimSpace(name), k.Name) || name == "" && dirURL != "" && dirURL == k.DirURL {
			return k, true
		}
	}
	return KnownCA{}, false
}

// knownCANames lists the names of the known CAs, for messages.
func knownCANames() string {
	var names []string
	for _, k := range KnownCAs() {
		names = append(names, k.Name)
	}
	return strings.Join(names, ", ")
}

// resolveCA checks a ca key (at path, beside the ca_dir_url key dirPath)
// and returns the directory URL to use: the known CA's, or dirURL when
// name is empty.
func (v *validator) resolveCA(name, dirURL, path, dirPath string) (string, string) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return name, dirURL
	}
	k, ok := knownCA(name, "")
	if !ok {
		v.add(path, nil, "unknown CA %q: use one of %s, or give the directory URL in %s", name, knownCANames(), dirPath)
		return name, dirURL
	}
	if dirURL != "" && dirURL != k.DirURL {
		v.add(path, nil, "set either %s or %s, not both (%s is %s)", path, dirPath, k.Name, k.DirURL)
		return name, dirURL
	}
	return name, k.DirURL
}

// issuers checks and normalises the issuers list of a block (p its
// prefix), filling in each acme_key_path default.
func (v *validator) issuers(c *Config, p string) {
	seen := map[string]int{}
	for i := range c.Issuers {
		is := &c.Issuers[i]
		ip := fmt.Sprintf("%sissuers[%d].", p, i)
		is.CADirURL = strings.TrimSpace(is.CADirURL)
		is.CA, is.CADirURL = v.resolveCA(is.CA, is.CADirURL, ip+"ca", ip+"ca_dir_url")
		switch {
		case is.CADirURL == "" && is.CA == "":
			v.add(ip+"ca", nil, "required: name the CA (%s) or give its ca_dir_url", knownCANames())
		case is.CADirURL != "":
			if err := checkHTTPSURL(is.CADirURL); err != nil {
				v.add(ip+"ca_dir_url", nil, "%v", err)
			}
		}
		for j, f := range is.CACerts {
			if _, err := readCACertFile(f); err != nil {
				v.add(fmt.Sprintf("%sca_certs[%d]", ip, j), nil, "%v", err)
			}
		}
		is.EABKid = strings.TrimSpace(is.EABKid)
		if is.EABHmac != "" {
			is.EABHmac = Redacted(strings.TrimSpace(is.EABHmac.Value()))
			if !validBase64URL(is.EABHmac.Value()) {
				v.add(ip+"eab_hmac", nil, "not a base64url key (the value is not shown)")
			}
		}
		if is.EABKid != "" && is.EABHmac == "" {
			v.add(ip+"eab_hmac", nil, "required when eab_kid is set")
		}
		if is.EABKid == "" && is.EABHmac != "" {
			v.add(ip+"eab_kid", nil, "required when eab_hmac is set")
		}
		is.Profile = strings.TrimSpace(is.Profile)
		if is.ACMEKeyPath == "" && is.CADirURL != "" {
			is.ACMEKeyPath = defaultACMEKeyPath(is.CADirURL)
		}
		if is.CADirURL != "" {
			if first, dup := seen[is.CADirURL]; dup {
				v.add(ip+"ca_dir_url", nil, "%s is also %sissuers[%d]: list each CA once", is.CADirURL, p, first)
			}
			seen[is.CADirURL] = i
		}
	}
}

// issuerRequirements checks what the merged block m needs of its CAs:
// issuers and the single-CA keys are not both set, and a CA known to
// require External Account Binding has eab_kid and eab_hmac. report is
// the validator's report of requirements.
func issuerRequirements(m *Config, report func(key string, cause error, format string, args ...any)) {
	if len(m.Issuers) > 0 {
		var both []string
		for _, f := range []struct {
			key string
			set bool
		}{{"ca", m.CA != ""}, {"ca_dir_url", m.CADirURL != ""}, {"ca_certs", len(m.CACerts) > 0},
			{"eab_kid", m.EABKid != ""}, {"eab_hmac", m.EABHmac != ""}, {"profile", m.Profile != ""},
			{"acme_key_path", m.ACMEKeyPath != ""}} {
			if f.set {
				both = append(both, f.key)
			}
		}
		if len(both) > 0 {
			report("issuers", nil, "set either issuers or %s, not both: move %s into the entries of issuers", strings.Join(both, ", "), strings.Join(both, ", "))
		}
		for i, is := range m.Issuers {
			if k, ok := knownCA(is.CA, is.CADirURL); ok && k.EAB && is.EABKid == "" && is.EABHmac == "" {
				report(fmt.Sprintf("issuers[%d].eab_kid", i), nil, "required by %s, which needs External Account Binding for a new account: set eab_kid and eab_hmac, from %s", k.Name, k.EABFrom)
			}
		}
		return
	}
	if k, ok := knownCA(m.CA, m.CADirURL); ok && k.EAB && m.EABKid == "" && m.EABHmac == "" {
		report("eab_kid", nil, "required by %s, which needs External Account Binding for a new account: set eab_kid and eab_hmac, from %s", k.Name, k.EABFrom)
	}
}

// issuerConfigs returns the configuration of each issuer of cfg (a
// validated, merged block), in order: cfg with the single-CA keys set to
// the issuer's. Without issuers, it is cfg alone.
func (cfg *Config) issuerConfigs() []*Config {
	if len(cfg.Issuers) == 0 {
		return []*Config{cfg}
	}
	out := make([]*Config, len(cfg.Issuers))
	for i, is := range cfg.Issuers {
		c := *cfg
		c.Extra, c.Issuers = nil, nil
		c.CA, c.CADirURL, c.CACerts = is.CA, is.CADirURL, is.CACerts
		c.EABKid, c.EABHmac, c.Profile, c.ACMEKeyPath = is.EABKid, is.EABHmac, is.Profile, is.ACMEKeyPath
		out[i] = &c
	}
	return out
}

// issuerSlot is one issuer of a certificate: its configuration (the
// certificate's, with the issuer's CA keys) and its ACME account.
type issuerSlot struct {
	cfg  *Config
	acct *account
}

// url is the issuer's directory URL.
func (is *issuerSlot) url() string { return caKey(is.cfg.CADirURL) }

// CAError is why an attempt failed at one CA of a certificate's issuers.
type CAError struct {
	// CA is the ACME directory URL of the CA.
	CA string `json:"ca"`
	// Error is what failed there, with secrets removed.
	Error string `json:"error"`
}

// issued is the result of one attempt through the issuers.
type issued struct {
	certPEM, keyPEM []byte
	ca              string    // the directory URL of the CA that issued; "" on failure
	failed          []CAError // the CAs that failed before (or instead), in order
	last            int       // the index of the last issuer asked
}

// orderIssuers orders the certificate from its issuers in turn, as Issuer
// describes, and returns the result; err is the failure of the last
// issuer asked, or with several, all of them.
func (c *certificate) orderIssuers(ctx context.Context, req obtainRequest) (issued, error) {
	var out issued
	var errs []error
	for i, is := range c.issuers {
		out.last = i
		if i > 0 {
			if at, limit := req.paces.send(i, c.clock.Now()); !at.IsZero() {
				msg := fmt.Sprintf("skipped: no room under its rate limits (%s) before %s", limit, at.UTC().Format(time.RFC3339))
				out.failed = append(out.failed, CAError{CA: is.url(), Error: msg})
				errs = append(errs, fmt.Errorf("%s: %s", is.url(), msg))
				continue
			}
		}
		var replaces *x509.Certificate
		if req.replaces && (req.issuedBy == is.url() || req.issuedBy == "" && i == 0) {
			// The CA that issued the old certificate is the one that may
			// exempt its replacement.
			replaces = req.old
		}
		res, err := c.order(ctx, is, replaces)
		if err == nil {
			out.certPEM, out.keyPEM, out.ca = res.Certificate, res.PrivateKey, is.url()
			return out, nil
		}
		if len(c.issuers) == 1 {
			return out, err
		}
		out.failed = append(out.failed, CAError{CA: is.url(), Error: oneLine(c.scrub(err.Error()))})
		errs = append(errs, fmt.Errorf("%s: %w", is.url(), err))
		if ctx.Err() != nil || !nextIssuer(err) {
			break
		}
		if i+1 < len(c.issuers) {
			c.logger.Warn().Str("ca", is.url()).Str("error", oneLine(c.scrub(err.Error()))).
				Str("next", c.issuers[i+1].url()).Msg("the order failed at this CA; trying the next issuer")
		}
	}
	if len(errs) == 1 {
		return out, errs[0]
	}
	return out, &issuersError{errs}
}

// issuersError is the failure of an attempt at several CAs.
type issuersError struct{ errs []error }

func (e *issuersError) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return "every issuer failed: " + strings.Join(msgs, "; ")
}

func (e *issuersError) Unwrap() []error { return e.errs }

// caSideError marks a failure before the order: reaching the CA's
// directory, checking it, finding or registering the account. Whatever
// its cause, another CA may do better.
type caSideError struct{ err error }

func (e *caSideError) Error() string { return e.err.Error() }
func (e *caSideError) Unwrap() error { return e.err }

// Problem types (RFC 8555, section 6.7, and the profiles extension) after
// which the next issuer is asked, and those that end the attempt: the
// validation of the names failed, which would fail at any CA.
var (
	nextIssuerProblems = []string{"rateLimited", "serverInternal", "badNonce", "accountDoesNotExist",
		"externalAccountRequired", "userActionRequired", "invalidProfile"}
	validationProblems = []string{"unauthorized", "dns", "caa", "connection", "incorrectResponse", "tls",
		"rejectedIdentifier", "unsupportedIdentifier", "badCSR"}
)

// nextIssuer reports whether an order that failed with err may be sent to
// the next issuer: see the table of Issuer.
func nextIssuer(err error) bool {
	var side *caSideError
	if errors.As(err, &side) {
		return true
	}
	var next, stop bool
	walkErrors(err, func(e error) {
		if _, ok := e.(*dnsSideError); ok {
			stop = true
			return
		}
		var t string
		var status int
		switch p := e.(type) {
		case *acme.ProblemDetails:
			t, status = p.Type, p.HTTPStatus
		case *acme.RateLimitedError:
			if p.ProblemDetails != nil {
				t, status = p.Type, p.HTTPStatus
			}
			next = true
		}
		if t == "" {
			var ne net.Error
			var ue *url.Error
			if e == io.ErrUnexpectedEOF || errors.As(e, &ne) || errors.As(e, &ue) {
				next = true
			}
			return
		}
		t = strings.TrimPrefix(t, "urn:ietf:params:acme:error:")
		switch {
		case slices.Contains(validationProblems, t):
			stop = true
		case slices.Contains(nextIssuerProblems, t), status >= 500:
			next = true
		}
	})
	return next && !stop
}

// walkErrors calls f with err and every error it wraps.
func walkErrors(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, f)
		}
	}
}

// dnsSideError marks a failure of the DNS provider or of the propagation
// check: the same at every CA, so no next issuer is asked.
type dnsSideError struct{ err error }

func (e *dnsSideError) Error() string { return e.err.Error() }
func (e *dnsSideError) Unwrap() error { return e.err }

// markDNSErrors wraps a DNS provider so that its errors are dnsSideErrors.
func markDNSErrors(p challenge.Provider) challenge.Provider {
	m := markedDNS{p}
	if _, ok := p.(interface{ Sequential() time.Duration }); ok {
		return sequentialMarkedDNS{m}
	}
	return m
}

type markedDNS struct{ challenge.Provider }

func markDNS(err error) error {
	if err == nil {
		return nil
	}
	return &dnsSideError{err}
}

func (m markedDNS) Present(domain, token, keyAuth string) error {
	return markDNS(m.Provider.Present(domain, token, keyAuth))
}

func (m markedDNS) CleanUp(domain, token, keyAuth string) error {
	return markDNS(m.Provider.CleanUp(domain, token, keyAuth))
}

func (m markedDNS) Timeout() (timeout, interval time.Duration) {
	if t, ok := m.Provider.(challenge.ProviderTimeout); ok {
		return t.Timeout()
	}
	return dns01.DefaultPropagationTimeout, dns01.DefaultPollingInterval
}

type sequentialMarkedDNS struct{ markedDNS }

func (m sequentialMarkedDNS) Sequential() time.Duration {
	return m.Provider.(interface{ Sequential() time.Duration }).Sequential()
}
