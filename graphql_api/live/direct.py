"""Direct fan-out: a shared result written from the hub straight to the sockets of every
subscriber waiting for it, with no task of theirs woken.

A ``workflowInstanceEvents`` subscription on graphql-transport-ws whose document reads nothing
of the viewer beyond their visibility class has a :class:`DirectSink` while it is *parked*: live,
its buffer empty, its task waiting for the next event. For each event the hub
(:meth:`graphql_api.live.hub.EventHub.dispatch`) groups the parked sinks by share key
(:func:`graphql_api.live.execution.share_key`) in a :class:`FanOut`: one of each group, the
*leader*, takes the event the usual way (its task wakes, checks access, executes once for the
key); as soon as that result exists, every other member gets the same ``next`` frame in one
loop — only the operation id differs, so the frame is pasted around the id once serialised.

Everything unusual goes the usual way, with every guarantee it has: a member whose access
decisions are older than ``SUBSCRIPTION_RECHECK_SECONDS`` (or were revoked since), whose frame is
over the size limit, whose socket has no room in its send window, is closing, or is still
writing an earlier frame, has the event put in its buffer instead; so does every member when the
leader produced no shareable result (the instance is hidden from the class, the execution
failed, the leader ended). While a member waits for its group's result, later events wait in
its own backlog and follow it in order, so each subscriber still gets every event once, in
order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from graphql_api.live.shared import FANS, RESULTS, STATS, _template
from graphql_api.live.wire import frame_writer

logger = logging.getLogger("graphql_api.routing")

__all__ = ["Check", "DirectSink", "FanOut", "send_now", "settle"]


class Check:
    """One pass of the hub over its sinks (no await in between): the moment, and the part of
    :meth:`DirectSink.ready` that is the same for every sink of one lease, taken once per lease.
    A lease is one user and session's (graphql_api.live.subscriptions._Lease), so the user's
    revocation epoch and the session's logout are too."""

    __slots__ = ("now", "held", "epoch_of", "session_ended")

    def __init__(self) -> None:
        from graphql_api.live import revocation  # a cycle: revocation imports the hub

        self.now = time.monotonic()
        self.epoch_of = revocation.user_epoch
        self.session_ended = revocation.session_ended
        #: lease -> whether it holds now (and in the user's current epoch, the session live).
        self.held: dict[Any, bool] = {}


def send_now(send: Any, message: dict) -> asyncio.Task | None:
    """Run ``send(message)`` in the caller's turn of the event loop (an ASGI ``send`` almost
    always completes without waiting); if it has to wait (back-pressure), the rest runs in a
    task, returned. Nothing else is awaited, so a slow socket never holds up the loop over
    the others."""
    coro = send(message)
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    except Exception as exc:  # the socket is gone: its consumer ends the operations
        logger.debug("Direct WebSocket send failed: %r", exc)
        return None
    return asyncio.ensure_future(_finish(coro, waiting))


async def _finish(coro: Any, waiting: Any) -> None:
    try:
        await _resume(coro, waiting)
    except Exception as exc:  # as in send_now
        logger.debug("Direct WebSocket send failed: %r", exc)


async def _resume(coro: Any, waiting: Any) -> None:
    # What a task does with a coroutine (asyncio.Task.__step), for one that already started.
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                await waiting
        except BaseException as exc:
            if waiting is not None and waiting.done() and not waiting.cancelled():
                pass  # the coroutine reads the outcome itself when resumed
            else:
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
                continue
        try:
            waiting = coro.send(None)
        except StopIteration:
            return


class DirectSink:
    """A subscription the hub may write shared results to directly (see the module docstring)."""

    __slots__ = (
        "subscriber",
        "operation",
        "websocket",
        "node",
        "key",
        "id_text",
        "parked",
        "pending",
        "backlog",
        "lease",
        "klass",
        "session_key",
        "user_pk",
        "send",
        "raw",
    )

    def __init__(self, operation: Any, node: Any, user_pk: Any, session_key: Any) -> None:
        self.subscriber: Any = None  # the hub's _Subscriber, set by the stream
        self.operation = operation
        self.websocket = operation.handler.websocket
        self.node = node  # the operation's document node: a shared result is for it only
        self.key: tuple | None = None
        self.id_text = self.websocket.view.encode_json(operation.id)
        self.parked = False
        self.pending: FanOut | None = None
        self.backlog: deque = deque()
        #: The access decisions of its user and session, kept fresh for all their sinks
        #: (graphql_api.live.subscriptions._Lease), and the visibility class of its key.
        self.lease: Any = None
        self.klass: Any = None
        self.session_key = session_key
        self.user_pk = user_pk
        consumer = self.websocket.ws_consumer
        #: Where the socket's frames go (set when the socket opened, before any sink), and the
        #: writer below it when the server allows one (:mod:`graphql_api.live.wire`).
        self.send = getattr(consumer, "frame_send", None) or consumer.base_send
        self.raw = frame_writer(self.send)

    def checked(self, key: tuple | None, lease: Any, klass: Any) -> None:
        """The subscription's access was checked: its share key, the lease of its user and
        session's decisions, and the visibility class the key was made with."""
        self.key = key
        self.lease = lease
        self.klass = klass

    def ready(self, check: Check) -> bool:
        """Whether the hub may hand the next event to this sink's group: its decisions hold
        (taken in the user's current revocation epoch, the same class as its key), and it
        waits for nothing."""
        lease = self.lease
        operation = self.operation
        if not (
            self.parked
            and self.key is not None
            and lease is not None
            and lease.visibility_class == self.klass
            and not operation.completed
            and operation.handler.operations.get(operation.id) is operation
            and not self.subscriber.queue.qsize()
        ):
            return False
        held = check.held.get(lease)
        if held is None:
            held = check.held[lease] = (
                check.now < lease.valid_until
                and check.epoch_of(self.user_pk) == lease.epoch
                and not check.session_ended(self.session_key)
            )
        return held

    def wake(self) -> None:
        """Its lease ended: the stream's task wakes and checks access on its own."""
        from graphql_api.live.streams import IDLE  # a cycle: streams imports this module

        self.lease = None
        subscriber = self.subscriber
        if subscriber is not None:
            subscriber.queue.put_nowait(IDLE)

    def write(self, text: str) -> bool:
        """Send one frame now; False (nothing sent) when it must go the usual way."""
        websocket = self.websocket
        sending = websocket.direct_sending
        if websocket.too_slow or (sending is not None and not sending.done()):
            return False
        size = len(text)
        if websocket.max_size and size > websocket.max_size:
            return False
        flow = websocket.flow
        if flow is not None:
            if not flow.fits(size):
                return False
            flow.sent += size
        # A send that has to wait is awaited by the socket's next usual send (adapter._send).
        raw = self.raw
        if raw is not None and raw(text):  # what _send does, without its call per frame
            sending = websocket.direct_sending = None
        else:
            sending = websocket.direct_sending = send_now(
                self.send, {"type": "websocket.send", "text": text}
            )
        if flow is not None and sending is None:
            # While a frame waits to be written, the ping stays due: the next frame sends it.
            ping = flow.ping()
            if ping is not None:
                websocket.direct_sending = self._send(websocket.view.encode_json(ping))
        return True

    def _send(self, text: str) -> asyncio.Task | None:
        """Write one frame now, below the server's protocol when it allows
        (:mod:`graphql_api.live.wire`), else through ``send``: the task finishing it when
        that has to wait."""
        if self.raw is not None and self.raw(text):
            return None
        return send_now(self.send, {"type": "websocket.send", "text": text})

    def drain(self) -> bool:
        """Called by the stream about to wait (its buffer empty): write what waited in the
        backlog while the task was busy, as long as each event's shared result exists; the
        rest goes to the buffer, in order (True: the stream has events to take)."""
        self.parked = True
        while self.backlog:
            event = self.backlog[0]
            if event.cursor <= self.subscriber.last:  # replayed already: each event once
                self.backlog.popleft()
                continue
            if not self.ready(Check()):
                self.release()
                return True
            text = _frame(event, self.key, [self])
            if text is None:
                waiting = FANS.get((event.cursor, self.key))
                if waiting is None:  # no one executes it for the key: this task does
                    self.release()
                    return True
                # Being executed for the key: wait for it with the others (FanOut.settle).
                self.backlog.popleft()
                self.pending = waiting[0]
                waiting[1].append(self)
                return False
            if not self.write(text[0] + self.id_text + text[1]):
                self.release()
                return True
            self.backlog.popleft()
            self.subscriber.last = event.cursor
            STATS.shared += 1
            STATS.direct += 1
        return False

    def release(self) -> None:
        """The group's event is settled: what arrived meanwhile goes the usual way, in order."""
        self.pending = None
        subscriber = self.subscriber
        while self.backlog:
            subscriber.put(self.backlog.popleft())


class FanOut:
    """One event for the parked sinks of one process (see the module docstring)."""

    __slots__ = ("event", "groups")

    def __init__(self, event: Any) -> None:
        self.event = event
        self.groups: dict[tuple, list[DirectSink]] = {}

    def add(self, sink: DirectSink) -> None:
        group = self.groups.get(sink.key)
        if group is None:
            self.groups[sink.key] = [sink]
        else:
            group.append(sink)

    def start(self) -> None:
        event = self.event
        for key, group in self.groups.items():
            for sink in group:
                sink.pending = self
            if self._deliver(key, group):  # executed already (e.g. a backlog's event)
                continue
            leader, followers = group[0], group[1:]
            leader.subscriber.put(event)  # the usual way: it executes for the key
            leader.release()
            if followers:
                FANS[(event.cursor, key)] = (self, followers)
                leader.subscriber.leads.append((event.cursor, key))

    def _deliver(self, key: tuple, followers: list[DirectSink]) -> bool:
        """Write the shared result of ``key`` to ``followers``, if it exists; False if not yet."""
        event = self.event
        frame = _frame(event, key, followers)
        if frame is None:
            return False
        before, between = frame
        cursor = event.cursor
        following: dict[int, FanOut] = {}  # what waited in the backlogs, written the same way
        check = Check()
        written = 0
        for sink in followers:
            if sink.pending is not self:
                continue
            sink.pending = None
            # Checked again: a revocation, a `complete` or a wake-up may have come meanwhile.
            if not sink.ready(check) or not sink.write(before + sink.id_text + between):
                sink.subscriber.put(event)
                sink.release()
                continue
            sink.subscriber.last = cursor
            written += 1
            # Nothing else to release: its pending is None and what waits is written next.
            backlog = sink.backlog
            while backlog and backlog[0].cursor <= cursor:
                backlog.popleft()
            if backlog:
                following.setdefault(id(backlog[0]), FanOut(backlog[0]))
                following[id(backlog[0])].add(sink)
                backlog.popleft()
        STATS.shared += written
        STATS.direct += written
        for fan in following.values():
            fan.start()
        return True

    def settle(self, key: tuple, followers: list[DirectSink]) -> None:
        """The leader is done with the event (or its result exists): deliver, or hand the event
        to each follower the usual way."""
        if self._deliver(key, followers):
            return
        for sink in followers:
            if sink.pending is self:
                sink.subscriber.put(self.event)
                sink.release()


def _frame(event: Any, key: tuple | None, sinks: list[DirectSink]) -> tuple[str, str] | None:
    """The ``next`` frame of ``event``'s shared result for ``key`` around the operation id (the
    text before it, after it); None when there is no such result (yet)."""
    results = RESULTS.get(event)
    entry = results.get(key) if results else None
    if entry is None or entry.pending is not None or entry.result is None:
        return None
    if entry.result.errors or entry.operation is not sinks[0].node:
        return None
    encode = sinks[0].websocket.view.encode_json
    template = _template(encode, {"id": "", "type": "next", "payload": {"data": None}})
    if template is None:
        return None
    if entry.text is None:
        entry.text = encode({"data": entry.result.data})
        STATS.serialised += 1
    before, between, after = template
    return before, between + entry.text + after


def settle(cursor: int, key: tuple) -> None:
    """Settle the followers waiting for ``key``'s result of the event at ``cursor``, if any."""
    found = FANS.pop((cursor, key), None)
    if found is not None:
        fan, followers = found
        fan.settle(key, followers)
