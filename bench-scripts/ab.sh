#!/usr/bin/env bash
# Paired A/B of two ringcast binaries (say, a base commit's and the working
# tree's) on one scenario: the two run alternately, each pinned to core 0
# with 1 worker, the load (loadgen or wrk) pinned to core 1; each run prints
# its throughput and the server's CPU time per unit of work (from
# /proc/PID/stat), and the end prints each side's medians. On a shared
# machine one run moves by 20 % or more; pairs run minutes apart do not
# share that drift, so compare the medians of several pairs.
#
#   bench-scripts/ab.sh OLD_BIN NEW_BIN SCENARIO [PAIRS]
#
# Scenarios: echo-32x1 echo-32x8 publish healthz churn.
# Build an old binary with: git worktree add /tmp/old REV &&
# (cd /tmp/old && cargo build --release --bin ringcast).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
old=${1:?usage: ab.sh OLD_BIN NEW_BIN SCENARIO [PAIRS]}
new=${2:?usage: ab.sh OLD_BIN NEW_BIN SCENARIO [PAIRS]}
scenario=${3:?usage: ab.sh OLD_BIN NEW_BIN SCENARIO [PAIRS]}
pairs=${4:-5}
loadgen=${LOADGEN_BIN:-$root/target/release/loadgen}
case "$scenario" in
    echo-32x1|echo-32x8|churn) [ -x "$loadgen" ] || { echo "ab.sh: no $loadgen (cargo build --release -p loadgen)" >&2; exit 2; } ;;
    publish|healthz) command -v wrk >/dev/null || { echo "ab.sh: wrk not found (apt-get install -y wrk)" >&2; exit 2; } ;;
    *) echo "ab.sh: unknown scenario $scenario" >&2; exit 2 ;;
esac
for b in "$old" "$new"; do [ -x "$b" ] || { echo "ab.sh: $b is not an executable" >&2; exit 2; }; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_s=$(getconf CLK_TCK)

# One run: prints "UNITS SECONDS_OF_SERVER_CPU".
run_one() {
    local bin=$1 port pid t0 t1 units out
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    taskset -c 0 "$bin" --listen "127.0.0.1:$port" --workers 1 >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
    t0=$(cpu_ticks "$pid")
    case "$scenario" in
        echo-32x1|echo-32x8)
            out=$(taskset -c 1 "$loadgen" echo --url "ws://127.0.0.1:$port/echo" --conns 100 \
                --inflight "${scenario##*x}" --size 32 --duration 5s --warmup 1s --pid "$pid" | tail -1)
            units=$(grep -o '"msgs":[0-9]*' <<<"$out" | cut -d: -f2) ;;
        churn)
            out=$(taskset -c 1 "$loadgen" churn --url "ws://127.0.0.1:$port/ws?room=ab" --rate 2000/s \
                --duration 15s --src-ips 16 --pid "$pid" | tail -1)
            units=$(grep -o '"cycles":[0-9]*' <<<"$out" | cut -d: -f2) ;;
        publish|healthz)
            out=$(taskset -c 1 wrk -t1 -c100 -d5s -s "$here/wrk/$scenario.lua" "http://127.0.0.1:$port")
            units=$(awk '/requests in/ {print $1}' <<<"$out") ;;
    esac
    t1=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null
    echo "${units:-0} $(awk -v t="$((t1 - t0))" -v hz="$ticks_per_s" 'BEGIN {print t / hz}')"
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

declare -A rate cost
duration=5; [ "$scenario" = churn ] && duration=15
for i in $(seq "$pairs"); do
    for side in old new; do
        bin=$old; [ "$side" = new ] && bin=$new
        read -r units cpu < <(run_one "$bin")
        r=$(awk -v u="$units" -v d="$duration" 'BEGIN {printf "%.0f", u / d}')
        c=$(awk -v u="$units" -v c="$cpu" 'BEGIN {printf "%.3f", (u > 0) ? c * 1e6 / u : 0}')
        echo "pair $i $side: $r per second, server $c CPU-µs per unit"
        rate[$side]+="$r "; cost[$side]+="$c "
    done
done
for side in old new; do
    echo "$side median: $(tr ' ' '\n' <<<"${rate[$side]}" | grep . | median) per second, $(tr ' ' '\n' <<<"${cost[$side]}" | grep . | median) CPU-µs per unit"
done
