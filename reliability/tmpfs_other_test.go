//go:build !linux

package reliability_test

import (
	"errors"
	"testing"
)

func mountTmpfs(t *testing.T, dir string, size int) error {
	return errors.New("tmpfs mounts are only done on Linux")
}

func remountReadOnly(dir string) error { return errors.New("not supported") }
