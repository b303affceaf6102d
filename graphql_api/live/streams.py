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
Cursors handed out as plain positions, before ``txid`` existed, keep working.

The hub
=======

Every committed event is announced once, to one channel-layer group; each worker process has
one hub that joins it and hands events to its streams, exactly once and in order
(:mod:`graphql_api.live.hub`). The history reads are in :mod:`graphql_api.live.reads`.

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
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async

from django_steps.models import WorkflowEvent

# The hub and the history reads live in graphql_api.live.hub and graphql_api.live.reads; every
# name this module had before the split stays importable from here.
from graphql_api.live.direct import DirectSink
from graphql_api.live.hub import (  # noqa: F401
    GROUP,
    JOIN_TIMEOUT,
    MESSAGE_HANDLERS,
    MESSAGE_TYPE,
    EventHub,
    _Subscriber,
    event_messages,
    hub_for,
    running_hub_loop,
)
from graphql_api.live.reads import (  # noqa: F401
    BATCH,
    REPLAY_PAGE,
    REPLAY_STATEMENT_TIMEOUT_MS,
    REPLAY_WINDOW,
    CursorTooOld,
    InvalidCursor,
    StreamSpec,
    Visible,
    _replay_page,
    _start,
    format_cursor,
    parse_cursor,
    read_events,
)
from graphql_api.settings import graphql_setting

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
    "IDLE",
]

#: What :func:`stream_events` yields, given ``idle``, after that many seconds without an event
#: (the caller re-checks access while nothing comes).
IDLE: Any = type("Idle", (), {"__repr__": lambda self: "IDLE"})()
#: A stream whose sink has a lease (its access kept fresh for it) wakes after this many times
#: ``idle`` without an event, not after ``idle``.
LEASED_IDLE = 8


async def stream_events(
    layer: Any,
    spec: StreamSpec,
    *,
    after: int | None = None,
    visible: Visible | None = None,
    catch_up_interval: float | None = None,
    retry_interval: float | None = None,
    idle: float | None = None,
    sink: DirectSink | None = None,
) -> AsyncIterator[WorkflowEvent]:
    """Every committed event of ``spec`` after ``after`` (or from now), once each, in commit order.

    ``layer`` is the channel layer (``None``: no live feed, the hub polls the history).
    ``visible`` filters the history reads in SQL (the events the subscriber may see); live
    events are not filtered here (the caller checks each one). Raises :class:`CursorTooOld`
    before the first event when ``after`` is outside the replay window. With a ``sink``, the hub
    may write shared results to the subscriber's socket while the stream waits
    (:mod:`graphql_api.live.direct`): the caller keeps the sink's access current.
    """
    if catch_up_interval is None:
        catch_up_interval = float(graphql_setting("SUBSCRIPTION_CATCH_UP_SECONDS"))
    if retry_interval is None:
        retry_interval = float(graphql_setting("SUBSCRIPTION_RETRY_SECONDS"))
    limit = int(graphql_setting("SUBSCRIPTION_BUFFER"))
    window = int(graphql_setting("SUBSCRIPTION_REPLAY_WINDOW") or 0)
    hub = hub_for(layer, catch_up_interval=catch_up_interval, retry_interval=retry_interval)
    subscriber = _Subscriber(spec, limit)
    subscriber.sink = sink
    if sink is not None:
        sink.subscriber = subscriber
    await hub.add(
        subscriber
    )  # 1. register first: what the history read below misses, the hub hands out
    try:
        # The last cursor delivered lives on the subscriber: the hub moves it when it writes a
        # shared result to the sink directly (graphql_api.live.direct).
        subscriber.last, page = await database_sync_to_async(_start)(spec, after, visible, window)

        async def replay() -> AsyncIterator[WorkflowEvent]:
            # Page by page, awaiting between pages: a cancelled stream stops here.
            nonlocal page
            while page:
                for event in page:
                    if event.cursor > subscriber.last:
                        subscriber.last = event.cursor
                        yield event
                if len(page) < REPLAY_PAGE:
                    break
                page = await database_sync_to_async(_replay_page)(subscriber.last, spec, visible)
            page = []

        async for event in replay():
            yield event
        queue = subscriber.queue
        while True:
            if not queue.empty():
                event = queue.get_nowait()
                if event is IDLE:  # its sink's lease ended (DirectSink.wake)
                    yield IDLE
                    continue
            else:
                wait = idle
                if sink is not None:  # the hub may write to it until the task wakes
                    if sink.pending is None and sink.backlog and sink.drain():
                        continue  # what could not be written directly is in the buffer
                    sink.parked = True
                    lease = sink.lease
                    if idle is not None and lease is not None and not lease.ended:
                        # The lease keeps the access decisions fresh, and wakes the task when
                        # it cannot (graphql_api.live.subscriptions._Lease); the task still
                        # checks on its own now and then, should the lease never wake it.
                        wait = idle * LEASED_IDLE
                try:
                    if wait is None:
                        event = await queue.get()
                    else:
                        try:
                            async with asyncio.timeout(wait):  # cancelled, Queue.get takes nothing
                                event = await queue.get()
                        except TimeoutError:
                            event = IDLE
                finally:
                    if sink is not None:
                        sink.parked = False
                if event is IDLE:
                    yield IDLE
                    continue
            if event is None:  # 3. the buffer overflowed: re-read the history
                subscriber.overflowed = False
                page = await database_sync_to_async(_replay_page)(subscriber.last, spec, visible)
                async for event in replay():
                    yield event
                continue
            if event.cursor > subscriber.last:  # 2. replay and live overlap: each event once
                subscriber.last = event.cursor
                yield event
            subscriber.done(event.cursor)
    finally:
        subscriber.sink = None
        subscriber.done()
        await hub.remove(subscriber)
