"""The hub's per-subscriber work for one event, alone: :meth:`EventHub.dispatch` of ``EVENTS``
events to ``SINKS`` parked direct sinks whose shared result exists already, each frame written
through :mod:`graphql_api.live.wire`'s writer to a transport that drops the bytes (no syscall,
no socket): the Python a delivery costs apart from the write itself.

Meant for instruction counts, which a loaded machine does not disturb: run it twice under
callgrind with two event counts and divide the difference by the deliveries it adds::

    valgrind --tool=callgrind python bench/_direct_dispatch.py 1000 10
    valgrind --tool=callgrind python bench/_direct_dispatch.py 1000 30
    # (Ir of the second - Ir of the first) / (1000 * 20) = instructions per delivery

Without valgrind it prints the thread CPU per delivery (noisy on a shared machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret-" + "x" * 40)

import django  # noqa: E402

django.setup()

import uvicorn.protocols.websockets.websockets_sansio_impl as sansio  # noqa: E402
from websockets.protocol import State  # noqa: E402

from graphql_api.live import revocation  # noqa: E402
from graphql_api.live.adapter import FlowControl  # noqa: E402
from graphql_api.live.direct import DirectSink  # noqa: E402
from graphql_api.live.hub import EventHub, _Subscriber  # noqa: E402
from graphql_api.live.shared import RESULTS, Shared  # noqa: E402


class Bag:
    """An object with the attributes it is given (what the sinks read of their socket)."""

    def __init__(self, **attributes) -> None:
        self.__dict__.update(attributes)


class Transport:
    """Drops what is written, counting the bytes."""

    written = 0

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        Transport.written += len(data)


class Event:
    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self.workflow_id = 1
        self.instance_id = cursor % 50


def protocol() -> sansio.WebSocketsSansIOProtocol:
    """A uvicorn connection as :func:`graphql_api.live.wire.frame_writer` finds it once open."""
    connection = object.__new__(sansio.WebSocketsSansIOProtocol)
    writable = asyncio.Event()
    writable.set()
    connection.writable = writable
    connection.disconnected = False
    connection.close_sent = False
    connection.handshake_complete = True
    connection.initial_response = None
    connection.conn = Bag(state=State.OPEN, extensions=[])
    connection.transport = Transport()
    return connection


async def main(sinks: int, events: int) -> None:
    hub = EventHub(None, 60.0, 60.0)
    node = object()
    lease = Bag(valid_until=float("inf"), epoch=revocation.user_epoch(1), visibility_class="c")
    view = Bag(encode_json=json.dumps)
    subscribers = []
    for n in range(sinks):
        websocket = Bag(
            view=view,
            ws_consumer=Bag(frame_send=protocol().send),
            too_slow=False,
            direct_sending=None,
            max_size=1 << 20,
            flow=FlowControl(1 << 60),
        )
        handler = Bag(websocket=websocket, operations={})
        operation = Bag(handler=handler, id=f"{n:08x}-0000-4000-8000-{n:012x}", completed=False)
        handler.operations[operation.id] = operation
        sink = DirectSink(operation, node, 1, f"session-{n % 3}")
        if sink.raw is None:
            raise SystemExit("no frame writer for the fake connection: wire.py changed")
        subscriber = _Subscriber(None, 100)
        subscriber.sink, sink.subscriber, sink.parked = sink, subscriber, True
        sink.checked(("key",), lease, "c")
        hub.everything.add(subscriber)
        subscribers.append(subscriber)
    batch = [Event(cursor) for cursor in range(1, events + 1)]
    for event in batch:
        data = {"cursor": str(event.cursor), "createdAt": "2026-12-08T00:00:00.123456+00:00"}
        result = Bag(errors=None, data={"workflowInstanceEvents": data})
        RESULTS[event] = {("key",): Shared(node, result)}
    started = time.thread_time()
    for event in batch:
        hub.dispatch(event)
    elapsed = time.thread_time() - started
    if any(s.last != events for s in subscribers):
        raise SystemExit("not every event was written directly to every sink")
    print(
        f"{sinks} sinks x {events} events: {elapsed / (sinks * events) * 1e6:.2f} µs of thread "
        f"CPU per delivery, {Transport.written} bytes"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
