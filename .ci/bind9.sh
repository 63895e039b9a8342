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

if [ "$(id -u)" -ne 0 ]; then
	echo "bind9: named is missing and installing it needs root (apt-get install bind9 bind9-utils)" >&2
	exit 1
fi

echo "bind9: installing Debian's bind9"
apt-get update
# policy-rc.d keeps the package from starting the system's named service.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	created_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive apt-get install -y bind9 bind9-utils || status=$?
if [ "$created_policy" -eq 1 ]; then
	rm -f "$policy"
fi
if [ "$status" -ne 0 ]; then
	exit "$status"
fi

if ! have_named; then
	echo "bind9: named is still missing after installing bind9" >&2
	exit 1
fi
echo "bind9: installed $(/usr/sbin/named -v 2>/dev/null || named -v)"
