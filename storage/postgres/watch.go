package postgres

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// Back-off between attempts to reconnect the Watch connection.
const (
	watchMinBackoff = 50 * time.Millisecond
	watchMaxBackoff = 5 * time.Second
)

// Watch implements autocert.Watcher: it LISTENs on a connection of its own
// and calls changed with the key of every value stored or deleted through
// any Storage on the same table, until ctx ends (it returns ctx.Err()) or
// the Storage is closed (it returns ErrClosed). After a lost connection it
// reconnects with back-off and then calls changed with the empty key,
// meaning that any value may have changed meanwhile.
func (s *Storage) Watch(ctx context.Context, changed func(key string)) error {
	if s.closed.Err() != nil {
		return ErrClosed
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closed, cancel)
	defer stop()

	backoff := watchMinBackoff
	missed := false // notifications may have been missed
	for {
		conn, err := s.listen(ctx)
		if err == nil {
			if missed {
				s.logger.Info().Msg("postgres storage: watching for changes again")
				changed("")
			}
			missed, backoff = false, watchMinBackoff
			err = receive(ctx, conn, changed)
			closeConn(conn)
		}
		if ctx.Err() != nil {
			return s.watchEnd(parent)
		}
		missed = true
		s.logger.Warn().Str("error", s.scrubber.Scrub(err.Error())).Dur("retry_in", backoff).
			Msg("postgres storage: watching for changes failed; retrying")
		// Up to a quarter less, so that instances do not retry in step.
		wait := backoff - time.Duration(rand.Int64N(int64(backoff/4)+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return s.watchEnd(parent)
		case <-t.C:
		}
		backoff = min(2*backoff, watchMaxBackoff)
	}
}

// watchEnd is what Watch returns when it stops: why parent ended, else
// ErrClosed.
func (s *Storage) watchEnd(parent context.Context) error {
	if err := parent.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// listen opens a connection listening on the channel of the table.
func (s *Storage) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.watchCfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

// receive calls changed for each notification until the connection fails
// or ctx ends.
func receive(ctx context.Context, conn *pgx.Conn, changed func(string)) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		changed(n.Payload)
	}
}
