#!/usr/bin/env bash
# ringcast's benchmark runner: builds ringcast, the load generator and the
# peers, runs every scenario against ringcast and each peer in alternation
# (server pinned to core 0, load generator pinned to core 1), keeps the raw
# outputs under bench-scripts/out/, and writes bench-scripts/RESULTS.md
# (bench-scripts/RESULTS-quick.md with --quick) from those outputs.
#
#   bench-scripts/run.sh [--quick] [--only SCENARIO[,SCENARIO...]]
#                        [--systems SYSTEM[,SYSTEM...]] [--rounds N] [--no-build]
#
# Scenarios: http publish echo-32x1 echo-32x8 echo-16k fanout-ws fanout-sse
# fanout-ws-paced fanout-sse-paced idle-ws idle-sse churn-ws, and over TLS
# fanout-wss echo-wss-32x8 idle-wss handshakes-tls https (--only takes
# names or prefixes: --only echo; --only tls: the TLS scenarios).
# Systems: ringcast tokio-tungstenite fastwebsockets nginx-nchan (TLS
# scenarios: ringcast, tokio-tungstenite in its TLS mode, nginx-nchan; all
# serve the certificate of tls-cert.sh, made in out/tls/).
# --rounds N runs each scenario N times (systems alternating within each
# round); the report shows the median round. A partial run (--only or
# --systems) writes its report into its out/ directory instead.
set -uo pipefail
# No pathname expansion: URLs such as /ws?room=R pass through words unquoted.
set -f

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
peers=$here/peers

quick=0
only=""
systems_opt=""
rounds=1
build=1
usage() {
    sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --only) only=${2:?--only needs a scenario}; shift ;;
        --only=*) only=${1#--only=} ;;
        --systems) systems_opt=${2:?--systems needs a list}; shift ;;
        --systems=*) systems_opt=${1#--systems=} ;;
        --rounds) rounds=${2:?--rounds needs a number}; shift ;;
        --rounds=*) rounds=${1#--rounds=} ;;
        --no-build) build=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$rounds" in ''|*[!0-9]*|0) echo "run.sh: --rounds must be a positive number" >&2; exit 2 ;; esac

tls_scenarios="fanout-wss echo-wss-32x8 idle-wss handshakes-tls https"
all_scenarios="http publish echo-32x1 echo-32x8 echo-16k fanout-ws fanout-sse fanout-ws-paced fanout-sse-paced idle-ws idle-sse churn-ws $tls_scenarios"
all_systems="ringcast tokio-tungstenite fastwebsockets nginx-nchan"
is_tls() { case " $tls_scenarios " in *" $1 "*) return 0 ;; esac; return 1; }
# The test CA and server certificate of every TLS scenario (tls-cert.sh).
tls_dir=$here/out/tls
# idle-wss samples the server's memory from this long after the last
# connection opened: past ringcast's parking delay (PARK_AFTER, 1 s, in
# src/io/signal.rs), so parked connections are measured in their steady state.
tls_park_wait=${TLS_PARK_WAIT:-2s}
# handshakes-tls: churn over TLS flat out (a target rate above what the
# one-core client opens), at most hs_open handshakes in progress (under
# ringcast's tls.max_handshakes_per_worker, 1024; enough to keep a
# one-core server busy over loopback without queueing latency for nothing),
# no session resumption.
hs_rate=5000/s
hs_open=64

# Scenario sizes: full, or --quick (whole run well under two minutes).
if [ "$quick" = 1 ]; then
    label=quick
    wrk_dur=2s
    echo_dur=1500ms; echo_warm=500ms
    fan_subs=2000; fan_dur=2s; fan_rate=10/s
    idle_conns=5000; idle_hold=1s
    churn_rate=500/s; churn_dur=4s
    idle_tls_hold=3s
    hs_dur=4s
    default_scenarios="http echo-32x1 echo-32x8 echo-16k fanout-ws fanout-sse idle-ws churn-ws $tls_scenarios"
    results=$here/RESULTS-quick.md
else
    label=full
    wrk_dur=10s
    echo_dur=10s; echo_warm=2s
    fan_subs=10000; fan_dur=10s; fan_rate=10/s
    idle_conns=19000; idle_hold=10s
    churn_rate=500/s; churn_dur=120s
    idle_tls_hold=12s
    hs_dur=20s
    default_scenarios=$all_scenarios
    results=$here/RESULTS.md
fi

scenarios=""
if [ -n "$only" ]; then
    for want in ${only//,/ }; do
        if [ "$want" = tls ]; then
            scenarios="$scenarios $tls_scenarios"
            continue
        fi
        hit=0
        for s in $all_scenarios; do
            case "$s" in "$want"|"$want"-*) scenarios="$scenarios $s"; hit=1 ;; esac
        done
        [ "$hit" = 1 ] || { echo "run.sh: no scenario matches '$want' (have: $all_scenarios)" >&2; exit 2; }
    done
else
    scenarios=$default_scenarios
fi
systems=$all_systems
partial=0
[ -n "$only" ] || [ -n "$systems_opt" ] && partial=1
if [ -n "$systems_opt" ]; then
    systems=""
    for s in ${systems_opt//,/ }; do
        case " $all_systems " in *" $s "*) systems="$systems $s" ;; *) echo "run.sh: unknown system $s" >&2; exit 2 ;; esac
    done
fi

stamp=$(date -u +%Y%m%d-%H%M%S)
out=$here/out/$stamp-$label
mkdir -p "$out"
# A partial run (--only, --systems) leaves the RESULTS files alone.
[ "$partial" = 1 ] && results=$out/RESULTS.md
records=$out/records.tsv
: > "$records"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$out/run.log" >&2; }

# ---------------------------------------------------------------- cleanup
server_pid=""
tls_port=""
work_pid=""
tool_pid=""
cleanup() {
    if [ -n "$tool_pid" ]; then
        # The tool's `timeout` is the subshell's child; it passes TERM on.
        pkill -TERM -P "$tool_pid" 2>/dev/null
        kill -TERM "$tool_pid" 2>/dev/null
        wait "$tool_pid" 2>/dev/null
        tool_pid=""
    fi
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null
        # nginx's worker, if the master went before it.
        if [ -n "$work_pid" ] && [ "$work_pid" != "$server_pid" ]; then
            kill -KILL "$work_pid" 2>/dev/null
        fi
        wait "$server_pid" 2>/dev/null
    fi
    server_pid=""
    work_pid=""
}
on_exit() {
    cleanup
}
trap on_exit EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- build
# RINGCAST_BIN / LOADGEN_BIN point at other builds (then nothing is built
# for them).
ringcast_bin=${RINGCAST_BIN:-$root/target/release/ringcast}
loadgen_bin=${LOADGEN_BIN:-$root/target/release/loadgen}
declare -A peer_bin=(
    [tokio-tungstenite]=$peers/tokio-tungstenite/target/release/tokio-tungstenite-peer
    [fastwebsockets]=$peers/fastwebsockets/target/release/fastwebsockets-peer
)
ringcast_build=ok
if [ "$build" = 1 ]; then
    if [ -z "${LOADGEN_BIN:-}" ]; then
        log "building loadgen (release)"
        (cd "$root" && cargo build --release -p loadgen) >"$out/build-loadgen.log" 2>&1 \
            || { log "building loadgen failed: see $out/build-loadgen.log"; exit 1; }
    fi
    if [ -z "${RINGCAST_BIN:-}" ]; then
        log "building ringcast (release)"
        if ! (cd "$root" && cargo build --release --bin ringcast) >"$out/build-ringcast.log" 2>&1; then
            log "building ringcast failed: see $out/build-ringcast.log (ringcast rows will say so)"
            ringcast_build=failed
        fi
    fi
    log "building the peers"
    if ! "$peers/build.sh" >"$out/build-peers.log" 2>&1; then
        log "building the peers failed: see $out/build-peers.log (their rows will say so)"
    fi
fi
[ -x "$loadgen_bin" ] || { log "no $loadgen_bin: build it (cargo build --release -p loadgen)"; exit 1; }
if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    log "installing wrk (Debian package) for the http scenarios"
    { apt-get update -qq && apt-get install -y -qq wrk; } >"$out/install-wrk.log" 2>&1 \
        || log "installing wrk failed: see $out/install-wrk.log"
fi
command -v wrk >/dev/null 2>&1 || log "wrk not found (apt-get install -y wrk): the http scenarios will be skipped"
tls_run=0
for sc in $scenarios; do is_tls "$sc" && tls_run=1; done
if [ "$tls_run" = 1 ]; then
    "$here/tls-cert.sh" "$tls_dir" >"$out/tls-cert.log" 2>&1 \
        || { log "making the test certificates failed: see $out/tls-cert.log"; exit 1; }
fi

# ---------------------------------------------------------------- servers
# Server ports come from below the ephemeral range (the load generator's
# many client sockets must not hold a port a server is about to bind), and
# skip ports something already listens on.
eph_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$eph_low" -gt 12000 ] 2>/dev/null || eph_low=32768
port=$((10000 + RANDOM % (eph_low - 11000)))
next_port() {
    local _try
    for _try in $(seq 100); do
        port=$((port + 1))
        [ "$port" -lt $((eph_low - 1)) ] || port=10000
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 0
    done
}

# Waits (bounded) until GET /healthz answers.
wait_http() {
    local p=$1 limit=$2 _i
    for _i in $(seq "$limit"); do
        [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$p/healthz")" = 200 ] && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Waits (bounded) until GET /healthz answers over TLS (the test CA trusted).
wait_https() {
    local p=$1 limit=$2 _i
    for _i in $(seq "$limit"); do
        [ "$(curl -s -o /dev/null -m 1 --cacert "$tls_dir/ca.pem" -w '%{http_code}' "https://127.0.0.1:$p/healthz")" = 200 ] && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Waits (bounded) for a ready line in the server's log.
wait_line() {
    local logf=$1 pattern=$2 limit=$3 _i
    for _i in $(seq "$limit"); do
        grep -q "$pattern" "$logf" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# start_server SYSTEM LOG [tls]: sets server_pid (to stop), work_pid (to
# measure), server_cmd, port (and tls_port with tls: the same endpoints
# over TLS on a second listener, the certificate of tls-cert.sh); returns
# non-zero if it is missing or not ready: 3 not built, 4 no TLS (a system
# without a TLS mode), 5 ringcast without TLS support, 1 not ready.
start_server() {
    local sys=$1 logf=$2 tls=${3:-}
    next_port
    tls_port=""
    if [ -n "$tls" ]; then
        local plain_port=$port
        next_port
        tls_port=$port
        port=$plain_port
    fi
    local cert=$tls_dir/cert.pem key=$tls_dir/key.pem
    case "$sys" in
        ringcast)
            [ "$ringcast_build" = ok ] && [ -x "$ringcast_bin" ] || return 3
            if [ -n "$tls" ]; then
                # The TLS listener is configured in the file only.
                local conf=$out/ringcast-tls-$tls_port.toml
                printf '%s\n' "[server]" "listen = \"127.0.0.1:$port\"" "workers = 1" "" \
                    "[tls]" "listen = \"127.0.0.1:$tls_port\"" "cert = \"$cert\"" "key = \"$key\"" \
                    "handshake_timeout = \"10s\"" "max_handshakes_per_worker = 1024" >"$conf"
                server_cmd="taskset -c 0 ${ringcast_bin#"$root"/} --config ${conf#"$root"/}"
                taskset -c 0 "$ringcast_bin" --config "$conf" >"$logf" 2>&1 &
            else
                server_cmd="taskset -c 0 ${ringcast_bin#"$root"/} --listen 127.0.0.1:$port --workers 1"
                taskset -c 0 "$ringcast_bin" --listen "127.0.0.1:$port" --workers 1 >"$logf" 2>&1 &
            fi
            server_pid=$!
            work_pid=$server_pid
            if ! wait_line "$logf" listening 150; then
                # A build without TLS refuses the [tls] section.
                [ -n "$tls" ] && grep -q 'unknown field `tls`' "$logf" 2>/dev/null && return 5
                return 1
            fi
            ;;
        tokio-tungstenite|fastwebsockets)
            local bin=${peer_bin[$sys]} tls_args=""
            # fastwebsockets is built without the TLS listener.
            [ -n "$tls" ] && [ "$sys" != tokio-tungstenite ] && return 4
            [ -x "$bin" ] || return 3
            if [ -n "$tls" ]; then
                tls_args="--tls-listen 127.0.0.1:$tls_port --tls-cert $cert --tls-key $key"
            fi
            server_cmd="taskset -c 0 ${bin#"$root"/} --listen 127.0.0.1:$port --threads 1${tls_args:+ ${tls_args//$root\//}}"
            # shellcheck disable=SC2086 # $tls_args: words on purpose
            taskset -c 0 "$bin" --listen "127.0.0.1:$port" --threads 1 $tls_args >"$logf" 2>&1 &
            server_pid=$!
            work_pid=$server_pid
            wait_line "$logf" "listening on 127.0.0.1:$port" 150 || return 1
            ;;
        nginx-nchan)
            [ -x "$peers/nginx-nchan/run.sh" ] || return 3
            [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || return 3
            local prefix=$out/nginx-$port
            local tls_args=""
            [ -n "$tls" ] && tls_args="$tls_port $cert $key"
            server_cmd="taskset -c 0 bench-scripts/peers/nginx-nchan/run.sh ${prefix#"$root"/} $port${tls_args:+ ${tls_args//$root\//}}"
            # shellcheck disable=SC2086 # $tls_args: words on purpose
            taskset -c 0 "$peers/nginx-nchan/run.sh" "$prefix" "$port" $tls_args >"$logf" 2>&1 &
            server_pid=$!
            wait_http "$port" 150 || return 1
            # The one worker process holds the connections and does the work.
            work_pid=$(pgrep -P "$server_pid" | head -n 1)
            [ -n "$work_pid" ] || return 1
            ;;
        *) return 3 ;;
    esac
    if [ -n "$tls" ]; then
        wait_https "$tls_port" 150 || return 1
    fi
    return 0
}

# probe METHOD PATH: the HTTP status a request gets (000: none); over TLS
# to the TLS listener when there is one.
probe() {
    local method=$1 path=$2
    if [ -n "$tls_port" ]; then
        curl -s -o /dev/null -m 1 --cacert "$tls_dir/ca.pem" -X "$method" -w '%{http_code}' \
            "https://127.0.0.1:$tls_port$path" 2>/dev/null || true
    else
        curl -s -o /dev/null -m 1 -X "$method" -w '%{http_code}' "http://127.0.0.1:$port$path" 2>/dev/null || true
    fi
}

# Endpoints a scenario needs; a 404 on any means the system lacks it.
needs() {
    case "$1" in
        http|https) echo "GET /healthz" ;;
        publish) echo "POST /publish/probe" ;;
        echo-*) echo "GET /echo" ;;
        fanout-ws|fanout-ws-paced|fanout-wss) echo "GET /ws?room=probe POST /publish/probe" ;;
        fanout-sse|fanout-sse-paced) echo "GET /sse?room=probe POST /publish/probe" ;;
        idle-ws|churn-ws|idle-wss|handshakes-tls) echo "GET /ws?room=probe" ;;
        idle-sse) echo "GET /sse?room=probe" ;;
    esac
}

cpu_ticks() {
    # utime + stime of a process, in clock ticks.
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}
clk_tck=$(getconf CLK_TCK)

cores_busy_ticks() {
    # Time cores 0 and 1 together spent running processes (user, nice,
    # system) or lost to the hypervisor (steal), in clock ticks: ours or
    # not. Interrupt and softirq time is left out (loopback networking).
    awk '$1 == "cpu0" || $1 == "cpu1" { b += $2 + $3 + $4 + $9 } END { print b }' /proc/stat
}

# ---------------------------------------------------------------- scenarios
# run_tool SCENARIO SYSTEM RAW: runs the measuring tool for one row; prints
# the command it ran to $RAW.cmd. Returns the tool's exit status.
run_tool() {
    local sc=$1 sys=$2 raw=$3 room="r$RANDOM$RANDOM"
    local lg="taskset -c 1 $loadgen_bin"
    local base="127.0.0.1:$port" pidopt="--pid $work_pid" cmd limit
    # TLS scenarios: the TLS listener, the test CA trusted.
    local tbase="127.0.0.1:$tls_port" ca="--ca $tls_dir/ca.pem"
    case "$sc" in
        http|publish)
            local script=healthz
            [ "$sc" = publish ] && script=publish
            cmd="taskset -c 1 wrk -t1 -c100 -d$wrk_dur --latency -s $here/wrk/$script.lua http://$base"
            limit=120
            ;;
        echo-32x1) cmd="$lg echo --url ws://$base/echo --conns 100 --inflight 1 --size 32 --duration $echo_dur --warmup $echo_warm $pidopt"; limit=120 ;;
        echo-32x8) cmd="$lg echo --url ws://$base/echo --conns 100 --inflight 8 --size 32 --duration $echo_dur --warmup $echo_warm $pidopt"; limit=120 ;;
        echo-16k) cmd="$lg echo --url ws://$base/echo --conns 100 --inflight 1 --size 16KiB --binary --duration $echo_dur --warmup $echo_warm $pidopt"; limit=120 ;;
        fanout-ws) cmd="$lg fanout --sub-url ws://$base/ws?room=$room --publish-url http://$base/publish/$room --subs $fan_subs --size 64 --duration $fan_dur $pidopt"; limit=240 ;;
        fanout-sse) cmd="$lg fanout --sub-url http://$base/sse?room=$room --publish-url http://$base/publish/$room --subs $fan_subs --size 64 --duration $fan_dur $pidopt"; limit=240 ;;
        fanout-ws-paced) cmd="$lg fanout --sub-url ws://$base/ws?room=$room --publish-url http://$base/publish/$room --subs $fan_subs --size 64 --rate $fan_rate --duration $fan_dur $pidopt"; limit=240 ;;
        fanout-sse-paced) cmd="$lg fanout --sub-url http://$base/sse?room=$room --publish-url http://$base/publish/$room --subs $fan_subs --size 64 --rate $fan_rate --duration $fan_dur $pidopt"; limit=240 ;;
        idle-ws) cmd="$lg hold --url ws://$base/ws?room=$room --conns $idle_conns --hold $idle_hold --src-ips 8 $pidopt"; limit=240 ;;
        idle-sse) cmd="$lg hold --url http://$base/sse?room=$room --conns $idle_conns --hold $idle_hold --src-ips 8 $pidopt"; limit=240 ;;
        churn-ws) cmd="$lg churn --url ws://$base/ws?room=$room --rate $churn_rate --duration $churn_dur --src-ips 16 $pidopt"; limit=400 ;;
        https) cmd="taskset -c 1 wrk -t1 -c100 -d$wrk_dur --latency -s $here/wrk/healthz.lua https://$tbase"; limit=120 ;;
        fanout-wss) cmd="$lg fanout --sub-url wss://$tbase/ws?room=$room --publish-url https://$tbase/publish/$room --subs $fan_subs --size 64 --duration $fan_dur $ca $pidopt"; limit=300 ;;
        echo-wss-32x8) cmd="$lg echo --url wss://$tbase/echo --conns 100 --inflight 8 --size 32 --duration $echo_dur --warmup $echo_warm $ca $pidopt"; limit=120 ;;
        idle-wss) cmd="$lg hold --url wss://$tbase/ws?room=$room --conns $idle_conns --hold $idle_tls_hold --sample-after $tls_park_wait --src-ips 8 $ca $pidopt"; limit=300 ;;
        handshakes-tls) cmd="$lg churn --url wss://$tbase/ws?room=$room --rate $hs_rate --max-open $hs_open --duration $hs_dur --src-ips 16 $ca $pidopt"; limit=400 ;;
    esac
    printf '%s\n' "${cmd//$root\//}" >"$raw.cmd"
    local t0 c0 b0 rc t1 c1 b1
    t0=$(date +%s.%N)
    c0=$(cpu_ticks "$work_pid")
    b0=$(cores_busy_ticks)
    # Own CPU of the tool: the subshell's children times (bash `times`).
    # In the background, so that a signal to the runner is handled at once
    # (cleanup stops the tool too).
    # shellcheck disable=SC2086 # $cmd is a command line, split on purpose
    ( timeout -k 5 "$limit" $cmd >"$raw" 2>"$raw.err"; rc=$?; times >"$raw.times"; exit $rc ) &
    tool_pid=$!
    wait "$tool_pid"
    rc=$?
    tool_pid=""
    c1=$(cpu_ticks "$work_pid")
    b1=$(cores_busy_ticks)
    t1=$(date +%s.%N)
    # The runner's own measurement, appended for the report (wrk has no --pid).
    local child
    child=$(tail -n 1 "$raw.times" 2>/dev/null | awk '{
        split($1, u, "m"); split($2, s, "m");
        sub("s", "", u[2]); sub("s", "", s[2]);
        printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
    # server_cpu_s is null when the server was gone by the end.
    awk -v t0="$t0" -v t1="$t1" -v c0="${c0:-0}" -v c1="$c1" -v tck="$clk_tck" \
        -v b0="${b0:-0}" -v b1="${b1:-0}" -v child="${child:-0}" -v rc="$rc" 'BEGIN {
        srv = (c1 == "") ? "null" : sprintf("%.3f", (c1 - c0) / tck)
        printf "{\"tool\":\"runner\",\"wall_s\":%.3f,\"server_cpu_s\":%s,\"client_cpu_s\":%s,\"cores_busy_s\":%.3f,\"rc\":%d}\n",
            t1 - t0, srv, child, (b1 - b0) / tck, rc }' >"$raw.runner"
    return $rc
}

record() {
    # scenario system round status raw command server-command
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${7:-}" >>"$records"
}

run_row() {
    local sc=$1 sys=$2 r=$3
    local name=$sc.$sys.r$r
    local raw=$out/$name.out
    if [ "$sc" = http ] || [ "$sc" = publish ] || [ "$sc" = https ]; then
        command -v wrk >/dev/null 2>&1 || { record "$sc" "$sys" "$r" "no-wrk" "" ""; return; }
    fi
    local tls=""
    is_tls "$sc" && tls=tls
    start_server "$sys" "$out/$name.server.log" $tls
    local st=$?
    if [ $st -ne 0 ]; then
        if [ $st = 3 ]; then
            log "$sc / $sys: not built"
            record "$sc" "$sys" "$r" "not-built" "" ""
        elif [ $st = 4 ]; then
            log "$sc / $sys: no TLS mode"
            record "$sc" "$sys" "$r" "no-tls" "" ""
        elif [ $st = 5 ]; then
            log "$sc / $sys: not yet (this build refuses the [tls] section: see $out/$name.server.log)"
            record "$sc" "$sys" "$r" "not-yet" "" ""
        else
            log "$sc / $sys: server did not become ready (see $out/$name.server.log)"
            record "$sc" "$sys" "$r" "no-server" "" ""
        fi
        cleanup
        return
    fi
    printf '%s\n' "$server_cmd" >"$raw.server-cmd"
    local code missing=""
    # shellcheck disable=SC2046 # split into METHOD PATH pairs on purpose
    set -- $(needs "$sc")
    while [ $# -ge 2 ]; do
        code=$(probe "$1" "$2")
        case "$code" in 404|000) missing="$missing $1 $2 -> $code;" ;; esac
        shift 2
    done
    if [ -n "$missing" ]; then
        if [ "$sys" = ringcast ]; then
            log "$sc / $sys: not yet ($missing)"
            record "$sc" "$sys" "$r" "not-yet" "" ""
        else
            log "$sc / $sys: no such endpoint ($missing)"
            record "$sc" "$sys" "$r" "n/a" "" ""
        fi
        cleanup
        return
    fi
    log "$sc / $sys (round $r): $(cat "$raw.server-cmd")"
    run_tool "$sc" "$sys" "$raw"
    local rc=$?
    local status=ok
    [ $rc -eq 0 ] || status="exit-$rc"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && status=timeout
    log "$sc / $sys: $status: $(tail -n 1 "$raw" 2>/dev/null | cut -c1-160)"
    record "$sc" "$sys" "$r" "$status" "$raw" "$(cat "$raw.cmd")" "$server_cmd"
    cleanup
}

# ---------------------------------------------------------------- run
log "mode $label; scenarios:$scenarios; systems: $systems; rounds $rounds; raw outputs in $out"
{
    echo "date_utc=$(date -u '+%Y-%m-%d %H:%M:%S')"
    echo "commit=$(cd "$root" && git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    echo "dirty=$(cd "$root" && git status --porcelain 2>/dev/null | grep -q . && echo yes || echo no)"
    echo "nproc=$(nproc)"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "kernel=$(uname -srm)"
    echo "memory=$(free -h 2>/dev/null | awk '/^Mem:/ {print $2}')"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nofile=$(ulimit -n)"
    echo "wrk=$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    if [ "$tls_run" = 1 ]; then
        echo "openssl=$(openssl version 2>/dev/null | cut -d' ' -f1-2)"
        echo "tls_cert=$(openssl x509 -in "$tls_dir/cert.pem" -noout -text 2>/dev/null \
            | awk '/Public Key Algorithm/ {a=$NF} /NIST CURVE/ {c=$NF} END {print a " " c}')"
    fi
    echo "mode=$label"
    echo "rounds=$rounds"
} >"$out/machine.env"
t_start=$(date +%s)
for sc in $scenarios; do
    for r in $(seq "$rounds"); do
        for sys in $systems; do
            run_row "$sc" "$sys" "$r"
        done
    done
done
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.env"
echo "elapsed_s=$(( $(date +%s) - t_start ))" >>"$out/machine.env"

python3 "$here/report.py" "$out" "$results" || { log "writing $results failed"; exit 1; }
log "wrote ${results#"$root"/} (raw outputs: ${out#"$root"/}) in $(( $(date +%s) - t_start ))s"
