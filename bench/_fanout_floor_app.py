"""The server of ``bench/fanout_floor.py``: a bare ASGI app (no Django, no GraphQL, no Channels)
that fans each Redis message out to every subscribed WebSocket, under uvicorn as the workers of
``bench/subscriptions.py`` run.

It speaks just enough graphql-transport-ws for the bench's own client
(``bench/_subscription_client.py``) to connect unchanged: ``connection_init`` is acknowledged,
``subscribe`` registers the socket, ``ping`` is answered. Each message on the Redis channel
(``BENCH_FLOOR_CHANNEL`` at ``BENCH_FLOOR_REDIS_URL``) is the whole ``next`` message, already
encoded by the publisher, and is sent as is to every registered socket, one after the other
(``BENCH_FLOOR_SEND``):

* ``write``: one prebuilt text frame handed to each connection's transport, which is what the
  project's direct fan-out does below uvicorn (graphql_api/live/wire.py) minus its checks;
* ``asgi``: ``await send({"type": "websocket.send", "text": ...})`` per socket, the plain ASGI
  way (uvicorn's protocol builds each frame).

With ``BENCH_FLOOR_COALESCE_MS`` (``write`` only), the frames of the events that arrived within
that many milliseconds go to each socket in one write: the kernel's cost is per write (a
syscall, a loopback packet, a wake-up of the reader) far more than per byte, so this measures
what batching deliveries per socket, paid for in latency, would save.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import redis.asyncio as aioredis

# The project's own frame encoder (a pure function: importing it loads no Django).
from graphql_api.live.wire import text_frame

ACK = json.dumps({"type": "connection_ack"})
PONG = json.dumps({"type": "pong"})

#: The registered sockets: their ASGI send -> their transport.
SOCKETS: dict = {}


async def fan_out(data: bytes, how: str) -> None:
    if how == "asgi":
        message = {"type": "websocket.send", "text": data.decode()}
        for send in list(SOCKETS):
            try:
                await send(message)
            except Exception:  # closed meanwhile: the client counts what it missed
                SOCKETS.pop(send, None)
        return
    frame = text_frame(data)
    for transport in list(SOCKETS.values()):
        if not transport.is_closing():
            transport.write(frame)


async def flush_every(seconds: float, pending: list[bytes]) -> None:
    """Every ``seconds``: the frames gathered since the last time, to every socket at once."""
    while True:
        await asyncio.sleep(seconds)
        if pending:
            data = b"".join(pending)
            pending.clear()
            for transport in list(SOCKETS.values()):
                if not transport.is_closing():
                    transport.write(data)


async def listen() -> None:
    how = os.environ.get("BENCH_FLOOR_SEND", "write")
    coalesce = float(os.environ.get("BENCH_FLOOR_COALESCE_MS") or 0) / 1000
    pending: list[bytes] = []
    flusher = (
        asyncio.create_task(flush_every(coalesce, pending)) if coalesce and how == "write" else None
    )
    client = aioredis.from_url(os.environ["BENCH_FLOOR_REDIS_URL"])
    pubsub = client.pubsub()
    await pubsub.subscribe(os.environ["BENCH_FLOOR_CHANNEL"])
    try:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            if flusher is not None:
                pending.append(text_frame(message["data"]))
            else:
                await fan_out(message["data"], how)
    finally:
        if flusher is not None:
            flusher.cancel()
        with contextlib.suppress(Exception):
            await pubsub.aclose()
            await client.aclose()


async def websocket(scope, receive, send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            kind = json.loads(message.get("text") or message.get("bytes") or "{}").get("type")
            if kind == "connection_init":
                await send({"type": "websocket.send", "text": ACK})
            elif kind == "subscribe":
                SOCKETS[send] = send.__self__.transport
            elif kind == "ping":
                await send({"type": "websocket.send", "text": PONG})
    finally:
        SOCKETS.pop(send, None)


async def app(scope, receive, send) -> None:
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif scope["type"] == "lifespan":
        listener = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                listener = asyncio.create_task(listen())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if listener is not None:
                    listener.cancel()
                    with contextlib.suppress(BaseException):
                        await listener
                await send({"type": "lifespan.shutdown.complete"})
                return
