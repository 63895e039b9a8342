package autocert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestFileStorageModesIgnoreUmask(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not POSIX on Windows")
	}
	for _, umask := range []int{0, 0o022, 0o077} {
		old := syscall.Umask(umask)
		dir := t.TempDir()
		s := &FileStorage{}
		ctx := context.Background()
		cert := filepath.Join(dir, "pub", "cert.crt")
		key := filepath.Join(dir, "priv", "key.pem")
		err := s.Store(ctx, Entry{Key: cert, Value: []byte("c")}, Entry{Key: key, Value: []byte("k"), Private: true})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]os.FileMode{
			// Directories are 0755 whatever the umask, also one made for
			// a key alone: the key file itself is 0600.
			cert: 0o644, key: 0o600, filepath.Dir(key): 0o755 | fs.ModeDir, filepath.Dir(cert): 0o755 | fs.ModeDir,
		} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("umask %03o: %s has mode %v, want %v", umask, path, fi.Mode(), want)
			}
		}
		if fi, _ := os.Stat(filepath.Dir(cert)); fi.Mode()&0o022 != 0 {
			t.Errorf("umask %03o: certificate directory is group/world writable: %v", umask, fi.Mode())
		}
	}
}

func TestFileStorageLoadMissing(t *testing.T) {
	s := &FileStorage{}
	_, err := s.Load(context.Background(), filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if err := s.Delete(context.Background(), filepath.Join(t.TempDir(), "nope")); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

// TestFileStorageCompletesInterruptedStore simulates a crash after the
// journal of a certificate/key pair was written and only the key was
// replaced: the next Load must see the new pair, never new key + old cert.
func TestFileStorageCompletesInterruptedStore(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.crt"), filepath.Join(dir, "priv.key")
	s := &FileStorage{}
	ctx := context.Background()
	if err := s.Store(ctx, Entry{Key: cert, Value: []byte("old cert")}, Entry{Key: key, Value: []byte("old key"), Private: true}); err != nil {
		t.Fatal(err)
	}
	j := journal{Entries: []journalEntry{{Key: cert, Value: []byte("new cert")}, {Key: key, Value: []byte("new key"), Private: true}}}
	data, _ := json.Marshal(j)
	if err := writeFileAtomic(journalPath([]string{cert, key}), data, true); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(key, []byte("new key"), true); err != nil { // crash here
		t.Fatal(err)
	}
	got, err := s.Load(ctx, cert)
	if err != nil {
		t.Fatal(err)
	}
	gotKey, _ := s.Load(ctx, key)
	if string(got) != "new cert" || string(gotKey) != "new key" {
		t.Fatalf("after recovery: cert %q key %q, want the new pair", got, gotKey)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, journalPrefix+"*")); len(m) != 0 {
		t.Fatalf("journal left behind: %v", m)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("recovered key mode %v", fi.Mode())
	}
}

func TestFileStorageReplacesSymlinkInsteadOfWritingThrough(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "priv.key")
	if err := os.Symlink(target, link); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	if err := (&FileStorage{}).Store(context.Background(), Entry{Key: link, Value: []byte("key"), Private: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Fatalf("symlink target overwritten: %q", b)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&fs.ModeSymlink != 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key path is %v, want a regular 0600 file", fi.Mode())
	}
}

func TestFileStorageLockExcludesAndTimesOut(t *testing.T) {
	s := &FileStorage{}
	name := filepath.Join(t.TempDir(), "cert.crt")
	unlock, err := s.Lock(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held: %v, want deadline exceeded", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := s.Lock(context.Background(), name)
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock not granted after release")
	}
}

// TestFileStorageLockFreedWhenHolderDies holds the lock in a child process,
// kills it with SIGKILL and takes the lock.
func TestFileStorageLockFreedWhenHolderDies(t *testing.T) {
	if name := os.Getenv("AUTOCERT_TEST_HOLD_LOCK"); name != "" {
		if _, err := (&FileStorage{}).Lock(context.Background(), name); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL on Windows")
	}
	name := filepath.Join(t.TempDir(), "cert.crt")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStorageLockFreedWhenHolderDies$")
	cmd.Env = append(os.Environ(), "AUTOCERT_TEST_HOLD_LOCK="+name)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || !bytes.Equal(buf, []byte("held\n")) {
		t.Fatalf("child did not take the lock: %q %v", buf, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if _, err := (&FileStorage{}).Lock(ctx, name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while another process holds it: %v", err)
	}
	cancel()
	cmd.Process.Kill()
	cmd.Wait()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := (&FileStorage{}).Lock(ctx, name)
	if err != nil {
		t.Fatalf("lock of a killed holder not released: %v", err)
	}
	unlock()
}

// crashedStore leaves in dir what a Store of entries killed after its
// journal was written leaves: the journal, and the first entry only
// replaced.
func crashedStore(t *testing.T, jpath string, entries ...journalEntry) {
	t.Helper()
	data, err := json.Marshal(journal{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(jpath, data, true); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(entries[0].Key, entries[0].Value, entries[0].Private); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t *testing.T, s *FileStorage, key, want string) {
	t.Helper()
	got, err := s.Load(context.Background(), key)
	if want == "" {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %q, %v; want it missing", filepath.Base(key), got, err)
		}
		return
	}
	if err != nil || string(got) != want {
		t.Errorf("%s: %q, %v; want %q", filepath.Base(key), got, err, want)
	}
}

func wantNoJournal(t *testing.T, dir string) {
	t.Helper()
	if m, _ := filepath.Glob(filepath.Join(dir, journalPrefix+"*")); len(m) != 0 {
		t.Errorf("journal left behind: %v", m)
	}
}

// TestFileStorageInterruptedStoreSeenByRunningReader: a FileStorage that
// has already read in a directory (a running Provider) sees a Store that
// another process left half done there afterwards, whichever of the two
// files it reads first: Load looks for the journal itself on every read,
// without listing the directory.
func TestFileStorageInterruptedStoreSeenByRunningReader(t *testing.T) {
	for _, first := range []string{"cert", "key"} {
		t.Run(first+" first", func(t *testing.T) {
			dir := t.TempDir()
			cert, key := filepath.Join(dir, "cert.crt"), filepath.Join(dir, "priv.key")
			s := &FileStorage{}
			ctx := context.Background()
			if err := s.Store(ctx, Entry{Key: cert, Value: []byte("old cert")}, Entry{Key: key, Value: []byte("old key"), Private: true}); err != nil {
				t.Fatal(err)
			}
			wantFile(t, s, cert, "old cert")
			// Another process's Store, killed after replacing the key.
			crashedStore(t, journalPath([]string{cert, key}),
				journalEntry{Key: key, Value: []byte("new key"), Private: true}, journalEntry{Key: cert, Value: []byte("new cert")})
			if first == "cert" {
				wantFile(t, s, cert, "new cert")
				wantFile(t, s, key, "new key")
			} else {
				wantFile(t, s, key, "new key")
				wantFile(t, s, cert, "new cert")
			}
			wantNoJournal(t, dir)
		})
	}
}

// TestFileStorageCompletesOlderJournal: a journal named as versions
// before this one named them (after a hash of its keys) is completed by
// the first Load in its directory.
func TestFileStorageCompletesOlderJournal(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.crt"), filepath.Join(dir, "priv.key")
	if err := os.WriteFile(cert, []byte("old cert"), 0o644); err != nil {
		t.Fatal(err)
	}
	crashedStore(t, filepath.Join(dir, journalPrefix+"0123456789abcdef"),
		journalEntry{Key: key, Value: []byte("new key"), Private: true}, journalEntry{Key: cert, Value: []byte("new cert")})
	s := &FileStorage{}
	wantFile(t, s, cert, "new cert")
	wantFile(t, s, key, "new key")
	wantNoJournal(t, dir)
}

// TestFileStorageWriteCompletesInterruptedStore: a Store or Delete in a
// directory where a Store was interrupted completes that one first, so
// that completing it later does not bring back older values over newer
// ones, nor a deleted file.
func TestFileStorageWriteCompletesInterruptedStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(s *FileStorage, a, b, c string) error
		want  [3]string // a, b, c afterwards
	}{
		{"store of several", func(s *FileStorage, a, b, c string) error {
			return s.Store(context.Background(), Entry{Key: a, Value: []byte("a3")}, Entry{Key: c, Value: []byte("c3")})
		}, [3]string{"a3", "b2", "c3"}},
		{"store of one", func(s *FileStorage, a, b, c string) error {
			return s.Store(context.Background(), Entry{Key: a, Value: []byte("a3")})
		}, [3]string{"a3", "b2", ""}},
		{"delete", func(s *FileStorage, a, b, c string) error {
			return s.Delete(context.Background(), a)
		}, [3]string{"", "b2", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
			s := &FileStorage{}
			ctx := context.Background()
			if err := s.Store(ctx, Entry{Key: a, Value: []byte("a1")}, Entry{Key: b, Value: []byte("b1")}); err != nil {
				t.Fatal(err)
			}
			// Another process's Store of a and b, killed after writing b.
			crashedStore(t, journalPath([]string{a, b}),
				journalEntry{Key: b, Value: []byte("b2")}, journalEntry{Key: a, Value: []byte("a2")})
			if err := tc.write(s, a, b, c); err != nil {
				t.Fatal(err)
			}
			for i, key := range []string{a, b, c} {
				wantFile(t, &FileStorage{}, key, tc.want[i])
			}
			wantNoJournal(t, dir)
		})
	}
}

// TestFileStorageRemovesStaleTemps: the temporary file of a write that
// never finished is removed by the first Load in its directory once it is
// ten minutes old, and by a later Load of a FileStorage that has been
// reading there for ten minutes; a younger one, maybe a write in
// progress, stays.
func TestFileStorageRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.crt")
	if err := os.WriteFile(cert, []byte("cert"), 0o644); err != nil {
		t.Fatal(err)
	}
	temp := func(name string, age time.Duration) string {
		path := filepath.Join(dir, tempPrefix+name)
		if err := os.WriteFile(path, []byte("key"), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
		return path
	}
	exists := func(path string) bool {
		_, err := os.Lstat(path)
		return err == nil
	}
	old, young := temp("old", time.Hour), temp("young", time.Minute)
	s := &FileStorage{}
	wantFile(t, s, cert, "cert")
	if exists(old) || !exists(young) {
		t.Fatalf("after the first Load: old temp there %v, young temp there %v; want only the young", exists(old), exists(young))
	}
	later := temp("later", time.Hour)
	wantFile(t, s, cert, "cert")
	if !exists(later) {
		t.Fatal("a Load right after the first looked over the directory again")
	}
	// Ten minutes on.
	s.tidied[dir].at = time.Now().Add(-staleTempAge - time.Second)
	wantFile(t, s, cert, "cert")
	if exists(later) || !exists(young) {
		t.Fatalf("ten minutes on: old temp there %v, young temp there %v; want only the young", exists(later), exists(young))
	}
}
