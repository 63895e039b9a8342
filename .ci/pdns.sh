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

if [ "$(id -u)" -ne 0 ]; then
	echo "pdns: pdns_server, pdnsutil, the SQLite 3 backend or sqlite3 is missing and installing them needs root (apt-get install pdns-server pdns-backend-sqlite3 sqlite3)" >&2
	exit 1
fi

echo "pdns: installing Debian's pdns-server, pdns-backend-sqlite3 and sqlite3"
apt-get update
# policy-rc.d keeps the package from starting the system's pdns service.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	created_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pdns-server pdns-backend-sqlite3 sqlite3 || status=$?
if [ "$created_policy" -eq 1 ]; then
	rm -f "$policy"
fi
if [ "$status" -ne 0 ]; then
	exit "$status"
fi

if ! have_pdns; then
	echo "pdns: pdns_server, pdnsutil, the SQLite 3 backend or sqlite3 is still missing after installing them" >&2
	exit 1
fi
echo "pdns: installed PowerDNS $(pdnsutil --version 2>/dev/null | head -n1 || true)"
