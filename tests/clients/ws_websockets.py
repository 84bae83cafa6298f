"""Drives ringcast's /echo with the Python `websockets` library (a client
ringcast does not ship): text, binary, fragmented, ping, permessage-deflate.
Prints one JSON object with what it saw."""
import asyncio
import json
import sys

import websockets


async def main(url):
    seen = {}
    async with websockets.connect(url, compression="deflate", max_size=2**22) as ws:
        seen["extensions"] = [type(e).__name__ for e in ws.protocol.extensions]
        await ws.send("hello")
        seen["text"] = await ws.recv()
        await ws.send(b"\x00\xffbinary")
        seen["binary"] = list(await ws.recv())
        await ws.send(["frag-", "ment", "ed"])
        seen["fragmented"] = await ws.recv()
        big = "deflate me " * 5000
        await ws.send(big)
        seen["big_ok"] = (await ws.recv()) == big
        pong_waiter = await ws.ping(b"xyz")
        await asyncio.wait_for(pong_waiter, 5)
        seen["pong"] = True
        await ws.close(code=1000, reason="done")
        seen["close_code"] = ws.close_code
    print(json.dumps(seen))


asyncio.run(main(sys.argv[1]))
