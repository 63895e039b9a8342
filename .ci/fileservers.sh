#!/usr/bin/env bash
# Installs Debian's HAProxy and nginx for the file-server tests of package
# interop (interop/fileservers_test.go), which start their own haproxy and
# nginx processes on loopback ports, reading the files autocert writes. It
# does nothing when both are installed.
#
# Debian's packages start and enable their system services on install;
# apt_install keeps them from starting (policy-rc.d), and this script
# checks that no haproxy or nginx process is left running afterwards.
set -euo pipefail

have() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

missing=()
have haproxy || missing+=(haproxy)
have nginx || missing+=(nginx)

if [ "${#missing[@]}" -eq 0 ]; then
	echo "fileservers: haproxy and nginx already installed"
	exit 0
fi

start=$(date +%s)
source "$(dirname "$0")/apt.sh"
apt_install fileservers "${missing[@]}"

for b in haproxy nginx; do
	if ! have "$b"; then
		echo "fileservers: $b is still missing after installing ${missing[*]}" >&2
		exit 1
	fi
done
# A system service started despite policy-rc.d (another init system, a
# changed package) would hold ports 80 and 443 and outlive the tests: stop
# it through its own pid file, and say so.
for b in haproxy nginx; do
	pidfile=/run/$b.pid
	if [ -s "$pidfile" ] && kill -0 "$(head -n1 "$pidfile")" 2>/dev/null; then
		echo "fileservers: the $b system service runs after the install; stopping and disabling it" >&2
		if [ -d /run/systemd/system ]; then
			systemctl disable --now "$b"
		else
			service "$b" stop
		fi
	fi
done
echo "fileservers: installed $(/usr/sbin/haproxy -v | head -n1); $(/usr/sbin/nginx -v 2>&1) in $(($(date +%s) - start)) s"
