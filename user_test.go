package autocert

import (
	"bytes"
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
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-acme/lego/v4/registration"
	"github.com/rs/zerolog"
)

var _ registration.User = (*User)(nil)

// acctMemStorage is a Storage in memory that records how entries were stored.
type acctMemStorage struct {
	mu      sync.Mutex
	lockMu  sync.Mutex
	entries map[string]Entry
}

func newAcctMemStorage() *acctMemStorage { return &acctMemStorage{entries: make(map[string]Entry)} }

func (s *acctMemStorage) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return nil, fmt.Errorf("load %s: %w", key, fs.ErrNotExist)
	}
	return bytes.Clone(e.Value), nil
}

func (s *acctMemStorage) Store(_ context.Context, entries ...Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		s.entries[e.Key] = e
	}
	return nil
}

func (s *acctMemStorage) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key)
	return nil
}

func (s *acctMemStorage) Stat(_ context.Context, key string) (KeyInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return KeyInfo{}, fs.ErrNotExist
	}
	return KeyInfo{Size: int64(len(e.Value))}, nil
}

func (s *acctMemStorage) Lock(context.Context, string) (func(), error) {
	s.lockMu.Lock()
	return s.lockMu.Unlock, nil
}

func TestUserConcurrentRegistration(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &User{Email: "a@example.com", Key: key}
	reg := &registration.Resource{URI: "https://ca.example/acct/1"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if r := u.GetRegistration(); r != nil && r != reg {
					t.Error("unexpected registration")
				}
				_ = u.GetEmail()
				_ = u.GetPrivateKey()
			}
		})
	}
	wg.Go(func() { u.setRegistration(reg) })
	wg.Wait()
	if u.GetRegistration() != reg || u.GetEmail() != "a@example.com" || u.GetPrivateKey() != crypto.PrivateKey(key) {
		t.Error("User getters")
	}
}

func TestUserAccountKeyCreated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new", "acme.key")
	ctx := context.Background()
	st := &FileStorage{}
	key, err := loadOrCreateAccountKey(ctx, st, path)
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("created key %T, want ECDSA P-256", key)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	// The directory usually holds the certificates too (certs/), which
	// other users must be able to read; the key itself is 0600.
	if di.Mode().Perm() != 0o755 {
		t.Errorf("new directory mode %v, want 0755", di.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "EC PRIVATE KEY" {
		t.Errorf("stored as %q, want PEM EC PRIVATE KEY", data)
	}
	again, err := loadOrCreateAccountKey(ctx, st, path)
	if err != nil {
		t.Fatal(err)
	}
	if !ec.Equal(again) {
		t.Error("reloaded key differs")
	}
}

func TestUserAccountKeyCreatedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acme.key")
	st := &FileStorage{}
	keys := make([]crypto.PrivateKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := loadOrCreateAccountKey(context.Background(), st, path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k == nil || !keys[0].(*ecdsa.PrivateKey).Equal(k) {
			t.Fatal("concurrent callers got different account keys")
		}
	}
}

func TestUserAccountKeyStoredPrivately(t *testing.T) {
	st := newAcctMemStorage()
	if _, err := loadOrCreateAccountKey(context.Background(), st, "k/acme.key"); err != nil {
		t.Fatal(err)
	}
	if e := st.entries["k/acme.key"]; !e.Private {
		t.Error("account key not stored as a private entry")
	}
}

func TestUserAccountKeyFormats(t *testing.T) {
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	sec1 := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pkcs8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	ecParams := pemOf("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})

	tests := []struct {
		name string
		data []byte
		want interface{ Equal(crypto.PrivateKey) bool }
	}{
		{"PEM EC PRIVATE KEY", pemOf("EC PRIVATE KEY", sec1(ec256)), ec256},
		{"PEM EC PRIVATE KEY P-384", pemOf("EC PRIVATE KEY", sec1(ec384)), ec384},
		{"PEM EC PRIVATE KEY after EC PARAMETERS", append(ecParams, pemOf("EC PRIVATE KEY", sec1(ec256))...), ec256},
		{"PEM PRIVATE KEY EC", pemOf("PRIVATE KEY", pkcs8(ec256)), ec256},
		{"PEM PRIVATE KEY RSA", pemOf("PRIVATE KEY", pkcs8(rsaKey)), rsaKey},
		{"PEM RSA PRIVATE KEY", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), rsaKey},
		{"DER SEC 1 (the seed's format)", sec1(ec256), ec256},
		{"DER PKCS #8 EC", pkcs8(ec384), ec384},
		{"DER PKCS #8 RSA", pkcs8(rsaKey), rsaKey},
		{"DER PKCS #1", x509.MarshalPKCS1PrivateKey(rsaKey), rsaKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "acme.key")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			key, err := loadOrCreateAccountKey(context.Background(), &FileStorage{}, path)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want.Equal(key) {
				t.Error("loaded key differs")
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tt.data) {
				t.Error("key file rewritten")
			}
		})
	}
}

func TestUserAccountKeyUnusable(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	pkcs8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	sec1, _ := x509.MarshalECPrivateKey(ec521)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte("x")})

	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"garbage", []byte("hello, world\n"), "not a PEM or DER private key"},
		{"empty", nil, "the file is empty"},
		{"truncated DER", pkcs8(ec521)[:20], "not a PEM or DER private key"},
		{"corrupt PEM body", pemOf("EC PRIVATE KEY", []byte("junk")), `PEM "EC PRIVATE KEY"`},
		{"certificate, not a key", pemOf("CERTIFICATE", []byte("junk")), `PEM block "CERTIFICATE" is not a private key`},
		{"only EC PARAMETERS", pemOf("EC PARAMETERS", []byte{6, 1, 1}), "no private key in the PEM data"},
		{"encrypted PEM", encrypted, "encrypted"},
		{"encrypted PKCS #8", pemOf("ENCRYPTED PRIVATE KEY", []byte("x")), "encrypted"},
		{"Ed25519", pemOf("PRIVATE KEY", pkcs8(ed)), "Ed25519 account keys are not supported"},
		{"P-521", pemOf("EC PRIVATE KEY", sec1), "ECDSA curve P-521 is not supported"},
		{"small RSA", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024)), "1024 bits is too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "acme.key")
			if err := os.WriteFile(path, tt.data, 0o640); err != nil {
				t.Fatal(err)
			}
			key, err := loadOrCreateAccountKey(context.Background(), &FileStorage{}, path)
			if key != nil || !errors.Is(err, ErrAccountKey) {
				t.Fatalf("got %v, %v; want ErrAccountKey", key, err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q should name %s and say %q", err, path, tt.msg)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tt.data) {
				t.Error("unusable key file was modified")
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("mode changed to %v", fi.Mode().Perm())
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("files added next to the key: %v", entries)
			}
		})
	}
}

func TestUserAccountKeyUnreadable(t *testing.T) {
	// A directory where the key should be: present, but not a key.
	path := filepath.Join(t.TempDir(), "acme.key")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := loadOrCreateAccountKey(context.Background(), &FileStorage{}, path)
	if !errors.Is(err, ErrAccountKey) || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v, want ErrAccountKey naming the path", err)
	}
}

func TestUserNeverRendersKey(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &User{Email: "a@example.com", Key: key}
	u.setRegistration(&registration.Resource{URI: "https://ca.example/acct/7"})
	raw, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	secretD := new(big.Int).SetBytes(raw).String()
	secretHex := new(big.Int).SetBytes(raw).Text(16)
	j, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logger := zerolog.New(&buf)
	logger.Info().Interface("user", u).Any("any", u).Msgf("%v", u)
	outputs := []string{string(j), buf.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, u))
	}
	for _, out := range outputs {
		if strings.Contains(out, secretD) || strings.Contains(out, secretHex) {
			t.Errorf("private key shown: %s", out)
		}
	}
	if got := fmt.Sprint(u); !strings.Contains(got, "a@example.com") || !strings.Contains(got, "acct/7") {
		t.Errorf("String() = %s", got)
	}
	if !strings.Contains(string(j), `"email":"a@example.com"`) {
		t.Errorf("JSON = %s", j)
	}
}
