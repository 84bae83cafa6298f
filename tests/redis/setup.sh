#!/usr/bin/env bash
# Installs redis-server (Debian's package) for the cluster tests, if missing.
# Idempotent and safe to run concurrently; prints the path of redis-server.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$root/target"
exec 9>"$root/target/.redis-setup.lock"
flock 9
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server) >&2
fi
command -v redis-server
