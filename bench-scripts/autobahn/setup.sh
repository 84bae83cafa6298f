#!/usr/bin/env bash
# Installs Autobahn|Testsuite (wstest) into target/autobahn-venv.
#
# wstest runs on Python 2.7 only. The env is made with pyenv's Python 2.7
# and a virtualenv release that still creates 2.7 environments (virtualenv
# itself lives in a small Python 3 env, target/autobahn-bootstrap). Every
# package is pinned in requirements-py27.txt.
#
# Idempotent: a complete env is left as it is (delete target/autobahn-venv to
# rebuild it). Exit codes: 0 ready, 3 no Python 2.7, 1 anything else.
#
# Environment: PY27 (the Python 2.7 interpreter), PYTHON3 (for the bootstrap env).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/autobahn-venv"
boot="$root/target/autobahn-bootstrap"
req="$here/requirements-py27.txt"
py27="${PY27:-/root/.pyenv/versions/2.7.18/bin/python}"
python3="${PYTHON3:-python3}"

if [[ ! -x "$py27" ]] && command -v python2.7 >/dev/null 2>&1 && [[ -z "${PY27:-}" ]]; then
    py27="$(command -v python2.7)"
fi
if [[ ! -x "$py27" ]] || ! "$py27" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' 2>/dev/null; then
    echo "autobahn setup: Python 2.7 not found at $py27." >&2
    echo "  wstest (Autobahn|Testsuite) needs Python 2.7; install it (pyenv install 2.7.18)" >&2
    echo "  or point PY27 at a 2.7 interpreter." >&2
    exit 3
fi

# The stamp holds the hash of the requirements the env was built from.
stamp="$venv/.ringcast-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/wstest" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "autobahn setup: $venv is ready ($("$venv/bin/python" --version 2>&1), wstest $("$venv/bin/python" -c 'import autobahntestsuite; print(autobahntestsuite.__version__)' 2>/dev/null || echo '?'))"
    exit 0
fi

mkdir -p "$root/target"
if [[ ! -x "$boot/bin/virtualenv" ]]; then
    echo "autobahn setup: bootstrap env $boot (virtualenv<20.22)"
    rm -rf "$boot"
    "$python3" -m venv "$boot"
    "$boot/bin/python" -m pip install --quiet --disable-pip-version-check 'virtualenv<20.22'
fi

echo "autobahn setup: Python 2.7 env $venv"
rm -rf "$venv"
"$boot/bin/virtualenv" --quiet -p "$py27" "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore
"$venv/bin/python" -m pip install --quiet --no-cache-dir -r "$req"
"$venv/bin/wstest" --help >/dev/null
echo "$want" >"$stamp"
echo "autobahn setup: ready: $venv/bin/wstest"
