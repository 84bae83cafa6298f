"""Reads COUNT events from a ringcast SSE stream over https with httpx-sse (a
client ringcast does not ship), verifying the server's certificate against
CAFILE. Prints the response head as one JSON line, then each event (id,
event, data) as one JSON line; blocks that only carry `retry:` are skipped.

usage: sse_httpx_tls.py URL CAFILE COUNT [LAST_EVENT_ID]
"""
import json
import ssl
import sys

import httpx
from httpx_sse import connect_sse

url, cafile, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
headers = {"Last-Event-ID": sys.argv[4]} if len(sys.argv) > 4 else {}
ctx = ssl.create_default_context(cafile=cafile)
with httpx.Client(verify=ctx, timeout=10.0) as client:
    with connect_sse(client, "GET", url, headers=headers) as source:
        r = source.response
        head = {
            "status": r.status_code,
            "content_type": r.headers.get("content-type"),
            "http_version": r.http_version,
        }
        print(json.dumps(head), flush=True)
        seen = 0
        for sse in source.iter_sse():
            if sse.data == "" and sse.retry is not None:
                continue
            print(json.dumps({"id": sse.id, "event": sse.event, "data": sse.data}), flush=True)
            seen += 1
            if seen == count:
                break
