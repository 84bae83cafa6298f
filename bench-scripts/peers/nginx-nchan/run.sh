#!/bin/sh
# Runs the nginx + nchan benchmark peer in the foreground.
#
#   run.sh PREFIX PORT [TLS_PORT CERT KEY]
#
# Lays out PREFIX (nginx.conf from nginx.conf.in, locations.conf from
# locations.conf.in, tls.conf, html/healthz, logs/, tmp/) and execs nginx
# with `daemon off`: the master stays in the foreground, with one worker;
# SIGTERM/SIGINT stop it (fast shutdown), SIGQUIT gracefully. nginx prints
# no ready line: poll GET /healthz until it answers.
#
# With NCHAN_REDIS_URL set (e.g. redis://127.0.0.1:6379), nchan keeps its
# channels in that Redis (nchan_redis_url, nchan_use_redis): several nginx
# instances on one Redis share the channels.
#
# With TLS_PORT, CERT (PEM chain) and KEY (PEM key), a second server block
# (tls.conf.in) serves the same endpoints over TLS on TLS_PORT; without
# them tls.conf is empty and only PORT is served.
set -eu

if [ "$#" -ne 2 ] && [ "$#" -ne 5 ]; then
    echo "usage: $0 PREFIX PORT [TLS_PORT CERT KEY]" >&2
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
sed -e "s|@PREFIX@|$prefix|g" "$here/locations.conf.in" > "$prefix/locations.conf"
if [ -n "${NCHAN_REDIS_URL:-}" ]; then
    printf 'nchan_redis_url "%s";\nnchan_use_redis on;\n' "$NCHAN_REDIS_URL" |
        cat - "$prefix/locations.conf" > "$prefix/locations.conf.new"
    mv "$prefix/locations.conf.new" "$prefix/locations.conf"
fi

if [ "$#" -eq 5 ]; then
    tls_port=$3
    case "$tls_port" in
        ''|*[!0-9]*) echo "$0: TLS_PORT must be a number, got '$tls_port'" >&2; exit 2 ;;
    esac
    for f in "$4" "$5"; do
        [ -r "$f" ] || { echo "$0: cannot read $f" >&2; exit 2; }
    done
    cert=$(cd "$(dirname "$4")" && pwd)/$(basename "$4")
    key=$(cd "$(dirname "$5")" && pwd)/$(basename "$5")
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@TLS_PORT@|$tls_port|g" \
        -e "s|@CERT@|$cert|g" -e "s|@KEY@|$key|g" \
        "$here/tls.conf.in" > "$prefix/tls.conf"
else
    : > "$prefix/tls.conf"
fi

exec "$nginx" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;'
