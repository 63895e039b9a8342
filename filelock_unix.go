//go:build unix

package autocert

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// fileLocks takes the locks of a FileStorage: OS file locks (flock), which
// need no state of their own.
type fileLocks struct{}

// lockFile takes an exclusive flock on path, retrying until ctx ends. The
// kernel drops the lock when the process dies. Every call opens the file
// anew, so two goroutines of one process exclude each other too.
func (*fileLocks) lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	t := time.NewTicker(lockRetry)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// present reports whether path names a file (of any type, a final symbolic
// link not followed). Cheaper than os.Lstat, which FileStorage calls on
// every read.
func present(path string) bool {
	var st syscall.Stat_t
	return syscall.Lstat(path, &st) == nil
}
