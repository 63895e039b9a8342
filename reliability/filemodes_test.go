package reliability_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/rs/zerolog"
)

// TestFileModesUnderUmask obtains, renews and fails to renew a certificate
// under the umasks 0, 022 and 077, in directories the library creates,
// then looks at every file and directory: private keys (certificate and
// account) 0600, certificates 0644, no file or directory writable by
// others, no private file readable by them, last-failure records 0600,
// directories 0755. A key file a user left readable by all is 0600 again
// after the renewal.
func TestFileModesUnderUmask(t *testing.T) {
	for _, mask := range []int{0, 0o022, 0o077} {
		t.Run(fmt.Sprintf("umask %03o", mask), func(t *testing.T) {
			ca := acmetest.New(t)
			root := t.TempDir()
			cfg := ca.Config("modes.example.com")
			cfg.CertPath = filepath.Join(root, "certs", "live", "cert.crt")
			cfg.KeyPath = filepath.Join(root, "certs", "private", "priv.key")
			cfg.ACMEKeyPath = filepath.Join(root, "account", "acme.key")

			old := syscall.Umask(mask)
			defer syscall.Umask(old)

			p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
			if err := p.ObtainCertIfNotExistsAll(); err != nil {
				t.Fatal(err)
			}
			// A key made readable by all, by hand.
			if err := os.Chmod(cfg.KeyPath, 0o666); err != nil {
				t.Fatal(err)
			}
			force := func() {
				p.ForceExpiryAll()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				p.WaitRenewalDone(ctx)
			}
			force() // succeeds: new files
			ca.FailOrders(1, acmetest.Problem{Type: "serverInternal"})
			force() // fails: a last-failure record

			want := map[string]os.FileMode{
				cfg.CertPath:    0o644,
				cfg.KeyPath:     0o600,
				cfg.ACMEKeyPath: 0o600,
			}
			seen := 0
			err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				fi, err := d.Info()
				if err != nil {
					return err
				}
				mode := fi.Mode().Perm()
				rel, _ := filepath.Rel(root, path)
				if mode&0o002 != 0 {
					t.Errorf("%s is writable by others: %v", rel, mode)
				}
				if m, ok := want[path]; ok {
					seen++
					if mode != m {
						t.Errorf("%s: mode %v, want %v", rel, mode, m)
					}
				}
				if strings.HasPrefix(filepath.Base(path), ".last_failure-") && mode != 0o600 {
					t.Errorf("%s holds error text: mode %v, want 0600", rel, mode)
				}
				if d.IsDir() && path != root && mode != 0o755 {
					t.Errorf("directory %s made by the library: mode %v, want 0755 (the certificates stay readable by other users)", rel, mode)
				}
				private := strings.HasSuffix(path, ".key") || strings.Contains(filepath.Base(path), "journal")
				if private && mode&0o077 != 0 {
					t.Errorf("%s holds a secret and is open to others: %v", rel, mode)
				}
				if d.IsDir() && path != root && mode&0o022 != 0 && mask&0o022 != 0 {
					t.Errorf("directory %s is writable beyond its owner under umask %03o: %v", rel, mask, mode)
				}
				t.Logf("%v %s", mode, rel)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if seen != len(want) {
				t.Errorf("found %d of the %d files", seen, len(want))
			}
			if m, _ := filepath.Glob(filepath.Join(root, "certs", "live", ".last_failure-*")); len(m) != 1 {
				t.Errorf("last-failure records %v, want one", m)
			}
		})
	}
}
