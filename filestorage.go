package autocert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// journalName is the journal of a multi-entry Store, in the directory
	// of its first entry. One name per directory will do, since the
	// journal lock lets one such Store at a time write in a directory; so
	// a Load finds it with one look instead of listing the directory.
	// (Versions before named journals after their keys, journalPrefix
	// followed by a hash: the look over the whole directory, see tidy,
	// completes those.)
	journalName = journalPrefix + "current"
	tempPrefix  = ".autocert-tmp-"
	lockSuffix  = ".lock"
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
// directory, flushed to disk, then renamed over the old one. A Store of
// several entries (a certificate and its key) is first written as one
// journal file in the directory of its first entry; the next Load, Store
// or Delete in that directory completes an interrupted Store from the
// journal, so a reader never sees a key that does not match its
// certificate. That costs each of them one look at the journal's name, so
// that loading n files costs O(n) whatever the number of files in their
// directories. A temporary file that a killed process left behind is
// removed once it is ten minutes old by a later Load or Store in its
// directory: the first there of each FileStorage (every start), then one
// every ten minutes, each of which lists the directory once.
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

	tidyMu sync.Mutex
	tidied map[string]*dirTidy // by directory; guarded by tidyMu
}

// dirTidy is when a FileStorage last looked over a directory (tidy).
type dirTidy struct {
	mu sync.Mutex // held while looking
	at time.Time  // zero: never
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
	if err := s.prepare(ctx, filepath.Dir(key)); err != nil {
		return nil, err
	}
	return readFileLimited(key, maxFileSize)
}

// prepare readies dir for a read or write of one of its files: the
// directory is looked over if it is due (tidy), then the Store interrupted
// there, if any, is completed.
func (s *FileStorage) prepare(ctx context.Context, dir string) error {
	if err := s.tidy(ctx, dir); err != nil {
		return err
	}
	return s.recover(ctx, dir)
}

// Store implements Storage.
func (s *FileStorage) Store(ctx context.Context, entries ...Entry) error {
	switch len(entries) {
	case 0:
		return nil
	case 1:
		e := entries[0]
		if err := s.prepare(ctx, filepath.Dir(e.Key)); err != nil {
			return err
		}
		return writeFileAtomic(e.Key, e.Value, e.Private)
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	jpath := journalPath(keys)
	dir := filepath.Dir(jpath)
	// A journal of an older version would otherwise be completed over
	// these values later.
	if err := s.tidy(ctx, dir); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := journal{Entries: make([]journalEntry, len(entries))}
	for i, e := range entries {
		j.Entries[i] = journalEntry(e)
	}
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := mkdirAll(dir); err != nil {
		return err
	}
	unlock, err := s.lockFile(ctx, filepath.Join(dir, journalLock))
	if err != nil {
		return fmt.Errorf("lock journal: %w", err)
	}
	defer unlock()
	// A journal there, now that the lock is held, is that of a Store that
	// died: it is completed before this one takes its name.
	if err := completeJournal(jpath); err != nil {
		return err
	}
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
	// An interrupted Store completed later would bring the file back.
	if err := s.recover(ctx, filepath.Dir(key)); err != nil {
		return err
	}
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

// journalPath names the journal of a Store of keys: journalName in the
// directory of the first key.
func journalPath(keys []string) string {
	return filepath.Join(filepath.Dir(keys[0]), journalName)
}

// recover completes the Store interrupted in dir, if any: one look at
// the journal's name. A journal seen while its Store runs is waited for:
// once the journal lock is held, a journal still there belongs to a Store
// that died.
func (s *FileStorage) recover(ctx context.Context, dir string) error {
	// dir is clean (it comes from filepath.Dir): no need for Join.
	jpath := dir + string(filepath.Separator) + journalName
	if !present(jpath) {
		// None; or dir cannot be read, which the caller's own access
		// to its file reports.
		return nil
	}
	return s.completeJournals(ctx, dir, []string{jpath})
}

// completeJournals completes the journals of dir at jpaths, under the
// journal lock of dir.
func (s *FileStorage) completeJournals(ctx context.Context, dir string, jpaths []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lockFile(ctx, filepath.Join(dir, journalLock))
	if err != nil {
		return fmt.Errorf("lock journal: %w", err)
	}
	defer unlock()
	for _, jpath := range jpaths {
		if err := completeJournal(jpath); err != nil {
			return err
		}
	}
	return nil
}

// completeJournal applies the journal at jpath, if there is one, and
// removes it. The caller holds the journal lock of its directory. A
// journal that does not parse was never completely written (it is renamed
// into place only when whole), so it cannot exist; it is removed all the
// same to be safe.
func completeJournal(jpath string) error {
	data, err := readFileLimited(jpath, maxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // none, or completed meanwhile
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
	return removeSynced(jpath)
}

// tidy looks over dir when this FileStorage has not in the last
// staleTempAge: it completes every journal there (those of older
// versions, named otherwise, included) and removes the temporary files of
// writes that never finished. Loads in one directory wait for one look;
// errors listing the directory are ignored (its files' own reads report
// them).
func (s *FileStorage) tidy(ctx context.Context, dir string) error {
	s.tidyMu.Lock()
	if s.tidied == nil {
		s.tidied = make(map[string]*dirTidy)
	}
	t := s.tidied[dir]
	if t == nil {
		t = &dirTidy{}
		s.tidied[dir] = t
	}
	s.tidyMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.at.IsZero() && time.Since(t.at) < staleTempAge {
		return nil
	}
	journals, temps := listDir(dir)
	removeStaleTemps(temps)
	if len(journals) > 0 {
		if err := s.completeJournals(ctx, dir, journals); err != nil {
			return err
		}
	}
	t.at = time.Now()
	return nil
}

// listDir returns the journals and the temporary files in dir.
func listDir(dir string) (journals, temps []string) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, nil
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			switch {
			case strings.HasPrefix(name, journalPrefix):
				journals = append(journals, filepath.Join(dir, name))
			case strings.HasPrefix(name, tempPrefix):
				temps = append(temps, filepath.Join(dir, name))
			}
		}
		if err != nil {
			return journals, temps
		}
	}
}

// dotNames returns the names of the files of dir whose names start with a
// dot (the records kept beside certificates are named so), for a
// recordListing; ok is false when dir cannot be listed or holds a journal:
// a Store not completed, which a Load there completes first.
func (s *FileStorage) dotNames(dir string) (names map[string]bool, ok bool) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, false
	}
	defer d.Close()
	names = make(map[string]bool)
	for {
		batch, err := d.Readdirnames(1024)
		for _, name := range batch {
			if !strings.HasPrefix(name, ".") {
				continue
			}
			if strings.HasPrefix(name, journalPrefix) {
				return nil, false
			}
			names[name] = true
		}
		if errors.Is(err, io.EOF) {
			return names, true
		}
		if err != nil {
			return nil, false
		}
	}
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

// removeStaleTemps removes, of the temporary files at paths, those of
// writes that never finished. They are litter, but may hold private keys:
// a look over their directory (see tidy; every start reads there) clears
// those of the past. Errors are ignored.
func removeStaleTemps(paths []string) {
	for _, m := range paths {
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
