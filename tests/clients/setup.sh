#!/usr/bin/env bash
# Installs the third-party clients the tests drive ringcast with, into
# target/test-clients (idempotent, safe to run concurrently):
#   - Python: httpx + httpx-sse (SSE), websockets (WebSocket), PyJWT (tokens)
#   - Python: sse-starlette under uvicorn (an SSE server, for ringcast's SSE client)
# Prints the Python interpreter to use.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/target/test-clients"
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
py="$dir/venv/bin/python"
if [ ! -f "$dir/.python-ready" ]; then
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip) >&2
    fi
  fi
  rm -rf "$dir/venv"
  python3 -m venv "$dir/venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check \
    "httpx==0.28.1" "httpx-sse==0.4.0" "websockets==15.0.1" "pyjwt==2.10.1" \
    "sse-starlette==3.7.0" "starlette==1.10.0" "uvicorn==0.54.0" >&2
  touch "$dir/.python-ready"
fi
# PyJWT came later: add it to a venv made before it.
if ! "$py" -c "import jwt" >/dev/null 2>&1; then
  "$py" -m pip install --quiet --disable-pip-version-check "pyjwt==2.10.1" >&2
fi
# sse-starlette and uvicorn came later: add them to a venv made before them.
if ! "$py" -c "import sse_starlette, uvicorn" >/dev/null 2>&1; then
  "$py" -m pip install --quiet --disable-pip-version-check \
    "sse-starlette==3.7.0" "starlette==1.10.0" "uvicorn==0.54.0" >&2
fi
echo "$py"
