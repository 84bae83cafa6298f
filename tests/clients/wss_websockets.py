"""Drives ringcast over wss:// with the Python `websockets` library (a client
ringcast does not ship), verifying the server's certificate against a CA file.

  wss_websockets.py echo URL CAFILE
      text, binary and a 1 MiB message through the echo endpoint, with
      permessage-deflate offered; prints one JSON object with what it saw.
  wss_websockets.py room URL CAFILE N1 [N2 ...]
      a room subscriber: prints {"ready": true} once the handshake is done,
      then one {"batch": [...]} line per count, after receiving that many
      messages; then closes with 1000 and prints {"close_code": ...}.
"""
import asyncio
import json
import ssl
import sys

# The asyncio client: the threaded sync client has a race of its own over
# TLS (its closing handshake can end in 1006 whatever the server does).
from websockets.asyncio.client import connect


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), 30)


async def echo(url, ctx):
    seen = {}
    async with connect(url, ssl=ctx, compression="deflate", max_size=4 * 2**20, open_timeout=10) as ws:
        seen["extensions"] = [type(e).__name__ for e in ws.protocol.extensions]
        await ws.send("hello over tls")
        seen["text"] = await recv(ws)
        await ws.send(b"\x00\xffbinary")
        seen["binary"] = list(await recv(ws))
        # exactly 1 MiB (the server's default ws.max_message_size), compressible
        # but different all along, so a misplaced record shows
        big = "".join(f"line {i:08d} of the big message\n" for i in range(2**20 // 30 + 1))
        big = big[: 2**20]
        await ws.send(big)
        back = await recv(ws)
        seen["big_len"] = len(back)
        seen["big_ok"] = back == big
        blob = bytes((i * 31 + i // 1000) % 256 for i in range(300_000))
        await ws.send(blob)
        seen["blob_ok"] = (await recv(ws)) == blob
        await ws.close(code=1000, reason="done")
        seen["close_code"] = ws.close_code
    print(json.dumps(seen), flush=True)


async def room(url, ctx, counts):
    async with connect(url, ssl=ctx, open_timeout=10) as ws:
        print(json.dumps({"ready": True}), flush=True)
        for n in counts:
            batch = [await recv(ws) for _ in range(n)]
            print(json.dumps({"batch": batch}), flush=True)
        await ws.close(code=1000)
        print(json.dumps({"close_code": ws.close_code}), flush=True)


def main():
    mode, url, cafile = sys.argv[1], sys.argv[2], sys.argv[3]
    ctx = ssl.create_default_context(cafile=cafile)
    if mode == "echo":
        asyncio.run(echo(url, ctx))
    elif mode == "room":
        asyncio.run(room(url, ctx, [int(n) for n in sys.argv[4:]]))
    else:
        sys.exit(f"unknown mode {mode!r}")


main()
