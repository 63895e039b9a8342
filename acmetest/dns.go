package acmetest

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/miekg/dns"
)

// shared is the DNS server of the process, the one piece of package state.
//
// challtestsrv registers its query handler in the global handler table of
// the miekg/dns package, so only one instance can answer in a process: a
// second one would replace the first one's handler. Every Server uses this
// one; the first Start creates it and the last Close stops it. Sharing is
// safe: challenge values are random, and each DNS provider removes only the
// values it wrote.
var shared struct {
	mu   sync.Mutex
	refs int
	dns  *dnsServer
}

// acquireDNS returns the shared DNS server, starting it if needed. Every
// successful call must be paired with a releaseDNS.
func acquireDNS() (*dnsServer, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.dns == nil {
		d, err := startDNS()
		if err != nil {
			return nil, err
		}
		shared.dns = d
	}
	shared.refs++
	return shared.dns, nil
}

// releaseDNS drops one reference to the shared DNS server and stops it
// when it was the last.
func releaseDNS() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.refs--
	if shared.refs > 0 {
		return nil
	}
	d := shared.dns
	shared.dns = nil
	return d.stop()
}

// dnsServer is challtestsrv answering on one UDP and one TCP socket of
// 127.0.0.1 (same port): lego's checks ask over UDP, Pebble's CA over TCP.
//
// The sockets are bound here rather than by challtestsrv's Run, which gives
// no sign of being ready and binds after the port was chosen.
type dnsServer struct {
	addr  string
	chall *challtestsrv.ChallSrv
	udp   *dns.Server
	tcp   *dns.Server
	done  chan error // one value per socket when its server returns

	// mu is held for reading while a query is answered and for writing
	// while TXT records change, so that no query sees a name between the
	// removal of its values and the re-adding of the ones that stay.
	mu sync.RWMutex
}

// startDNS binds free ports and starts answering.
func startDNS() (*dnsServer, error) {
	pc, l, err := listenUDPAndTCP()
	if err != nil {
		return nil, err
	}
	addr := pc.LocalAddr().String()
	// New registers the handler on dns.DefaultServeMux; its own listeners
	// are never started.
	chall, err := challtestsrv.New(challtestsrv.Config{
		DNSAddrs: []string{addr},
		Log:      log.New(io.Discard, "", 0),
	})
	if err != nil {
		pc.Close()
		l.Close()
		return nil, fmt.Errorf("acmetest: DNS server: %w", err)
	}
	d := &dnsServer{addr: addr, chall: chall, done: make(chan error, 2)}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		// Build the answer under the lock, send it after.
		rec := &answerRecorder{ResponseWriter: w}
		d.mu.RLock()
		dns.DefaultServeMux.ServeDNS(rec, m)
		d.mu.RUnlock()
		if rec.answer != nil {
			_ = w.WriteMsg(rec.answer)
		}
	})
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	d.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: notify}
	d.tcp = &dns.Server{Listener: l, Handler: handler, NotifyStartedFunc: notify,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}
	for _, srv := range []*dns.Server{d.udp, d.tcp} {
		go func() { d.done <- srv.ActivateAndServe() }()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-d.done:
			// One of them failed before serving: stop the other.
			d.udp.Shutdown()
			d.tcp.Shutdown()
			pc.Close()
			l.Close()
			dns.HandleRemove(".")
			return nil, fmt.Errorf("acmetest: DNS server on %s: %w", addr, err)
		}
	}
	return d, nil
}

// answerRecorder keeps the answer a handler writes.
type answerRecorder struct {
	dns.ResponseWriter
	answer *dns.Msg
}

// WriteMsg keeps m instead of sending it.
func (r *answerRecorder) WriteMsg(m *dns.Msg) error {
	r.answer = m
	return nil
}

// listenUDPAndTCP binds a UDP socket on a free port of 127.0.0.1 and a TCP
// listener on the same port.
func listenUDPAndTCP() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("acmetest: DNS server: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("acmetest: DNS server: no port free for both UDP and TCP: %w", lastErr)
}

// stop closes both sockets and waits for their servers to return.
func (d *dnsServer) stop() error {
	errU := d.udp.Shutdown()
	errT := d.tcp.Shutdown()
	for range 2 {
		<-d.done
	}
	dns.HandleRemove(".")
	if err := errors.Join(errU, errT); err != nil {
		return fmt.Errorf("acmetest: stopping DNS server: %w", err)
	}
	return nil
}

// canonicalName returns name in the form the DNS server stores: lower case
// with a trailing dot.
func canonicalName(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}

// addTXT adds value to the TXT records of fqdn.
func (d *dnsServer) addTXT(fqdn, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.chall.AddDNSTXTRecord(canonicalName(fqdn), value)
}

// removeTXT removes one occurrence of value from the TXT records of fqdn
// and keeps the others. It reports whether value was there.
func (d *dnsServer) removeTXT(fqdn, value string) bool {
	fqdn = canonicalName(fqdn)
	d.mu.Lock()
	defer d.mu.Unlock()
	// challtestsrv can only delete every value of a name: delete them all
	// and add back the others.
	values := slices.Clone(d.chall.GetDNSTXTRecords(fqdn))
	i := slices.Index(values, value)
	if i < 0 {
		return false
	}
	values = slices.Delete(values, i, i+1)
	d.chall.DeleteDNSTXTRecord(fqdn)
	for _, v := range values {
		d.chall.AddDNSTXTRecord(fqdn, v)
	}
	if len(values) == 0 {
		// challtestsrv keeps a history of every query; let it not grow
		// without bound in a long-running demo.
		d.chall.ClearRequestHistory(fqdn, challtestsrv.DNSRequestEventType)
	}
	return true
}
