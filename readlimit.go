package autocert

import (
	"fmt"
	"io"
	"os"
)

// Limits on what autocert reads from one file. A certificate chain, a key,
// a journal or a record is a few kilobytes, a configuration file rarely
// more; a larger file is a mistake (or an attack: a multi-gigabyte file,
// sparse or not, or a device such as /dev/zero), and is refused after
// reading at most the limit, never loaded whole into memory.
const (
	maxFileSize   = 1 << 20 // certificates, keys, records, configuration
	maxCACertSize = 4 << 20 // ca_certs bundles
)

// readFileLimited is os.ReadFile reading at most limit bytes: a larger file
// is an error naming it and the limit.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tooLarge := &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("file larger than the limit of %d KiB", limit>>10)}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}
	return data, nil
}
