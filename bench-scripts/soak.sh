#!/usr/bin/env bash
# ringcast's soak test: every network fault at once against one release
# server, then a check that nothing leaked and nobody lost a message.
#
#   bench-scripts/soak.sh [--duration 150s] [--warmup 15s] [--rss-tolerance 10]
#                         [--no-build] [--report PATH]
#
# The server runs with bench-scripts/soak.toml (2 workers; header_timeout 3s,
# send_timeout 5s, ws ping 5s + pong 5s, sse keepalive 2s, history 64,
# max_queued_bytes 1MiB; the built-in pages and demos on). For
# --duration (default 150 s; about 3 minutes in all with the warm-up and
# the settling) these run at once, each a loadgen process:
#   fanout-ws, fanout-sse  100 well-behaved subscribers each, 20 messages/s;
#                          every message must arrive, in order, once, and
#                          no subscriber may be dropped
#   churn-ws, churn-sse    connect, handshake, close at 100/s each
#   slowloris              100 connections sending a request head one byte
#                          a second; each must be cut with 408 within 6 s
#   midwrite-sse, -ws      each second, 8 subscribers with 4 KiB windows
#                          (also in the fan-out room) get a 512 KiB backlog
#                          and vanish mid-write: reset, or close with unread data
#   hostile                three attackers at once, each bounded, all the while:
#                          every 5 s, 4 connections with 4 KiB receive buffers
#                          pipeline 1,000 GETs of a ~50 KB built-in file in one
#                          write and read nothing for 2 s (under send_timeout),
#                          then every answer must arrive complete (the server
#                          stops parsing at http.max_pending_output);
#                          every 200 ms, bodies that are not UTF-8 to the demo
#                          chat room (400 naming the byte offset) and to a raw
#                          room (202), and a valid chat message, which a
#                          WebSocket subscriber of /demo/chat/ws must get, in
#                          text frames of valid UTF-8 only;
#                          every 10 s, 60 messages of 60 KB to one room, then
#                          an SSE client resumes from the first (Last-Event-ID):
#                          all 59 later ones (3.5 MB, over max_queued_bytes)
#                          must arrive in order, none missing, no gap notice
#
# Baseline: the server's fd count (/proc/PID/fd) and RSS are taken after a
# warm-up round of the same mix (--warmup, default 15 s) has ended and the
# server has settled: pooled read buffers, allocator segments and the room
# histories reach their high-water marks in the warm-up, so growth measured
# against that baseline is growth that keeps going, i.e. a leak. After the
# main round the script polls (at most 30 s) until the fd count is back to
# the baseline, then checks: fds equal to the baseline exactly; RSS within
# --rss-tolerance percent (default 10) of the baseline; every loadgen check;
# /healthz answers 200; /metrics shows every accepted connection closed, no
# SSE or WebSocket connection open, at least one timeout per 408 the
# slowloris clients got, at least one pipelining pause (a max_pending_output
# hit) from the hostile flood, and no slow-consumer drop (the backlogs stay
# under hub.max_queued_bytes: the vanishing subscribers must be seen as gone,
# and the hostile client's replay of more than max_queued_bytes must be
# paced by what it reads, not queued at once: a replay that overflows the
# queue cuts the stream and counts a drop, shown next to that check).
# Writes bench-scripts/SOAK.md (or --report PATH) and exits 1 if any check
# failed, 2 on a setup error.
set -uo pipefail
set -f

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

dur_arg=150s
warm_arg=15s
rss_tol=10
build=1
report=$here/SOAK.md
cmdline="bench-scripts/soak.sh${*:+ $*}"
usage() {
    sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) dur_arg=${2:?--duration needs a value}; shift ;;
        --duration=*) dur_arg=${1#--duration=} ;;
        --warmup) warm_arg=${2:?--warmup needs a value}; shift ;;
        --warmup=*) warm_arg=${1#--warmup=} ;;
        --rss-tolerance) rss_tol=${2:?--rss-tolerance needs a percentage}; shift ;;
        --rss-tolerance=*) rss_tol=${1#--rss-tolerance=} ;;
        --no-build) build=0 ;;
        --report) report=${2:?--report needs a path}; shift ;;
        --report=*) report=${1#--report=} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "soak.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# 150, 150s, 3m -> seconds
secs_of() {
    case "$1" in
        *m) echo $(( ${1%m} * 60 )) ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}
duration=$(secs_of "$dur_arg")
warmup=$(secs_of "$warm_arg")
for v in "$duration" "$warmup" "$rss_tol"; do
    case "$v" in ''|*[!0-9]*) echo "soak.sh: durations are whole seconds (150, 150s, 3m); tolerance a whole percentage" >&2; exit 2 ;; esac
done
[ "$duration" -ge 10 ] || { echo "soak.sh: --duration must be at least 10s" >&2; exit 2; }
[ "$warmup" -ge 5 ] || { echo "soak.sh: --warmup must be at least 5s" >&2; exit 2; }

stamp=$(date -u +%Y%m%d-%H%M%S)
out=$here/out/$stamp-soak
mkdir -p "$out"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$out/soak.log" >&2; }

server_pid=""
tool_pids=()
cleanup() {
    local p
    for p in "${tool_pids[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=""
    fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- build
ringcast_bin=${RINGCAST_BIN:-$root/target/release/ringcast}
loadgen_bin=${LOADGEN_BIN:-$root/target/release/loadgen}
if [ "$build" = 1 ]; then
    log "building ringcast and loadgen (release)"
    (cd "$root" && cargo build --release -p ringcast --bin ringcast && cargo build --release -p loadgen) >"$out/build.log" 2>&1 \
        || { log "build failed: see $out/build.log"; exit 2; }
fi
for b in "$ringcast_bin" "$loadgen_bin"; do
    [ -x "$b" ] || { log "no $b (build it, or drop --no-build)"; exit 2; }
done
for t in curl jq; do
    command -v "$t" >/dev/null 2>&1 || { log "$t is needed (apt-get install -y $t)"; exit 2; }
done

# ---------------------------------------------------------------- server
eph_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$eph_low" -gt 12000 ] 2>/dev/null || eph_low=32768
port=""
for _ in $(seq 100); do
    p=$((10000 + RANDOM % (eph_low - 11000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { port=$p; break; }
done
[ -n "$port" ] || { log "no free port found"; exit 2; }
base=127.0.0.1:$port
config=$here/soak.toml
# hub.max_queued_bytes of the config (its default when unset): the hostile
# resume must replay more than that.
max_queued=$(sed -n 's/^[[:space:]]*max_queued_bytes[[:space:]]*=[[:space:]]*"\{0,1\}\([0-9A-Za-z]*\)"\{0,1\}.*/\1/p' "$config" | head -n 1)
max_queued=${max_queued:-1MiB}
server_cmd="${ringcast_bin#"$root"/} --config ${config#"$root"/} --listen $base"
"$ringcast_bin" --config "$config" --listen "$base" >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 150); do
    grep -q "listening on" "$out/server.log" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
grep -q "listening on" "$out/server.log" || { log "server did not start: see $out/server.log"; exit 2; }
log "server pid $server_pid: $server_cmd"

fds() { ls "/proc/$server_pid/fd" 2>/dev/null | wc -l; }
rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$server_pid/status" 2>/dev/null; }
alive() { kill -0 "$server_pid" 2>/dev/null; }
# scrape: reads /metrics once into $out/metrics.txt; metric PREFIX: the sum
# of that scrape's samples whose series starts with PREFIX.
scrape() { curl -s -m 5 "http://$base/metrics" >"$out/metrics.txt"; }
metric() {
    awk -v p="$1" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }' "$out/metrics.txt"
}
healthz() { curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$base/healthz"; }

# settle TARGET LIMIT: polls until the fd count is TARGET (or, with TARGET
# "stable", unchanged for 2 s); at most LIMIT seconds. Prints the count.
settle() {
    local target=$1 limit=$2 n last="" same=0 i
    for i in $(seq $((limit * 10))); do
        n=$(fds)
        if [ "$target" = stable ]; then
            if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; fi
            [ "$same" -ge 20 ] && break
        elif [ "$n" = "$target" ]; then
            break
        fi
        last=$n
        sleep 0.1
    done
    fds
}

# ---------------------------------------------------------------- the mix
# run_round NAME SECONDS: starts every tool at once, waits for all; raw
# outputs in $out/NAME.TOOL.out. Prints nothing; statuses in $out/NAME.TOOL.rc.
tools="fanout-ws fanout-sse churn-ws churn-sse slowloris midwrite-sse midwrite-ws hostile"
tool_cmd() {
    local tool=$1 s=$2 lg=$loadgen_bin
    case "$tool" in
        fanout-ws) echo "$lg fanout --sub-url ws://$base/ws?room=fan-ws --publish-url http://$base/publish/fan-ws --subs 100 --size 64 --rate 20/s --duration ${s}s --tail 10s" ;;
        fanout-sse) echo "$lg fanout --sub-url http://$base/sse?room=fan-sse --publish-url http://$base/publish/fan-sse --subs 100 --size 64 --rate 20/s --duration ${s}s --tail 10s" ;;
        churn-ws) echo "$lg churn --url ws://$base/ws?room=churn --rate 100/s --duration ${s}s --settle 1s" ;;
        churn-sse) echo "$lg churn --url http://$base/sse?room=churn --rate 100/s --duration ${s}s --settle 1s" ;;
        slowloris) echo "$lg slowloris --url http://$base/healthz --conns 100 --interval 1s --duration ${s}s --expect-cut-within 6s" ;;
        midwrite-sse) echo "$lg midwrite --sub-url http://$base/sse?room=mw-sse&room=fan-sse --publish-url http://$base/publish/mw-sse --subs 8 --size 32KiB --backlog 512KiB --every 1s --duration ${s}s" ;;
        midwrite-ws) echo "$lg midwrite --sub-url ws://$base/ws?room=mw-ws&room=fan-ws --publish-url http://$base/publish/mw-ws --subs 8 --size 32KiB --backlog 512KiB --every 1s --duration ${s}s" ;;
        hostile) echo "$lg hostile --url http://$base --duration ${s}s --static-path /assets/htmx-2.0.11.min.js --flood-conns 4 --flood-requests 1000 --flood-every 5s --flood-hold 2s --flood-rcvbuf 4KiB --text-room demo-chat --chat-ws /demo/chat/ws --raw-room hostile-raw --utf8-every 200ms --resume-room hostile-resume --resume-count 60 --resume-size 60000 --resume-every 10s --resume-over $max_queued" ;;
    esac
}
run_round() {
    local name=$1 s=$2 tool cmd i
    tool_pids=()
    for tool in $tools; do
        cmd=$(tool_cmd "$tool" "$s")
        printf '%s\n' "${cmd//$root\//}" >"$out/$name.$tool.cmd"
        # shellcheck disable=SC2086 # a command line, split on purpose
        ( timeout -k 5 $((s + 120)) $cmd >"$out/$name.$tool.out" 2>"$out/$name.$tool.err"; echo $? >"$out/$name.$tool.rc" ) &
        tool_pids+=($!)
    done
    for i in "${tool_pids[@]}"; do wait "$i"; done
    tool_pids=()
}
# j NAME TOOL FIELD: a field of a tool's JSON report line ("" if none).
j() { tail -n 1 "$out/$1.$2.out" 2>/dev/null | jq -r ".$3 // empty" 2>/dev/null; }
# jms NAME TOOL FIELD: a microsecond field in milliseconds.
jms() { awk -v v="$(j "$1" "$2" "$3")" 'BEGIN { if (v == "") print "?"; else printf "%.1f ms\n", v / 1000 }'; }

# ---------------------------------------------------------------- run
t_start=$(date +%s)
healthz >/dev/null
fds_start=$(settle stable 10)
log "at start: $fds_start fds, RSS $(rss) B; warm-up round of ${warmup}s"
run_round warmup "$warmup"
alive || { log "the server died in the warm-up: see $out/server.log"; exit 1; }
fds_base=$(settle "$fds_start" 30)
# Let the last closes land in the RSS too: the workers hand freed allocator
# pages back once a second, so memory freed just now shows after that.
sleep 3
fds_base=$(settle "$fds_base" 10)
rss_base=$(rss)
scrape
accepted_base=$(metric ringcast_connections_accepted_total)
timeouts_base=$(metric 'ringcast_limit_hits_total{limit="timeouts"')
drops_base=$(metric ringcast_slow_consumer_drops_total)
pauses_base=$(metric 'ringcast_limit_hits_total{limit="max_pending_output"')
log "baseline after the warm-up: $fds_base fds (at start $fds_start), RSS $rss_base B; main round of ${duration}s"

peak_rss=0
peak_fds=0
( while alive; do printf '%s %s\n' "$(fds)" "$(rss)"; sleep 1; done ) >"$out/samples.txt" 2>/dev/null &
sampler=$!
run_round main "$duration"
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
read -r peak_fds peak_rss < <(awk '$1 > f { f = $1 } $2 > r { r = $2 } END { print f + 0, r + 0 }' "$out/samples.txt")
server_up=yes
alive || server_up=no
t_settle=$(date +%s)
fds_after=$(settle "$fds_base" 30)
settle_s=$(( $(date +%s) - t_settle ))
sleep 3 # as for the baseline: freed pages are handed back once a second
rss_after=$(rss)
# The counters first (every earlier connection's fd is closed by now), then /healthz.
scrape
health=$(healthz)
accepted_after=$(metric ringcast_connections_accepted_total)
closed_after=$(metric ringcast_connections_closed_total)
open_sse=$(metric 'ringcast_connections{kind="sse"')
open_ws=$(metric 'ringcast_connections{kind="ws"')
timeouts_after=$(metric 'ringcast_limit_hits_total{limit="timeouts"')
drops_after=$(metric ringcast_slow_consumer_drops_total)
pauses_after=$(metric 'ringcast_limit_hits_total{limit="max_pending_output"')
elapsed=$(( $(date +%s) - t_start ))
log "after: $fds_after fds (settled in ${settle_s}s), RSS $rss_after B; peak while running: $peak_fds fds, RSS $peak_rss B"

# ---------------------------------------------------------------- checks
checks=()   # "pass|fail<TAB>check<TAB>figures"
check() {   # check NAME FIGURES CONDITION...
    local name=$1 figs=$2
    shift 2
    if "$@"; then checks+=("pass	$name	$figs"); else checks+=("FAIL	$name	$figs"); fi
}
is() { [ "$1" = "$2" ]; }
num_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 <= b + 0) }'; }
num_ge() { num_le "$2" "$1"; }

for tool in $tools; do
    check "$tool: loadgen checks pass (exit 0)" "exit $(cat "$out/main.$tool.rc" 2>/dev/null)" is "$(cat "$out/main.$tool.rc" 2>/dev/null)" 0
done
for f in fanout-ws fanout-sse; do
    pub=$(j main $f published); acc=$(j main $f accepted)
    check "$f: every publish accepted" "$acc of $pub" is "$acc" "$pub"
    check "$f: no message missing" "$(j main $f missing)" is "$(j main $f missing)" 0
    check "$f: no duplicate, none out of order" "$(j main $f duplicates) / $(j main $f out_of_order)" \
        is "$(j main $f duplicates)/$(j main $f out_of_order)" 0/0
    check "$f: no subscriber dropped or failed" "$(j main $f subs_open) open, $(j main $f subs_dropped) dropped, $(j main $f subs_failed) failed" \
        is "$(j main $f subs_dropped)/$(j main $f subs_failed)/$(j main $f subs_open)" 0/0/100
done
cut=$(j main slowloris cut_408)
check "slowloris: every slow client cut with 408 within 6 s" \
    "$cut cut with 408, $(j main slowloris cut_other) ended otherwise, $(j main slowloris not_cut) not cut; first byte to 408 p50 $(jms main slowloris cut_after_p50_us), max $(jms main slowloris cut_after_max_us) (seen at the next one-second tick)" \
    is "$(j main slowloris cut_other)/$(j main slowloris not_cut)" 0/0
# hostile: h FIELD is a field of its report; f1 VALUE rounds to one decimal.
h() { j main hostile "$1"; }
f1() { awk -v v="$1" 'BEGIN { if (v == "") print "?"; else printf "%.1f\n", v }'; }
p_delta=$((pauses_after - pauses_base))
pipelined_ok() {
    num_ge "$(h pipelined_sent)" 1 && num_ge "$p_delta" 1 &&
        is "$(h pipelined_answered)/$(h pipelined_incomplete)/$(h pipelined_wrong)/$(h pipelined_failed)" "$(h pipelined_sent)/0/0/0"
}
check "hostile: every pipelined answer arrives" \
    "$(h pipelined_answered) of $(h pipelined_sent) answered complete (200, $(h static_bytes) B bodies; $(h pipelined_conns) connections of 1,000, slowest $(f1 "$(h pipelined_slowest_s)") s), incomplete $(h pipelined_incomplete), wrong $(h pipelined_wrong), failed connections $(h pipelined_failed); the server paused parsing +$p_delta times (max_pending_output)" \
    pipelined_ok
utf8_ok() {
    num_ge "$(h utf8_sent)" 1 && num_ge "$(h chat_published)" 1 &&
        is "$(h utf8_refused)/$(h utf8_raw_accepted)/$(h utf8_bad_frames)/$(h chat_received)/$(h chat_duplicates)/$(h chat_out_of_order)/$(h chat_sub_failed)" \
            "$(h utf8_sent)/$(h utf8_raw_sent)/0/$(h chat_published)/0/0/0"
}
check "hostile: invalid UTF-8 refused for text rooms, never in a text frame" \
    "demo-chat: $(h utf8_refused) of $(h utf8_sent) refused with 400 naming the offset; raw room: $(h utf8_raw_accepted) of $(h utf8_raw_sent) accepted; chat subscriber: $(h chat_frames) frames, $(h utf8_bad_frames) not UTF-8 text, $(h chat_received) of $(h chat_published) valid messages received" \
    utf8_ok
resume_ok() {
    num_ge "$(h resume_expected)" 1 &&
        is "$(h resume_received)/$(h resume_missing)/$(h resume_duplicates)/$(h resume_out_of_order)/$(h resume_corrupt)/$(h resume_gaps)/$(h resume_failed)" \
            "$(h resume_expected)/0/0/0/0/0/0"
}
check "hostile: a client that missed more than max_queued_bytes resumes completely" \
    "$(h resume_received) of $(h resume_expected) received, $(h resume_missing) missing over $(h resume_cycles) resumes of $(h resume_replay_bytes) B each (max_queued_bytes $max_queued); streams ended by the server $(h resume_cut), gap notices $(h resume_gaps), out of order $(h resume_out_of_order)" \
    resume_ok
check "server still running" "$server_up" is "$server_up" yes
check "GET /healthz answers 200 afterwards" "$health" is "$health" 200
check "fd count back to the baseline (exact)" "baseline $fds_base, after $fds_after (peak $peak_fds)" is "$fds_after" "$fds_base"
rss_limit=$(awk -v b="$rss_base" -v t="$rss_tol" 'BEGIN { printf "%d", b * (1 + t / 100) }')
check "RSS within ${rss_tol} % of the baseline" \
    "baseline $(awk -v b="$rss_base" 'BEGIN{printf "%.1f", b/1048576}') MiB, after $(awk -v b="$rss_after" 'BEGIN{printf "%.1f", b/1048576}') MiB, limit $(awk -v b="$rss_limit" 'BEGIN{printf "%.1f", b/1048576}') MiB (peak $(awk -v b="$peak_rss" 'BEGIN{printf "%.1f", b/1048576}') MiB)" \
    num_le "$rss_after" "$rss_limit"
# The scrape that read the counters is itself an accepted, still open connection.
check "metrics: every accepted connection closed" "accepted $accepted_after, closed $closed_after (the one open is the scrape)" \
    is "$closed_after" "$((accepted_after - 1))"
check "metrics: no SSE or WebSocket connection open" "sse $open_sse, ws $open_ws" is "$open_sse/$open_ws" 0/0
t_delta=$((timeouts_after - timeouts_base))
check "metrics: timeouts counted for the slowloris 408s" "timeouts +$t_delta, slowloris 408s $cut" num_ge "$t_delta" "${cut:-1}"
d_delta=$((drops_after - drops_base))
check "metrics: no slow-consumer drop (every backlog stays under hub.max_queued_bytes)" \
    "+$d_delta (hostile resume streams the server ended: $(h resume_cut))" is "$d_delta" 0

failed=0
for c in "${checks[@]}"; do case "$c" in FAIL*) failed=$((failed + 1)) ;; esac; done

# ---------------------------------------------------------------- report
{
    echo "# Soak test"
    echo
    echo "The last run of \`bench-scripts/soak.sh\`: every fault at once against one"
    echo "release server, then checks that nothing leaked and that no well-behaved"
    echo "subscriber missed a message. See the script's header for what each part"
    echo "does and why the baseline is taken after a warm-up round."
    echo
    echo "- command: \`$cmdline\`"
    echo "- server: \`$server_cmd\` (config: bench-scripts/soak.toml)"
    echo "- date (UTC): $(date -u '+%Y-%m-%d %H:%M'); commit $(cd "$root" && git rev-parse --short=12 HEAD)$(cd "$root" && git status --porcelain -- src bench-scripts/loadgen bench-scripts/soak.sh bench-scripts/soak.toml | grep -q . && echo ' (with uncommitted changes)')"
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(uname -sr); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- warm-up ${warmup} s, main round ${duration} s, settling ${settle_s} s; ${elapsed} s in all"
    echo "- result: **$([ "$failed" = 0 ] && echo "PASS" || echo "FAIL ($failed checks failed)")**"
    echo
    echo "## What ran at once (main round)"
    echo
    echo "| tool | figures |"
    echo "|---|---|"
    for f in fanout-ws fanout-sse; do
        echo "| $f | $(j main $f subs_open) subscribers, $(j main $f published) published, $(j main $f delivered) delivered, missing $(j main $f missing), duplicates $(j main $f duplicates), out of order $(j main $f out_of_order), dropped $(j main $f subs_dropped); publish-to-receive p99 $(jms main $f latency_p99_us) |"
    done
    for f in churn-ws churn-sse; do
        echo "| $f | $(j main $f cycles) connect/handshake/close cycles ($(j main $f cycles_per_sec | cut -c1-6)/s), failed $(j main $f failed), rejected $(j main $f rejected), closed by the server $(j main $f server_closed) |"
    done
    echo "| slowloris | $(j main slowloris conns) held at once, $(j main slowloris opened) opened, $(j main slowloris cut_408) cut with 408 (first byte to 408, seen at the client's next one-second tick: p50 $(jms main slowloris cut_after_p50_us), max $(jms main slowloris cut_after_max_us)), ended otherwise $(j main slowloris cut_other), not cut in time $(j main slowloris not_cut) |"
    for f in midwrite-sse midwrite-ws; do
        echo "| $f | $(j main $f cycles) cycles, $(j main $f subs_opened) subscribers vanished mid-write ($(j main $f resets) reset, $(j main $f closes_with_unread) closed with $(j main $f unread_bytes_at_close) B unread in all), $(j main $f publish_accepted) publishes of 32 KiB, failures $(j main $f failed) |"
    done
    echo "| hostile | flood: $(h flood_cycles) cycles, $(h pipelined_conns) connections (4 KiB receive buffers) each pipelining 1,000 GETs of $(h static_bytes) B unread for 2 s: $(h pipelined_answered) of $(h pipelined_sent) answered complete; invalid UTF-8: $(h utf8_refused) of $(h utf8_sent) refused by demo-chat, $(h utf8_raw_accepted) of $(h utf8_raw_sent) accepted by a raw room, chat subscriber $(h chat_received) of $(h chat_published) with $(h utf8_bad_frames) bad frames; resume: $(h resume_cycles) clients back after missing $(h resume_replay_bytes) B each, $(h resume_received) of $(h resume_expected) received, $(h resume_cut) cut by the server |"
    echo
    echo "Server counters over the main round: timeouts +$t_delta, slow-consumer drops +$d_delta,"
    echo "pipelining pauses (max_pending_output) +$p_delta, connections accepted +$((accepted_after - accepted_base))."
    echo
    echo "## Checks"
    echo
    echo "| result | check | figures |"
    echo "|---|---|---|"
    for c in "${checks[@]}"; do
        IFS=$'\t' read -r r n f <<<"$c"
        echo "| $r | $n | $f |"
    done
    echo
    echo "Raw outputs (not committed): bench-scripts/out/$stamp-soak/."
} >"$report"
log "wrote ${report#"$root"/}: $([ "$failed" = 0 ] && echo PASS || echo "FAIL ($failed checks failed)")"
[ "$failed" = 0 ] || exit 1
exit 0
