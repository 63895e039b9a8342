// Package pgtest gives tests the throwaway PostgreSQL server that
// .ci/postgres.sh starts: its address, a schema of their own, and control
// of the server (restart, stop, start) for fault tests.
//
// A test binary that uses the server calls Serialize from its TestMain, so
// that it never runs while another one restarts the server.
//
// Run the tests with the server like .ci/run does:
//
//	source .ci/postgres.sh     # exports AUTOCERT_TEST_PG_DSN and AUTOCERT_TEST_PG_CTL
//	go test ./storage/postgres/
//
// Without AUTOCERT_TEST_PG_DSN the tests that need the server skip, saying
// so, unless CI is set: then they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables set by .ci/postgres.sh.
const (
	// EnvDSN holds the DSN of the test server's database autocert_test,
	// with the password of its superuser postgres.
	EnvDSN = "AUTOCERT_TEST_PG_DSN"
	// EnvCtl holds the pg_ctl command line of the test server, to which
	// "start", "stop -m fast" or "restart -m fast" is appended.
	EnvCtl = "AUTOCERT_TEST_PG_CTL"
	// EnvLock names the file Serialize locks.
	EnvLock = "AUTOCERT_TEST_PG_LOCK"
)

// DSN returns the DSN of the test server. When there is none, it skips t,
// or fails it when the CI variable is set.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		const msg = EnvDSN + " is not set: start a throwaway server with `source .ci/postgres.sh` to run this test"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this test must run)")
		}
		t.Skip(msg)
	}
	return dsn
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// SchemaDSN creates a schema of t's own, dropped when t ends, and returns
// the DSN of the test server with its search_path set to that schema.
func SchemaDSN(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	var rnd [4]byte
	rand.Read(rnd[:])
	name := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	schema := "t_" + name + "_" + hex.EncodeToString(rnd[:])
	Exec(t, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() {
		Exec(t, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	return WithParam(t, dsn, "search_path", schema)
}

// WithParam returns dsn with a connection parameter set, in either DSN
// form (URL or key=value).
func WithParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s is not a valid URL", EnvDSN)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
}

// Exec runs SQL statements on the test server's database as its
// superuser, failing t on error.
func Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, DSN(t))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Restart restarts the test server (pg_ctl restart -m fast: open sessions
// are ended) and returns once it accepts connections again.
func Restart(t testing.TB) { t.Helper(); ctl(t, "restart", "-m", "fast") }

// Stop stops the test server (pg_ctl stop -m fast). Call Start before t
// ends: the other tests need it.
func Stop(t testing.TB) { t.Helper(); ctl(t, "stop", "-m", "fast") }

// Start starts the test server after Stop and returns once it accepts
// connections.
func Start(t testing.TB) { t.Helper(); ctl(t, "start") }

func ctl(t testing.TB, args ...string) {
	t.Helper()
	DSN(t)
	line := os.Getenv(EnvCtl)
	if line == "" {
		t.Fatalf("%s is not set: it comes with %s from .ci/postgres.sh", EnvCtl, EnvDSN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line+" "+strings.Join(args, " "))
	cmd.Dir = os.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
