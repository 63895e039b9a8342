package autocert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/go-acme/lego/v4/registration"
)

// User is an ACME account: its contact, its registration at the CA and
// its key. It implements lego's registration.User. Its methods are safe for
// concurrent use; set the fields before sharing a User: the Provider
// records the registration once it is found or made. Printing a *User
// (fmt, JSON, zerolog) never shows the key.
type User struct {
	Email        string
	Registration *registration.Resource
	Key          crypto.PrivateKey

	mu sync.RWMutex // guards Registration once the User is shared
}

// GetEmail returns the account contact.
func (u *User) GetEmail() string { return u.Email }

// GetRegistration returns the account's registration at the CA, nil until
// it is found or registered.
func (u *User) GetRegistration() *registration.Resource {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.Registration
}

// GetPrivateKey returns the account key.
func (u *User) GetPrivateKey() crypto.PrivateKey { return u.Key }

// String describes the account without its key.
func (u *User) String() string {
	uri := ""
	if r := u.GetRegistration(); r != nil {
		uri = r.URI
	}
	key := ""
	if u.Key != nil {
		key = fmt.Sprintf("%T %s", u.Key, redactedText)
	}
	return fmt.Sprintf("{Email:%s Registration:%s Key:%s}", u.Email, uri, key)
}

// Format implements fmt.Formatter so that no verb prints the private key.
func (u *User) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", u.String())
		return
	}
	fmt.Fprint(f, u.String())
}

// MarshalJSON implements json.Marshaler (used by zerolog too): the email
// and registration URI, never the private key.
func (u *User) MarshalJSON() ([]byte, error) {
	return json.Marshal(u.public())
}

// MarshalYAML implements yaml.Marshaler: the email and registration URI,
// never the private key (a YAML encoder would otherwise walk into Key).
func (u *User) MarshalYAML() (any, error) { return u.public(), nil }

// MarshalText implements encoding.TextMarshaler, for the encoders that use
// it (XML, slog's text handler...): the same as String.
func (u *User) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// userPublic is what the encoders of a User show.
type userPublic struct {
	Email        string `json:"email,omitempty" yaml:"email,omitempty"`
	Registration string `json:"registration,omitempty" yaml:"registration,omitempty"`
}

func (u *User) public() userPublic {
	v := userPublic{Email: u.Email}
	if r := u.GetRegistration(); r != nil {
		v.Registration = r.URI
	}
	return v
}

// setRegistration records the registration found or made at the CA.
func (u *User) setRegistration(r *registration.Resource) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.Registration = r
}

// accountKeyHint ends the message of an unusable account key.
const accountKeyHint = "the file is left as it is: move it away to create a new key (and a new ACME account)"

// loadOrCreateAccountKey returns the ACME account key stored under path,
// creating an ECDSA P-256 key there when there is none. A stored key that
// cannot be used is an error wrapping ErrAccountKey, and is never replaced:
// a new key would be a new account.
func loadOrCreateAccountKey(ctx context.Context, st Storage, path string) (crypto.PrivateKey, error) {
	data, err := st.Load(ctx, path)
	if err == nil {
		return parseAccountKeyFile(path, data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s: %w", ErrAccountKey, path, err)
	}

	// Create it under the key's lock, so that two processes sharing the
	// storage do not both create one.
	unlock, err := st.Lock(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("creating ACME account key %s: %w", path, err)
	}
	defer unlock()
	data, err = st.Load(ctx, path)
	if err == nil {
		return parseAccountKeyFile(path, data) // created meanwhile
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s: %w", ErrAccountKey, path, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("creating ACME account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("creating ACME account key: %w", err)
	}
	pemData := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := st.Store(ctx, Entry{Key: path, Value: pemData, Private: true}); err != nil {
		return nil, fmt.Errorf("storing ACME account key %s: %w", path, err)
	}
	return key, nil
}

// parseAccountKeyFile is parseAccountKey with an error naming the file.
func parseAccountKeyFile(path string, data []byte) (crypto.PrivateKey, error) {
	key, err := parseAccountKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v; %s", ErrAccountKey, path, err, accountKeyHint)
	}
	return key, nil
}

// parseAccountKey reads an account key: PEM "EC PRIVATE KEY" (SEC 1),
// "PRIVATE KEY" (PKCS #8) or "RSA PRIVATE KEY" (PKCS #1), or the same
// encodings as raw DER (the seed's implementation stored the DER of
// x509.MarshalECPrivateKey). Only keys lego can sign with are accepted:
// ECDSA P-256 or P-384, RSA.
func parseAccountKey(data []byte) (crypto.PrivateKey, error) {
	if len(data) == 0 {
		return nil, errors.New("the file is empty")
	}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("the key is encrypted; store it unencrypted")
		}
		var key any
		var err error
		switch block.Type {
		case "EC PARAMETERS":
			continue // written by "openssl ecparam -genkey" before the key
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM %q: %v", block.Type, err)
		}
		return checkAccountKey(key)
	}
	if len(rest) < len(data) {
		return nil, errors.New("no private key in the PEM data")
	}
	if key, err := x509.ParseECPrivateKey(data); err == nil {
		return checkAccountKey(key)
	}
	if key, err := x509.ParsePKCS8PrivateKey(data); err == nil {
		return checkAccountKey(key)
	}
	if key, err := x509.ParsePKCS1PrivateKey(data); err == nil {
		return checkAccountKey(key)
	}
	return nil, errors.New("not a PEM or DER private key (SEC 1, PKCS #8 or PKCS #1)")
}

// checkAccountKey accepts the keys lego signs ACME requests with.
func checkAccountKey(key any) (crypto.PrivateKey, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported: use P-256 or P-384", k.Curve.Params().Name)
		}
		return k, nil
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < 2048 {
			return nil, fmt.Errorf("an RSA key of %d bits is too small: CAs require 2048 bits or more", bits)
		}
		return k, nil
	case ed25519.PrivateKey, *ed25519.PrivateKey:
		return nil, errors.New("Ed25519 account keys are not supported by lego: use ECDSA P-256")
	}
	return nil, fmt.Errorf("unsupported key type %T: use ECDSA P-256", key)
}
