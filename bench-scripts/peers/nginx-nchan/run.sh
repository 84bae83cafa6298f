#!/bin/sh
# Runs the nginx + nchan benchmark peer in the foreground.
#
#   run.sh PREFIX PORT
#
# Lays out PREFIX (nginx.conf from nginx.conf.in, html/healthz, logs/, tmp/)
# and execs nginx with `daemon off`: the master stays in the foreground,
# with one worker; SIGTERM/SIGINT stop it (fast shutdown), SIGQUIT
# gracefully. nginx prints no ready line: poll GET /healthz until it answers.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 PREFIX PORT" >&2
    exit 2
fi
case "$2" in
    ''|*[!0-9]*) echo "$0: PORT must be a number, got '$2'" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
port=$2

nginx=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ]; then
    echo "$0: nginx not found (run bench-scripts/peers/build.sh)" >&2
    exit 1
fi
if [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    echo "$0: nchan module missing (apt-get install libnginx-mod-nchan)" >&2
    exit 1
fi

mkdir -p "$prefix/html" "$prefix/logs" "$prefix/tmp"
printf 'ok' > "$prefix/html/healthz"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" \
    "$here/nginx.conf.in" > "$prefix/nginx.conf"

exec "$nginx" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;'
