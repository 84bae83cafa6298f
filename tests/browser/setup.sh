#!/usr/bin/env bash
# Installs what the browser tests (tests/browser.rs) need, idempotently and
# safely when run concurrently:
#   - Debian's chromium and chromium-driver (apt), only if /usr/bin/chromium is missing
#   - node + npm (apt), only if missing
#   - playwright-core (pinned) from npm into target/browser-tests/node_modules
# Playwright drives the system Chromium (executablePath); it downloads no browser.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/target/browser-tests"
PLAYWRIGHT_VERSION="1.56.1"
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/browser/setup.sh: apt-get is not available; install $* by hand" >&2
    exit 1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >&2
}

if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium chromium-driver
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi

stamp="$dir/.playwright-core-$PLAYWRIGHT_VERSION"
if [ ! -f "$stamp" ]; then
  cat > "$dir/package.json" <<JSON
{ "name": "ringcast-browser-tests", "private": true, "type": "module",
  "dependencies": { "playwright-core": "$PLAYWRIGHT_VERSION" } }
JSON
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error) >&2
  rm -f "$dir"/.playwright-core-*
  touch "$stamp"
fi
echo "$dir"
