// Package interop_test runs autocert against ACME software this project did
// not write, as separate processes: smallstep's step-ca as the CA, with the
// DNS-01 challenge records held by the DNS server of package acmetest.
//
// step-ca is built by .ci/stepca.sh into
// ${XDG_CACHE_HOME:-$HOME/.cache}/autocert-stepca/<version>/step-ca, where
// the tests find it; AUTOCERT_TEST_STEPCA names another binary. Without a
// binary the tests fail when CI is set and skip otherwise.
package interop_test

import (
	"io"
	"log"
	"os"
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
	legolog "github.com/go-acme/lego/v4/log"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// lego logs every ACME step to its own process-wide logger; the tests
	// read autocert's zerolog output instead.
	legolog.Logger = log.New(io.Discard, "", 0)
	goleak.VerifyTestMain(m, acmetest.LeakOptions()...)
}

// inCI reports whether the tests run in continuous integration, where
// nothing may be skipped.
func inCI() bool { return os.Getenv("CI") != "" }
