"""An SSE server ringcast did not write, for its SSE client: sse-starlette
under uvicorn (installed by tests/clients/setup.sh).

    python sse_starlette_server.py TOTAL

Prints the port it listens on (127.0.0.1), then serves:

- GET /events: events with ids 1..TOTAL, at most 3 per connection, each
  connection resuming after the Last-Event-ID it was sent; each event's data
  is its id, a newline, and the Last-Event-ID the request carried ("-" for
  none). Once all have been sent: 204 No Content.
- GET /moved: 307 to /events.
- GET /page: 200 text/html.
"""

import socket
import sys

import uvicorn
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

TOTAL = int(sys.argv[1])
PER_CONNECTION = 3


async def events(request):
    last = request.headers.get("last-event-id", "")
    start = int(last) + 1 if last.isdigit() else 1
    if start > TOTAL:
        return Response(status_code=204)

    async def stream():
        for i in range(start, min(start + PER_CONNECTION, TOTAL + 1)):
            yield {"id": str(i), "event": "tick", "data": f"{i}\n{last or '-'}", "retry": 20}

    return EventSourceResponse(stream())


async def moved(request):
    return RedirectResponse("/events", status_code=307)


async def page(request):
    return HTMLResponse("<p>not a stream</p>")


app = Starlette(
    routes=[Route("/events", events), Route("/moved", moved), Route("/page", page)]
)

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
