//go:build !unix

package autocert

import (
	"context"
	"time"
)

// lockFile, where no OS file lock is available, excludes the goroutines of
// this process only.
func (s *FileStorage) lockFile(ctx context.Context, path string) (func(), error) {
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
