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
	tooLarge := func() error {
		return &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("file larger than the limit of %d KiB", limit>>10)}
	}
	// A regular file is read into a buffer of its size and one byte more,
	// so that a file of a few kilobytes costs one allocation and, unless
	// it grew meanwhile, a read and the read that sees its end.
	size := int64(512)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > limit {
			return nil, tooLarge()
		}
		size = fi.Size() + 1
	}
	data := make([]byte, 0, size)
	r := io.LimitReader(f, limit+1)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := r.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(data)) > limit {
		return nil, tooLarge()
	}
	return data, nil
}
