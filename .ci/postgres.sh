#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests of storage/postgres and
# of everything that runs on it. Meant to be sourced by .ci/run:
#
#     source .ci/postgres.sh
#
# It installs Debian's postgresql when initdb/pg_ctl are missing, creates a
# cluster in a fresh temporary directory owned by the postgres user (initdb
# refuses to run as root), starts it on a free loopback port (password auth,
# scram-sha-256) and on a unix socket in that directory (trust auth), waits
# until pg_isready answers, creates the database autocert_test, and exports:
#
#   AUTOCERT_TEST_PG_DSN   postgres://postgres:<random password>@127.0.0.1:<port>/autocert_test?sslmode=disable
#   AUTOCERT_TEST_PG_CTL   the pg_ctl command line of this cluster (run as the
#                          right user, -D/-l/-w already given); append start,
#                          stop -m fast or restart -m fast. The Go helper
#                          internal/pgtest (Restart, Stop, Start) runs it.
#   AUTOCERT_TEST_PG_DATA  the data directory
#   AUTOCERT_TEST_PG_LOG   the server log file
#   AUTOCERT_TEST_PG_LOCK  a file that test processes using the server lock
#                          (internal/pgtest.Serialize), one at a time, since
#                          some restart it
#
# and defines autocert_pg_stop, which stops the server and removes the
# directory. Sourcing sets an EXIT trap that calls it (keeping an EXIT trap
# already set, which runs after it); a caller that sets its own EXIT trap
# afterwards must call autocert_pg_stop from it.
#
# Run directly instead of sourced, it starts the server and prints the export
# lines (for eval "$(bash .ci/postgres.sh)"); stop it later with
#     sh -c "$AUTOCERT_TEST_PG_CTL stop -m immediate"

__autocert_pg_die() {
	echo "postgres: $*" >&2
	return 1
}

# __autocert_pg_bindir prints the directory holding initdb and pg_ctl.
__autocert_pg_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
			echo "$d"
			return 0
		fi
	done
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v pg_ctl)")"
		return 0
	fi
	return 1
}

__autocert_pg_install() {
	if [ "$(id -u)" -ne 0 ]; then
		__autocert_pg_die "initdb/pg_ctl are missing and installing them needs root (apt-get install postgresql)"
		return 1
	fi
	echo "postgres: installing Debian's postgresql" >&2
	# policy-rc.d keeps the package from starting the system's cluster.
	local policy=/usr/sbin/policy-rc.d created=0 status=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		created=1
	fi
	{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2; } || status=$?
	if [ "$created" -eq 1 ]; then
		rm -f "$policy"
	fi
	return "$status"
}

# __autocert_pg_port_free succeeds when nothing listens on 127.0.0.1:$1.
__autocert_pg_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

autocert_pg_start() {
	local bindir
	if ! bindir=$(__autocert_pg_bindir); then
		__autocert_pg_install || return 1
		bindir=$(__autocert_pg_bindir) || { __autocert_pg_die "initdb still missing after installing postgresql"; return 1; }
	fi

	# As root, the server runs as the postgres user; otherwise as the caller.
	local -a as=()
	local owner
	owner=$(id -un)
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || { __autocert_pg_die "user postgres does not exist"; return 1; }
		as=(runuser -u postgres --)
		owner=postgres
	fi

	# As root, under /tmp: the postgres user may not enter root's TMPDIR.
	local dir base=${TMPDIR:-/tmp}
	[ "$(id -u)" -ne 0 ] || base=/tmp
	dir=$(mktemp -d "$base/autocert-pg.XXXXXX") || return 1
	chmod 0755 "$dir"
	mkdir "$dir/sock"
	local password
	password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s\n' "$password" >"$dir/pwfile"
	chmod 0600 "$dir/pwfile"
	chown -R "$owner" "$dir"

	# Every command runs from $dir: the postgres user may not be allowed
	# into the caller's working directory.
	if ! (cd "$dir" && "${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1); then
		cat "$dir/initdb.log" >&2
		rm -rf "$dir"
		__autocert_pg_die "initdb failed"
		return 1
	fi
	rm -f "$dir/pwfile"

	local ctl port="" try
	ctl="cd $dir && ${as[*]} $bindir/pg_ctl -D $dir/data -l $dir/server.log -w -t 60"
	for try in 1 2 3 4 5 6 7 8; do
		port=$((20000 + RANDOM % 40000))
		__autocert_pg_port_free "$port" || continue
		# A throwaway server: durability off, so the tests run fast.
		cat >"$dir/data/postgresql.auto.conf" <<-EOF
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$dir/sock'
			max_connections = 300
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			log_min_messages = warning
		EOF
		chown "$owner" "$dir/data/postgresql.auto.conf"
		if (bash -c "$ctl start" >/dev/null); then
			break
		fi
		port=""
	done
	if [ -z "$port" ]; then
		tail -n 30 "$dir/server.log" >&2 2>/dev/null
		rm -rf "$dir"
		__autocert_pg_die "the server did not start"
		return 1
	fi

	local i
	for i in $(seq 1 60); do
		if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres; then
			break
		fi
		if [ "$i" -eq 60 ]; then
			bash -c "$ctl stop -m immediate" >/dev/null 2>&1
			rm -rf "$dir"
			__autocert_pg_die "the server is not ready after 30 s"
			return 1
		fi
		sleep 0.5
	done
	if ! (cd "$dir" && "${as[@]}" "$bindir/psql" -q -X -h "$dir/sock" -p "$port" -U postgres -d postgres \
		-c 'CREATE DATABASE autocert_test' >/dev/null); then
		bash -c "$ctl stop -m immediate" >/dev/null 2>&1
		rm -rf "$dir"
		__autocert_pg_die "cannot create database autocert_test"
		return 1
	fi

	export AUTOCERT_TEST_PG_DSN="postgres://postgres:$password@127.0.0.1:$port/autocert_test?sslmode=disable"
	export AUTOCERT_TEST_PG_CTL="$ctl"
	export AUTOCERT_TEST_PG_DATA="$dir/data"
	export AUTOCERT_TEST_PG_LOG="$dir/server.log"
	export AUTOCERT_TEST_PG_LOCK="$dir/tests.lock"
	: >"$AUTOCERT_TEST_PG_LOCK"
	__autocert_pg_dir=$dir
	echo "postgres: $("$bindir/postgres" --version) on 127.0.0.1:$port and $dir/sock (data $dir/data)" >&2
}

# autocert_pg_stop stops the server started by autocert_pg_start and
# removes its directory. Calling it twice is harmless.
autocert_pg_stop() {
	if [ -n "${__autocert_pg_dir:-}" ] && [ -d "$__autocert_pg_dir" ]; then
		bash -c "$AUTOCERT_TEST_PG_CTL stop -m immediate" >/dev/null 2>&1 || true
		rm -rf "$__autocert_pg_dir"
	fi
	__autocert_pg_dir=
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
	# Sourced: start, and stop at the caller's exit.
	autocert_pg_start || return 1
	__autocert_pg_prev_trap=$(trap -p EXIT)
	if [ -n "$__autocert_pg_prev_trap" ]; then
		eval "__autocert_pg_prev_trap_args=($__autocert_pg_prev_trap)"
		__autocert_pg_prev_trap=${__autocert_pg_prev_trap_args[2]}
	fi
	trap 'autocert_pg_stop; eval "$__autocert_pg_prev_trap"' EXIT
else
	set -euo pipefail
	autocert_pg_start
	for v in AUTOCERT_TEST_PG_DSN AUTOCERT_TEST_PG_CTL AUTOCERT_TEST_PG_DATA AUTOCERT_TEST_PG_LOG AUTOCERT_TEST_PG_LOCK; do
		printf 'export %s=%q\n' "$v" "${!v}"
	done
fi
