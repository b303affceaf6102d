"""Live event streams behind the ``workflowInstanceEvents`` subscription: replay, live, gap fill.

Kept free of strawberry so it can be tested and reused on its own; the GraphQL field in
:mod:`graphql_api.live.subscriptions` only resolves arguments, checks permissions and iterates
:func:`stream_events`.

The cursor
==========

A cursor is :attr:`WorkflowEvent.cursor` written as a decimal string: the event's place in the
one global history of all instances and workflows, in an order no event that commits late can
ever appear *before* (see :mod:`django_steps.history`: PostgreSQL transaction ids with the
snapshot's ``xmin`` as the visibility horizon; SQLite's single writer). Reading "the final
events after ``cursor``, in order" therefore never skips anything, and no writer waits for
another to get its place.

One cursor works for every stream (one instance, one workflow, everything), so a client can
store the last ``cursor`` it received and pass it back as ``after`` on any reconnection.
Cursors handed out by the first version (the plain positions of that time) keep working.

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

A stream (one subscription) registers with the hub, reads the stored history after its
cursor (or starts at the newest final event), then takes the hub's events, skipping any at or
below the last it delivered (replay and live overlap by design). Nothing committed between the
two can be missed: the hub hands out an event only after it is committed, and the stream
registers before it reads the history. A stream whose client does not keep up (more than
``SUBSCRIPTION_BUFFER`` events waiting) drops its buffer and re-reads the history instead, so a
slow socket costs bounded memory and still loses nothing.

Replay costs what it returns, and stops when told
=================================================

A stream's history reads (its replay, and the re-read after an overflow) go through the
subscriber's visibility filter *in SQL* (``visible``: the same semi-join as ``workflowEvents``),
so a claimant replaying her 12 events among 100,000 reads 12 rows, not the whole history. They
read :data:`REPLAY_PAGE` events at a time, each page in a worker thread, and the stream awaits
between pages: cancelling the operation (``complete``, the socket closing, the server stopping)
stops it at the next page at the latest — the queued page reads are dropped, and the page
running in its thread is abandoned (its result discarded). On PostgreSQL each page runs under
``SET LOCAL statement_timeout`` (:data:`REPLAY_STATEMENT_TIMEOUT_MS`), so an abandoned
statement cannot run on for long either.

A cursor further back than ``SUBSCRIPTION_REPLAY_WINDOW`` events of the subscriber's stream
(what it may see) is refused with :class:`CursorTooOld` before anything is sent: the client
catches up over HTTP (``workflowEvents``), then subscribes with the cursor it ended on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import QuerySet

from django_steps import compiled, history
from django_steps.history import CURSOR_LIMIT
from django_steps.models import (
    Workflow,
    WorkflowEvent,
    WorkflowStep,
    WorkflowStepStatus,
    WorkflowTransition,
)
from django_steps.selectors import events_after, newest_cursor

logger = logging.getLogger("graphql_api.live.streams")

__all__ = [
    "GROUP",
    "CursorTooOld",
    "EventHub",
    "InvalidCursor",
    "StreamSpec",
    "event_messages",
    "format_cursor",
    "hub_for",
    "parse_cursor",
    "read_events",
    "running_hub_loop",
    "stream_events",
]

#: The channel-layer group every committed event is announced to, and the message type.
GROUP = "django_steps.events"
MESSAGE_TYPE = "django_steps.event"
BATCH = 500
#: Events per replay read: small, so that a cancelled stream stops after one short read.
REPLAY_PAGE = 100
#: PostgreSQL ``statement_timeout`` of one replay page (milliseconds).
REPLAY_STATEMENT_TIMEOUT_MS = 5_000
#: The default of ``SUBSCRIPTION_REPLAY_WINDOW``: most events a replay sends before going live.
REPLAY_WINDOW = 10_000
#: Seconds a hub waits for the channel layer to let it join the group before it counts the
#: layer as down (and reads the history every ``SUBSCRIPTION_RETRY_SECONDS`` meanwhile).
JOIN_TIMEOUT = 1.0
#: Other message types sent to :data:`GROUP` -> what the hub calls with each, in the order the
#: messages arrive (graphql_api.live.revocation registers one).
MESSAGE_HANDLERS: dict[str, Any] = {}
_CURSOR_RE = re.compile(r"^[0-9]{1,39}$")
#: Rows joined to every event read (few joins: PostgreSQL plans a 12-way join in ~40 ms). Steps,
#: statuses and transitions come from :func:`_definitions` instead, so serialising an event
#: costs no query per subscriber.
_RELATED = ("instance", "workflow", "actor")
_DEFINITIONS_KEPT = 64


class InvalidCursor(ValueError):
    """Raised when an ``after`` cursor is not one this server hands out."""

    code = "INVALID_CURSOR"


class CursorTooOld(Exception):
    """Raised when more events of a stream follow its ``after`` cursor than a replay sends
    (``SUBSCRIPTION_REPLAY_WINDOW``): the client catches up over HTTP first."""

    code = "CURSOR_TOO_OLD"

    def __init__(self, window: int) -> None:
        super().__init__(
            f"More than {window:,} events follow this cursor: catch up over HTTP with "
            "`workflowEvents(after: <this cursor>)` until `pageInfo.hasNextPage` is false, then "
            "subscribe again with `after` set to the `cursor` it returned."
        )


def format_cursor(cursor: int) -> str:
    return str(cursor)


def parse_cursor(cursor: str | None) -> int | None:
    """The value of ``cursor`` (``None`` for no cursor)."""
    if cursor is None:
        return None
    text = str(cursor).strip()
    if not _CURSOR_RE.match(text) or int(text) >= CURSOR_LIMIT:
        raise InvalidCursor("Not a cursor: pass back the `cursor` of an event.")
    return int(text)


@dataclass(frozen=True)
class StreamSpec:
    """Which events a stream carries: one instance, one workflow, or (neither) all of them."""

    instance_id: int | None = None
    workflow_id: int | None = None

    @property
    def kind(self) -> str:
        if self.instance_id is not None:
            return "instance"
        if self.workflow_id is not None:
            return "workflow"
        return "all"


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


# --------------------------------------------------------------------------- history reads


def _options() -> dict:
    return getattr(settings, "DJANGO_STEPS_GRAPHQL", {}) or {}


def _newest() -> int:
    return newest_cursor()


def _definition_rows(workflow_id: int) -> dict[str, dict[int, Any]]:
    # all_objects: events refer to retired rows too (removed from later versions)
    steps = {step.pk: step for step in WorkflowStep.all_objects.filter(workflow_id=workflow_id)}
    return {
        "steps": steps,
        "statuses": {
            status.pk: status
            for status in WorkflowStepStatus.all_objects.filter(step__in=list(steps))
        },
        "transitions": {
            t.pk: t for t in WorkflowTransition.all_objects.filter(workflow_id=workflow_id)
        },
    }


def _definitions(workflow: Workflow) -> dict[str, dict[int, Any]]:
    """The steps, statuses and transitions of one committed definition, by id (cached per
    process like the engine's compiled definitions: see :mod:`django_steps.compiled`)."""
    return compiled.cached("stream rows", workflow, _definition_rows, keep=_DEFINITIONS_KEPT)


def _attach(obj: Any, field: str, rows: dict[int, Any]) -> None:
    """Set ``obj.<field>`` (a foreign key) from ``rows`` without a query, if its row is there."""
    related = type(obj)._meta.get_field(field)
    pk = getattr(obj, related.attname)
    if pk is not None and pk in rows:
        related.set_cached_value(obj, rows[pk])


def read_events(queryset: QuerySet[WorkflowEvent], limit: int = BATCH) -> list[WorkflowEvent]:
    """Up to ``limit`` events of ``queryset``, with everything a subscriber or a page of events
    shows already attached (instance and workflow joined, definition rows from the per-process
    cache): serialising them costs no further query."""
    events = list(queryset.select_related(*_RELATED)[:limit])
    for event in events:
        rows = _definitions(event.workflow)
        for field in ("from_step", "to_step"):
            _attach(event, field, rows["steps"])
        for field in ("from_status", "to_status", "requested_status"):
            _attach(event, field, rows["statuses"])
        _attach(event, "transition", rows["transitions"])
        instance = event.instance
        _attach(instance, "workflow", {event.workflow_id: event.workflow})
        _attach(instance, "current_step", rows["steps"])
        _attach(instance, "current_step_status", rows["statuses"])
    return events


#: A filter of events (a queryset in, the events a subscriber may see out), applied in SQL.
Visible = Callable[[QuerySet[WorkflowEvent]], QuerySet[WorkflowEvent]]


def _read(
    after: int,
    until: int | None = None,
    spec: StreamSpec | None = None,
    visible: Visible | None = None,
    limit: int = BATCH,
) -> list[WorkflowEvent]:
    spec = spec or StreamSpec()
    queryset = events_after(
        after, instance_id=spec.instance_id, workflow_id=spec.workflow_id, until=until
    )
    if visible is not None:
        queryset = visible(queryset)
    return read_events(queryset, limit)


def _bounded(read: Callable[[], Any]) -> Any:
    """Run ``read`` (sync) with its statements cut after :data:`REPLAY_STATEMENT_TIMEOUT_MS` on
    PostgreSQL (a transaction of its own: ``SET LOCAL`` ends with it)."""
    using = router.db_for_read(WorkflowEvent)
    connection = connections[using]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return read()
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(REPLAY_STATEMENT_TIMEOUT_MS)}")
        return read()


def _replay_page(after: int, spec: StreamSpec, visible: Visible | None) -> list[WorkflowEvent]:
    return _bounded(lambda: _read(after, None, spec, visible, REPLAY_PAGE))


def _too_old(after: int, spec: StreamSpec, visible: Visible | None, window: int) -> bool:
    """Whether more than ``window`` events of the stream (that the subscriber may see) follow
    ``after``: one query reading at most ``window + 1`` index entries of the stream."""
    queryset = events_after(after, instance_id=spec.instance_id, workflow_id=spec.workflow_id)
    if visible is not None:
        queryset = visible(queryset)
    return _bounded(lambda: queryset.values_list("pk", flat=True)[window : window + 1].exists())


def _read_final(after: int, until: int) -> tuple[list[WorkflowEvent], int]:
    """The final events in ``(after, until]`` (one batch) and the cursor up to which everything
    final has been read: ``until`` itself once no running transaction can add below it."""
    horizon = history.horizon(router.db_for_read(WorkflowEvent))  # before the read, see horizon()
    events = _read(after, until)
    if len(events) == BATCH:
        return events, events[-1].cursor
    return events, max(after, min(until, horizon - 1))


def _start(
    spec: StreamSpec, after: int | None, visible: Visible | None, window: int
) -> tuple[int, list[WorkflowEvent]]:
    """Where a stream starts (``after``, or the newest final event) and its first replay page."""
    if after is None:
        return _newest(), []
    page = _replay_page(after, spec, visible)
    if window and (
        len(page) > window  # a short page within the window needs no second look
        or (len(page) == REPLAY_PAGE and _too_old(after, spec, visible, window))
    ):
        raise CursorTooOld(window)
    return after, page


# --------------------------------------------------------------------------- the hub


class _Subscriber:
    """One stream's buffer in the hub."""

    __slots__ = ("spec", "queue", "limit", "overflowed")

    def __init__(self, spec: StreamSpec, limit: int) -> None:
        self.spec = spec
        self.queue: asyncio.Queue = asyncio.Queue()
        self.limit = limit
        self.overflowed = False

    def put(self, event: WorkflowEvent) -> None:
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
                if _being_cancelled():  # see graphql_api.live.routing.being_cancelled
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
        for subscriber in self.everything:
            subscriber.put(event)
        for subscriber in self.by_workflow.get(event.workflow_id, ()):
            subscriber.put(event)
        for subscriber in self.by_instance.get(event.instance_id, ()):
            subscriber.put(event)


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


# --------------------------------------------------------------------------- the stream


async def stream_events(
    layer: Any,
    spec: StreamSpec,
    *,
    after: int | None = None,
    visible: Visible | None = None,
    catch_up_interval: float | None = None,
    retry_interval: float | None = None,
) -> AsyncIterator[WorkflowEvent]:
    """Every committed event of ``spec`` after ``after`` (or from now), once each, in commit order.

    ``layer`` is the channel layer (``None``: no live feed, the hub polls the history).
    ``visible`` filters the history reads in SQL (the events the subscriber may see); live
    events are not filtered here (the caller checks each one). Raises :class:`CursorTooOld`
    before the first event when ``after`` is outside the replay window.
    """
    options = _options()
    if catch_up_interval is None:
        catch_up_interval = float(options.get("SUBSCRIPTION_CATCH_UP_SECONDS", 5.0))
    if retry_interval is None:
        retry_interval = float(options.get("SUBSCRIPTION_RETRY_SECONDS", 0.5))
    limit = int(options.get("SUBSCRIPTION_BUFFER", 10_000))
    window = int(options.get("SUBSCRIPTION_REPLAY_WINDOW", REPLAY_WINDOW) or 0)
    hub = hub_for(layer, catch_up_interval=catch_up_interval, retry_interval=retry_interval)
    subscriber = _Subscriber(spec, limit)
    await hub.add(
        subscriber
    )  # 1. register first: what the history read below misses, the hub hands out
    try:
        last, page = await database_sync_to_async(_start)(spec, after, visible, window)

        async def replay() -> AsyncIterator[WorkflowEvent]:
            # Page by page, awaiting between pages: a cancelled stream stops here.
            nonlocal last, page
            while page:
                for event in page:
                    if event.cursor > last:
                        last = event.cursor
                        yield event
                if len(page) < REPLAY_PAGE:
                    break
                page = await database_sync_to_async(_replay_page)(last, spec, visible)
            page = []

        async for event in replay():
            yield event
        queue = subscriber.queue
        while True:
            event = await queue.get()
            if event is None:  # 3. the buffer overflowed: re-read the history
                subscriber.overflowed = False
                page = await database_sync_to_async(_replay_page)(last, spec, visible)
                async for event in replay():
                    yield event
                continue
            if event.cursor > last:  # 2. replay and live overlap: each event once
                last = event.cursor
                yield event
    finally:
        await hub.remove(subscriber)
