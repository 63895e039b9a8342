#!/usr/bin/env bash
# Runs staticcheck, at a pinned version, on the whole module. The binary is
# built once from the Go module proxy into a cache directory (it does not
# touch the project's go.mod) and reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2 # honnef.co/go/tools; staticcheck 2025.1.x
bin="${XDG_CACHE_HOME:-$HOME/.cache}/autocert-staticcheck/$STATICCHECK_VERSION"
if [ ! -x "$bin/staticcheck" ]; then
	echo "staticcheck: building $STATICCHECK_VERSION"
	tmp=$(mktemp -d)
	GOBIN="$tmp" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	mkdir -p "$bin"
	mv "$tmp/staticcheck" "$bin/staticcheck"
	rmdir "$tmp"
fi
"$bin/staticcheck" ./...
echo "staticcheck: clean"
