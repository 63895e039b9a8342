//go:build unix

package pgtest

import (
	"fmt"
	"os"
	"syscall"
)

// Serialize makes the test processes that use the test server run one at
// a time, since some tests restart or stop it: call it from TestMain
// before m.Run. It waits for an exclusive lock on the file named by
// AUTOCERT_TEST_PG_LOCK and keeps it until the process exits. It does
// nothing when that variable is unset.
func Serialize() {
	path := os.Getenv(EnvLock)
	if path == "" {
		return
	}
	// A raw descriptor, never closed: no finalizer can drop the lock
	// before the process ends.
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: open %s: %v\n", path, err)
		os.Exit(2)
	}
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: lock %s: %v\n", path, err)
		os.Exit(2)
	}
}
