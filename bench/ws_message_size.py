"""WebSocket message size check: what measuring each result message before it is sent adds.

    python bench/ws_message_size.py [--quick] [--json]

Every ``next``/``data`` message goes through
``graphql_api.live.adapter.SizeLimitedWebSocketAdapter`` (serialise, compare the text's length with
``WEBSOCKET_MAX_MESSAGE_SIZE``, send) instead of strawberry's ``ChannelsWebSocketAdapter``
(serialise, send). Both are driven here the way a subscription drives them: the real
``WorkflowGraphQLWSConsumer`` (its Channels ``send``, with the ASGI send replaced by a no-op), each
socket serialising its own copy of a shared result. Messages: one event as the dashboard's
``InstanceEvents`` selects it (about 1.3 KB), and one with a 60 KB context. The subscription also
sets a context variable per event (the event the guard names when a message is too large): timed on
its own.

Each round sends a batch through each adapter, in alternating order; CPU time of this thread,
garbage collector paused; the ratio of the median batches is the overhead (target ≤ 1.05).
No database is touched.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_arguments, emit, versus  # noqa: E402

TARGET = 1.05


def event_message(context_chars: int) -> dict:
    """A ``next`` message of ``workflowInstanceEvents`` with the dashboard's selection
    (client/subscriptions.graphql: EventFields and InstanceCard)."""
    status = {
        "id": "V29ya2Zsb3dTdGVwU3RhdHVzOjEy",
        "name": "Under Review",
        "isDefaultStatus": True,
        "isCompletionStatus": False,
        "isCancellationStatus": False,
        "isOnHoldStatus": False,
    }
    event = {
        "id": "V29ya2Zsb3dFdmVudDoxMjM0NQ==",
        "cursor": "8589934593",
        "kind": "ADVANCED",
        "sequence": 3,
        "state": "ACTIVE",
        "createdAt": "2026-11-30T12:00:00.123456+00:00",
        "actor": {"username": "rita"},
        "fromStep": {"name": "Submit Claim"},
        "fromStatus": {"name": "Submitted"},
        "toStep": {"name": "Review Claim"},
        "toStatus": {"name": "Under Review"},
        "instance": {
            "id": "V29ya2Zsb3dJbnN0YW5jZTo0Mg==",
            "state": "ACTIVE",
            "version": 3,
            "contentType": "claims.claim",
            "objectId": "42",
            "startedAt": "2026-11-30T11:00:00+00:00",
            "updatedAt": "2026-11-30T12:00:00+00:00",
            "completedAt": None,
            "isAwaitingTransition": False,
            "workflow": {"id": "V29ya2Zsb3c6MQ==", "name": "Claim Processing"},
            "currentStep": {"id": "V29ya2Zsb3dTdGVwOjI=", "name": "Review Claim", "order": 2},
            "currentStepStatus": status,
            "availableStatuses": [status, {**status, "name": "Approved", "isDefaultStatus": False}],
            "viewerCan": {
                "statuses": [status],
                "hold": True,
                "resume": False,
                "cancel": True,
                "advance": False,
            },
        },
    }
    if context_chars:
        event["context"] = {"claim": {"amount": "1500.00", "notes": "x" * context_chars}}
    return {
        "id": uuid.uuid4().hex,
        "type": "next",
        "payload": {"data": {"workflowInstanceEvents": event}},
    }


def main() -> None:
    args = bench_arguments(__doc__).parse_args()
    rounds = 15 if args.quick else 60

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from strawberry.channels.handlers.ws_handler import ChannelsWebSocketAdapter

    from graphql_api.live.routing import SizeLimitedWebSocketAdapter, WorkflowGraphQLWSConsumer
    from graphql_api.live.subscriptions import sending_event
    from graphql_api.schema import schema

    consumer = WorkflowGraphQLWSConsumer(schema=schema)
    sent = []

    async def base_send(message: dict) -> None:  # the server's side of ASGI: nothing to do
        sent.append(len(message["text"]))

    consumer.base_send = base_send
    floor = ChannelsWebSocketAdapter(consumer, consumer, consumer)
    checked = SizeLimitedWebSocketAdapter(consumer, consumer, consumer)
    assert checked.max_size > 0

    async def batch(adapter, message: dict, count: int) -> float:
        gc.disable()
        started = time.thread_time()
        for _ in range(count):
            await adapter.send_json(message)
        elapsed = time.thread_time() - started
        gc.enable()
        sent.clear()
        return elapsed / count

    async def measure() -> list[dict]:
        rows = []
        for label, chars, count in (
            ("dashboard event", 0, 2000),
            ("event with a 60 KB context", 60_000, 200),
        ):
            message = event_message(chars)
            size = len(consumer.encode_json(message))
            samples: dict[str, list[float]] = {"floor": [], "checked": []}
            for adapter in (floor, checked):  # warm up
                await batch(adapter, message, count // 10)
            for i in range(rounds):
                order = (("floor", floor), ("checked", checked))
                for name, adapter in order if i % 2 == 0 else reversed(order):
                    samples[name].append(await batch(adapter, message, count))
            on, off = statistics.median(samples["checked"]), statistics.median(samples["floor"])
            rows.append(
                versus(
                    f"send one {label} ({size:,} bytes) with the size check",
                    *(on, off, "µs"),
                    scale=1e6,
                    ratio_digits=3,
                    target=f"<= {TARGET} (strawberry's adapter, no check)",
                    met=on / off <= TARGET,
                )
            )
        return rows

    rows = asyncio.run(measure())

    repeat = 200_000
    event = object()
    gc.disable()
    started = time.thread_time()
    for _ in range(repeat):
        sending_event.set(event)
    per_set = (time.thread_time() - started) / repeat
    gc.enable()
    rows.append(
        {
            "figure": "naming the event being sent (a context variable set per event)",
            "value": round(per_set * 1e9, 1),
            "unit": "ns",
            "target": "a small share of the send",
        }
    )
    emit(
        rows,
        args.json,
        f"WebSocket message size check ({rounds} interleaved rounds, medians, CPU time)",
    )


if __name__ == "__main__":
    main()
