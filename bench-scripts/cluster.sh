#!/usr/bin/env bash
# Cluster benchmark: fan-out of 64-byte messages to SUBS SSE subscribers
# split over two ringcast nodes on one Redis (`[cluster] engine = "redis"`),
# against, in the same run:
#   - one ringcast process (the single-process engine) with the same subscribers,
#   - one ringcast node on Redis with every subscriber (`cluster1`: the cost
#     of the Redis hop alone, without two nodes sharing one core),
#   - two nginx + nchan instances on the same Redis (nchan_redis_url).
# Flat out (deliveries/s) and paced at RATE/s (publish-to-receive p99); then
# publishes per second through Redis from one node (wrk, 64 connections, a
# room with no subscribers) against the single-process engine.
#
# Servers (Redis and every node) are pinned to core 0, the load generator
# to core 1; every node runs one worker.
#
# The machine is shared and noisy: each single/cluster pair runs REPEAT
# times (default 3), alternating, and the summary compares medians.
#
#   bench-scripts/cluster.sh            # SUBS=10000 DUR=10s RATE=10 REPEAT=3
# Output: bench-scripts/out/cluster/summary.md and the raw loadgen lines.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
subs=${SUBS:-10000}
dur=${DUR:-10s}
rate=${RATE:-10}
repeat=${REPEAT:-3}
out=bench-scripts/out/cluster
rm -rf "$out"
mkdir -p "$out"

command -v redis-server >/dev/null || bash tests/redis/setup.sh >/dev/null
cargo build --release -q
cargo build --release -q -p loadgen
rc=target/release/ringcast
lg="taskset -c 1 target/release/loadgen"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # PORT
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "nothing answers on port $1" >&2
    return 1
}
stop_all() { cleanup; pids=(); }

start_redis() { # PORT
    taskset -c 0 redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$out" >"$out/redis-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do
        [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    return 1
}

start_ringcast() { # PORT [REDIS_PORT]
    local conf="$out/ringcast-$1.toml"
    {
        printf '[server]\nworkers = 1\n[hub]\nauto_join_room = ""\n'
        printf '[demo]\nenabled = false\n[dashboard]\nenabled = false\n'
        [ -n "${2:-}" ] && printf '[cluster]\nengine = "redis"\nredis = ["redis://127.0.0.1:%s"]\n' "$2"
    } >"$conf"
    taskset -c 0 "$rc" --config "$conf" --listen "127.0.0.1:$1" >"$out/ringcast-$1.log" 2>&1 &
    pids+=($!)
    wait_http "$1"
}

start_nchan() { # PORT REDIS_PORT
    NCHAN_REDIS_URL="redis://127.0.0.1:$2" taskset -c 0 bench-scripts/peers/nginx-nchan/run.sh \
        "$root/$out/nginx-$1" "$1" >"$out/nginx-$1.log" 2>&1 &
    pids+=($!)
    wait_http "$1"
}

fanout() { # NAME SUB_URLS PUB_URL [EXTRA...]
    local name=$1 subs_urls=$2 pub=$3
    shift 3
    echo "== $name" >&2
    $lg fanout --sub-url "$subs_urls" --publish-url "$pub" --subs "$subs" --size 64 \
        --duration "$dur" "$@" >"$out/$name.txt" 2>&1 || true
    tail -n 1 "$out/$name.txt"
}

results=()
run_set() { # LABEL EXTRA...
    local label=$1
    shift
    local i p1 r a b
    for i in $(seq "$repeat"); do
        # single process
        p1=$(free_port)
        start_ringcast "$p1"
        results+=("$label single $(fanout "single-$label-$i" "http://127.0.0.1:$p1/sse?room=b" "http://127.0.0.1:$p1/publish/b" "$@")")
        stop_all
        # two ringcast nodes on one Redis
        r=$(free_port); a=$(free_port); b=$(free_port)
        start_redis "$r"
        start_ringcast "$a" "$r"
        start_ringcast "$b" "$r"
        results+=("$label cluster $(fanout "cluster-$label-$i" "http://127.0.0.1:$a/sse?room=b,http://127.0.0.1:$b/sse?room=b" "http://127.0.0.1:$a/publish/b" "$@")")
        stop_all
        # one node on Redis
        r=$(free_port); a=$(free_port)
        start_redis "$r"
        start_ringcast "$a" "$r"
        results+=("$label cluster1 $(fanout "cluster1-$label-$i" "http://127.0.0.1:$a/sse?room=b" "http://127.0.0.1:$a/publish/b" "$@")")
        stop_all
    done
    # two nginx + nchan on one Redis (far slower: once)
    if [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
        r=$(free_port); a=$(free_port); b=$(free_port)
        start_redis "$r"
        start_nchan "$a" "$r"
        start_nchan "$b" "$r"
        results+=("$label nchan $(fanout "nchan-$label" "http://127.0.0.1:$a/sse?room=b,http://127.0.0.1:$b/sse?room=b" "http://127.0.0.1:$a/publish/b" "$@")")
        stop_all
    else
        echo "nginx-nchan is not installed (bench-scripts/peers/build.sh): left out" >&2
    fi
}

run_set flat
run_set paced --rate "$rate/s"

# publishes per second from one node: single process vs through Redis
p1=$(free_port)
start_ringcast "$p1"
wrk -t1 -c64 -d"$dur" -s bench-scripts/wrk/publish.lua "http://127.0.0.1:$p1" >"$out/publish-single.txt" 2>&1 || true
stop_all
r=$(free_port); a=$(free_port)
start_redis "$r"
start_ringcast "$a" "$r"
wrk -t1 -c64 -d"$dur" -s bench-scripts/wrk/publish.lua "http://127.0.0.1:$a" >"$out/publish-cluster.txt" 2>&1 || true
stop_all

python3 - "$out" "${results[@]}" <<'PY'
import json, re, sys
out = sys.argv[1]
rows = []
for r in sys.argv[2:]:
    label, system, line = r.split(" ", 2)
    try:
        j = json.loads(line)
    except Exception:
        j = {}
    rows.append((label, system, j))
def g(j, *ks):
    for k in ks:
        if k in j:
            return j[k]
    return None
lines = ["| run | system | subscribers | publishes/s | deliveries/s | p50 ms | p99 ms | missing | duplicates | dropped |", "|---|---|---|---|---|---|---|---|---|---|"]
def ms(v):
    return None if v is None else round(v / 1000, 2)
for label, system, j in rows:
    lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        label, system, g(j, "subs_open"), round(g(j, "publishes_per_sec") or 0),
        round(g(j, "delivered_per_sec") or 0), ms(g(j, "latency_p50_us")),
        ms(g(j, "latency_p99_us")), g(j, "missing"), g(j, "duplicates"), g(j, "subs_dropped")))
def median(label, system, key):
    vs = sorted(g(j, key) for l, s, j in rows if l == label and s == system and g(j, key) is not None)
    return vs[len(vs) // 2] if vs else None
def ratio(a, b):
    return None if not a or not b else round(a / b, 2)
lines.append("")
systems = ("single", "cluster", "cluster1", "nchan")
d = {s: median("flat", s, "delivered_per_sec") for s in systems}
lines.append(f"flat out, median deliveries/s: single {d['single']:.0f}, cluster {d['cluster']:.0f}, cluster1 {d['cluster1'] or 0:.0f}, nchan {d['nchan'] or 0:.0f}; cluster/single {ratio(d['cluster'], d['single'])}, cluster1/single {ratio(d['cluster1'], d['single'])}, cluster/nchan {ratio(d['cluster'], d['nchan'])}")
p = {s: median("paced", s, "latency_p99_us") for s in systems}
if p["single"] and p["cluster"] and p["cluster1"]:
    lines.append(f"paced, median p99: single {ms(p['single'])} ms, cluster {ms(p['cluster'])} ms (added {ms(p['cluster'] - p['single'])} ms), cluster1 {ms(p['cluster1'])} ms (added {ms(p['cluster1'] - p['single'])} ms), nchan {ms(p['nchan'])} ms")
def rps(f):
    t = open(f"{out}/{f}").read()
    m = re.search(r"Requests/sec:\s*([\d.]+)", t)
    return float(m.group(1)) if m else None
lines.append("")
lines.append(f"publishes/s from one node (wrk -t1 -c64): single process {rps('publish-single.txt')}, through Redis {rps('publish-cluster.txt')}")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
