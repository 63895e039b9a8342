package autocert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// pseudoValidity is the lifetime of a self-signed "pseudo" certificate.
const pseudoValidity = 90 * 24 * time.Hour

// newPrivateKey makes a key of a config key type, in any spelling
// canonicalKeyType accepts (EC256 when empty).
func newPrivateKey(keyType string) (crypto.Signer, error) {
	name, _ := canonicalKeyType(keyType)
	if keyType == "" {
		name = "EC256"
	}
	switch name {
	case "EC256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EC384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RSA2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "RSA3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "RSA4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	case "RSA8192":
		return rsa.GenerateKey(rand.Reader, 8192)
	}
	return nil, fmt.Errorf("%w: unknown certificate_key_type %q", ErrInvalidConfig, keyType)
}

// selfSigned returns a PEM certificate and PKCS#8 PEM key valid for names.
func selfSigned(names []string, keyType string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := newPrivateKey(keyType)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"autocert pseudo"}},
		DNSNames:              names,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(pseudoValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}
