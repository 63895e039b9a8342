package autocert

import "errors"

// Sentinel errors. Errors returned by this package wrap them, so callers can
// test with errors.Is and still read a message naming the field, file or
// provider concerned.
var (
	// ErrInvalidConfig is wrapped by every configuration problem that
	// Validate, LoadConfig and ParseConfig report.
	ErrInvalidConfig = errors.New("invalid autocert config")

	// ErrUnknownProvider means the provider key names no registered DNS
	// provider (nor "local" or "pseudo").
	ErrUnknownProvider = errors.New("unknown provider")

	// ErrUnsetVariable means a config file refers to an environment variable
	// that is not set and has no default.
	ErrUnsetVariable = errors.New("environment variable not set")

	// ErrAccountKey means an ACME account key exists but cannot be used. The
	// file is never replaced: a new key would lose the ACME account.
	ErrAccountKey = errors.New("unusable ACME account key")

	// ErrCoolingDown means an obtain was refused because a recent failure
	// asks to wait; the message says until when.
	ErrCoolingDown = errors.New("waiting after a recent failure")

	// ErrMissingCertificate means a "local" provider's certificate or key
	// file does not exist or does not load.
	ErrMissingCertificate = errors.New("certificate not available")

	// ErrObtain wraps every failure to obtain or renew a certificate.
	ErrObtain = errors.New("obtaining certificate failed")
)
