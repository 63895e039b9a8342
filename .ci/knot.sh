#!/usr/bin/env bash
# Installs Debian's Knot DNS (knotd and knotc) for the rfc2136 end-to-end
# test of dnsproviders. It does nothing when knotd is already installed.
# The test starts its own knotd on a loopback port; this script does not
# start or enable the system service.
set -euo pipefail

have_knotd() {
	command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ]
}

if have_knotd; then
	echo "knot: knotd already installed ($( (command -v knotd || echo /usr/sbin/knotd) | head -n1))"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "knot: knotd is missing and installing it needs root (apt-get install knot)" >&2
	exit 1
fi

echo "knot: installing Debian's knot"
apt-get update
# policy-rc.d keeps the package from starting the system's knot service.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	created_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends knot || status=$?
if [ "$created_policy" -eq 1 ]; then
	rm -f "$policy"
fi
if [ "$status" -ne 0 ]; then
	exit "$status"
fi

if ! have_knotd; then
	echo "knot: knotd is still missing after installing knot" >&2
	exit 1
fi
echo "knot: installed $(/usr/sbin/knotd --version 2>/dev/null || knotd --version)"
