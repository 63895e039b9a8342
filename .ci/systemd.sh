#!/usr/bin/env bash
# Installs Debian's systemd package for systemd-analyze and systemd-sysusers,
# with which the tests of cmd/autocert check contrib/systemd/autocert.service
# (systemd-analyze verify and security --offline) and autocert.sysusers.
# Neither needs a running systemd: nothing is started or enabled, and the
# script does nothing when both are installed.
set -euo pipefail

have_tools() {
	command -v systemd-analyze >/dev/null 2>&1 && command -v systemd-sysusers >/dev/null 2>&1
}

if have_tools; then
	echo "systemd: systemd-analyze already installed ($(systemd-analyze --version | head -n1))"
	exit 0
fi

source "$(dirname "$0")/apt.sh"
apt_install systemd systemd

if ! have_tools; then
	echo "systemd: systemd-analyze or systemd-sysusers still missing after installing systemd" >&2
	exit 1
fi
echo "systemd: installed $(systemd-analyze --version | head -n1)"
