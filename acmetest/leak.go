package acmetest

import "go.uber.org/goleak"

// LeakOptions returns the options that make go.uber.org/goleak ignore the
// goroutine each Server leaves behind: Pebble's validation authority waits
// for work on a channel that nothing closes. For example:
//
//	func TestMain(m *testing.M) {
//		goleak.VerifyTestMain(m, acmetest.LeakOptions()...)
//	}
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks"),
	}
}
