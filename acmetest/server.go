package acmetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Email is the ACME account contact that Server.Config sets.
const Email = "admin@example.com"

// Server is a running ACME CA with its DNS server. Its methods are safe for
// concurrent use.
type Server struct {
	settings settings
	ca       *ca.CAImpl
	mgmt     http.Handler // Pebble's management API, called in-process
	front    *front
	acme     *httptest.Server
	gate     *gateListener
	api      *httptest.Server
	txt      *txtAPI
	dns      *dnsServer
	dir      string // temporary directory holding the trust file
	token    string

	closeOnce sync.Once
	closeErr  error
}

// New starts a Server for the test tb and stops it when the test ends. It
// fails the test if the server cannot start.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := Start(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// Start starts a Server; Close stops it.
func Start(opts ...Option) (*Server, error) {
	st := settings{log: io.Discard}
	for _, o := range opts {
		o(&st)
	}
	if err := errors.Join(st.errs...); err != nil {
		return nil, fmt.Errorf("acmetest: %w", err)
	}
	if st.noProfiles && len(st.profiles) > 0 {
		return nil, errors.New("acmetest: WithoutProfiles and WithProfile both given")
	}
	if len(st.profiles) == 0 {
		st.profiles = map[string]profile{
			defaultProfile: {description: "The default profile (90 days)", validity: defaultValidity},
		}
	}

	d, err := acquireDNS()
	if err != nil {
		return nil, err
	}
	s := &Server{settings: st, dns: d}
	if err := s.start(); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// start builds the CA and its servers; Close undoes what it did.
func (s *Server) start() error {
	st := s.settings
	// Pebble reads these when its VA and front end are built.
	for k, v := range map[string]string{
		"PEBBLE_VA_NOSLEEP":      "1",
		"PEBBLE_WFE_NONCEREJECT": "0",
		"PEBBLE_AUTHZREUSE":      "0",
		"PEBBLE_VA_ALWAYS_VALID": "0",
	} {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("acmetest: setting %s: %w", k, err)
		}
	}
	logger := log.New(st.log, "pebble ", log.LstdFlags|log.Lmicroseconds)

	store := db.NewMemoryStore()
	for _, kid := range slices.Sorted(maps.Keys(st.eab)) {
		if err := store.AddExternalAccountKeyByID(kid, st.eab[kid]); err != nil {
			// Not wrapped: Pebble's message shows the key.
			return fmt.Errorf("acmetest: EAB key ID %q rejected by the CA", kid)
		}
	}
	profiles := make(map[string]ca.Profile, len(st.profiles))
	for name, p := range st.profiles {
		if st.noProfiles {
			// Pebble needs a profile to issue with: give it one that
			// no order can name, and hide it from the directory.
			name = ""
		}
		profiles[name] = ca.Profile{Description: p.description, ValidityPeriod: uint64(p.validity / time.Second)}
	}
	s.ca = ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	resolver := st.resolver
	if resolver == "" {
		resolver = s.dns.addr
	}
	vaImpl := va.New(logger, 0, 0, false, resolver, store)
	wfeImpl := wfe.New(logger, store, vaImpl, s.ca, nil, false, len(st.eab) > 0, 0, 0)
	s.mgmt = wfeImpl.ManagementHandler()
	s.front = &front{
		pebble:     wfeImpl.Handler(),
		store:      store,
		profiles:   slices.Sorted(maps.Keys(profiles)),
		noProfiles: st.noProfiles,
		stop:       make(chan struct{}),
		ariRetry:   make(map[string]time.Duration),
		orderLimit: newLimiter(st.orderLimit, "new orders per account"),
		certLimit:  newLimiter(st.certLimit, "certificates per registered domain"),
		now:        st.now,
		issued:     make(map[string]bool),
	}
	if s.front.now == nil {
		s.front.now = time.Now
	}

	cert, err := selfSignedCert()
	if err != nil {
		return err
	}
	s.acme = httptest.NewUnstartedServer(s.front)
	s.acme.Config.ErrorLog = log.New(st.log, "acmetest https ", log.LstdFlags)
	s.acme.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.gate = &gateListener{Listener: s.acme.Listener}
	s.acme.Listener = s.gate
	s.acme.StartTLS()

	s.dir, err = os.MkdirTemp("", "acmetest-")
	if err != nil {
		return fmt.Errorf("acmetest: %w", err)
	}
	trust := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	if err := os.WriteFile(s.CACertFile(), trust, 0o644); err != nil {
		return fmt.Errorf("acmetest: writing CA trust file: %w", err)
	}

	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("acmetest: %w", err)
	}
	s.token = hex.EncodeToString(token)
	s.txt = newTXTAPI(s.token, s.dns)
	s.api = httptest.NewUnstartedServer(s.txt)
	s.api.Config.ErrorLog = log.New(st.log, "acmetest api ", log.LstdFlags)
	s.api.Start()
	return nil
}

// Close stops the Server: its HTTPS and API servers, and the shared DNS
// server if no other Server uses it. It removes the TXT records written
// through its API and its temporary files. Pebble keeps one idle goroutine
// (see LeakOptions). Close may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.front != nil {
			close(s.front.stop)
		}
		if s.acme != nil {
			s.acme.Close()
		}
		if s.api != nil {
			s.api.Close()
		}
		if s.txt != nil {
			s.txt.removeAll()
		}
		if s.dns != nil {
			errs = append(errs, releaseDNS())
		}
		if s.dir != "" {
			errs = append(errs, os.RemoveAll(s.dir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// DirectoryURL returns the URL of the ACME directory, for
// autocert.Config.CADirURL or lego.Config.CADirURL.
func (s *Server) DirectoryURL() string { return s.acme.URL + wfe.DirectoryPath }

// CACertFile returns the path of a PEM file holding the certificate that
// the CA's HTTPS server presents, for autocert.Config.CACerts: clients must
// trust it to talk to the CA. It is removed by Close.
func (s *Server) CACertFile() string { return filepath.Join(s.dir, "acme-https.pem") }

// Root returns the root certificate at the top of every chain the CA
// issues.
func (s *Server) Root() *x509.Certificate { return s.ca.GetRootCert(0).Cert }

// Intermediate returns the certificate that signs issued certificates
// directly; it is signed by Root and sent in the chains the CA issues.
func (s *Server) Intermediate() *x509.Certificate { return s.ca.GetIntermediateCert(0).Cert }

// Roots returns a new pool holding Root, for x509.VerifyOptions.Roots or
// tls.Config.RootCAs when checking a certificate the CA issued.
func (s *Server) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Root())
	return p
}

// DNSAddr returns the address (127.0.0.1:port) of the DNS server that holds
// the challenge records, for autocert.Config.Resolvers. It answers over UDP
// and TCP.
func (s *Server) DNSAddr() string { return s.dns.addr }

// ProviderOptions returns the options of the "acmetest" DNS provider that
// write TXT records into this Server's DNS server.
func (s *Server) ProviderOptions() autocert.Options {
	return autocert.Options{
		OptionAPIURL:   autocert.Redacted(s.api.URL),
		OptionAPIToken: autocert.Redacted(s.token),
	}
}

// DNSProvider returns a DNS-01 provider for this Server, built from
// ProviderOptions like the one autocert builds, for use with a plain lego
// client.
func (s *Server) DNSProvider() challenge.Provider {
	p, err := providerFactory{}.NewDNSProvider(s.ProviderOptions())
	if err != nil {
		panic("acmetest: own provider options rejected: " + err.Error())
	}
	return p
}

// Config returns a configuration that obtains certificates for domains from
// this Server: provider "acmetest" and its options, the CA's directory and
// trust file, the DNS server as resolver, an account email and, when the CA
// requires External Account Binding, the key with the smallest key ID. The
// caller sets the rest (CertPath, KeyPath, ACMEKeyPath...) and, when the CA
// has several profiles, Profile.
func (s *Server) Config(domains ...string) *autocert.Config {
	c := &autocert.Config{
		Email:     Email,
		Domains:   slices.Clone(domains),
		Provider:  ProviderName,
		Options:   s.ProviderOptions(),
		Resolvers: []string{s.DNSAddr()},
		CADirURL:  s.DirectoryURL(),
		CACerts:   []string{s.CACertFile()},
	}
	if kids := slices.Sorted(maps.Keys(s.settings.eab)); len(kids) > 0 {
		c.EABKid = kids[0]
		c.EABHmac = autocert.Redacted(s.settings.eab[kids[0]])
	}
	return c
}

// Profiles returns the names of the CA's certificate profiles, sorted;
// none with WithoutProfiles.
func (s *Server) Profiles() []string {
	if s.front.noProfiles {
		return nil
	}
	return slices.Clone(s.front.profiles)
}

// SetRenewalWindow makes the CA's ACME Renewal Information (RFC 9773) for
// cert, which it issued, suggest renewing between start and end. When
// retryAfter is given, its first value is sent as the Retry-After of the
// answer (the CA's default is 6 hours).
func (s *Server) SetRenewalWindow(cert *x509.Certificate, start, end time.Time, retryAfter ...time.Duration) error {
	type window struct {
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
	}
	body, err := json.Marshal(struct {
		SuggestedWindow window `json:"suggestedWindow"`
	}{window{start.UTC(), end.UTC()}})
	if err != nil {
		return fmt.Errorf("acmetest: %w", err)
	}
	if err := s.SetRenewalInfo(cert, string(body)); err != nil {
		return err
	}
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	if len(retryAfter) > 0 {
		s.front.ariRetry[cert.SerialNumber.String()] = retryAfter[0]
	} else {
		delete(s.front.ariRetry, cert.SerialNumber.String())
	}
	return nil
}

// SetRenewalInfo makes the CA answer body, as it is, to requests for the
// ACME Renewal Information of cert, which it issued. body need not be valid
// JSON: use it to test how a client handles a broken answer.
func (s *Server) SetRenewalInfo(cert *x509.Certificate, body string) error {
	if cert == nil {
		return errors.New("acmetest: SetRenewalInfo: nil certificate")
	}
	req, err := json.Marshal(struct{ Certificate, ARIResponse string }{
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		ARIResponse: body,
	})
	if err != nil {
		return fmt.Errorf("acmetest: %w", err)
	}
	r, err := http.NewRequest(http.MethodPost, "/set-renewal-info/", bytes.NewReader(req))
	if err != nil {
		return fmt.Errorf("acmetest: %w", err)
	}
	r.Header.Set("User-Agent", "acmetest")
	resp := httptest.NewRecorder()
	s.mgmt.ServeHTTP(resp, r)
	if resp.Code != http.StatusOK {
		return fmt.Errorf("acmetest: setting renewal info of serial %s: %d %s",
			cert.SerialNumber, resp.Code, strings.TrimSpace(resp.Body.String()))
	}
	return nil
}

// FailRenewalInfo makes the CA answer p to the next n requests for ACME
// Renewal Information, whatever the certificate.
func (s *Server) FailRenewalInfo(n int, p Problem) {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	s.front.ariFault = fault{n: n, p: p}
}

// FailOrders makes the CA answer p to the next n new-order requests (n
// replaces any count left from a previous call; 0 stops failing). For
// example Problem{Type: "rateLimited", RetryAfter: time.Hour} or
// Problem{Type: "serverInternal"}.
func (s *Server) FailOrders(n int, p Problem) {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	s.front.orderFault = fault{n: n, p: p}
}

// FailFinalizations makes the CA answer p to the next n requests that
// finalize an order (n replaces any count left from a previous call; 0
// stops failing): the order was created and its challenges validated, and
// the CA refuses to issue, as it does with a "badCSR" problem for a CSR it
// does not accept. For example Problem{Type: "badCSR", Detail: "key too
// weak"}.
func (s *Server) FailFinalizations(n int, p Problem) {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	s.front.finalizeFault = fault{n: n, p: p}
}

// SetDelay makes the CA's HTTPS server wait d before handling each request
// (0, the default, answers at once): a slow or overloaded CA, for testing a
// client's HTTP timeouts. A request whose client gives up meanwhile is
// dropped unanswered.
func (s *Server) SetDelay(d time.Duration) {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	s.front.delay = max(d, 0)
}

// SetNonceRejectRate makes the CA reject the nonce of each signed request
// with probability rate (0 to 1) with a "badNonce" problem, as a CA may do
// at any time; clients are expected to retry with the fresh nonce sent
// along. The default is 0.
func (s *Server) SetNonceRejectRate(rate float64) {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	s.front.nonceReject = min(max(rate, 0), 1)
}

// SetOffline takes the CA's HTTPS server off the network (true) or back
// (false). While offline, open connections are closed and new ones are
// reset as soon as they are accepted, so clients get network errors. The
// DNS server and the TXT record API stay up.
func (s *Server) SetOffline(offline bool) {
	s.gate.offline.Store(offline)
	if offline {
		s.acme.CloseClientConnections()
	}
}

// Accounts returns the number of ACME accounts the CA has created.
func (s *Server) Accounts() int {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	return s.front.accounts
}

// RenewalInfoRequests returns the number of ACME Renewal Information
// requests the CA received, failed ones (see FailRenewalInfo) included.
func (s *Server) RenewalInfoRequests() int {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	return s.front.ariRequests
}

// PendingRequests returns the number of requests the CA is answering at
// this moment. A client that died (a killed process) may have left some,
// still at work on the CA's side: a test waits for none before it counts
// what the next client does.
func (s *Server) PendingRequests() int { return int(s.front.pending.Load()) }

// Order is a new-order request the CA received, as the client sent it.
type Order struct {
	// Names are the identifiers of the order, sorted.
	Names []string
	// Profile is the profile the order asked for; "" if none.
	Profile string
	// Replaces is the ARI certificate ID of the certificate that the
	// order replaces (RFC 9773, section 5); "" if none.
	Replaces string
	// Problem is the ACME problem type answered instead of creating the
	// order, such as "urn:ietf:params:acme:error:rateLimited"; "" when the
	// order was created.
	Problem string
}

// Orders returns the new-order requests the CA received, oldest first,
// including those it refused (see Order.Problem).
func (s *Server) Orders() []Order {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	out := make([]Order, len(s.front.orders))
	for i, o := range s.front.orders {
		o.Names = slices.Clone(o.Names)
		out[i] = o
	}
	return out
}

// OrderCount returns how many orders the CA created for exactly the set of
// names given, in any order and case.
func (s *Server) OrderCount(names ...string) int {
	want := lowerSorted(names)
	n := 0
	for _, o := range s.Orders() {
		if o.Problem == "" && slices.Equal(lowerSorted(o.Names), want) {
			n++
		}
	}
	return n
}

func lowerSorted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// gateListener accepts connections only while the CA is online.
type gateListener struct {
	net.Listener
	offline atomic.Bool
}

// Accept returns the next connection accepted while online; connections
// arriving while offline are reset.
func (l *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.offline.Load() {
			return c, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset rather than an orderly close
		}
		c.Close()
	}
}

// selfSignedCert returns a certificate for the CA's HTTPS server, valid for
// 127.0.0.1, ::1 and localhost.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("acmetest: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("acmetest: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "acmetest CA HTTPS " + serial.Text(16)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("acmetest: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
