package autocert

import (
	"context"
	"errors"
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
	// every certificate and key file are looked at, as the fallback of
	// file-system notifications (which a network file system does not send
	// for writes made on another host, and which may be unavailable).
	fileCheckInterval = 5 * time.Second
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
	s       *scheduler
	byPath  map[string][]*entry // cleaned cert_path and key_path
	dirs    map[string]bool     // directories of the files; true once watched
	stamps  map[*entry]fileStamp
	pending map[*entry]bool // notified, to be read once settled
	deliver func([]Event)
}

// syncFiles keeps the certificates, kept in a FileStorage, in step with
// their files until ctx ends: a certificate another process
// stored is loaded and served (without being written again), announced
// with a CertReloaded event, and the scheduler plans anew from it.
// Changes are seen through file-system notifications on the files'
// directories within fileSettle, and through a look at the files every
// fileCheckInterval in any case.
func (s *scheduler) syncFiles(ctx context.Context) {
	defer s.finishAux()
	deliver, stop := s.eventQueue(ctx)
	defer stop()
	fs := &fileSync{
		s: s, byPath: map[string][]*entry{}, dirs: map[string]bool{},
		stamps: map[*entry]fileStamp{}, pending: map[*entry]bool{}, deliver: deliver,
	}
	for _, q := range s.entries {
		for _, path := range []string{q.c.cfg.CertPath, q.c.cfg.KeyPath} {
			path = filepath.Clean(path)
			fs.byPath[path] = append(fs.byPath[path], q)
			fs.dirs[filepath.Dir(path)] = false
		}
		fs.stamps[q] = fs.stamp(ctx, q)
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
			fs.watch(w)
		}
	}
	// What changed while the watches were being set up.
	fs.checkAll(ctx)

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
				fs.watch(w) // directories made since
			}
			fs.checkAll(ctx)
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

// watch adds the directories not watched yet to w; one that does not exist
// (yet) is tried again at the next periodic look.
func (fs *fileSync) watch(w *fsnotify.Watcher) {
	for dir, watched := range fs.dirs {
		if watched {
			continue
		}
		if err := w.Add(dir); err != nil {
			fs.s.logger.Debug().Err(err).Str("dir", dir).Msg("cannot watch the certificate directory; looking at it periodically")
			continue
		}
		fs.dirs[dir] = true
	}
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
		now := fs.stamp(ctx, q)
		prev := fs.stamps[q]
		if sameStat(now[0], prev[0]) && sameStat(now[1], prev[1]) {
			continue
		}
		fs.stamps[q] = now
		fs.reload(ctx, q)
	}
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
