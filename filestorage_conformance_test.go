package autocert_test

import (
	"sync"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/storagetest"
)

// TestFileStorageConformance runs the storage contract checks on
// FileStorage. Its keys are file paths relative to the working directory,
// as in a configuration: each check runs in a directory of its own, and
// each instance is a separate FileStorage, as another process would have.
func TestFileStorageConformance(t *testing.T) {
	var mu sync.Mutex
	dirs := make(map[*testing.T]bool)
	storagetest.Run(t, func(t *testing.T) autocert.Storage {
		mu.Lock()
		defer mu.Unlock()
		if !dirs[t] {
			dirs[t] = true
			t.Chdir(t.TempDir())
		}
		return &autocert.FileStorage{}
	})
}
