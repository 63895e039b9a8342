# Sourced by the install scripts of .ci: apt_install WHAT PACKAGE... installs
# Debian packages for the tests, as root, without starting any service they
# bring (policy-rc.d answers "no" while they install). The package lists are
# updated once per machine boot at most, whichever script comes first.

apt_install() {
	local what=$1
	shift
	if [ "$(id -u)" -ne 0 ]; then
		echo "$what: missing, and installing it needs root (apt-get install $*)" >&2
		return 1
	fi
	echo "$what: installing Debian's $*"
	local stamp=/run/autocert-ci-apt-updated
	if [ ! -e "$stamp" ]; then
		apt-get update
		touch "$stamp" 2>/dev/null || true
	fi
	local policy=/usr/sbin/policy-rc.d created=0 status=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		created=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" || status=$?
	if [ "$created" -eq 1 ]; then
		rm -f "$policy"
	fi
	return "$status"
}
