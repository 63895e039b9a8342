//go:build !unix

package autocert

import (
	"context"
	"os"
	"sync"
	"time"
)

// fileLocks takes the locks of a FileStorage where no OS file lock is
// available: they exclude the goroutines of this process only.
type fileLocks struct {
	held sync.Map // lock files held
}

// lockFile takes the lock of path, retrying until ctx ends.
func (s *fileLocks) lockFile(ctx context.Context, path string) (func(), error) {
	t := time.NewTicker(lockRetry)
	defer t.Stop()
	for {
		if _, held := s.held.LoadOrStore(path, struct{}{}); !held {
			return func() { s.held.Delete(path) }, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// present reports whether path names a file (of any type, a final symbolic
// link not followed).
func present(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
