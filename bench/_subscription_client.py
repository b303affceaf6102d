"""The subscribers of ``bench/subscriptions.py``, in a process of their own (no Django).

It reads one JSON object per line on stdin and answers one per line on stdout:

1. ``{"ports", "session", "after", "subscribers", "query", "variables"}``: opens the sockets
   (spread over the ports) and subscribes each, then answers ``{"ready": live, "failed": n}``;
2. it answers ``{"warm": n}`` once every live subscriber received an event (the warm-up);
3. ``{"threshold": cursor}``: events at or below it are not counted; from then on, every
   second, it reports ``{"progress": true, "slowest": n, "received": n}`` (the events past the
   threshold its slowest subscriber received, and all its subscribers together), so that the
   bench stops committing once a subscriber falls too far behind;
4. ``{"expect": [cursors], "wait": seconds}``: every subscriber must receive exactly these, in
   this order; it waits up to ``wait`` seconds for them, closes the sockets and answers
   ``{"histogram": {tenths of ms: count}, "delivered": n, "subscribers": live, "closed": n,
   "missed": n, "out_of_order": n, "cpu": seconds}`` (its CPU from the threshold on). Every
   subscriber that missed an event or got one out of order is named on stderr.

Latency: the arrival time (when the bytes reached this process) minus the event's
``createdAt`` (set in the commit).

The sockets speak WebSocket through a small asyncio protocol of this file (RFC 6455: the upgrade,
unmasked server frames, masked client frames, pings), not a general client library: with
thousands of sockets on the same 2 cores as the workers, the client's CPU per message is CPU the
workers do not get. Every subscriber of an event receives the same bytes (the same operation id
on every socket), so a frame is decoded once per process (:data:`DECODED`) and each further copy
costs a dictionary look-up; each subscriber's cursors are still recorded and checked one by one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import sys
import time
from array import array
from collections import Counter
from datetime import datetime

#: Sockets opened at once.
BATCH = 100
#: Seconds a batch of sockets may take to open and subscribe.
OPEN_TIMEOUT = 120.0

#: Frame payload -> ("next", cursor, createdAt as a timestamp) or (type,): decoded once for all
#: the subscribers that receive the same bytes.
DECODED: dict[bytes, tuple] = {}


class Subscriber:
    __slots__ = ("cursors", "latencies", "warm", "failed")

    def __init__(self) -> None:
        # a list, not array("q"): PostgreSQL's cursors (transaction id and position) exceed 64 bits
        self.cursors: list[int] = []
        self.latencies = array("f")
        self.warm = False
        self.failed: object = None


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return header + mask + masked


def decode(payload: bytes) -> tuple:
    found = DECODED.get(payload)
    if found is None:
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "next":
            event = message["payload"]["data"]["workflowInstanceEvents"]
            created = datetime.fromisoformat(event["createdAt"]).timestamp()
            found = (kind, int(event["cursor"]), created)
        else:
            found = (kind, payload[:300])
        if len(DECODED) > 10_000:
            DECODED.clear()
        DECODED[payload] = found
    return found


class Socket(asyncio.Protocol):
    """One graphql-transport-ws subscription of one subscriber."""

    def __init__(self, config: dict, port: int, me: Subscriber, state: dict) -> None:
        self.config = config
        self.port = port
        self.me = me
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()  # subscribed, or failed
        self.closing = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /graphql/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: graphql-transport-ws\r\n"
                f"Cookie: sessionid={self.config['session']}\r\n\r\n"
            ).encode()
        )

    def send(self, message: dict | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.transport.write(client_frame(text.encode()))

    def fail(self, why: object) -> None:
        if self.me.failed is None and not self.closing:
            self.me.failed = why
        if not self.ready.done():
            self.ready.set_result(False)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame((1000).to_bytes(2, "big"), 0x8))
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.fail(exc or "connection closed by the server")

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        start = 0
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.fail(f"handshake refused: {bytes(buffer[:200])!r}")
                return
            self.upgraded = True
            start = end + 4
            self.send({"type": "connection_init", "payload": {}})
        size = len(buffer)
        while size - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            length, at = second & 0x7F, start + 2
            if length == 126:
                if size - start < 4:
                    break
                length, at = int.from_bytes(buffer[start + 2 : start + 4], "big"), start + 4
            elif length == 127:
                if size - start < 10:
                    break
                length, at = int.from_bytes(buffer[start + 2 : start + 10], "big"), start + 10
            if size - at < length:
                break
            payload = bytes(buffer[at : at + length])
            start = at + length
            opcode = first & 0x0F
            if not first & 0x80 or second & 0x80 or opcode == 0:
                self.fail("fragmented or masked frame")  # never sent by these servers
                return
            if opcode == 0x1:
                self.message(payload, now)
            elif opcode == 0x9:  # a WebSocket ping
                self.transport.write(client_frame(payload, 0xA))
            elif opcode == 0x8:
                self.fail(f"closed by the server: {payload[:2].hex()} {payload[2:200]!r}")
                return
        del buffer[:start]

    def message(self, payload: bytes, now: float) -> None:
        decoded = decode(payload)
        kind = decoded[0]
        if kind == "next":
            me = self.me
            me.warm = True
            cursor = decoded[1]
            if cursor > self.state["threshold"]:
                me.cursors.append(cursor)
                me.latencies.append(now - decoded[2])
        elif kind == "ping":  # graphql-transport-ws: the server's flow control waits for it
            self.send('{"type":"pong"}')
        elif kind == "connection_ack":
            variables = {**self.config["variables"], "after": self.config["after"]}
            payload = {"query": self.config["query"], "variables": variables}
            self.send({"id": "1", "type": "subscribe", "payload": payload})
            if not self.ready.done():
                self.ready.set_result(True)
        elif kind in ("error", "complete", "connection_error"):
            self.fail(f"subscription ended: {decoded[1]!r}")


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
    sockets: list[Socket] = []

    async def open_one(i: int) -> None:
        port = ports[i % len(ports)]
        socket = Socket(config, port, subscribers[i], state)
        sockets.append(socket)
        try:
            await loop.create_connection(lambda: socket, "127.0.0.1", port)
            async with asyncio.timeout(OPEN_TIMEOUT):
                await socket.ready
        except (OSError, TimeoutError) as error:
            socket.fail(error)

    # A batch at a time, each one subscribed (or failed) before the next: thousands of
    # handshakes at once overflow the servers' accept queues.
    for start in range(0, len(subscribers), BATCH):
        end = min(start + BATCH, len(subscribers))
        await asyncio.gather(*(open_one(i) for i in range(start, end)))
    live = [me for me in subscribers if me.failed is None]
    say({"ready": len(live), "failed": len(subscribers) - len(live)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(me.warm for me in live):
        await asyncio.sleep(0.1)
    say({"warm": sum(me.warm for me in live)})
    state["threshold"] = (await read())["threshold"]
    cpu_at_threshold = time.process_time()

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            counts = [len(me.cursors) for me in live]
            say({"progress": True, "slowest": min(counts, default=0), "received": sum(counts)})

    reporting = asyncio.create_task(report())
    order = await read()
    reporting.cancel()
    expected = order["expect"]
    deadline = time.monotonic() + order["wait"]
    while time.monotonic() < deadline and any(len(me.cursors) < len(expected) for me in live):
        await asyncio.sleep(0.2)
    cpu_at_end = time.process_time()
    # Ended before the end (closed by the server, an error or `complete`): named on stderr.
    closed = [me.failed for me in live if me.failed is not None]
    for socket in sockets:
        socket.close()
    if closed:
        print(f"{len(closed)} sockets ended early, e.g. {closed[0]!r}", file=sys.stderr)
    result = check(subscribers, expected)
    say(
        {
            **result,
            "subscribers": len(subscribers),
            "closed": len(closed),
            # This process's CPU from the threshold to the end (the bench cannot read it from
            # /proc once the process has ended).
            "cpu": cpu_at_end - cpu_at_threshold,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
