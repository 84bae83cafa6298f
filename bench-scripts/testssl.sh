#!/usr/bin/env bash
# Audits a TLS listener with testssl.sh (Debian's package, installed with
# apt-get if missing) and writes its report to a file.
#
#   bench-scripts/testssl.sh HOST:PORT OUTFILE
#
# Checks: protocols (-p), server preferences (-P), server defaults and the
# certificate (-S), ciphers per protocol (-E), forward secrecy (-f) and the
# known vulnerabilities (-U). Plain text, no colour (--color 0), no
# progress chatter (--quiet), no questions (--warnings batch), no DNS
# lookups beyond the host's own (--nodns min); the whole run bounded by
# TESTSSL_TIMEOUT seconds (default 900). Writes OUTFILE (testssl's report,
# after a header saying what ran) and OUTFILE.json (the same findings, one
# JSON object each), and prints a short summary: the protocols and the
# findings of severity MEDIUM or above.
#
# The target must be a listener on this machine (loopback): start one first,
# e.g. the tokio-tungstenite peer with --tls-listen, or nginx + nchan with a
# TLS port, using the certificate of bench-scripts/tls-cert.sh. Its test CA
# (bench-scripts/out/tls/ca.pem, where run.sh makes it) is added to the
# trusted ones (--add-ca) when it exists; TESTSSL_CA=FILE names another,
# TESTSSL_CA= none (then the chain is reported untrusted, as it should be).
# Expected findings with the test certificate: no CRL or OCSP URI; with
# the benchmark servers, no server cipher order (the client's is honoured).
#
# Exit status: 0 testssl.sh ran to the end (whatever it found), 1 it failed
# or timed out, 2 usage error.
set -uo pipefail

usage() {
    sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
if [ "$#" -ne 2 ]; then
    usage >&2
    exit 2
fi
target=$1
outfile=$2
case "$target" in
    *:*) ;;
    *) echo "testssl.sh: give HOST:PORT, got '$target'" >&2; exit 2 ;;
esac
host=${target%:*}
case "$host" in
    127.*|localhost|'[::1]'|::1) ;;
    *) echo "testssl.sh: $host is not a loopback address: audit only listeners on this machine" >&2; exit 2 ;;
esac
limit=${TESTSSL_TIMEOUT:-900}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ca=${TESTSSL_CA-$here/out/tls/ca.pem}
case "$limit" in ''|*[!0-9]*) echo "testssl.sh: TESTSSL_TIMEOUT must be seconds" >&2; exit 2 ;; esac

# Debian's package installs the command as `testssl`.
find_testssl() {
    command -v testssl 2>/dev/null || command -v testssl.sh 2>/dev/null
}
bin=$(find_testssl)
if [ -z "$bin" ]; then
    command -v apt-get >/dev/null 2>&1 \
        || { echo "testssl.sh: testssl.sh missing and there is no apt-get" >&2; exit 1; }
    [ "$(id -u)" -eq 0 ] \
        || { echo "testssl.sh: testssl.sh missing; as root: apt-get install testssl.sh" >&2; exit 1; }
    echo "testssl.sh: installing Debian's testssl.sh package" >&2
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            -o DPkg::Lock::Timeout=300 testssl.sh >&2
    }
    if ! apt_install; then
        apt-get update -q -o DPkg::Lock::Timeout=300 >&2 \
            || { echo "testssl.sh: apt-get update failed" >&2; exit 1; }
        apt_install || { echo "testssl.sh: apt-get install testssl.sh failed" >&2; exit 1; }
    fi
    bin=$(find_testssl)
    [ -n "$bin" ] || { echo "testssl.sh: installed, but no testssl command found" >&2; exit 1; }
fi

mkdir -p "$(dirname "$outfile")"
json=$outfile.json
rm -f "$json"
args=(--quiet --color 0 --warnings batch --nodns min --ip one
      --openssl-timeout 10 --jsonfile "$json"
      -p -P -S -E -f -U)
if [ -n "$ca" ] && [ -r "$ca" ]; then
    args+=(--add-ca "$ca")
fi
version=$("$bin" --version 2>/dev/null | grep -m1 -o 'testssl.sh [^ ]*' || echo testssl.sh)
{
    echo "# testssl.sh audit of $target"
    echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $version ($bin), $(openssl version 2>/dev/null)"
    echo "# command: $bin ${args[*]} $target"
    echo
} >"$outfile"
echo "testssl.sh: auditing $target (at most ${limit}s): $bin ${args[*]} $target" >&2
t0=$(date +%s)
timeout -k 10 "$limit" "$bin" "${args[@]}" "$target" >>"$outfile" 2>&1
rc=$?
elapsed=$(( $(date +%s) - t0 ))
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "# timed out after ${limit}s (TESTSSL_TIMEOUT)" >>"$outfile"
    echo "testssl.sh: timed out after ${limit}s; partial report in $outfile" >&2
    exit 1
fi
echo "# testssl.sh exit status $rc, ${elapsed}s" >>"$outfile"
# testssl.sh 3.0 exits non-zero when something went wrong with the scan
# itself; findings are in the report, not the status. A report without the
# protocol section did not get far.
if ! grep -q 'Testing protocols' "$outfile"; then
    echo "testssl.sh: testssl.sh failed (status $rc): see $outfile" >&2
    exit 1
fi

# The short summary: offered protocols, then findings MEDIUM and above.
{
    echo "testssl.sh: $target in ${elapsed}s (status $rc), report in $outfile"
    grep -E '^ (SSLv[23]|TLS 1(\.[123])?) +(not )?offered' "$outfile" | sed 's/^ */  /'
    if [ -s "$json" ]; then
        python3 - "$json" <<'PYEOF'
import json, sys
try:
    findings = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
if isinstance(findings, dict):
    findings = findings.get("scanResult", [])
bad = [f for f in findings if isinstance(f, dict)
       and f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")]
print(f"  findings MEDIUM or above: {len(bad)}")
for f in bad:
    print(f"    {f.get('severity')}: {f.get('id')}: {f.get('finding')}")
PYEOF
    fi
} >&2
exit 0
