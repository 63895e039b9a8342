package autocert

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// storeBetween is a FileStorage on which, once armed, another process
// (here another FileStorage) stores a new certificate and key right after
// the certificate is read and before the key is: the interleaving of a
// reader with a Store on the same files.
type storeBetween struct {
	*FileStorage
	cfg   *Config
	t     *testing.T
	armed atomic.Bool
}

func (s *storeBetween) Load(ctx context.Context, key string) ([]byte, error) {
	data, err := s.FileStorage.Load(ctx, key)
	if key == s.cfg.CertPath && s.armed.CompareAndSwap(true, false) {
		storeOther(s.t, &FileStorage{}, s.cfg)
	}
	return data, err
}

// TestReadBetweenTheWritesOfAStore: a read of the certificate and key
// that falls between the two renames of another process's Store sees the
// old certificate with the new key; it is read again rather than reported
// as a broken pair, and the new certificate is served.
func TestReadBetweenTheWritesOfAStore(t *testing.T) {
	cfg := sharedTestConfig(t.TempDir())
	st := &storeBetween{FileStorage: &FileStorage{}, cfg: cfg, t: t}
	p, err := NewProvider(cfg, nil, nil, WithStorage(st), WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	first := servedSerial(t, p)
	st.armed.Store(true)
	if err := p.LoadCertsAll(); err != nil {
		t.Fatalf("LoadCertsAll between the writes of a Store: %v", err)
	}
	if st.armed.Load() {
		t.Fatal("the Store between the reads did not happen")
	}
	if got := servedSerial(t, p); got == first {
		t.Errorf("serving %s, the certificate from before the Store", got)
	}
	// A pair that stays broken is still reported, as ErrMissingCertificate.
	storeOther(t, &FileStorage{}, cfg)
	other := &Config{Provider: ProviderPseudo, Domains: cfg.Domains, CertPath: cfg.CertPath + ".other", KeyPath: cfg.KeyPath + ".other"}
	storeOther(t, &FileStorage{}, other)
	data, _ := st.FileStorage.Load(context.Background(), other.KeyPath)
	if err := st.FileStorage.Store(context.Background(), Entry{Key: cfg.KeyPath, Value: data, Private: true}); err != nil {
		t.Fatal(err)
	}
	if err := p.LoadCertsAll(); !errors.Is(err, ErrMissingCertificate) {
		t.Errorf("a mismatched pair: %v, want ErrMissingCertificate", err)
	}
}
