//go:build !linux

package autocert

import "time"

// sniThreadCPU reports that the CPU time of a thread is not known here.
func sniThreadCPU() (time.Duration, bool) { return 0, false }
