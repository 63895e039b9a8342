package autocert_test

import (
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, acmetest.LeakOptions()...)
}
