// Package postgres keeps autocert's state in PostgreSQL, so that several
// instances of a program (replicas behind a load balancer) share one set of
// certificates: one instance orders a certificate, all of them serve it.
//
// Importing the package registers the storage type "postgres":
//
//	import _ "github.com/autocert-dev/autocert/storage/postgres"
//
//	storage:
//	  type: postgres
//	  dsn: ${PG_DSN}   # postgres://autocert:secret@db.internal/certs?sslmode=verify-full
//
// or call Open and pass the Storage to the Provider with
// autocert.WithStorage. The DSN is a pgx connection string (URL or
// key=value); its search_path parameter selects the schema. Its password is
// a secret: errors and log lines never show it, and a DSN that cannot be
// parsed is reported without any of its text.
//
// # Data
//
// Open creates, when it is missing, one table autocert_storage (key text
// primary key, value bytea, size bigint, modified timestamptz) in the first
// existing schema of the search path; creating it needs the CREATE
// privilege on that schema, using it needs SELECT, INSERT, UPDATE and
// DELETE. Several instances opening at the same moment serialise the
// creation. Private keys are stored as they are: restrict access to the
// database and use TLS between hosts.
//
// A Store of several entries is one SQL statement, hence one transaction:
// other instances see all of its values or none. Modification times are
// the database server's clock.
//
// # Change notification
//
// Every Store and Delete sends, in its own transaction, a NOTIFY with the
// key on a channel named after the schema and table, so the notification
// is delivered only when the change is committed and visible. Watch
// LISTENs on a dedicated connection and calls its callback with each key.
// When that connection is lost (server restart, network failure) Watch
// reconnects with exponential back-off (from 50 ms up to 5 s) and, once
// listening again, calls the callback with the empty key: notifications
// sent meanwhile are lost, so the caller re-reads everything. A dead
// server or network is detected by TCP keepalive within about 25 s when
// the server does not close the connection itself; callers also re-read
// periodically as a safety net.
//
// # Locks
//
// Lock takes a session-level advisory lock (pg_advisory_lock) on a
// connection of its own, opened for the lock and closed by the unlock
// function; its id is a 64-bit hash of the schema, table and lock name.
// The alternative, a lease row with an expiry time and a fencing token
// checked on every write, was not chosen:
//
//   - An advisory lock dies with its session, so a holder that dies frees
//     its lock at once: the kernel closes the dead process's socket and the
//     server ends the session. A lease frees it only when its time runs
//     out, so its duration trades the wait after a crash against the risk
//     that a live but slow holder (a long GC pause, a slow database) loses
//     its lease, and the holder must renew it in the background.
//   - Fencing needs every write to carry the token of the lock that guards
//     it, and Storage.Store is not tied to a lock. Nor is fencing what this
//     data needs: a holder that lost its lock and still stores writes a
//     valid certificate with its key, atomically; the last Store wins and
//     the data stays whole. The lock exists to avoid a second ACME order,
//     and losing it costs at most one extra order.
//
// Failure modes of the lock:
//
//   - Holder process killed or crashed: the server sees the connection
//     close and releases the lock within milliseconds; another instance
//     waiting in Lock gets it.
//   - Holder host down or network partition: the server learns of the dead
//     peer through TCP keepalive, which the lock's session sets to probe
//     after 10 s idle, every 5 s, 3 times: the lock is released after about
//     25 s (on TCP connections; over a unix socket both ends share a host).
//     A partitioned holder that is still running is not told; it cannot
//     write while partitioned, and if it writes after the partition heals
//     while another instance also ordered, the last Store wins.
//   - Database restart or failover while a lock is held: all sessions end,
//     so all locks are released; the holders are not told and carry on.
//     Another instance may then take the lock and order the same
//     certificate again (one extra order, data whole, as above). The
//     holder's unlock function then does nothing harmful.
//   - Lock waiting when ctx ends: the wait is cancelled on the server (a
//     cancel request) and the connection closed; Lock returns ctx.Err().
//
// Session advisory locks and LISTEN need a real session: connect directly
// or through a pooler in session mode, not transaction or statement mode.
// Each held lock and each running Watch uses one connection besides the
// pool's; size max_connections for that.
package postgres
