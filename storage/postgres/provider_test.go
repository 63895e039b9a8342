package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/pgtest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/autocert-dev/autocert/storage/postgres"
	"github.com/rs/zerolog"
)

// TestProviderOwnsStorage: a Provider built with New from a config whose
// storage block names postgres opens the database itself, logs through
// the Provider's logger (never the password), keeps its certificates
// there, and closes the pool on Close: a call that needs the storage
// afterwards fails with ErrClosed.
func TestProviderOwnsStorage(t *testing.T) {
	dsn := pgtest.SchemaDSN(t)
	dir := t.TempDir()
	cfg := &autocert.Config{
		Provider: autocert.ProviderPseudo,
		Domains:  []string{"pg.example"},
		CertPath: filepath.Join(dir, "c.crt"),
		KeyPath:  filepath.Join(dir, "c.key"),
		Storage:  &autocert.StorageConfig{Type: postgres.StorageType, DSN: autocert.Redacted(dsn)},
	}
	var logs syncbuf.Buffer
	ctx := context.Background()
	p, err := autocert.New(ctx, cfg, autocert.WithLogger(zerolog.New(&logs)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := p.ObtainAll(ctx, false); err != nil {
		t.Fatal(err)
	}
	if v, err := open(t, dsn).Load(ctx, cfg.CertPath); err != nil || !strings.Contains(string(v), "BEGIN CERTIFICATE") {
		t.Fatalf("the certificate is not in the database: %q, %v", v, err)
	}
	log := logs.String()
	if !strings.Contains(log, "postgres storage: connected") {
		t.Errorf("the storage New opened did not log through the Provider's logger:\n%s", log)
	}
	if u, err := url.Parse(dsn); err == nil {
		if pw, ok := u.User.Password(); ok && strings.Contains(log, pw) {
			t.Errorf("the log shows the password:\n%s", log)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Load(ctx); !errors.Is(err, postgres.ErrClosed) {
		t.Errorf("Load after Close: %v; want the storage closed (postgres.ErrClosed)", err)
	}
}
