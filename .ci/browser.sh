#!/usr/bin/env bash
# Installs what the browser test of the status page (package httpapi) needs:
# Debian's Chromium at /usr/bin/chromium, and the npm package playwright-core
# at a pinned version in a cache directory, once per version:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/autocert-browser/playwright-core-<version>/node_modules
#
# which is where the test looks for it (os.UserCacheDir() in Go) unless
# AUTOCERT_TEST_NODE_MODULES names another node_modules directory. Keep
# PLAYWRIGHT_VERSION here and playwrightVersion in
# httpapi/page_browser_test.go equal.
#
# playwright-core has no dependencies and downloads no browser: it drives
# the system's Chromium. Node.js and npm come with the machine; Debian's are
# installed only when node or npm is missing. The script does nothing when
# everything is there.
set -euo pipefail

PLAYWRIGHT_VERSION=1.65.1
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}
dir=$cache_root/autocert-browser/playwright-core-$PLAYWRIGHT_VERSION
module=$dir/node_modules/playwright-core

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	source "$(dirname "$0")/apt.sh"
	apt_install "the status page's browser test" "${missing[@]}"
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium: no version')"

if [ -f "$module/package.json" ]; then
	echo "browser: playwright-core $PLAYWRIGHT_VERSION already installed ($module)"
	exit 0
fi
echo "browser: installing playwright-core $PLAYWRIGHT_VERSION into $dir"
mkdir -p "$dir"
# Into a temporary directory first, so that an interrupted install leaves
# nothing the test would take for a finished one.
tmp_dir=$(mktemp -d "$dir.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT
start=$(date +%s)
npm install --prefix "$tmp_dir" --no-save --no-audit --no-fund --no-package-lock \
	--ignore-scripts "playwright-core@$PLAYWRIGHT_VERSION"
rm -rf "$dir/node_modules"
mv "$tmp_dir/node_modules" "$dir/node_modules"
echo "browser: installed playwright-core $PLAYWRIGHT_VERSION in $(($(date +%s) - start)) s"
