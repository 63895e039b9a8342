#!/usr/bin/env bash
# Installs Debian's BIND 9 (named, plus nsupdate and dig from bind9-utils)
# for the rfc2136 end-to-end test of dnsproviders. It does nothing when
# named is already installed. The test starts its own named on a loopback
# port; this script does not start or enable the system service.
set -euo pipefail

have_named() {
	command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ]
}

if have_named; then
	echo "bind9: named already installed ($( (command -v named || echo /usr/sbin/named) | head -n1))"
	exit 0
fi

source "$(dirname "$0")/apt.sh"
apt_install bind9 bind9 bind9-utils

if ! have_named; then
	echo "bind9: named is still missing after installing bind9" >&2
	exit 1
fi
echo "bind9: installed $(/usr/sbin/named -v 2>/dev/null || named -v)"
