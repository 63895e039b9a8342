package autocert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// File names FileStorage uses next to the files it manages.
const (
	journalPrefix = ".autocert-journal-"
	tempPrefix    = ".autocert-tmp-"
	lockSuffix    = ".lock"
	// journalLock is locked (OS file lock) by a multi-entry Store from its
	// journal's creation to its removal, and by whoever completes a journal:
	// so a Load never applies the journal of a Store still in progress, nor
	// a stale copy of it over newer values.
	journalLock = ".autocert-journals" + lockSuffix
)

// FileStorage is the default Storage: every key is a file path, relative to
// the working directory unless absolute, so the files are exactly those the
// configuration names. Its zero value is ready to use.
//
// Each file is written crash-safely: to a temporary file in the same
// directory, flushed to disk, then renamed over the old one. A temporary
// file that a killed process left behind is removed by a later Load in
// its directory once it is ten minutes old. A Store of
// several entries (a certificate and its key) is first written as one
// journal file in the directory of its first entry; the next Load in that
// directory completes an interrupted Store from the journal, so a reader
// never sees a key that does not match its certificate.
//
// Files holding Private entries get mode 0600, others 0644, whatever the
// umask; a missing directory is created 0755 (whatever the umask).
// A file that is a symbolic link is replaced by a regular file, never
// written through; reads follow links (so a layout of links, such as
// certbot's live/ directory, loads). Files larger than 1 MiB are refused
// without being read whole. Lock uses an OS file lock (flock) on a file beside the
// key, released by the kernel when the holding process dies.
type FileStorage struct {
	mu sync.Mutex // serialises journal writes and recovery in this process
	fileLocks
}

// journal is the on-disk form of a multi-entry Store.
type journal struct {
	Entries []journalEntry `json:"entries"`
}

type journalEntry struct {
	Key     string `json:"key"`
	Value   []byte `json:"value"`
	Private bool   `json:"private,omitempty"`
}

// Load implements Storage.
func (s *FileStorage) Load(ctx context.Context, key string) ([]byte, error) {
	dir := filepath.Dir(key)
	if err := s.recover(ctx, dir); err != nil {
		return nil, err
	}
	removeStaleTemps(dir)
	return readFileLimited(key, maxFileSize)
}

// Store implements Storage.
func (s *FileStorage) Store(ctx context.Context, entries ...Entry) error {
	switch len(entries) {
	case 0:
		return nil
	case 1:
		e := entries[0]
		return writeFileAtomic(e.Key, e.Value, e.Private)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := journal{Entries: make([]journalEntry, len(entries))}
	keys := make([]string, len(entries))
	private := false
	for i, e := range entries {
		j.Entries[i] = journalEntry(e)
		keys[i] = e.Key
		private = private || e.Private
	}
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	jpath := journalPath(keys)
	if err := mkdirAll(filepath.Dir(jpath)); err != nil {
		return err
	}
	unlock, err := s.lockFile(ctx, filepath.Join(filepath.Dir(jpath), journalLock))
	if err != nil {
		return fmt.Errorf("lock journal: %w", err)
	}
	defer unlock()
	if err := writeFileAtomic(jpath, data, true); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := applyJournal(j); err != nil {
		return err
	}
	return removeSynced(jpath)
}

// Delete implements Storage.
func (s *FileStorage) Delete(ctx context.Context, key string) error {
	err := os.Remove(key)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Stat implements Storage.
func (s *FileStorage) Stat(ctx context.Context, key string) (KeyInfo, error) {
	fi, err := os.Stat(key)
	if err != nil {
		return KeyInfo{}, err
	}
	return KeyInfo{Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Lock implements Storage. The lock file is the key's path with ".lock"
// appended, with a leading dot on its base name.
func (s *FileStorage) Lock(ctx context.Context, name string) (func(), error) {
	path := filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+lockSuffix)
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return s.lockFile(ctx, path)
}

// journalPath names the journal of a Store of keys: in the directory of the
// first key, named after all of them, so a repeated Store of the same
// certificate reuses one journal name.
func journalPath(keys []string) string {
	sum := sha256.Sum256([]byte(strings.Join(keys, "\x00")))
	return filepath.Join(filepath.Dir(keys[0]), journalPrefix+hex.EncodeToString(sum[:8]))
}

// recover completes every Store interrupted in dir. A journal that does not
// parse was never completely written (it is renamed into place only when
// whole), so it cannot exist; it is removed all the same to be safe. A
// journal seen while its Store runs is waited for: once the journal lock
// is held, a journal still there belongs to a Store that died.
func (s *FileStorage) recover(ctx context.Context, dir string) error {
	matches, _ := filepath.Glob(filepath.Join(dir, journalPrefix+"*"))
	if len(matches) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lockFile(ctx, filepath.Join(dir, journalLock))
	if err != nil {
		return fmt.Errorf("lock journal: %w", err)
	}
	defer unlock()
	for _, jpath := range matches {
		data, err := readFileLimited(jpath, maxFileSize)
		if errors.Is(err, fs.ErrNotExist) {
			continue // completed meanwhile
		}
		if err != nil {
			return fmt.Errorf("read journal: %w", err)
		}
		var j journal
		if err := json.Unmarshal(data, &j); err == nil {
			if err := applyJournal(j); err != nil {
				return fmt.Errorf("complete interrupted write: %w", err)
			}
		}
		if err := removeSynced(jpath); err != nil {
			return err
		}
	}
	return nil
}

func applyJournal(j journal) error {
	for _, e := range j.Entries {
		if err := writeFileAtomic(e.Key, e.Value, e.Private); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic replaces path with data: temporary file in the same
// directory, fsync, chmod, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, private bool) (err error) {
	dir := filepath.Dir(path)
	mode := os.FileMode(0o644)
	if private {
		mode = 0o600
	}
	if err := mkdirAll(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// dirMode is the mode of the directories FileStorage creates, whatever the
// umask: the certificates in them (0644) stay readable by other users, as
// the servers that read them (nginx, HAProxy) often run as another user;
// the secrets in them are 0600 files.
const dirMode = 0o755

// mkdirAll creates dir and its missing parents with mode dirMode, whatever
// the umask. Directories that exist are left as they are.
func mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made meanwhile by another writer
		}
		return err
	}
	return os.Chmod(dir, dirMode)
}

// staleTempAge is the age after which a temporary file is known to be left
// by a write that never finished (its process died before the rename): no
// write takes that long, so no live writer owns it.
const staleTempAge = 10 * time.Minute

// removeStaleTemps removes from dir the temporary files of writes that
// never finished. They are litter, but may hold private keys: every Load
// in their directory (every start reads there) clears those of the past.
// Errors are ignored.
func removeStaleTemps(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	for _, m := range matches {
		if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTempAge {
			_ = os.Remove(m)
		}
	}
}

func removeSynced(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some file systems do not support syncing a directory; the rename
	// itself is still atomic there.
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			return err
		}
	}
	return nil
}

// lockRetry is how often a contended lock is tried again.
const lockRetry = 25 * time.Millisecond
