package reliability_test

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsRelay is a DNS server of its own (UDP and TCP on one loopback port)
// that passes questions on to an upstream server: the test puts it between
// a client and acmetest's DNS server to take that DNS away. It can answer
// every question with an empty answer (the record is not there), or go
// down altogether (its sockets are closed: queries are refused).
type dnsRelay struct {
	addr     string
	upstream atomic.Value // string
	empty    atomic.Bool

	mu   sync.Mutex
	udp  *dns.Server
	tcp  *dns.Server
	down bool
	done chan struct{}
}

// newDNSRelay starts a relay; it stops when the test ends.
func newDNSRelay(t testing.TB) *dnsRelay {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	var err error
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &dnsRelay{addr: pc.LocalAddr().String(), done: make(chan struct{}, 2)}
	r.upstream.Store("")
	h := dns.HandlerFunc(r.serve)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	r.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
	r.tcp = &dns.Server{Listener: l, Handler: h, NotifyStartedFunc: notify, ReadTimeout: 2 * time.Second}
	for _, s := range []*dns.Server{r.udp, r.tcp} {
		go func() { _ = s.ActivateAndServe(); r.done <- struct{}{} }()
	}
	for range 2 {
		<-started
	}
	t.Cleanup(r.stop)
	return r
}

// setUpstream makes the relay ask addr (host:port).
func (r *dnsRelay) setUpstream(addr string) { r.upstream.Store(addr) }

func (r *dnsRelay) serve(w dns.ResponseWriter, m *dns.Msg) {
	if r.empty.Load() {
		a := new(dns.Msg)
		a.SetReply(m)
		_ = w.WriteMsg(a)
		return
	}
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		c.Net = "tcp"
	}
	a, _, err := c.Exchange(m, r.upstream.Load().(string))
	if err != nil {
		a = new(dns.Msg)
		a.SetRcode(m, dns.RcodeServerFailure)
	}
	_ = w.WriteMsg(a)
}

// stop closes the relay's sockets: from then on its port refuses queries.
func (r *dnsRelay) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return
	}
	r.down = true
	_ = r.udp.Shutdown()
	_ = r.tcp.Shutdown()
	<-r.done
	<-r.done
}
