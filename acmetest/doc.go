// Package acmetest runs a real ACME certificate authority and a DNS server
// inside the current process, on 127.0.0.1 with free ports, so that
// certificates can be issued through the DNS-01 challenge without the
// internet: in tests, in the "autocert demo" command, and in the tests of
// programs that use autocert.
//
// The CA is Let's Encrypt's test CA, Pebble, used as a library; the DNS
// server is Let's Encrypt's challenge test server, challtestsrv. Nothing is
// simulated: accounts are created, orders placed, TXT records written into
// the DNS server and looked up there by the CA, certificates signed.
//
// A test starts a Server with New, which stops it when the test ends; a
// program uses Start and Close. Server.Config returns an autocert.Config
// that reaches the server through its options only, and importing this
// package registers the DNS provider "acmetest" that those options drive:
// it writes the _acme-challenge TXT records through a small HTTP API that
// every Server serves on loopback, the way a real DNS provider calls its
// vendor's API.
//
// Runtime controls make the CA misbehave on purpose: rejected nonces,
// failed orders or finalizations with a chosen ACME problem, a CA that goes
// offline or answers slowly, chosen or failing renewal windows (ACME
// Renewal Information). Counters and a record of the
// orders let a test check what a client did.
//
// # Process state
//
// Two things are shared by every Server of a process.
//
// The DNS server: challtestsrv answers through the global handler table of
// the miekg/dns package, so a second instance in the same process would
// take over the first one's queries. All Servers therefore share one DNS
// server, started by the first and stopped when the last one closes. This
// is safe because challenge values are random and each provider removes
// only the values it wrote.
//
// The environment: Pebble reads its settings from environment variables
// when a CA is built, so Start sets PEBBLE_VA_NOSLEEP=1 (no random delay
// before validation), PEBBLE_WFE_NONCEREJECT=0 (nonce faults are injected
// per Server instead, see Server.SetNonceRejectRate), PEBBLE_AUTHZREUSE=0
// and PEBBLE_VA_ALWAYS_VALID=0 (validation is real). Every order is
// validated: as Pebble still reuses a valid authorization once in a hundred
// orders at PEBBLE_AUTHZREUSE=0, the Server expires an account's valid
// authorizations of issued orders when it orders the same names again.
//
// Pebble leaves one goroutine behind per Server; tests that check for
// leaked goroutines pass LeakOptions to go.uber.org/goleak.
package acmetest
