#!/usr/bin/env bash
# Client mode: the library's WebSocket client (ringcast::client::Client)
# against Autobahn|Testsuite's fuzzingserver (see README.md beside this file).
#
#   client.sh [--full] [--cases "1.*,2.*"]
#
# Runs the integration test tests/autobahn_client.rs, which sets up wstest
# (setup.sh), starts `wstest -m fuzzingserver` on a free port, runs every
# case with the client as an echo client (agent "ringcast-client"), writes
# the report and judges it with judge.py. Output in target/autobahn-client/.
#
# Cases: 1.* to 10.* by default; --full adds 12.* and 13.*
# (permessage-deflate); --cases replaces the list. --full builds the
# compression crates optimised (the client compresses and inflates every
# message of 12.*; unoptimised zlib-rs makes those cases crawl).
# Exit status: the test's (0 every case passed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cases=""
full=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --full) full=1 ;;
        --cases) [[ $# -ge 2 ]] || { echo "client.sh: --cases needs a value" >&2; exit 2; }
                 cases="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "client.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ -z "$cases" && $full == 1 ]]; then
    cases="1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*,12.*,13.*"
fi
args=()
if [[ $full == 1 || "$cases" == *12.* || "$cases" == *13.* ]]; then
    for p in zlib-rs libz-rs-sys flate2; do
        args+=(--config "profile.dev.package.$p.opt-level=3")
    done
fi
cd "$root"
if [[ -n "$cases" ]]; then export AUTOBAHN_CLIENT_CASES="$cases"; fi
exec cargo test "${args[@]}" --test autobahn_client -- --nocapture
