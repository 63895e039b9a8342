#!/usr/bin/env bash
# Builds smallstep's step-ca, the second ACME CA of the interop tests
# (package interop), into a cache directory, once per version:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/autocert-stepca/<version>/step-ca
#
# which is where the tests look for it (os.UserCacheDir() in Go) unless
# AUTOCERT_TEST_STEPCA names another binary. Keep STEPCA_VERSION here and
# stepcaVersion in interop/stepca_test.go equal.
#
# step-ca comes from the Go module proxy (go install pkg@version: the
# project's go.mod is not touched). It links against PC/SC, so Debian's
# libpcsclite-dev is installed first when missing. The script does nothing
# when the binary is already there.
set -euo pipefail

STEPCA_VERSION=v0.30.2
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}
bin_dir=$cache_root/autocert-stepca/$STEPCA_VERSION
bin=$bin_dir/step-ca

if [ -x "$bin" ]; then
	echo "step-ca: $STEPCA_VERSION already built ($bin)"
	exit 0
fi

if ! dpkg-query -W -f='${Status}' libpcsclite-dev 2>/dev/null | grep -q 'install ok installed'; then
	source "$(dirname "$0")/apt.sh"
	apt_install step-ca libpcsclite-dev
fi

echo "step-ca: building $STEPCA_VERSION into $bin_dir"
mkdir -p "$bin_dir"
tmp_dir=$(mktemp -d "$bin_dir/.build.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT
start=$(date +%s)
# Outside the project's module, so that its go.mod and go.sum are not read
# or changed; into a temporary directory first, so that an interrupted build
# leaves no binary that the tests would take for a finished one.
# main.Version is what `step-ca version` and the startup log print.
(cd "$tmp_dir" && GOBIN="$tmp_dir" GOFLAGS=-buildvcs=false go install \
	-ldflags "-X main.Version=$STEPCA_VERSION" \
	"github.com/smallstep/certificates/cmd/step-ca@$STEPCA_VERSION")
mv "$tmp_dir/step-ca" "$bin"
echo "step-ca: built $("$bin" version | head -n1) in $(($(date +%s) - start)) s"
