#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against a WebSocket echo endpoint
# and judges the result (see README.md beside this file).
#
#   run.sh [--quick] [--tls] [--url ws://127.0.0.1:PORT/echo] [--server-cmd "CMD"]
#          [--cases "1.*,2.*"] [--agent NAME] [--allow-unimplemented]
#          [--timeout SECONDS]
#
# Server under test:
#   (neither --url nor --server-cmd)  builds ringcast (cargo build --release
#       --bin ringcast; CARGO_TARGET_DIR is honoured), starts `ringcast
#       --listen 127.0.0.1:0 --workers 1`, reads the address from its
#       `listening on ADDR` log line.
#   --server-cmd "CMD"  starts CMD instead; it must print `listening on ADDR`
#       (stdout or stderr). The URL is ws://ADDR/echo unless --url is given.
#   --url URL only  tests a server that is already running.
# A server this script started is stopped on exit.
#
# --tls: the same cases over TLS (wss://). ringcast is started with a TLS
#   listener too (--tls-listen 127.0.0.1:0) and a self-signed certificate
#   made for the run in target/autobahn/tls/ (openssl; without openssl,
#   ringcast's own --self-signed one); the URL is wss://ADDR/echo with ADDR
#   from its `tls: listening on ADDR` line, the agent "ringcast-tls". After
#   the run the server's TLS handshake count is printed (from /metrics on
#   the plain listener) and must not be zero. With --server-cmd the command
#   sets up its own TLS listener and must print `tls: listening on ADDR`;
#   with --url give a wss:// URL (which also works without --tls). wstest
#   does not check the certificate and sends no SNI.
#
# Cases: --quick runs 1.* to 10.*; the default (full) adds 12.* and 13.*
# (permessage-deflate). --cases replaces either list.
#
# Output in target/autobahn/: fuzzingclient.json (the spec), wstest.log,
# server.log, reports/ (index.json and HTML). Exit status: the judge's (0 all
# cases passed, 1 a case failed or is missing, 2 no report), 3 no Python 2.7,
# 4 the server did not start, 5 wstest timed out.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/target/autobahn"
venv="$root/target/autobahn-venv"

quick=0
tls=0
url=""
server_cmd=""
cases=""
agent=""
allow_unimplemented=0
timeout_s=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
need() { [[ $# -ge 2 && -n "$2" ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --tls) tls=1 ;;
        --url) need "$@"; url="$2"; shift ;;
        --server-cmd) need "$@"; server_cmd="$2"; shift ;;
        --cases) need "$@"; cases="$2"; shift ;;
        --agent) need "$@"; agent="$2"; shift ;;
        --allow-unimplemented) allow_unimplemented=1 ;;
        --timeout) need "$@"; timeout_s="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $tls == 1 && -n "$url" && "$url" != wss://* ]]; then
    echo "run.sh: --tls needs a wss:// URL, not $url" >&2
    exit 2
fi

if [[ -z "$cases" ]]; then
    if [[ $quick == 1 ]]; then
        cases="1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*"
    else
        cases="1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*,12.*,13.*"
    fi
fi
if [[ -z "$timeout_s" ]]; then
    if [[ $quick == 1 ]]; then timeout_s=300; else timeout_s=1800; fi
fi

bash "$here/setup.sh" || exit $?

mkdir -p "$out"
rm -rf "$out/reports"

# --- the server under test -------------------------------------------------
server_pid=""
stop_server() {
    [[ -n "$server_pid" ]] || return 0
    # The server runs in a process group of its own: stop the whole group.
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM -- "-$server_pid" 2>/dev/null || kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$server_pid" 2>/dev/null || kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# The self-signed certificate of a --tls run: ECDSA P-256 for localhost and
# 127.0.0.1, in $out/tls. Prints the ringcast flags that serve it.
tls_flags() {
    local dir="$out/tls"
    rm -rf "$dir"
    mkdir -p "$dir"
    if command -v openssl >/dev/null 2>&1; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 7 -subj "/CN=localhost" \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$dir/openssl.log" 2>&1 || {
            echo "autobahn: openssl could not make a certificate:" >&2
            cat "$dir/openssl.log" >&2
            exit 1
        }
        echo "--tls-listen 127.0.0.1:0 --tls-cert $dir/cert.pem --tls-key $dir/key.pem"
    else
        # ringcast writes it into ./ringcast-dev-tls/ (the server runs in $dir)
        echo "--tls-listen 127.0.0.1:0 --self-signed"
    fi
}

ringcast_started=0
server_dir="$PWD"
if [[ -z "$url" && -z "$server_cmd" ]]; then
    echo "autobahn: building ringcast (release)"
    (cd "$root" && cargo build --release --bin ringcast)
    target_dir="${CARGO_TARGET_DIR:-$root/target}"
    [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
    server_cmd="$target_dir/release/ringcast --config $here/ringcast.toml --listen 127.0.0.1:0 --workers 1"
    if [[ $tls == 1 ]]; then
        flags="$(tls_flags)"
        server_cmd="$server_cmd $flags"
        server_dir="$out/tls"
        agent="${agent:-ringcast-tls}"
    fi
    agent="${agent:-ringcast}"
    ringcast_started=1
fi

if [[ -n "$server_cmd" ]]; then
    echo "autobahn: starting: $server_cmd"
    : >"$out/server.log"
    (cd "$server_dir" && exec setsid bash -c "exec $server_cmd") >"$out/server.log" 2>&1 </dev/null &
    server_pid=$!
    addr_re='listening on (\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):[0-9]+'
    addr=""
    plain_addr=""
    for _ in $(seq 300); do
        # the plain listener's line, and (--tls) the TLS listener's "tls: listening
        # on ADDR", which ringcast logs after it: both from one read of the log
        log="$(cat "$out/server.log")"
        plain_addr="$(grep -v 'tls: listening on' <<<"$log" | grep -o -m1 -E "$addr_re" | sed 's/^listening on //' || true)"
        if [[ $tls == 1 ]]; then
            addr="$(grep -o -m1 -E "tls: $addr_re" <<<"$log" | sed 's/^tls: listening on //' || true)"
        else
            addr="$plain_addr"
        fi
        [[ -n "$addr" ]] && break
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "autobahn: the server exited before listening; its output:" >&2
            cat "$out/server.log" >&2
            exit 4
        fi
        sleep 0.1
    done
    if [[ -z "$addr" ]]; then
        if [[ $tls == 1 ]]; then
            echo "autobahn: no 'tls: listening on ADDR' line within 30 s; server output:" >&2
        else
            echo "autobahn: no 'listening on ADDR' line within 30 s; server output:" >&2
        fi
        cat "$out/server.log" >&2
        exit 4
    fi
    if [[ $tls == 1 ]]; then
        url="${url:-wss://$addr/echo}"
    else
        url="${url:-ws://$addr/echo}"
    fi
    if [[ -z "$agent" ]]; then
        first="${server_cmd%% *}"
        agent="$(basename "$first")"
    fi
fi
agent="${agent:-server}"

# --- the spec ---------------------------------------------------------------
spec="$out/fuzzingclient.json"
python3 - "$spec" "$out/reports" "$agent" "$url" "$cases" <<'PY'
import json, sys
spec, outdir, agent, url, cases = sys.argv[1:]
with open(spec, "w") as f:
    json.dump({
        "outdir": outdir,
        "servers": [{"agent": agent, "url": url}],
        "cases": [c.strip() for c in cases.split(",") if c.strip()],
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }, f, indent=2)
    f.write("\n")
PY

# --- run and judge ----------------------------------------------------------
echo "autobahn: wstest fuzzingclient -> $url (agent $agent, cases $cases)"
start=$(date +%s.%N)
set +e
(cd "$out" && timeout "$timeout_s" "$venv/bin/wstest" -m fuzzingclient -s "$spec") >"$out/wstest.log" 2>&1
rc=$?
set -e
elapsed=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)")
echo "autobahn: wstest finished in ${elapsed} s (log: $out/wstest.log)"
if [[ $rc == 124 ]]; then
    last_case="$(grep -o 'Running test case ID [0-9.]*' "$out/wstest.log" | tail -n 1 | sed 's/.* ID //')"
    echo "autobahn: wstest did not finish within ${timeout_s} s; it was running case ${last_case:-?}" \
        "(a case waits for ever when the server neither answers nor closes)" >&2
    exit 5
fi
if [[ -n "$server_pid" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
    echo "autobahn: WARNING: the server exited during the run; last lines of its output:" >&2
    tail -n 20 "$out/server.log" >&2
fi

# --tls against the ringcast started here: its own count of TLS handshakes
# (by version) and of failed ones (by reason), from /metrics on the plain
# listener. Prints "TOTAL DETAILS".
tls_handshakes=""
if [[ $tls == 1 && $ringcast_started == 1 && -n "$plain_addr" ]] && kill -0 "$server_pid" 2>/dev/null; then
    tls_handshakes="$(python3 - "http://$plain_addr/metrics" <<'METRICS'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
done, failed = {}, {}
for line in text.splitlines():
    m = re.match(r'ringcast_tls_handshakes_total\{version="([^"]+)"[^}]*\} (\S+)$', line)
    if m:
        done[m.group(1)] = done.get(m.group(1), 0) + float(m.group(2))
    m = re.match(r'ringcast_tls_handshake_failures_total\{reason="([^"]+)"[^}]*\} (\S+)$', line)
    if m and float(m.group(2)) > 0:
        failed[m.group(1)] = failed.get(m.group(1), 0) + float(m.group(2))
total = int(sum(done.values()))
parts = ", ".join("TLS %s: %d" % (v, n) for v, n in sorted(done.items()))
fails = ", ".join("%s %d" % (r, n) for r, n in sorted(failed.items())) or "none"
print("%d %s; failed: %s" % (total, parts, fails))
METRICS
)" || tls_handshakes=""
    if [[ -z "$tls_handshakes" ]]; then
        echo "autobahn: could not read the TLS handshake count from http://$plain_addr/metrics" >&2
    else
        echo "autobahn: TLS handshakes: ${tls_handshakes%% *} (${tls_handshakes#* })"
    fi
fi

judge_args=(--agent "$agent" --log "$out/wstest.log")
[[ $allow_unimplemented == 1 ]] && judge_args+=(--allow-unimplemented)
set +e
python3 "$here/judge.py" "$out/reports/index.json" "${judge_args[@]}"
verdict=$?
set -e
if [[ $verdict == 2 ]]; then
    echo "autobahn: no usable report; last lines of $out/wstest.log:" >&2
    tail -n 8 "$out/wstest.log" >&2
fi
if [[ $verdict == 0 && -n "$tls_handshakes" && "${tls_handshakes%% *}" == 0 ]]; then
    echo "autobahn: --tls, yet the server counted no TLS handshake" >&2
    exit 1
fi
exit $verdict
