"""Reads N events from a ringcast SSE stream with httpx-sse (a client ringcast
does not ship) and prints each as one JSON line: id, event, data, retry."""
import json
import sys

import httpx
from httpx_sse import connect_sse

url, count = sys.argv[1], int(sys.argv[2])
headers = {}
if len(sys.argv) > 3:
    headers["Last-Event-ID"] = sys.argv[3]
with httpx.Client(timeout=10.0) as client:
    with connect_sse(client, "GET", url, headers=headers) as source:
        ctype = source.response.headers["content-type"]
        print(json.dumps({"status": source.response.status_code, "content_type": ctype}), flush=True)
        seen = 0
        for sse in source.iter_sse():
            print(json.dumps({"id": sse.id, "event": sse.event, "data": sse.data, "retry": sse.retry}), flush=True)
            seen += 1
            if seen == count:
                break
