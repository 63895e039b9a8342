package autocert

import (
	"fmt"
)

// redactedText is what a Redacted value shows in every rendering.
const redactedText = "[REDACTED]"

// Redacted is a string holding a secret: a DNS API token, an EAB HMAC key,
// a password in a database DSN. It decodes from YAML and JSON like a plain
// string, but every rendering of it (fmt verbs, JSON, YAML, text, zerolog)
// shows "[REDACTED]" instead of its value. Call Value to use the secret.
type Redacted string

// Value returns the secret itself.
func (r Redacted) Value() string { return string(r) }

// String implements fmt.Stringer and never reveals the value.
func (r Redacted) String() string {
	if r == "" {
		return ""
	}
	return redactedText
}

// GoString implements fmt.GoStringer for %#v.
func (r Redacted) GoString() string { return fmt.Sprintf("%q", r.String()) }

// Format implements fmt.Formatter so that no verb (%x, %q, %v...) prints the value.
func (r Redacted) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", r.String())
	default:
		fmt.Fprint(f, r.String())
	}
}

// MarshalText implements encoding.TextMarshaler (used by encoders that
// render values as text); it never reveals the value.
func (r Redacted) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// MarshalJSON implements json.Marshaler; it never reveals the value.
func (r Redacted) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", r.String())), nil }

// MarshalYAML implements yaml.Marshaler; it never reveals the value.
func (r Redacted) MarshalYAML() (any, error) { return r.String(), nil }

// Options holds the settings of a DNS provider (credentials, TTL, timeouts).
// Every value is a secret as far as rendering goes.
type Options map[string]Redacted

// Format implements fmt.Formatter for the storage block, so that no verb
// prints the DSN. Without it, a verb that does not fit a pointer (%s, %q,
// %x) prints a Config's Storage field through fmt's error path, which calls
// no method and would show the DSN as it is.
func (c StorageConfig) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprintf(f, "autocert.StorageConfig{Type:%q, DSN:%#v}", c.Type, c.DSN)
		return
	}
	if verb == 'q' {
		fmt.Fprintf(f, "{Type:%q DSN:%q}", c.Type, c.DSN)
		return
	}
	fmt.Fprintf(f, "{Type:%s DSN:%s}", c.Type, c.DSN)
}
