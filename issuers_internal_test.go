package autocert

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"

	"github.com/go-acme/lego/v4/acme"
)

// TestNextIssuerClasses: which failures of an order send it to the next
// issuer (the table of Issuer), on errors shaped as lego and autocert
// return them.
func TestNextIssuerClasses(t *testing.T) {
	prob := func(typ string, status int) error {
		return &acme.ProblemDetails{Type: "urn:ietf:params:acme:error:" + typ, HTTPStatus: status, Detail: "detail"}
	}
	// lego joins the failures of the authorizations, one per name.
	authz := func(errs ...error) error {
		return fmt.Errorf("error: one or more domains had a problem:\n%w", errors.Join(errs...))
	}
	refused := &url.Error{Op: "Post", URL: "https://ca.example/order", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		err  error
		next bool
	}{
		{"directory unreachable", &caSideError{fmt.Errorf("ACME directory x: %w", refused)}, true},
		{"EAB required by the directory", &caSideError{fmt.Errorf("%w: eab_kid and eab_hmac are required", ErrInvalidConfig)}, true},
		{"registration refused: unauthorized", &caSideError{fmt.Errorf("registering ACME account: %w", prob("unauthorized", 403))}, true},
		{"rateLimited", &acme.RateLimitedError{ProblemDetails: &acme.ProblemDetails{Type: "urn:ietf:params:acme:error:rateLimited", HTTPStatus: 429}, RetryAfter: "60"}, true},
		{"serverInternal", prob("serverInternal", 500), true},
		{"HTTP 503 of another type", prob("malformed", 503), true},
		{"badNonce after lego's retries", prob("badNonce", 400), true},
		{"accountDoesNotExist", prob("accountDoesNotExist", 400), true},
		{"externalAccountRequired", prob("externalAccountRequired", 403), true},
		{"userActionRequired", prob("userActionRequired", 403), true},
		{"invalidProfile", prob("invalidProfile", 400), true},
		{"connection refused during the order", fmt.Errorf("finalize: %w", refused), true},
		{"authorization unauthorized", authz(fmt.Errorf("[a.example] invalid challenge: %w", prob("unauthorized", 403))), false},
		{"dns", authz(prob("dns", 400)), false},
		{"caa", authz(prob("caa", 403)), false},
		{"rejectedIdentifier", prob("rejectedIdentifier", 400), false},
		{"badCSR", prob("badCSR", 400), false},
		{"malformed", prob("malformed", 400), false},
		{"DNS provider's API unreachable", authz(&dnsSideError{fmt.Errorf("present: %w", refused)}), false},
		{"one name fails validation, another hits a CA error", authz(prob("unauthorized", 403), prob("serverInternal", 500)), false},
		{"propagation timeout", authz(errors.New("propagation: time limit exceeded")), false},
		{"unknown error", errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := nextIssuer(tt.err); got != tt.next {
			t.Errorf("%s: nextIssuer = %v, want %v (%v)", tt.name, got, tt.next, tt.err)
		}
	}
}

// TestFingerprintIssuerOrder: the order of the issuers is no change of
// what a failure was about, their set is.
func TestFingerprintIssuerOrder(t *testing.T) {
	a := Issuer{CADirURL: "https://a.example/dir", ACMEKeyPath: "a.key"}
	b := Issuer{CADirURL: "https://b.example/dir", ACMEKeyPath: "b.key", EABKid: "k", EABHmac: "aG1hYw"}
	cfg := func(list ...Issuer) *Config {
		return &Config{Provider: "x", Domains: []string{"example.com"}, Issuers: list}
	}
	if cfg(a, b).fingerprint() != cfg(b, a).fingerprint() {
		t.Error("reordering the issuers changes the fingerprint")
	}
	b2 := b
	b2.EABHmac = "b3RoZXI"
	for _, other := range []*Config{cfg(a), cfg(a, b2), cfg(a, b, Issuer{CADirURL: "https://c.example/dir"})} {
		if other.fingerprint() == cfg(a, b).fingerprint() {
			t.Errorf("fingerprint unchanged for %+v", other.Issuers)
		}
	}
}

// TestFailureRecordCAErrors: the errors per CA survive the record's
// format.
func TestFailureRecordCAErrors(t *testing.T) {
	r := failureRecord{Attempts: 1, Message: "every issuer failed", CAErrors: []CAError{
		{CA: "https://a.example/dir", Error: "ACME directory: connection refused"},
		{CA: "https://b.example/dir", Error: "serverInternal:\nmulti line"},
	}}
	got, err := parseFailureRecord(r.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.CAErrors) != 2 || got.CAErrors[0] != r.CAErrors[0] || got.CAErrors[1].Error != "serverInternal: multi line" {
		t.Errorf("CA errors read back: %+v", got.CAErrors)
	}
}
