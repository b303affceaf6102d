"""The subscribers of ``bench/subscriptions.py``, in a process of their own (no Django).

It reads one JSON object per line on stdin and answers one per line on stdout:

1. ``{"ports", "session", "after", "subscribers", "query", "variables"}``: opens the sockets
   (spread over the ports) and subscribes each, then answers ``{"ready": live, "failed": n}``;
2. it answers ``{"warm": n}`` once every live subscriber received an event (the warm-up);
3. ``{"threshold": cursor}``: events at or below it are not counted;
4. ``{"expect": [cursors], "wait": seconds}``: every subscriber must receive exactly these, in
   this order; it waits up to ``wait`` seconds for them, closes the sockets and answers
   ``{"histogram": {tenths of ms: count}, "delivered": n, "subscribers": live, "closed": n,
   "missed": n, "out_of_order": n, "cpu": seconds}``. Every subscriber that missed an event or
   got one out of order is named on stderr.

Latency: the arrival time (after parsing) minus the event's ``createdAt`` (set in the commit).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from array import array
from collections import Counter
from datetime import datetime

#: Sockets opened at once.
BATCH = 100


class Subscriber:
    __slots__ = ("cursors", "latencies", "warm", "failed")

    def __init__(self) -> None:
        # a list, not array("q"): PostgreSQL's cursors (transaction id and position) exceed 64 bits
        self.cursors: list[int] = []
        self.latencies = array("f")
        self.warm = False
        self.failed: BaseException | None = None


async def subscribe(config: dict, port: int, me: Subscriber, state: dict, ready) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        f"ws://127.0.0.1:{port}/graphql/",
        subprotocols=["graphql-transport-ws"],
        additional_headers={"Cookie": f"sessionid={config['session']}"},
        max_queue=None,
        open_timeout=120,
        ping_interval=None,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        variables = {**config["variables"], "after": config["after"]}
        payload = {"query": config["query"], "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        ready.set()
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "ping":
                await ws.send('{"type":"pong"}')
                continue
            if kind != "next":
                if kind in ("error", "complete"):
                    raise RuntimeError(f"subscription ended: {raw[:300]}")
                continue
            event = message["payload"]["data"]["workflowInstanceEvents"]
            me.warm = True
            cursor = int(event["cursor"])
            if cursor > state["threshold"]:
                me.cursors.append(cursor)
                created = datetime.fromisoformat(event["createdAt"]).timestamp()
                me.latencies.append(now - created)


def check(subscribers: list[Subscriber], expected: list[int]) -> dict:
    histogram: Counter = Counter()
    delivered = missed = out_of_order = 0
    wanted = set(expected)
    for i, me in enumerate(subscribers):
        got = list(me.cursors)
        kept = len({c for c in got if c in wanted})
        delivered += kept
        if kept < len(expected):
            missed += 1
            lost = len(expected) - kept
            print(f"subscriber {i}: missed {lost} of {len(expected)} events", file=sys.stderr)
        if got != expected[: len(got)] or len(got) > len(expected):
            out_of_order += 1
            print(f"subscriber {i}: events out of order, repeated or unexpected", file=sys.stderr)
        histogram.update(round(x * 10_000) for x in me.latencies)
    return {
        "histogram": dict(histogram),
        "delivered": delivered,
        "missed": missed,
        "out_of_order": out_of_order,
    }


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)  # the expected cursors come in one line
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def read() -> dict:
        return json.loads(await reader.readline())

    def say(answer: dict) -> None:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

    config = await read()
    ports = config["ports"]
    # nothing counted before the threshold arrives (PostgreSQL's cursors exceed 64 bits: no int
    # sentinel is safely above them)
    state: dict = {"threshold": math.inf}
    subscribers = [Subscriber() for _ in range(config["subscribers"])]
    readies = [asyncio.Event() for _ in subscribers]
    tasks: list[asyncio.Task] = []

    async def opened_or_failed(i: int) -> None:
        waiter = asyncio.ensure_future(readies[i].wait())
        await asyncio.wait({waiter, tasks[i]}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    # A batch at a time, each one subscribed (or failed) before the next: thousands of
    # handshakes at once overflow the servers' accept queues.
    for start in range(0, len(subscribers), BATCH):
        for i in range(start, min(start + BATCH, len(subscribers))):
            task = subscribe(config, ports[i % len(ports)], subscribers[i], state, readies[i])
            tasks.append(asyncio.create_task(task))
        await asyncio.gather(*(opened_or_failed(i) for i in range(start, len(tasks))))
    live = [me for me, task in zip(subscribers, tasks, strict=True) if not task.done()]
    say({"ready": len(live), "failed": len(subscribers) - len(live)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(me.warm for me in live):
        await asyncio.sleep(0.1)
    say({"warm": sum(me.warm for me in live)})
    state["threshold"] = (await read())["threshold"]
    order = await read()
    expected = order["expect"]
    deadline = time.monotonic() + order["wait"]
    while time.monotonic() < deadline and any(len(me.cursors) < len(expected) for me in live):
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    closed = [
        o
        for o in outcomes
        if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
    ]
    if closed:
        print(f"{len(closed)} sockets ended early, e.g. {closed[0]!r}", file=sys.stderr)
    result = check(subscribers, expected)
    say(
        {
            **result,
            "subscribers": len(subscribers),
            "closed": len(closed),
            "cpu": time.process_time(),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
