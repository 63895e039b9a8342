// Package multi_test runs several instances of a program using autocert,
// each a separate process (this test binary run again), against one CA
// (acmetest, in the test process) and one store: PostgreSQL, or the file
// layout shared by processes on one host. It checks what users of a fleet
// of replicas see: one ACME order per certificate, the same certificate
// served everywhere, renewals that reach every instance within a second or
// two, and what happens when an instance dies in the middle of an order or
// the database restarts.
//
// The PostgreSQL tests need the throwaway server of .ci/postgres.sh (see
// internal/pgtest); without it they skip, unless CI is set.
package multi_test

import (
	"io"
	"log"
	"os"
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/pgtest"
	legolog "github.com/go-acme/lego/v4/log"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// lego logs every ACME step to its own process-wide logger; the tests
	// read autocert's zerolog output instead.
	legolog.Logger = log.New(io.Discard, "", 0)
	if os.Getenv(envChild) != "" {
		os.Exit(runInstance())
	}
	pgtest.Serialize() // one test process at a time uses the server: some restart it
	goleak.VerifyTestMain(m, acmetest.LeakOptions()...)
}
