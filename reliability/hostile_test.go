package reliability_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/rs/zerolog"
)

// allocated runs f and returns how many bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// sparse makes a sparse file of size bytes at path.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("-----BEGIN CERTIFICATE-----\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// TestHugeFilesAreNotRead points every file autocert reads at a sparse
// file of 4 GiB, and at /dev/zero: each is refused with an error naming
// it, after reading at most the limit (1 MiB; 4 MiB for ca_certs), and
// never loaded whole. An ACME certificate or key that is too large is
// replaced by a new one; an account key that is too large is an error and
// left as it is (replacing it would lose the account).
func TestHugeFilesAreNotRead(t *testing.T) {
	const huge = 4 << 30
	const budget = 64 << 20 // allocations allowed per step, far below huge
	ca := acmetest.New(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "huge")
	sparse(t, big, huge)
	sources := map[string]string{"sparse 4 GiB file": big}
	if _, err := os.Stat("/dev/zero"); err == nil {
		sources["/dev/zero"] = "/dev/zero"
	}
	for what, path := range sources {
		t.Run(what, func(t *testing.T) {
			check := func(step string, f func() error, wantErr bool) {
				t.Helper()
				var err error
				start := time.Now()
				n := allocated(func() { err = f() })
				if n > budget {
					t.Errorf("%s allocated %d MiB", step, n>>20)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("%s took %v", step, d)
				}
				if wantErr && (err == nil || !strings.Contains(err.Error(), "larger than the limit")) {
					t.Errorf("%s: %v, want an error about the size", step, err)
				}
				if !wantErr && err != nil {
					t.Errorf("%s: %v", step, err)
				}
				if err != nil {
					t.Logf("%s: %v", step, err)
				}
			}
			check("LoadConfig", func() error { _, err := autocert.LoadConfig(path); return err }, true)

			local := &autocert.Config{Provider: autocert.ProviderLocal, CertPath: path, KeyPath: filepath.Join(dir, "none.key")}
			check("local certificate", func() error {
				p, err := autocert.NewProvider(local, nil, nil, autocert.WithLogger(zerolog.Nop()))
				if err != nil {
					return err
				}
				return p.ObtainCertIfNotExistsAll()
			}, true)

			withCA := ca.Config("huge.example.com")
			withCA.CACerts = append(withCA.CACerts, path)
			withCA.CertPath, withCA.KeyPath = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
			check("ca_certs", func() error { return withCA.Validate() }, true)

			acct := caConfig(ca, t.TempDir(), "huge.example.com")
			acct.ACMEKeyPath = path
			check("account key", func() error {
				_, _, err := acct.GetLegoConfig()
				if err != nil && !errors.Is(err, autocert.ErrAccountKey) {
					t.Errorf("account key error %v does not wrap ErrAccountKey", err)
				}
				return err
			}, true)
		})
	}

	// An ACME certificate and key that are too large: replaced.
	cdir := t.TempDir()
	cfg := caConfig(ca, cdir, "huge.example.com")
	sparse(t, cfg.CertPath, huge)
	sparse(t, cfg.KeyPath, huge)
	p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if n := allocated(func() {
		if err := p.ObtainCertIfNotExistsAll(); err != nil {
			t.Fatal(err)
		}
	}); n > budget {
		t.Errorf("obtaining over huge files allocated %d MiB", n>>20)
	}
	for _, f := range []string{cfg.CertPath, cfg.KeyPath} {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 64<<10 {
			t.Errorf("%s not replaced: %v %v", f, fi.Size(), err)
		}
	}
	if _, err := handshake(p.GetCert, "huge.example.com", ca.Roots()); err != nil {
		t.Error(err)
	}
	if fi, err := os.Stat(big); err != nil || fi.Size() != huge {
		t.Errorf("the huge file was changed: %v", err)
	}
}

// TestPathTraversalRefused tries to reach other files through the values
// of a configuration: domains, a provider name, a CA URL (which names the
// default account key file) and environment variables. Domains never
// become file names; invalid ones are refused, each reported. Records
// (last failure, renewal information) stay in the directory of cert_path.
func TestPathTraversalRefused(t *testing.T) {
	hostile := []string{
		"../../etc/passwd", "..", ".", "a/../../b.example.com", "example.com/../../x",
		`..\..\windows`, "a..example.com", "%2e%2e%2fetc.example.com", "ex\x00ample.com",
		"/etc/passwd", "~root.example.com", "*.*.example.com", "*/..",
	}
	t.Setenv("AUTOCERT_TEST_DOMAIN", "../../../etc/shadow")
	var doc strings.Builder
	doc.WriteString("provider: pseudo\ndomains:\n")
	for _, d := range hostile {
		doc.WriteString("  - " + strings.ReplaceAll(yamlQuote(d), "\x00", `\0`) + "\n")
	}
	doc.WriteString("  - ${AUTOCERT_TEST_DOMAIN}\n")
	_, err := autocert.ParseConfig([]byte(doc.String()))
	if err == nil {
		t.Fatal("hostile domains accepted")
	}
	msg := err.Error()
	for i := range len(hostile) + 1 {
		if !strings.Contains(msg, "domains["+strconv.Itoa(i)+"]") {
			t.Errorf("domains[%d] (%q) not reported:\n%s", i, append(hostile, "${AUTOCERT_TEST_DOMAIN}")[i], msg)
		}
	}
	if _, err := autocert.ParseConfig([]byte("provider: ../../bin/sh\ndomains: [a.example.com]\n")); err == nil ||
		!errors.Is(err, autocert.ErrUnknownProvider) {
		t.Errorf("provider ../../bin/sh: %v, want an unknown provider", err)
	}

	// A CA URL full of dots names an account key file inside certs/.
	cfg := &autocert.Config{Provider: acmetest.ProviderName, Email: "a@example.com", Domains: []string{"a.example.com"},
		CADirURL: "https://ca.example/../../../../etc/passwd/%2e%2e/", Options: autocert.Options{
			acmetest.OptionAPIURL: "http://127.0.0.1:1", acmetest.OptionAPIToken: "token-token"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(cfg.ACMEKeyPath) != "certs" || strings.Contains(cfg.ACMEKeyPath, "..") {
		t.Errorf("account key path %q, want a file in certs/", cfg.ACMEKeyPath)
	}

	// With cert_path written with "..", what autocert writes lands in
	// the directory that path names, and nowhere else.
	ca := acmetest.New(t)
	root := t.TempDir()
	c := caConfig(ca, filepath.Join(root, "a", "..", "b"), "traversal.example.com")
	c.ACMEKeyPath = filepath.Join(root, "account", "acme.key")
	p := newProvider(t, c, autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	ca.FailOrders(1, acmetest.Problem{Type: "serverInternal"})
	p.ForceExpiryAll()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p.WaitRenewalDone(ctx)
	var files []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
			if dir := filepath.Dir(rel); dir != "b" && dir != "account" {
				t.Errorf("file written outside the configured directories: %s", rel)
			}
		}
		return nil
	})
	if !slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "b/.last_failure-") }) {
		t.Errorf("no last-failure record beside the certificate: %v", files)
	}
}

// TestSymlinkedPaths: reads follow symbolic links (a certbot-style layout
// of links loads, for "local" certificates and account keys); writes
// replace a link by a regular file and never write through it, so a key
// path linked to another file cannot make autocert overwrite that file.
func TestSymlinkedPaths(t *testing.T) {
	ca := acmetest.New(t)
	root := t.TempDir()
	elsewhere := filepath.Join(root, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	precious := []byte("precious data that is not a key\n")
	target := filepath.Join(elsewhere, "precious.txt")
	if err := os.WriteFile(target, precious, 0o644); err != nil {
		t.Fatal(err)
	}

	// 1. An ACME certificate whose key_path and cert_path are links to
	// another file.
	dir := filepath.Join(root, "certs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := caConfig(ca, dir, "links.example.com")
	for _, f := range []string{cfg.KeyPath, cfg.CertPath} {
		if err := os.Symlink(target, f); err != nil {
			t.Fatal(err)
		}
	}
	p := newProvider(t, cfg, autocert.WithLogger(zerolog.Nop()))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, precious) {
		t.Errorf("the file the links pointed at was overwritten: %q", got)
	}
	for f, mode := range map[string]os.FileMode{cfg.KeyPath: 0o600, cfg.CertPath: 0o644} {
		fi, err := os.Lstat(f)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
			t.Errorf("%s after the obtain: %v %v, want a regular file %v", filepath.Base(f), fi.Mode(), err, mode)
		}
	}

	// 2. A "local" certificate in a certbot-style layout of links, and an
	// account key reached through a link: both load.
	live, archive := filepath.Join(root, "live"), filepath.Join(root, "archive")
	for _, d := range []string{live, archive} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for src, name := range map[string]string{cfg.CertPath: "cert1.pem", cfg.KeyPath: "privkey1.pem", cfg.ACMEKeyPath: "acme1.pem"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(archive, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		link := map[string]string{"cert1.pem": "cert.pem", "privkey1.pem": "privkey.pem", "acme1.pem": "acme.pem"}[name]
		if err := os.Symlink(filepath.Join("..", "archive", name), filepath.Join(live, link)); err != nil {
			t.Fatal(err)
		}
	}
	local := &autocert.Config{Provider: autocert.ProviderLocal, Domains: []string{"links.example.com"},
		CertPath: filepath.Join(live, "cert.pem"), KeyPath: filepath.Join(live, "privkey.pem")}
	lp, err := autocert.NewProvider(local, nil, nil, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatalf("local certificate through links: %v", err)
	}
	if _, err := handshake(lp.GetCert, "links.example.com", ca.Roots()); err != nil {
		t.Error(err)
	}
	accounts := ca.Accounts()
	linked := caConfig(ca, t.TempDir(), "links.example.com")
	linked.ACMEKeyPath = filepath.Join(live, "acme.pem")
	lp2 := newProvider(t, linked, autocert.WithLogger(zerolog.Nop()))
	if err := lp2.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	if ca.Accounts() != accounts {
		t.Errorf("an account key reached through a link made a new account")
	}
	if fi, err := os.Lstat(linked.ACMEKeyPath); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the account key link was replaced: %v", err)
	}
}

func yamlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
