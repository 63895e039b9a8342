package autocert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
	"github.com/rs/zerolog"
)

// storageOpenTimeout bounds the opening of the storage of a config's
// storage block by GetLegoConfig and New, and the reading or creation of
// the account keys that follows.
const storageOpenTimeout = 30 * time.Second

// account is an ACME account: its user (contact, key, registration at the
// CA) and the lego configuration of its CA. The certificates on the same
// CA and account key share one, so that the account is looked up or
// registered once.
type account struct {
	user    *User
	legoCfg *lego.Config
	certs   []*certificate // the certificates on it, in configured order; set by New
	logger  zerolog.Logger // the Provider's

	mu      sync.Mutex // one client made at a time: the lookup or registration happens once
	checked bool       // the CA's directory was checked for the certificates' profiles; guarded by mu
}

// newAccounts returns the issuers of the main block and of each extra, in
// that order, each with its account (nil for a certificate that uses no
// ACME). The main block's first issuer's account is the one given to
// NewProvider, or read from s.storage. Issuers on the same CA and account
// key share one account, across certificates; others get their own, one
// per CA and account key, their keys read (or created) in s.storage.
func newAccounts(ctx context.Context, cfg *Config, s *settings) ([][]*issuerSlot, error) {
	out := make([][]*issuerSlot, 1+len(cfg.Extra))
	byKey := map[string]*account{}
	key := func(c *Config) string { return caKey(c.CADirURL) + "\x00" + c.ACMEKeyPath }
	// A user given without a key: a tool that only reads, for which no
	// account key is read or made.
	readOnly := s.account != nil && s.account.user != nil && s.account.user.Key == nil
	if s.account != nil && isACME(cfg.Provider) {
		if s.account.user == nil || s.account.legoCfg == nil {
			return nil, fmt.Errorf("main: %w: provider %q needs the user and lego config from GetLegoConfig", ErrInvalidConfig, cfg.Provider)
		}
		first := cfg.issuerConfigs()[0]
		byKey[key(first)] = &account{user: s.account.user, legoCfg: s.account.legoCfg, logger: s.logger}
	}
	var errs []error
	for i := range 1 + len(cfg.Extra) {
		ccfg, name := cfg, "main"
		if i > 0 {
			merged := MergeExtraConfig(cfg, &cfg.Extra[i-1])
			ccfg, name = (*Config)(&merged), fmt.Sprintf("extra[%d]", i-1)
		}
		if !isACME(ccfg.Provider) {
			continue
		}
		for _, icfg := range ccfg.issuerConfigs() {
			a, ok := byKey[key(icfg)]
			if !ok {
				if readOnly {
					u := &User{Email: icfg.Email}
					lc := lego.NewConfig(u)
					lc.CADirURL = icfg.CADirURL
					a = &account{user: u, legoCfg: lc, logger: s.logger}
				} else {
					var err error
					if a, err = loadAccount(ctx, icfg, s); err != nil {
						if i == 0 {
							return nil, err
						}
						errs = append(errs, fmt.Errorf("%s: %w", name, err))
						continue
					}
				}
				byKey[key(icfg)] = a
			}
			out[i] = append(out[i], &issuerSlot{cfg: icfg, acct: a})
		}
	}
	logResolverSharing(acmeConfigs(cfg), s.logger)
	return out, errors.Join(errs...)
}

// loadAccount makes the account of cfg (a validated, merged block), its key
// read from s.storage or created there.
func loadAccount(ctx context.Context, cfg *Config, s *settings) (*account, error) {
	user, lc, err := cfg.legoConfig(ctx, s.storage)
	if err != nil {
		return nil, err
	}
	return &account{user: user, legoCfg: lc, logger: s.logger}, nil
}

// GetLegoConfig is GetLegoConfigContext(context.Background()).
func (cfg *Config) GetLegoConfig() (*User, *lego.Config, error) {
	return cfg.GetLegoConfigContext(context.Background())
}

// GetLegoConfigContext validates the configuration and returns what a
// lego client needs: the ACME account user, with its key loaded from
// acme_key_path or, when that file does not exist, created (ECDSA P-256,
// stored as PEM with mode 0600), and the lego configuration: CA directory,
// user agent, certificate key type, and an HTTP client that trusts the
// system roots plus ca_certs. Each call returns a new HTTP client.
//
// For the "local" and "pseudo" providers, which do not use ACME, it
// returns (nil, nil, nil) once the configuration is valid.
//
// An account key file that exists but cannot be used is an error wrapping
// ErrAccountKey; the file is left untouched.
//
// When the config has a storage block naming a shared store (such as
// postgres), the account key is kept there under acme_key_path instead of
// in a file: the storage is opened for the call and closed before it
// returns, and the key is created under the storage's lock after reading
// it again, so that instances starting together end up with one key,
// hence one ACME account. ctx bounds it all (at most 30 seconds in any
// case).
func (cfg *Config) GetLegoConfigContext(ctx context.Context) (*User, *lego.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if !isACME(cfg.Provider) {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, storageOpenTimeout)
	defer cancel()
	st, err := cfg.openStorage(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer closeStorage(st)
	return cfg.legoConfig(ctx, st)
}

// legoConfig is GetLegoConfigContext on a validated block, with the
// account key kept in st.
//
// With issuers, the account is that of the first issuer.
func (cfg *Config) legoConfig(ctx context.Context, st Storage) (*User, *lego.Config, error) {
	if !isACME(cfg.Provider) {
		return nil, nil, nil
	}
	cfg = cfg.issuerConfigs()[0]
	roots, err := caCertPool(cfg.CACerts)
	if err != nil {
		return nil, nil, err
	}
	key, err := loadOrCreateAccountKey(ctx, st, cfg.ACMEKeyPath)
	if err != nil {
		return nil, nil, err
	}
	keyType, _ := legoKeyType(cfg.CertificateKeyType)
	user := &User{Email: cfg.Email, Key: key}
	return user, &lego.Config{
		CADirURL:   cfg.CADirURL,
		User:       user,
		UserAgent:  userAgent,
		HTTPClient: newACMEHTTPClient(roots),
		Certificate: lego.CertificateConfig{
			KeyType: keyType,
			Timeout: 30 * time.Second,
		},
	}, nil
}

// caCertPool returns the system roots plus the certificates of files, or
// nil (the system roots) when files is empty.
func caCertPool(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for i, f := range files {
		certs, err := readCACertFile(f)
		if err != nil {
			return nil, &FieldError{Path: fmt.Sprintf("ca_certs[%d]", i), Msg: err.Error()}
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// newACMEHTTPClient returns a new HTTP client for talking to the CA. Lego
// wraps the client's transport, so every lego configuration gets its own
// client. The timeouts are the transport's, not http.Client.Timeout: lego
// leaves some response bodies unclosed, and with a client timeout each of
// those would keep a goroutine alive.
func newACMEHTTPClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   30 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          10,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ExpectContinueTimeout: 1 * time.Second,
			TLSClientConfig: &tls.Config{
				RootCAs:    roots,
				MinVersion: tls.VersionTLS12,
			},
		},
	}
}

// client returns a lego client for c's orders and renewal information,
// bound to ctx: a request to the CA made once ctx has ended fails with
// ctx's error, and one in flight is cancelled. It fetches the CA's
// directory and, the first time on the account, checks the certificates'
// profiles against it and finds or registers the account. A client is made
// for each order and each fetch of renewal information; lego v4's calls
// take no context, and this is how one reaches them.
func (c *certificate) client(ctx context.Context, is *issuerSlot) (*lego.Client, error) {
	a := is.acct
	a.mu.Lock()
	defer a.mu.Unlock()

	cfg := *a.legoCfg
	// The certificates of an account share its lego config, but each is
	// ordered with its own key type.
	if kt, ok := legoKeyType(c.cfg.CertificateKeyType); ok {
		cfg.Certificate.KeyType = kt
	}
	base := a.legoCfg.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if c.progress != nil {
		base = progressTransport{base, c}
	}
	cfg.HTTPClient = boundClient(a.legoCfg.HTTPClient, base, ctx)
	cfg.User = a.user
	client, err := lego.NewClient(&cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ACME directory %s: %w", cfg.CADirURL, ctx.Err())
		}
		if unknownAuthority(err) {
			return nil, &caSideError{fmt.Errorf("ACME directory %s: %w (for a private CA, set ca_certs to the PEM file of the root that signs its HTTPS certificate)", cfg.CADirURL, err)}
		}
		return nil, &caSideError{fmt.Errorf("ACME directory %s: %w", cfg.CADirURL, err)}
	}
	if err := c.checkDirectory(ctx, &cfg, client, is); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, &caSideError{err}
	}
	if a.user.GetRegistration() == nil {
		c.report(StepAccount, "", "looking up the ACME account at "+cfg.CADirURL, 0)
		reg, err := c.findOrRegister(client, is)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, &caSideError{err}
		}
		a.user.setRegistration(reg)
	}
	if c.dns != nil {
		// Each record goes where dns_challenge_alias and the CNAME chain,
		// as the certificate's resolvers see it, say (challenge.go).
		d, dns := c.newChallengeDNS(ctx, c.dns)
		if err := client.Challenge.SetDNS01Provider(c.withProgress(markDNSErrors(dns)), c.dnsOptions(ctx, d)...); err != nil {
			return nil, err
		}
	}
	return client, nil
}

// unknownAuthority reports whether err says the CA's HTTPS certificate
// is not signed by a trusted root (a private CA without ca_certs).
func unknownAuthority(err error) bool {
	var unknown x509.UnknownAuthorityError
	return errors.As(err, &unknown) || strings.Contains(err.Error(), "certificate signed by unknown authority")
}

// userAgent is the User-Agent of autocert's requests to a CA.
const userAgent = "autocert/" + Version

// boundClient returns a copy of hc sending its requests through base
// under ctx. Each lego client gets its own copy: lego wraps the transport
// of the client it is given.
func boundClient(hc *http.Client, base http.RoundTripper, ctx context.Context) *http.Client {
	bound := *hc
	bound.Transport = boundTransport{base, ctx}
	return &bound
}

// boundTransport sends the requests of a lego client under ctx.
type boundTransport struct {
	base http.RoundTripper
	ctx  context.Context
}

func (t boundTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.ctx.Err(); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// findOrRegister finds the ACME account of the user's key, or registers
// one (with External Account Binding when configured), agreeing to the
// CA's terms of service.
func (c *certificate) findOrRegister(client *lego.Client, is *issuerSlot) (*registration.Resource, error) {
	reg, err := client.Registration.ResolveAccountByKey()
	if err == nil {
		c.logger.Info().Str("account", reg.URI).Msg("registration reused")
		return reg, nil
	}
	if !accountGone(err) {
		return nil, fmt.Errorf("looking up ACME account: %w", err)
	}
	if is.cfg.EABKid != "" {
		reg, err = client.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
			TermsOfServiceAgreed: true,
			Kid:                  is.cfg.EABKid,
			HmacEncoded:          is.cfg.EABHmac.Value(),
		})
	} else {
		reg, err = client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	}
	if err != nil {
		return nil, fmt.Errorf("registering ACME account: %w", err)
	}
	c.logger.Info().Str("account", reg.URI).Msg("registered ACME account")
	return reg, nil
}

// accountGone reports whether err is the CA's answer that the account
// signing the request does not exist.
func accountGone(err error) bool {
	var prob *acme.ProblemDetails
	return errors.As(err, &prob) && prob.Type == "urn:ietf:params:acme:error:accountDoesNotExist"
}

// forget drops the account's registration, which the CA no longer knows
// (its database was reset, the account was deactivated), so that the next
// client finds or registers the account anew.
func (a *account) forget() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.user.setRegistration(nil)
}
