package autocert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/rs/zerolog"
)

// certificate is one certificate of a Provider, the main block's or an
// extra's: its configuration (merged with the main block), its ACME
// account, its DNS provider, its keys in storage, and the certificate it
// serves. What it knows of its renewal (failures, renewal information, the
// next renewal) is the scheduler's (renewState). Its methods read and
// write storage and the CA, and return what happened as an outcome.
type certificate struct {
	name     string             // "main" or "extra[N]"
	cfg      *Config            // validated; for an extra, merged with the main block
	acct     *account           // the first issuer's; nil for local and pseudo
	issuers  []*issuerSlot      // the CAs to order from, in order; none for local and pseudo
	dns      challenge.Provider // nil for local and pseudo
	storage  Storage
	clock    Clock
	logger   zerolog.Logger // with the certificate's name
	progress func(Progress)
	scrubber *redact.Lazy // the secrets of cfg; shared by the certificates with the same secrets
	sni      *sniIndex    // where the certificate served is published
	sniPos   int          // position in sni: 0 for main, then the extras in order; set and read by sni

	failureKey string // storage key of the last-failure record (a time alone)
	detailKey  string // storage key of the failure record's detail
	ariKey     string // storage key of the persisted renewal information
	issuerKey  string // storage key of the record of the CA that issued the certificate stored
	fp         string // cfg.fingerprint(), kept in failure records
	// writesFiles: the storage is not the file layout, and the
	// certificate files are written beside it for the tools that read
	// them ("local" certificates never: their files are another tool's).
	writesFiles bool

	obtainMu sync.Mutex // one obtain at a time

	// serveMu makes reading the stored certificate and serving it one
	// step, so that a reload racing with an obtain never serves the older
	// of two certificates; the certificate files are written under it.
	serveMu  sync.Mutex
	filesErr bool                            // the last write of the certificate files failed; guarded by serveMu
	served   atomic.Pointer[tls.Certificate] // Leaf set
}

func newCertificate(name string, cfg *Config, issuers []*issuerSlot, s *settings, sni *sniIndex) (*certificate, error) {
	_, files := s.storage.(*FileStorage)
	var acct *account
	if len(issuers) > 0 {
		acct = issuers[0].acct
	}
	c := &certificate{
		name:        name,
		cfg:         cfg,
		acct:        acct,
		issuers:     issuers,
		storage:     s.storage,
		clock:       s.clock,
		logger:      s.logger.With().Str("provider", name).Logger(),
		progress:    s.progress,
		scrubber:    s.scrubbers.Get(cfg.secrets()...),
		sni:         sni,
		failureKey:  failureKey(cfg.CertPath, cfg.KeyPath),
		detailKey:   failureDetailKey(cfg.CertPath, cfg.KeyPath),
		ariKey:      ariKey(cfg.CertPath, cfg.KeyPath),
		issuerKey:   issuerKey(cfg.CertPath, cfg.KeyPath),
		fp:          cfg.fingerprint(),
		writesFiles: !files && cfg.Provider != ProviderLocal,
	}
	if !isACME(cfg.Provider) {
		return c, nil
	}
	f, ok := LookupProvider(cfg.Provider)
	if !ok {
		return nil, fmt.Errorf("%s: %w %q", name, ErrUnknownProvider, cfg.Provider)
	}
	dns, err := f.NewDNSProvider(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("%s: DNS provider %s: %w", name, cfg.Provider, err)
	}
	c.dns = dns
	return c, nil
}

func isACME(provider string) bool {
	return provider != ProviderLocal && provider != ProviderPseudo
}

// acme reports whether c is obtained from an ACME CA.
func (c *certificate) acme() bool { return isACME(c.cfg.Provider) }

// local reports whether c's files are maintained by another tool.
func (c *certificate) local() bool { return c.cfg.Provider == ProviderLocal }

// current returns the certificate served, nil when none is.
func (c *certificate) current() *tls.Certificate { return c.served.Load() }

// scrub removes c's secrets from msg.
func (c *certificate) scrub(msg string) string { return c.scrubber.Scrub(msg) }

// storedCert is a certificate as read from storage: the parsed pair and
// the PEM texts it was parsed from.
type storedCert struct {
	cert            *tls.Certificate
	certPEM, keyPEM []byte
}

// load reads the certificate and key from storage. It returns the
// certificate when it loads (even if it needs replacing) with the PEM texts
// it was parsed from, why it needs replacing ("" when it does not), or an
// error when there is nothing usable.
//
// The certificate and the key are two reads: one that falls between the
// two writes of a Store by another process can see the new certificate
// with the old key. A pair that does not parse is therefore read again a
// few times, pairReadRetry apart, before it is reported.
func (c *certificate) load(ctx context.Context) (storedCert, string, error) {
	for try := 1; ; try++ {
		sc, why, err := c.loadPair(ctx)
		if !errors.Is(err, errPairUnparsed) || try == pairReadTries {
			return sc, why, err
		}
		t := time.NewTimer(time.Duration(try) * pairReadRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return sc, why, err
		case <-t.C:
		}
	}
}

// Reading a certificate and its key again when they do not make a pair.
const (
	pairReadTries = 3
	pairReadRetry = 10 * time.Millisecond
)

// errPairUnparsed marks a certificate and key that were read but do not
// parse as a pair.
var errPairUnparsed = errors.New("certificate and key do not parse as a pair")

// loadPair is one read of the certificate and key, for load.
func (c *certificate) loadPair(ctx context.Context) (storedCert, string, error) {
	certPEM, err := c.storage.Load(ctx, c.cfg.CertPath)
	if err != nil {
		return storedCert{}, "", loadError("certificate", c.cfg.CertPath, err)
	}
	keyPEM, err := c.storage.Load(ctx, c.cfg.KeyPath)
	if err != nil {
		return storedCert{}, "", loadError("key", c.cfg.KeyPath, err)
	}
	cert, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		return storedCert{}, "", &pairError{certPath: c.cfg.CertPath, keyPath: c.cfg.KeyPath, err: err}
	}
	c.sni.share(cert)
	return storedCert{cert, certPEM, keyPEM}, c.mismatch(cert.Leaf, cert.PrivateKey), nil
}

// loadOnly loads the stored certificate and serves it, writing no file:
// Provider.Load.
func (c *certificate) loadOnly(ctx context.Context) error {
	c.serveMu.Lock()
	defer c.serveMu.Unlock()
	sc, _, err := c.load(ctx)
	if err == nil {
		c.publishLocked(sc.cert)
	}
	return err
}

// pairError says a stored certificate and key do not load as a pair. It
// is ErrMissingCertificate for errors.Is, and unwraps to the parse error.
type pairError struct {
	certPath, keyPath string
	err               error
}

func (e *pairError) Error() string {
	return fmt.Sprintf("%v: %s and %s: %v", ErrMissingCertificate, e.certPath, e.keyPath, e.err)
}

func (e *pairError) Unwrap() error { return e.err }

func (e *pairError) Is(target error) bool {
	return target == ErrMissingCertificate || target == errPairUnparsed
}

// missingFileError says a certificate or key file does not exist. It is
// both ErrMissingCertificate and fs.ErrNotExist for errors.Is.
type missingFileError struct {
	what, path string
}

func (e *missingFileError) Error() string {
	return fmt.Sprintf("%v: %s file %s does not exist", ErrMissingCertificate, e.what, e.path)
}

func (e *missingFileError) Is(target error) bool {
	return target == ErrMissingCertificate || target == fs.ErrNotExist
}

func loadError(what, path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &missingFileError{what, path}
	}
	return fmt.Errorf("%w: reading %s file %s: %w", ErrMissingCertificate, what, path, err)
}

// mismatch says why a loaded certificate no longer fits the config: other
// names, another key type, or expired. It returns "" when it fits.
func (c *certificate) mismatch(leaf *x509.Certificate, key crypto.PrivateKey) string {
	if now := c.clock.Now(); !now.Before(leaf.NotAfter) {
		return "certificate expired at " + leaf.NotAfter.Format(time.RFC3339)
	}
	if len(c.cfg.Domains) > 0 && !sameNames(leaf.DNSNames, c.cfg.Domains) {
		return fmt.Sprintf("certificate names %v differ from configured domains %v", leaf.DNSNames, c.cfg.Domains)
	}
	if !c.local() && c.cfg.CertificateKeyType != "" {
		if kt := keyTypeName(key); kt != c.cfg.CertificateKeyType {
			return fmt.Sprintf("certificate key type %s differs from configured %s", kt, c.cfg.CertificateKeyType)
		}
	}
	return ""
}

func sameNames(have, want []string) bool {
	if len(have) != len(want) {
		return false
	}
	h := make([]string, len(have))
	for i, n := range have {
		h[i] = strings.ToLower(n)
	}
	w := make([]string, len(want))
	for i, n := range want {
		w[i] = strings.ToLower(n)
	}
	slices.Sort(h)
	slices.Sort(w)
	return slices.Equal(h, w)
}

// keyTypeName names a private key in the config's terms (EC256, RSA2048...).
func keyTypeName(key crypto.PrivateKey) string {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "EC256"
		case elliptic.P384():
			return "EC384"
		}
		return "EC"
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA%d", k.N.BitLen())
	case ed25519.PrivateKey:
		return "ED25519"
	}
	return fmt.Sprintf("%T", key)
}

func parseKeyPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

// serveLocked serves sc, after writing its files when c writes them
// (whether or not that succeeds), and returns the certificate served
// before (nil when none was). The caller holds c.serveMu.
func (c *certificate) serveLocked(sc storedCert) (prev *tls.Certificate) {
	c.writeFilesLocked(sc)
	return c.publishLocked(sc.cert)
}

// publishLocked serves cert and updates the SNI snapshot with it; it
// returns the certificate served before. The caller holds c.serveMu.
func (c *certificate) publishLocked(cert *tls.Certificate) (prev *tls.Certificate) {
	prev = c.served.Swap(cert)
	c.sni.update(c)
	return prev
}

// store stores the certificate and key of a new certificate and serves
// them, as one step: a reload that the change notification of this Store
// starts finds it served. It returns the certificate served before.
func (c *certificate) store(ctx context.Context, certPEM, keyPEM []byte) (cert, prev *tls.Certificate, err error) {
	if cert, err = parseKeyPair(certPEM, keyPEM); err != nil {
		return nil, nil, err
	}
	c.sni.share(cert)
	c.serveMu.Lock()
	defer c.serveMu.Unlock()
	err = c.storage.Store(ctx,
		Entry{Key: c.cfg.CertPath, Value: certPEM},
		Entry{Key: c.cfg.KeyPath, Value: keyPEM, Private: true},
	)
	if err != nil {
		return nil, nil, fmt.Errorf("saving certificate: %w", err)
	}
	return cert, c.serveLocked(storedCert{cert, certPEM, keyPEM}), nil
}

// writeFilesLocked writes the files of sc that do not already hold it:
// the certificate files (cert_path 0644, key_path 0600, each crash-safely,
// the key first) when c writes them beside a storage that is not the file
// layout, and the bundle (bundle_path, 0600, one atomic rename) when it is
// configured. A failure is logged (at Error the first time, then at Debug
// until a write succeeds again) and never stops the certificate from being
// served; the files are written again at the next change, at every
// periodic re-read, and at the next start. The caller holds c.serveMu.
func (c *certificate) writeFilesLocked(sc storedCert) {
	if sc.certPEM == nil || !c.writesFiles && c.cfg.BundlePath == "" {
		return
	}
	var err error
	if c.writesFiles {
		err = writeFileIfChanged(c.cfg.KeyPath, sc.keyPEM, true)
		if err == nil {
			err = writeFileIfChanged(c.cfg.CertPath, sc.certPEM, false)
		}
	}
	if err == nil && c.cfg.BundlePath != "" {
		err = writeFileIfChanged(c.cfg.BundlePath, bundlePEM(sc), true)
	}
	switch {
	case err != nil && !c.filesErr:
		c.filesErr = true
		c.logger.Error().Err(err).Str("cert_path", c.cfg.CertPath).Str("key_path", c.cfg.KeyPath).
			Str("bundle_path", c.cfg.BundlePath).
			Msg("cannot write the certificate files; the certificate is served all the same, and writing is retried")
	case err != nil:
		c.logger.Debug().Err(err).Msg("cannot write the certificate files")
	case c.filesErr:
		c.filesErr = false
		c.logger.Info().Str("cert_path", c.cfg.CertPath).Msg("certificate files written again")
	}
}

// bundlePEM is the bundle of sc: the private key, then the chain, each
// ending with a newline.
func bundlePEM(sc storedCert) []byte {
	b := make([]byte, 0, len(sc.keyPEM)+len(sc.certPEM)+1)
	b = append(b, sc.keyPEM...)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	return append(b, sc.certPEM...)
}

// writeFileIfChanged replaces path with data, crash-safely and with the
// modes of FileStorage, unless it already holds exactly data.
func writeFileIfChanged(path string, data []byte, private bool) error {
	if cur, err := readFileLimited(path, maxFileSize); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return writeFileAtomic(path, data, private)
}

// reload loads the certificate in storage and serves it if it is not the
// one served: outAdopted, or outNone when it is the one served (its files
// are then written if they do not hold it). A stored certificate that no
// longer fits the config is refused, except for "local" certificates
// (served with a warning: another tool owns them).
func (c *certificate) reload(ctx context.Context) outcome {
	c.serveMu.Lock()
	defer c.serveMu.Unlock()
	sc, why, err := c.load(ctx)
	if err != nil {
		return outcome{kind: outNone, err: err}
	}
	if cur := c.current(); cur != nil && cur.Leaf.Equal(sc.cert.Leaf) {
		c.writeFilesLocked(sc)
		return outcome{kind: outNone}
	}
	if why != "" {
		if !c.local() {
			return outcome{err: fmt.Errorf("%w: stored certificate not usable: %s", ErrMissingCertificate, why)}
		}
		c.logger.Warn().Str("reason", why).Msg("local certificate does not match the config")
	}
	prev := c.serveLocked(sc)
	return outcome{kind: outAdopted, cert: sc.cert, prev: prev}
}
