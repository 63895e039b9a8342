package autocert

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Keeping the certificates served in step with their files, when another
// process sharing them (a second `autocert run`, an `autocert renew
// --force`, a second Provider) stores a new certificate. These are
// real-time intervals, not read through the Provider's Clock.
const (
	// fileCheckInterval is how often the size and modification time of
	// the certificate and key files are looked at, as the fallback of
	// file-system notifications (which a network file system does not send
	// for writes made on another host, and which may be unavailable).
	fileCheckInterval = 5 * time.Second
	// fileCheckRate bounds the files looked at per second of
	// fileCheckInterval, so that following many certificates costs no
	// CPU to speak of: a look at a file is a stat, 1 to 3 µs here, so at
	// most 0.03% of a core. Each periodic look takes the next
	// fileCheckInterval × fileCheckRate files (500: those of 250
	// certificates) in turn; so every file is looked at within
	// ⌈files / 500⌉ × 5 s: 5 s up to 250 certificates, 20 s at 1,000,
	// 200 s at 10,000, 2,000 s at 100,000. That is the delay of the
	// fallback only (a certificate another host stored on a network
	// file system; a renewal comes weeks before expiry): notifications,
	// where the file system sends them, see a change within fileSettle
	// whatever the number of files, and lost ones (an overflow) make a
	// look at every file.
	fileCheckRate = 100
	// fileSettle is how long a change notification waits for more
	// changes before the files are read: a certificate and its key are
	// replaced by two renames.
	fileSettle = 100 * time.Millisecond
	// fileReloadTries is how many times a pair that does not load is read
	// again, fileSettle apart, before it is reported: a reader may fall
	// between the two renames of a store.
	fileReloadTries = 3
)

// fileStamp is what a look at a certificate's two files found.
type fileStamp [2]statResult

// fileSync follows the files of the certificates of one Provider kept in
// a FileStorage. It is used by the one goroutine of syncFiles only.
type fileSync struct {
	s         *scheduler
	byPath    map[string][]*entry // cleaned cert_path and key_path
	unwatched []string            // directories of the files not watched yet
	stamps    map[*entry]fileStamp
	pending   map[*entry]bool // notified, to be read once settled
	deliver   func([]Event)
	// batch is how many certificates (or directories to watch) a
	// periodic look takes; next is the index in s.entries of the first
	// certificate of the next look.
	batch int
	next  int
}

// syncFiles keeps the certificates, kept in a FileStorage, in step with
// their files until ctx ends: a certificate another process
// stored is loaded and served (without being written again), announced
// with a CertReloaded event, and the scheduler plans anew from it.
// Changes are seen through file-system notifications on the files'
// directories within fileSettle, and through a periodic look at the files
// (every file within ⌈files / 500⌉ × fileCheckInterval, see
// fileCheckRate) in any case.
func (s *scheduler) syncFiles(ctx context.Context) {
	defer s.finishAux()
	deliver, stop := s.eventQueue(ctx)
	defer stop()
	fs := &fileSync{
		s: s, byPath: make(map[string][]*entry, 2*len(s.entries)),
		stamps: make(map[*entry]fileStamp, len(s.entries)), pending: map[*entry]bool{}, deliver: deliver,
		batch: fileCheckBatch(s.fileCheckEvery()),
	}
	dirs := map[string]bool{}
	for _, q := range s.entries {
		for _, path := range []string{q.c.cfg.CertPath, q.c.cfg.KeyPath} {
			path = filepath.Clean(path)
			fs.byPath[path] = append(fs.byPath[path], q)
			if dir := filepath.Dir(path); !dirs[dir] {
				dirs[dir] = true
				fs.unwatched = append(fs.unwatched, dir)
			}
		}
	}

	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	var w *fsnotify.Watcher
	if !s.noFileNotify {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			s.logger.Debug().Err(err).Msg("no file-system notifications; certificate files are looked at periodically")
		} else {
			defer w.Close()
			events, watchErrs = w.Events, w.Errors
			fs.watch(w, len(fs.unwatched))
		}
	}
	// The files as they are now that they are watched: a later change
	// is notified, or seen by the periodic look. (Looking at them before
	// the watches are set up and again after would look at every file
	// twice.)
	for _, q := range s.entries {
		if ctx.Err() != nil {
			return
		}
		fs.stamps[q] = fs.stamp(ctx, q)
	}

	check := time.NewTimer(s.fileCheckEvery())
	defer check.Stop()
	var settle *time.Timer
	var settled <-chan time.Time
	defer func() {
		if settle != nil {
			settle.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			qs := fs.byPath[filepath.Clean(ev.Name)]
			if len(qs) == 0 {
				continue
			}
			for _, q := range qs {
				fs.pending[q] = true
			}
			if settle == nil {
				settle = time.NewTimer(fileSettle)
			} else {
				settle.Reset(fileSettle)
			}
			settled = settle.C
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			// An overflow loses events: look at everything.
			s.logger.Debug().Err(err).Msg("file-system notifications")
			fs.checkAll(ctx)
		case <-settled:
			settled = nil
			for q := range fs.pending {
				delete(fs.pending, q)
				fs.stamps[q] = fs.stamp(ctx, q)
				fs.reload(ctx, q)
			}
		case <-check.C:
			if w != nil {
				fs.watch(w, fs.batch) // directories made since
			}
			fs.checkNext(ctx)
			check.Reset(s.fileCheckEvery())
		}
	}
}

// fileCheckEvery is the interval of the periodic look at the files.
func (s *scheduler) fileCheckEvery() time.Duration {
	if s.fileCheck > 0 {
		return s.fileCheck
	}
	return fileCheckInterval
}

// fileCheckBatch is how many certificates a periodic look every interval
// takes: interval × fileCheckRate files, two per certificate, one at
// least.
func fileCheckBatch(interval time.Duration) int {
	files := interval.Seconds() * fileCheckRate
	if files >= float64(math.MaxInt32) {
		return math.MaxInt32
	}
	return max(1, int(files)/2)
}

// watch adds up to limit directories not watched yet to w, in turn; one
// that cannot be watched (it does not exist yet; the limit of watches is
// reached) is tried again at a later periodic look.
func (fs *fileSync) watch(w *fsnotify.Watcher, limit int) {
	limit = min(limit, len(fs.unwatched))
	var failed []string
	for _, dir := range fs.unwatched[:limit] {
		if err := w.Add(dir); err != nil {
			fs.s.logger.Debug().Err(err).Str("dir", dir).Msg("cannot watch the certificate directory; looking at it periodically")
			failed = append(failed, dir)
		}
	}
	fs.unwatched = append(fs.unwatched[limit:], failed...)
}

// stamp looks at q's two files.
func (fs *fileSync) stamp(ctx context.Context, q *entry) fileStamp {
	var st fileStamp
	for i, key := range []string{q.c.cfg.CertPath, q.c.cfg.KeyPath} {
		info, err := q.c.storage.Stat(ctx, key)
		st[i] = statResult{info: info, ok: err == nil}
	}
	return st
}

// checkAll reloads the certificates whose files changed since last seen.
func (fs *fileSync) checkAll(ctx context.Context) {
	for _, q := range fs.s.entries {
		if ctx.Err() != nil {
			return
		}
		fs.check(ctx, q)
	}
}

// checkNext does what checkAll does for the next batch of certificates,
// taken in turn.
func (fs *fileSync) checkNext(ctx context.Context) {
	all := fs.s.entries
	for range min(fs.batch, len(all)) {
		if ctx.Err() != nil {
			return
		}
		if fs.next >= len(all) {
			fs.next = 0
		}
		fs.check(ctx, all[fs.next])
		fs.next++
	}
}

// check reloads q's certificate when its files changed since last seen.
func (fs *fileSync) check(ctx context.Context, q *entry) {
	now := fs.stamp(ctx, q)
	prev := fs.stamps[q]
	if sameStat(now[0], prev[0]) && sameStat(now[1], prev[1]) {
		return
	}
	fs.stamps[q] = now
	fs.reload(ctx, q)
}

// reload loads q's certificate from its files and serves it when it is
// another than the one served. A pair that does not load is read again a
// few times, in case a store was between its two renames, before the
// problem is logged (the certificate served stays).
func (fs *fileSync) reload(ctx context.Context, q *entry) {
	for try := 1; ; try++ {
		if ctx.Err() != nil {
			return
		}
		events, err := fs.s.reload(ctx, q)
		fs.deliver(events)
		if err == nil || try == fileReloadTries || !errors.Is(err, ErrMissingCertificate) {
			q.c.logReloadError(ctx, err)
			return
		}
		t := time.NewTimer(fileSettle)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
