#!/usr/bin/env bash
# Builds ringcast's benchmark peers; safe to run again (does only what is
# missing or stale).
#
#   bench-scripts/peers/build.sh
#
# - tokio-tungstenite and fastwebsockets peers: `cargo build --release
#   --locked` (each is its own crate, with its own Cargo.lock and target/).
#   Cargo honours CARGO_BUILD_JOBS (e.g. CARGO_BUILD_JOBS=1 on a busy box).
# - nginx + nchan: Debian's nginx and libnginx-mod-nchan, installed with
#   apt-get if missing (needs root; `apt-get update` only if the install
#   fails or the package lists are empty).
#
# Exits non-zero with a message saying what failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
    echo "build.sh: $*" >&2
    exit 1
}

command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain"

for peer in tokio-tungstenite fastwebsockets; do
    echo "build.sh: building the $peer peer (release)" >&2
    cargo build --release --locked --manifest-path "$here/$peer/Cargo.toml" \
        || die "building the $peer peer failed"
    bin="$here/$peer/target/release/$peer-peer"
    [ -x "$bin" ] || die "the $peer peer built, but $bin is missing"
done

nchan_module=/usr/lib/nginx/modules/ngx_nchan_module.so
have_nchan() {
    { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } && [ -f "$nchan_module" ]
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o DPkg::Lock::Timeout=300 nginx libnginx-mod-nchan
}

lists_empty() {
    ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

if ! have_nchan; then
    [ "$(id -u)" -eq 0 ] \
        || die "nginx + nchan missing; as root: apt-get install nginx libnginx-mod-nchan"
    command -v apt-get >/dev/null 2>&1 \
        || die "nginx + nchan missing and there is no apt-get (Debian/Ubuntu only)"
    echo "build.sh: installing nginx + nchan with apt-get" >&2
    if lists_empty || ! apt_install; then
        apt-get update -q -o DPkg::Lock::Timeout=300 || die "apt-get update failed"
        apt_install || die "apt-get install nginx libnginx-mod-nchan failed"
    fi
    have_nchan || die "nginx + nchan installed, but nginx or $nchan_module is missing"
fi

echo "build.sh: peers ready:" >&2
echo "  $here/tokio-tungstenite/target/release/tokio-tungstenite-peer" >&2
echo "  $here/fastwebsockets/target/release/fastwebsockets-peer" >&2
nginx_bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
echo "  $here/nginx-nchan/run.sh PREFIX PORT ($("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?'))" >&2
