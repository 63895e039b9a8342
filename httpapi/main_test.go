package httpapi_test

import (
	"io"
	"log"
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
	legolog "github.com/go-acme/lego/v4/log"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// lego logs every ACME step to its own process-wide logger.
	legolog.Logger = log.New(io.Discard, "", 0)
	goleak.VerifyTestMain(m, acmetest.LeakOptions()...)
}
