"""An ASGI application of the HTTP benches (``$BENCH_ASGI_APP``, ``module:attribute``) whose HTTP
answers carry the pid of the uvicorn worker that served them (``X-Worker-Pid``): a client then
spreads its keep-alive connections evenly over the workers (``_peer_servers.spread``), the same
split on every side, instead of the kernel's uneven accept order. Run by both venvs: stdlib only.
"""

from __future__ import annotations

import importlib
import os

_module, _, _attribute = os.environ["BENCH_ASGI_APP"].partition(":")
_inner = getattr(importlib.import_module(_module), _attribute)
HEADER = b"x-worker-pid"


async def application(scope, receive, send):
    if scope["type"] != "http":
        return await _inner(scope, receive, send)

    async def send_with_pid(message):
        if message["type"] == "http.response.start":
            pid = str(os.getpid()).encode()  # per answer: right after a fork too
            message = {**message, "headers": [*message.get("headers", ()), (HEADER, pid)]}
        await send(message)

    return await _inner(scope, receive, send_with_pid)
