package reliability_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/rs/zerolog"
)

const loadSecondsEnv = "AUTOCERT_LOAD_SECONDS" // length of each phase of TestHandshakeLoad

// loadNames are the server names the clients ask for, each answered by a
// different rule: exact names of the main certificate (one in upper case),
// a wildcard of an extra, and an exact name and a wildcard of another.
var loadNames = []string{"example.com", "WWW.EXAMPLE.COM", "x.api.example.com", "other.org", "a.other.org."}

// loadSite is a TLS server on loopback serving the certificates of a
// Provider, which a config reload may swap for a new one.
type loadSite struct {
	ca       *acmetest.Server
	config   string // the YAML file
	p        *autocert.Provider
	current  atomic.Pointer[autocert.Provider]
	ln       net.Listener
	addr     string
	wg       sync.WaitGroup
	closeIdl func()
}

func newLoadSite(tb testing.TB) *loadSite {
	tb.Helper()
	ca := acmetest.New(tb)
	dir := tb.TempDir()
	opts := ca.ProviderOptions()
	tb.Setenv("ACMETEST_API_URL", opts[acmetest.OptionAPIURL].Value())
	tb.Setenv("ACMETEST_API_TOKEN", opts[acmetest.OptionAPIToken].Value())
	text := fmt.Sprintf(`autocert:
  provider: acmetest
  email: admin@example.com
  domains: [example.com, www.example.com]
  cert_path: %[1]s/main.crt
  key_path: %[1]s/main.key
  acme_key_path: %[1]s/acme.key
  ca_dir_url: %[2]s
  ca_certs: [%[3]s]
  resolvers: [%[4]s]
  options:
    api_url: ${ACMETEST_API_URL}
    api_token: ${ACMETEST_API_TOKEN}
  extra:
    - domains: ["*.api.example.com"]
      cert_path: %[1]s/api.crt
      key_path: %[1]s/api.key
    - domains: [other.org, "*.other.org"]
      cert_path: %[1]s/other.crt
      key_path: %[1]s/other.key
`, dir, ca.DirectoryURL(), ca.CACertFile(), ca.DNSAddr())
	s := &loadSite{ca: ca, config: filepath.Join(dir, "autocert.yaml")}
	if err := os.WriteFile(s.config, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := autocert.LoadConfig(s.config)
	if err != nil {
		tb.Fatal(err)
	}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		tb.Fatal(err)
	}
	s.closeIdl = legoCfg.HTTPClient.CloseIdleConnections
	s.p, err = autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.p.ObtainCertIfNotExistsAll(); err != nil {
		tb.Fatal(err)
	}
	s.current.Store(s.p)
	s.ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return s.current.Load().GetCert(h) },
		MinVersion:     tls.VersionTLS12,
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = s.ln.Addr().String()
	s.wg.Go(func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					// Wait for the client to hang up.
					var b [1]byte
					_, _ = c.Read(b[:])
				}
			})
		}
	})
	tb.Cleanup(func() {
		s.ln.Close()
		s.wg.Wait()
		s.closeIdl()
	})
	return s
}

// reloadConfig does what a program does on SIGHUP: it reads the config
// file again, builds a new Provider, loads the stored certificates and
// swaps it in.
func (s *loadSite) reloadConfig() error {
	cfg, err := autocert.LoadConfig(s.config)
	if err != nil {
		return err
	}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		return err
	}
	p, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		return err
	}
	if err := p.LoadCertsAll(); err != nil {
		return err
	}
	s.current.Store(p)
	return nil
}

// loadResult is what a phase of handshakes measured.
type loadResult struct {
	handshakes int
	failures   []error
	latencies  []time.Duration
	elapsed    time.Duration
	serials    map[string]bool
}

func (r *loadResult) hps() float64 { return float64(r.handshakes) / r.elapsed.Seconds() }

func (r *loadResult) percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	return r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
}

// handshakeOnce dials the site and does a full TLS handshake (no session
// resumption) for name, verifying the chain against the CA and the name.
func (s *loadSite) handshakeOnce(name string) (string, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", s.addr, &tls.Config{ServerName: name, RootCAs: s.ca.Roots()})
	if err != nil {
		return "", err
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	// Verified by the handshake already; checked again without the
	// trailing dot and case a client may send.
	if err := leaf.VerifyHostname(strings.TrimSuffix(strings.ToLower(name), ".")); err != nil {
		return "", err
	}
	return leaf.SerialNumber.Text(16), nil
}

// run does handshakes from clients goroutines until ctx ends.
func (s *loadSite) run(ctx context.Context, clients int) *loadResult {
	res := &loadResult{serials: make(map[string]bool)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			var lat []time.Duration
			var fails []error
			serials := map[string]bool{}
			for n := i; ctx.Err() == nil; n++ {
				name := loadNames[n%len(loadNames)]
				t0 := time.Now()
				serial, err := s.handshakeOnce(name)
				if err != nil {
					if ctx.Err() != nil && errors.Is(err, context.Canceled) {
						break
					}
					fails = append(fails, fmt.Errorf("%s: %w", name, err))
					continue
				}
				lat = append(lat, time.Since(t0))
				serials[serial] = true
			}
			mu.Lock()
			defer mu.Unlock()
			res.latencies = append(res.latencies, lat...)
			res.failures = append(res.failures, fails...)
			res.handshakes += len(lat) + len(fails)
			for k := range serials {
				res.serials[k] = true
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// churn renews every certificate (forced, on the CA) again and again,
// reloads them from storage, and reloads the config, until ctx ends.
func (s *loadSite) churn(ctx context.Context) (renewals, reloads, configs int, errs []error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			if !s.p.ForceExpiryAll() {
				fail(errors.New("ForceExpiryAll refused"))
				return
			}
			wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			s.p.WaitRenewalDone(wctx)
			cancel()
			for _, st := range s.p.RenewalStatus() {
				if st.Forced == nil || st.Forced.Err != nil {
					fail(fmt.Errorf("renewal of %s: %+v", st.Provider, st.Forced))
				} else {
					renewals++
				}
			}
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			if err := s.p.LoadCertsAll(); err != nil {
				fail(err)
			}
			reloads++
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			if err := s.reloadConfig(); err != nil {
				fail(err)
			}
			configs++
			time.Sleep(100 * time.Millisecond)
		}
	})
	wg.Wait()
	return renewals, reloads, configs, errs
}

func loadPhase() time.Duration {
	secs := 8
	if testing.Short() {
		secs = 2
	}
	if v := os.Getenv(loadSecondsEnv); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			secs = n
		}
	}
	return time.Duration(secs) * time.Second
}

// TestHandshakeLoad does full TLS handshakes from parallel clients on
// loopback, first alone, then while every certificate is renewed (forced,
// on the CA) again and again, the certificates are reloaded from storage
// and the configuration is reloaded (a new Provider swapped in): not one
// handshake may fail, and each gets a certificate valid for its name. It
// reports handshakes per second and latencies of both phases (figures
// under -race are several times slower than without).
func TestHandshakeLoad(t *testing.T) {
	s := newLoadSite(t)
	phase := loadPhase()
	clients := 2 * runtime.GOMAXPROCS(0)

	ctx, cancel := context.WithTimeout(context.Background(), phase)
	quiet := s.run(ctx, clients)
	cancel()

	ctx, cancel = context.WithTimeout(context.Background(), phase)
	var renewals, reloads, configs int
	var churnErrs []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		renewals, reloads, configs, churnErrs = s.churn(ctx)
	}()
	busy := s.run(ctx, clients)
	cancel()
	<-done

	for _, r := range []*loadResult{quiet, busy} {
		for i, err := range r.failures {
			if i == 5 {
				t.Errorf("... %d failed handshakes in all", len(r.failures))
				break
			}
			t.Errorf("failed handshake: %v", err)
		}
	}
	for _, err := range churnErrs {
		t.Errorf("during the load: %v", err)
	}
	if renewals < 3 || len(busy.serials) <= len(quiet.serials) {
		t.Errorf("%d renewals, %d certificates seen while renewing (%d before): the renewals did not reach the clients",
			renewals, len(busy.serials), len(quiet.serials))
	}
	t.Logf("%d clients, GOMAXPROCS %d, %v per phase", clients, runtime.GOMAXPROCS(0), phase)
	t.Logf("without renewals: %d handshakes, %.0f/s, p50 %v, p99 %v, max %v, failed %d",
		quiet.handshakes, quiet.hps(), quiet.percentile(0.5), quiet.percentile(0.99), quiet.percentile(1), len(quiet.failures))
	t.Logf("with renewals:    %d handshakes, %.0f/s, p50 %v, p99 %v, max %v, failed %d; %d certificates renewed, %d storage reloads, %d config reloads, %d certificates served",
		busy.handshakes, busy.hps(), busy.percentile(0.5), busy.percentile(0.99), busy.percentile(1), len(busy.failures),
		renewals, reloads, configs, len(busy.serials))
}

// BenchmarkHandshake measures full TLS handshakes on loopback against a
// Provider's GetCert, from parallel clients, without and with renewals
// and reloads going on; it reports the p99 latency besides ns/op.
func BenchmarkHandshake(b *testing.B) {
	s := newLoadSite(b)
	for _, churn := range []bool{false, true} {
		name := "quiet"
		if churn {
			name = "renewing"
		}
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			if churn {
				go func() {
					defer close(done)
					_, _, _, errs := s.churn(ctx)
					for _, err := range errs {
						b.Error(err)
					}
				}()
			} else {
				close(done)
			}
			var mu sync.Mutex
			var lat []time.Duration
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for i := 0; pb.Next(); i++ {
					t0 := time.Now()
					if _, err := s.handshakeOnce(loadNames[i%len(loadNames)]); err != nil {
						b.Error(err)
					}
					mine = append(mine, time.Since(t0))
					n.Add(1)
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			cancel()
			<-done
			r := loadResult{latencies: lat}
			b.ReportMetric(float64(r.percentile(0.99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}
