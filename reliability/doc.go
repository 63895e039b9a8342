// Package reliability holds the reliability and security suite of
// autocert: tests that kill a process using the library with SIGKILL at
// chosen moments and check what a fresh start finds, a matrix of faults of
// the CA, the DNS and the disk with what the user sees in each case, the
// rendering of every value holding a secret, file modes under every umask,
// hostile configuration values and files, and TLS handshakes under load
// while certificates are renewed and reloaded.
//
// Everything runs against real parts: the in-process ACME CA and DNS server
// of package acmetest, real processes, real files. The package has no API;
// run it with
//
//	go test -race ./reliability/...
//
// See docs/reliability.md for the figures and the knobs (environment
// variables) that size the crash and load tests.
package reliability
