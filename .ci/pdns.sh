#!/usr/bin/env bash
# Installs Debian's PowerDNS authoritative server (pdns_server and pdnsutil)
# with its SQLite 3 backend, plus the sqlite3 shell that loads the backend's
# schema, for the rfc2136 end-to-end test of dnsproviders. It does nothing
# when all of them are already installed. The test starts its own
# pdns_server on a loopback port; this script does not start or enable the
# system service.
set -euo pipefail

schema=/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql

have_pdns() {
	{ command -v pdns_server >/dev/null 2>&1 || [ -x /usr/sbin/pdns_server ]; } &&
		command -v pdnsutil >/dev/null 2>&1 &&
		command -v sqlite3 >/dev/null 2>&1 &&
		[ -f "$schema" ]
}

if have_pdns; then
	echo "pdns: pdns_server, its SQLite 3 backend and sqlite3 already installed"
	exit 0
fi

source "$(dirname "$0")/apt.sh"
apt_install pdns pdns-server pdns-backend-sqlite3 sqlite3

if ! have_pdns; then
	echo "pdns: pdns_server, pdnsutil, the SQLite 3 backend or sqlite3 is still missing after installing them" >&2
	exit 1
fi
echo "pdns: installed PowerDNS $(pdnsutil --version 2>/dev/null | head -n1 || true)"
