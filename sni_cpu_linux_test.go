package autocert

import (
	"syscall"
	"time"
)

// sniThreadCPU returns the CPU time the calling thread has used, and true.
func sniThreadCPU() (time.Duration, bool) {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
