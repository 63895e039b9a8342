package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// StorageType is the storage type this package registers: the Type of an
// autocert.StorageConfig that selects it.
const StorageType = "postgres"

// TableName is the table Open creates and uses.
const TableName = "autocert_storage"

// maxKeyLen is the longest key accepted: a key is the payload of a
// NOTIFY, which must be shorter than 8000 bytes.
const maxKeyLen = 7999

// Keepalive of the connections that hold a lock or listen: a dead peer is
// noticed after idle + count*interval, about 25 s.
const (
	keepaliveIdle     = 10 * time.Second
	keepaliveInterval = 5 * time.Second
	keepaliveCount    = 3
)

// ErrClosed is returned by the methods of a Storage that was closed, and by
// Watch when the Storage is closed while it runs.
var ErrClosed = errors.New("postgres: storage closed")

func init() {
	autocert.RegisterStorage(StorageType, func(ctx context.Context, cfg autocert.StorageConfig) (autocert.Storage, error) {
		// New puts the Provider's logger in ctx: the storage logs there.
		return Open(ctx, cfg.DSN.Value(), WithLogger(*zerolog.Ctx(ctx)))
	})
}

// Storage is an autocert.Storage and autocert.Watcher kept in a PostgreSQL
// database. It is safe for concurrent use. Close it when done.
type Storage struct {
	pool     *pgxpool.Pool
	lockCfg  *pgx.ConnConfig  // dedicated connections of locks
	watchCfg *pgx.ConnConfig  // dedicated connections of Watch
	table    string           // quoted schema-qualified table name
	ns       string           // schema.table, unquoted: namespace of lock ids
	channel  string           // NOTIFY channel
	scrubber *redact.Scrubber // removes the password from errors and logs
	logger   zerolog.Logger

	closed    context.Context // done once Close is called
	closeFunc context.CancelFunc
	closeOnce sync.Once

	mu    sync.Mutex
	locks map[*pgx.Conn]struct{} // connections holding a lock
}

// Option changes how Open sets up a Storage.
type Option func(*Storage)

// WithLogger sets where Watch reports lost and regained connections. The
// default discards them.
func WithLogger(l zerolog.Logger) Option {
	return func(s *Storage) { s.logger = l }
}

// errInvalidDSN reports a DSN that does not parse. It shows no part of the
// DSN: pgx's message can quote it, password included, when it is malformed.
var errInvalidDSN = errors.New("postgres: cannot parse the DSN; it must be a postgres:// URL " +
	"(special characters in the user name or password percent-encoded) or a list of key=value settings")

// Open connects to the database of dsn, creates the table when it is
// missing, and returns the Storage. The ctx bounds the opening only.
func Open(ctx context.Context, dsn string, opts ...Option) (*Storage, error) {
	poolCfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errInvalidDSN
	}
	s := &Storage{
		logger:   zerolog.Nop(),
		scrubber: newScrubber(dsn, poolCfg.ConnConfig.Password),
		locks:    make(map[*pgx.Conn]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepaliveIdle, Interval: keepaliveInterval, Count: keepaliveCount,
	}}
	s.watchCfg = poolCfg.ConnConfig.Copy()
	s.watchCfg.DialFunc = dialer.DialContext
	s.lockCfg = poolCfg.ConnConfig.Copy()
	s.lockCfg.DialFunc = dialer.DialContext
	// A Lock whose ctx ends cancels its wait on the server, rather than
	// only dropping the connection while the server keeps waiting.
	s.lockCfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}

	s.pool, err = pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, s.wrap("open", err)
	}
	if err := s.createTable(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	s.closed, s.closeFunc = context.WithCancel(context.Background())
	s.logger.Info().Str("host", poolCfg.ConnConfig.Host).Str("database", poolCfg.ConnConfig.Database).
		Str("table", s.table).Msg("postgres storage: connected")
	return s, nil
}

// createTable finds the schema and creates the table in it when missing.
func (s *Storage) createTable(ctx context.Context) error {
	var schema *string
	if err := s.pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return s.wrap("open", err)
	}
	if schema == nil {
		return errors.New("postgres: open: no schema to use: the search_path of the DSN names no existing schema")
	}
	s.table = pgx.Identifier{*schema, TableName}.Sanitize()
	s.ns = *schema + "." + TableName
	sum := sha256.Sum256([]byte(s.ns))
	s.channel = "autocert_" + hex.EncodeToString(sum[:8])

	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.table).Scan(&exists); err != nil {
		return s.wrap("open", err)
	}
	if exists {
		return nil
	}
	// Concurrent CREATE TABLE IF NOT EXISTS can fail on the catalog's
	// unique indexes: instances starting together take turns.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockID("\x00create table")); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
			key text PRIMARY KEY,
			value bytea NOT NULL,
			size bigint NOT NULL,
			modified timestamptz NOT NULL
		)`)
		return err
	})
	if err != nil {
		return s.wrap("create table "+s.ns, err)
	}
	return nil
}

// Close releases the locks still held, makes running Watch calls return
// ErrClosed, and closes the connection pool. It always returns nil.
func (s *Storage) Close() error {
	s.closeOnce.Do(func() {
		s.closeFunc()
		s.mu.Lock()
		conns := make([]*pgx.Conn, 0, len(s.locks))
		for c := range s.locks {
			conns = append(conns, c)
		}
		clear(s.locks)
		s.mu.Unlock()
		for _, c := range conns {
			closeConn(c)
		}
		s.pool.Close()
	})
	return nil
}

// Load implements autocert.Storage.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	if err := s.usable(key); err != nil {
		return nil, fmt.Errorf("postgres: load %q: %w", key, err)
	}
	var value []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM "+s.table+" WHERE key = $1", key).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: load %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("load %q", key), err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}

// Stat implements autocert.Storage. The time is the database server's.
func (s *Storage) Stat(ctx context.Context, key string) (autocert.KeyInfo, error) {
	if err := s.usable(key); err != nil {
		return autocert.KeyInfo{}, fmt.Errorf("postgres: stat %q: %w", key, err)
	}
	var info autocert.KeyInfo
	err := s.pool.QueryRow(ctx, "SELECT size, modified FROM "+s.table+" WHERE key = $1", key).Scan(&info.Size, &info.Modified)
	if errors.Is(err, pgx.ErrNoRows) {
		return autocert.KeyInfo{}, fmt.Errorf("postgres: stat %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return autocert.KeyInfo{}, s.wrap(fmt.Sprintf("stat %q", key), err)
	}
	return info, nil
}

// Store implements autocert.Storage: one statement writes every entry and
// notifies each key, so it is one transaction. When a key appears more
// than once, its last entry wins.
func (s *Storage) Store(ctx context.Context, entries ...autocert.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	keys := make([]string, 0, len(entries))
	values := make([][]byte, 0, len(entries))
	index := make(map[string]int, len(entries))
	for _, e := range entries {
		if err := s.usable(e.Key); err != nil {
			return fmt.Errorf("postgres: store %q: %w", e.Key, err)
		}
		v := e.Value
		if v == nil {
			v = []byte{} // the column is NOT NULL
		}
		if i, dup := index[e.Key]; dup {
			values[i] = v
			continue
		}
		index[e.Key] = len(keys)
		keys = append(keys, e.Key)
		values = append(values, v)
	}
	_, err := s.pool.Exec(ctx, `WITH stored AS (
		INSERT INTO `+s.table+` AS t (key, value, size, modified)
		SELECT k, v, octet_length(v), now() FROM unnest($1::text[], $2::bytea[]) AS e(k, v)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size, modified = excluded.modified
		RETURNING t.key
	)
	SELECT pg_notify($3, key) FROM stored`, keys, values, s.channel)
	if err != nil {
		return s.wrap(fmt.Sprintf("store %s", quoteKeys(keys)), err)
	}
	return nil
}

// Delete implements autocert.Storage.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if err := s.usable(key); err != nil {
		return fmt.Errorf("postgres: delete %q: %w", key, err)
	}
	_, err := s.pool.Exec(ctx, `WITH deleted AS (
		DELETE FROM `+s.table+` WHERE key = $1 RETURNING key
	)
	SELECT pg_notify($2, key) FROM deleted`, key, s.channel)
	if err != nil {
		return s.wrap(fmt.Sprintf("delete %q", key), err)
	}
	return nil
}

// Lock implements autocert.Storage with a session advisory lock on a
// connection of its own; see the package documentation.
func (s *Storage) Lock(ctx context.Context, name string) (func(), error) {
	if err := s.usable(name); err != nil {
		return nil, fmt.Errorf("postgres: lock %q: %w", name, err)
	}
	id := s.lockID(name)
	conn, err := pgx.ConnectConfig(ctx, s.lockCfg)
	if err != nil {
		return nil, s.lockError(ctx, name, err)
	}
	// The server probes an idle lock session, so that the lock of a holder
	// whose host or network died is released (TCP only; ignored on unix
	// sockets).
	_, err = conn.Exec(ctx, `SELECT set_config('tcp_keepalives_idle', $1, false),
		set_config('tcp_keepalives_interval', $2, false),
		set_config('tcp_keepalives_count', $3, false),
		set_config('application_name', 'autocert lock', false)`,
		strconv.Itoa(int(keepaliveIdle/time.Second)), strconv.Itoa(int(keepaliveInterval/time.Second)), strconv.Itoa(keepaliveCount))
	if err == nil {
		_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id)
	}
	if err != nil {
		closeConn(conn)
		return nil, s.lockError(ctx, name, err)
	}
	s.mu.Lock()
	if s.closed.Err() != nil { // closed while we waited
		s.mu.Unlock()
		closeConn(conn)
		return nil, fmt.Errorf("postgres: lock %q: %w", name, ErrClosed)
	}
	s.locks[conn] = struct{}{}
	s.mu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			_, held := s.locks[conn]
			delete(s.locks, conn)
			s.mu.Unlock()
			if !held {
				return // Close released it
			}
			// Unlock explicitly, so the lock is free when this returns;
			// closing the session would release it too, a little later.
			// An error means the session is gone, and the lock with it.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", id)
			closeConn(conn)
		})
	}, nil
}

func (s *Storage) lockError(ctx context.Context, name string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("postgres: lock %q: %w", name, ctx.Err())
	}
	return s.wrap(fmt.Sprintf("lock %q", name), err)
}

// lockID is the advisory lock id of name: a hash of the table and name, so
// that stores in different schemas of one database do not share locks.
func (s *Storage) lockID(name string) int64 {
	sum := sha256.Sum256([]byte(s.ns + "\x00" + name))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// usable checks that the Storage is open and that key can be stored.
func (s *Storage) usable(key string) error {
	if s.closed.Err() != nil {
		return ErrClosed
	}
	switch {
	case key == "":
		return errors.New("empty key")
	case len(key) > maxKeyLen:
		return fmt.Errorf("key longer than %d bytes", maxKeyLen)
	case !utf8.ValidString(key) || strings.ContainsRune(key, 0):
		return errors.New("key is not valid UTF-8 text")
	}
	return nil
}

// closeConn closes a dedicated connection, waiting at most a second for
// the server.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx)
}

func quoteKeys(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	return strings.Join(q, ", ")
}

// newScrubber returns the Scrubber of the secrets of dsn and of the
// password it resolves to (which may come from the environment or a
// password file): as they are, in their encodings, and the password
// escaped as in the user information of a URL.
func newScrubber(dsn, password string) *redact.Scrubber {
	secrets := redact.DSNSecrets(dsn)
	if password != "" {
		secrets = append(secrets, password, url.UserPassword("", password).String()[1:])
	}
	return redact.New(secrets...)
}

// wrap prefixes err with the operation and removes the secrets from its
// text; errors.Is and errors.As still find err.
func (s *Storage) wrap(op string, err error) error {
	return s.scrubber.Error(fmt.Errorf("postgres: %s: %w", op, err))
}
