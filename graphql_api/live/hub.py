"""The per-process event hub: one channel-layer membership per worker process, handing every
committed event to the streams of that process, exactly once and in order.

One hub per process
===================

Every committed event is announced once, to one channel-layer group (:data:`GROUP`). Sockets do
not join it: each worker process has one :class:`EventHub` (per channel layer and event loop)
that joins the group with a single channel, and hands events to the streams of that process.
So an event costs the channel layer one message per *process*, not one per subscriber, and
the in-memory layer (whose ``receive`` walks every channel) stays cheap with a thousand
sockets.

The hub turns the at-most-once channel layer into an exactly-once, in-order feed of the
process, with the stored history as the source of truth:

1. It joins the group, *then* notes the newest final cursor (its ``watermark``): every event
   at or below it is in the history, every later one is announced after the join.
2. A live message with cursor ``c`` only says "``c`` is committed". The hub reads every final
   event in ``(watermark, c]`` from the history in one query (with the instance and workflow
   joined in and the definition rows attached, so no subscriber pays a query to serialise
   them), hands each to the streams it belongs to, and moves the watermark to the last one. A
   message lost by the layer (channels-redis drops past a channel's ``capacity``, Redis may
   restart) is thereby filled by the next one; a duplicate or late message (at or below the
   watermark) is ignored. An event committed while an older transaction still runs is not
   final yet (PostgreSQL): the hub reads again shortly, until it is.
3. Every ``catch_up_interval`` seconds it re-joins the group (Redis forgets groups when it
   restarts; channels-redis expires memberships) and reads the newest cursor: whatever was
   committed one interval ago and never announced is read and handed out then. While the
   layer is down (receive or join fails) it does so every ``retry_interval`` seconds, so events
   committed during an outage still arrive, exactly once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from channels.db import database_sync_to_async

from django_steps.models import (
    WorkflowEvent,
)
from graphql_api.live.direct import Check, DirectSink, FanOut, settle
from graphql_api.live.reads import (
    BATCH,
    InvalidCursor,
    StreamSpec,
    _newest,
    _read_final,
    format_cursor,
    parse_cursor,
)

logger = logging.getLogger("graphql_api.streams")  # the name it always had

__all__ = ["GROUP", "EventHub", "event_messages", "hub_for", "running_hub_loop"]

#: The channel-layer group every committed event is announced to, and the message type.
GROUP = "django_steps.events"
MESSAGE_TYPE = "django_steps.event"
#: Seconds a hub waits for the channel layer to let it join the group before it counts the
#: layer as down (and reads the history every ``SUBSCRIPTION_RETRY_SECONDS`` meanwhile).
JOIN_TIMEOUT = 1.0
#: Other message types sent to :data:`GROUP` -> what the hub calls with each, in the order the
#: messages arrive (graphql_api.live.revocation registers one).
MESSAGE_HANDLERS: dict[str, Any] = {}


def event_messages(event: WorkflowEvent) -> list[tuple[str, dict]]:
    """The (group, message) pairs that announce one committed event.

    The message only says *that* a cursor is committed (and to whom it matters); hubs read the
    event itself from the history, so the message stays tiny and msgpack-safe (the cursor is
    a string: it may not fit 64 bits).
    """
    return [
        (
            GROUP,
            {
                "type": MESSAGE_TYPE,
                "cursor": format_cursor(event.cursor),
                "instance_id": event.instance_id,
                "workflow_id": event.workflow_id,
            },
        )
    ]


class _Subscriber:
    """One stream's buffer in the hub, the last cursor it delivered, and its sink when the hub
    may write shared results to its socket directly (:mod:`graphql_api.live.direct`)."""

    __slots__ = ("spec", "queue", "limit", "overflowed", "last", "sink", "leads")

    def __init__(self, spec: StreamSpec, limit: int) -> None:
        self.spec = spec
        self.queue: asyncio.Queue = asyncio.Queue()
        self.limit = limit
        self.overflowed = False
        self.last = 0
        self.sink: DirectSink | None = None
        #: (cursor, share key) of the events it takes for a group of sinks (FanOut.start).
        self.leads: list[tuple] = []

    def done(self, cursor: int | None = None) -> None:
        """Done with the events up to ``cursor`` (None: all): the sinks waiting for a result
        it led are settled (graphql_api.live.direct)."""
        while self.leads and (cursor is None or self.leads[0][0] <= cursor):
            settle(*self.leads.pop(0))

    def put(self, event: WorkflowEvent) -> None:
        if self.sink is not None:
            self.sink.parked = False
        if self.overflowed:
            return
        if self.queue.qsize() >= self.limit:
            # The client does not keep up: forget the buffer, the stream re-reads the history.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class EventHub:
    """The process's one membership of :data:`GROUP`, handing committed events to its streams."""

    def __init__(self, layer: Any, catch_up_interval: float, retry_interval: float) -> None:
        self.layer = layer
        self.key = _key(layer)
        self.loop = asyncio.get_running_loop()
        self.catch_up_interval = catch_up_interval
        self.retry_interval = retry_interval
        self.channel: str | None = None
        self.watermark = (
            0  # every event at or below this cursor was handed out (or predates the hub)
        )
        self.target = 0  # the newest cursor announced: the hub reads until it gets there
        self.healthy = False
        self.by_instance: dict[int, set[_Subscriber]] = defaultdict(set)
        self.by_workflow: dict[int, set[_Subscriber]] = defaultdict(set)
        self.everything: set[_Subscriber] = set()
        self._count = 0
        self._started: asyncio.Future | None = None
        self._tasks: list[asyncio.Task] = []
        self._kick = asyncio.Event()
        self._fill_lock = asyncio.Lock()
        self._waiting: asyncio.Task | None = None

    # ---- subscribers

    def _targets(self, spec: StreamSpec) -> set[_Subscriber]:
        if spec.instance_id is not None:
            return self.by_instance[spec.instance_id]
        if spec.workflow_id is not None:
            return self.by_workflow[spec.workflow_id]
        return self.everything

    async def add(self, subscriber: _Subscriber) -> None:
        """Register a stream; returns once the hub is in the group and knows its watermark."""
        self._targets(subscriber.spec).add(subscriber)
        self._count += 1
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        try:
            await asyncio.shield(self._started)
        except BaseException:
            await self.remove(subscriber)
            raise

    async def remove(self, subscriber: _Subscriber) -> None:
        spec = subscriber.spec
        targets = self._targets(spec)
        targets.discard(subscriber)
        if not targets:
            if spec.instance_id is not None:
                self.by_instance.pop(spec.instance_id, None)
            elif spec.workflow_id is not None:
                self.by_workflow.pop(spec.workflow_id, None)
        self._count -= 1
        if self._count == 0:
            await self._stop()

    # ---- life cycle

    async def _start(self) -> None:
        try:
            if self.layer is not None:
                self.channel = await self.layer.new_channel()
            self.healthy = await self._join()
            self.watermark = await database_sync_to_async(_newest)()
        except BaseException:
            self._started = None  # the next subscription tries again
            raise
        self._tasks = [asyncio.create_task(self._maintain_loop(), name="django_steps hub maintain")]
        if self.layer is not None:
            self._tasks.append(
                asyncio.create_task(self._receive_loop(), name="django_steps hub receive")
            )

    async def _stop(self) -> None:
        if _HUBS.get(self.key) is self:
            del _HUBS[self.key]
        tasks, self._tasks = self._tasks, []
        if self._waiting is not None:
            tasks.append(self._waiting)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.channel is not None:
            with contextlib.suppress(Exception):  # the membership expires on its own
                await self.layer.group_discard(GROUP, self.channel)

    async def _join(self) -> bool:
        if self.layer is None:  # no channel layer configured: poll the history
            return False
        try:
            # Bounded: against a frozen Redis, group_add waits for the client's read timeout
            # (seconds), and each rejoin would wait that long instead of retry_interval.
            async with asyncio.timeout(JOIN_TIMEOUT):
                await self.layer.group_add(GROUP, self.channel)
        except Exception as exc:
            logger.warning(
                "Cannot join the channel-layer group (%s); reading the history until it is back",
                exc,
            )
            return False
        return True

    # ---- feeding

    async def _receive_loop(self) -> None:
        delay = 0.1
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _being_cancelled():  # see graphql_api.live.socket.being_cancelled
                    raise asyncio.CancelledError from exc
                logger.warning("Channel layer receive failed (%s); retrying in %.1fs", exc, delay)
                self.healthy = False
                self._kick.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            handler = MESSAGE_HANDLERS.get(message.get("type"))
            if handler is not None:  # in order with the events: e.g. revocations
                handler(message)
                continue
            if message.get("type") != MESSAGE_TYPE:
                continue
            try:
                cursor = parse_cursor(message.get("cursor"))
            except InvalidCursor:
                continue
            if cursor is not None and cursor > self.watermark:
                try:
                    await self.fill(cursor)
                except Exception:
                    logger.exception("Reading events up to %s failed; retrying later", cursor)
                    self._kick.set()

    async def _maintain_loop(self) -> None:
        previous = self.watermark
        while True:
            if _being_cancelled():  # an error below may have swallowed the cancellation
                raise asyncio.CancelledError
            interval = self.catch_up_interval if self.healthy else self.retry_interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._kick.wait()
            self._kick.clear()
            was_healthy = self.healthy
            self.healthy = await self._join()
            try:
                newest = await database_sync_to_async(_newest)()
                # Down, or just back: what was committed meanwhile may never be announced. Up:
                # what was committed one interval ago and is still not here was lost.
                await self.fill(newest if not (self.healthy and was_healthy) else previous)
            except Exception:
                logger.exception("Catching up from the history failed; retrying")
                continue
            previous = newest

    async def fill(self, until: int) -> None:
        """Hand out every final event in ``(watermark, until]``, in order. Events committed but
        not final yet (an older transaction still runs) are read again shortly."""
        self.target = max(self.target, until)
        async with self._fill_lock:
            await self._read_to_target()
        if self.watermark < self.target and self._waiting is None:
            self._waiting = asyncio.create_task(
                self._wait_for_horizon(), name="django_steps hub horizon"
            )

    async def _read_to_target(self) -> None:
        while self.watermark < self.target:
            batch, final = await database_sync_to_async(_read_final)(self.watermark, self.target)
            for event in batch:
                self.dispatch(event)
            self.watermark = max(self.watermark, final)
            if len(batch) < BATCH:
                break

    async def _wait_for_horizon(self) -> None:
        delay = 0.01
        try:
            while self.watermark < self.target:
                if _being_cancelled():
                    raise asyncio.CancelledError
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                try:
                    async with self._fill_lock:
                        await self._read_to_target()
                except Exception:
                    logger.exception("Reading events up to %s failed; retrying", self.target)
        finally:
            self._waiting = None

    def dispatch(self, event: WorkflowEvent) -> None:
        self.watermark = max(self.watermark, event.cursor)
        fan = None
        check = Check()
        for targets in (
            self.everything,
            self.by_workflow.get(event.workflow_id, ()),
            self.by_instance.get(event.instance_id, ()),
        ):
            for subscriber in targets:
                sink = subscriber.sink
                if sink is None:
                    subscriber.put(event)
                elif (sink.pending is not None or not sink.parked) and (
                    len(sink.backlog) + subscriber.queue.qsize() < subscriber.limit
                ):
                    # It waits for an earlier event's result, or its task is busy: the event
                    # waits, in order, for the hub or the task to write it (DirectSink.drain).
                    sink.backlog.append(event)
                elif sink.ready(check):
                    if fan is None:
                        fan = FanOut(event)
                    fan.add(sink)
                else:
                    sink.release()
                    subscriber.put(event)
        if fan is not None:
            fan.start()


_HUBS: dict[tuple[int, int], EventHub] = {}


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _key(layer: Any) -> tuple[int, int]:
    return id(layer), id(asyncio.get_running_loop())


def running_hub_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of a live hub of this process, if any (publishers send from there)."""
    for hub in reversed(list(_HUBS.values())):
        if hub.loop.is_running() and not hub.loop.is_closed():
            return hub.loop
    return None


def hub_for(layer: Any, *, catch_up_interval: float, retry_interval: float) -> EventHub:
    """The hub of ``layer`` on the running event loop (one per worker process in production)."""
    hub = _HUBS.get(_key(layer))
    if hub is None or hub.layer is not layer or hub.loop is not asyncio.get_running_loop():
        hub = _HUBS[_key(layer)] = EventHub(layer, catch_up_interval, retry_interval)
    return hub
