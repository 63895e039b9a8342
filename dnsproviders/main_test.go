package dnsproviders_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

// zones are the DNS zones of the imitated cloud DNS APIs; their server
// answers lego's zone lookups.
var zones = []string{"example.com.", "example.net."}

// cloudDNS is the DNS server of the imitated cloud APIs. lego finds the
// zone of a name by asking its process-wide resolvers, which TestMain
// points here before any test runs (lego offers no other way).
var cloudDNS *zoneServer

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(execHelper(os.Args[1:]))
	}
	srv, err := startZoneServer(zones...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cloudDNS = srv
	_ = dns01.AddRecursiveNameservers([]string{srv.addr})(nil)
	code := m.Run()
	srv.stop()
	if code == 0 {
		if err := goleak.Find(acmetest.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// helperEnv makes the test binary act as the program that the exec
// provider's shell script calls (see TestExecScriptEndToEnd).
const helperEnv = "AUTOCERT_TEST_EXEC_HELPER"

// execHelper writes or removes a challenge record through the acmetest
// CA's record API, like a real hook script's DNS client: args are lego's
// RAW mode arguments, "present|cleanup DOMAIN TOKEN KEYAUTH".
func execHelper(args []string) int {
	if len(args) != 4 {
		fmt.Fprintln(os.Stderr, "helper: want present|cleanup DOMAIN TOKEN KEYAUTH")
		return 2
	}
	f, ok := autocert.LookupProvider(acmetest.ProviderName)
	if !ok {
		fmt.Fprintln(os.Stderr, "helper: acmetest provider not registered")
		return 1
	}
	p, err := f.NewDNSProvider(autocert.Options{
		acmetest.OptionAPIURL:   autocert.Redacted(os.Getenv("ACMETEST_API_URL")),
		acmetest.OptionAPIToken: autocert.Redacted(os.Getenv("ACMETEST_API_TOKEN")),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	switch args[0] {
	case "present":
		err = p.Present(args[1], args[2], args[3])
	case "cleanup":
		err = p.CleanUp(args[1], args[2], args[3])
	default:
		err = fmt.Errorf("unknown action %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// zoneServer is an authoritative DNS server for a few zones, holding the
// TXT records that the imitated cloud APIs write.
type zoneServer struct {
	addr  string
	zones []string
	udp   *dns.Server
	tcp   *dns.Server

	mu  sync.Mutex
	txt map[string][]string // lower-case FQDN -> values
}

func startZoneServer(zones ...string) (*zoneServer, error) {
	z := &zoneServer{zones: zones, txt: make(map[string][]string)}
	var pc net.PacketConn
	var l net.Listener
	var err error
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		if l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, err
	}
	z.addr = pc.LocalAddr().String()
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	z.udp = &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: notify}
	z.tcp = &dns.Server{Listener: l, Handler: z, NotifyStartedFunc: notify}
	go z.udp.ActivateAndServe()
	go z.tcp.ActivateAndServe()
	for range 2 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			return nil, fmt.Errorf("zone server on %s did not start", z.addr)
		}
	}
	return z, nil
}

func (z *zoneServer) stop() {
	z.udp.Shutdown()
	z.tcp.Shutdown()
}

// ServeDNS answers SOA for the zone apexes, TXT from the records, and
// nothing else, authoritatively.
func (z *zoneServer) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 {
		name := strings.ToLower(q.Question[0].Name)
		zone := ""
		for _, zn := range z.zones {
			if dns.IsSubDomain(zn, name) {
				zone = zn
			}
		}
		soa := &dns.SOA{
			Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns:  "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60,
		}
		switch {
		case zone == "":
			m.Rcode = dns.RcodeRefused
		case q.Question[0].Qtype == dns.TypeSOA && name == zone:
			m.Answer = append(m.Answer, soa)
		case q.Question[0].Qtype == dns.TypeTXT:
			z.mu.Lock()
			for _, v := range z.txt[name] {
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{v},
				})
			}
			z.mu.Unlock()
			if len(m.Answer) == 0 {
				m.Ns = append(m.Ns, soa)
			}
		default:
			m.Ns = append(m.Ns, soa)
		}
	}
	_ = w.WriteMsg(m)
}

// setTXT adds (or, with add false, removes) a TXT value of fqdn.
func (z *zoneServer) setTXT(fqdn, value string, add bool) {
	fqdn = strings.ToLower(dns.Fqdn(fqdn))
	z.mu.Lock()
	defer z.mu.Unlock()
	vals := z.txt[fqdn]
	for i, v := range vals {
		if v == value {
			vals = append(vals[:i:i], vals[i+1:]...)
			break
		}
	}
	if add {
		vals = append(vals, value)
	}
	z.txt[fqdn] = vals
}

// lookupTXT asks server (host:port) over TCP for the TXT values of fqdn.
func lookupTXT(t *testing.T, server, fqdn string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(fqdn), dns.TypeTXT)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	in, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("TXT %s at %s: %v", fqdn, server, err)
	}
	var out []string
	for _, rr := range in.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}
