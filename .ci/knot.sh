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

source "$(dirname "$0")/apt.sh"
apt_install knot knot

if ! have_knotd; then
	echo "knot: knotd is still missing after installing knot" >&2
	exit 1
fi
echo "knot: installed $(/usr/sbin/knotd --version 2>/dev/null || knotd --version)"
