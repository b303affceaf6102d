"""Publish committed history to the channel layer (the live feed of the subscriptions).

The engine sends :data:`django_steps.signals.workflow_event_committed` only after the writing
transaction has committed, so a rolled-back change publishes nothing. Publishing is best
effort: the channel layer is at most once and may be down (a Redis outage raises
``ConnectionError``). A failure is logged and swallowed — the change is committed and the
mutation must report success — and subscribers recover the event from the stored history
(see :mod:`graphql_api.live.streams`).

Publishing never blocks the writer and never creates an event loop per event (as
``async_to_sync`` would, on every change). The receiver runs in the committing thread, which is
synchronous; the message is handed to a running event loop and sent there:

* in a server process with live subscriptions, the loop of its
  :class:`~graphql_api.live.hub.EventHub` (the in-memory channel layer is only safe to use
  from the loop its receivers wait on);
* anywhere else (a WSGI worker, a management command, a script), one background thread per
  process that runs a loop of its own, started on first use.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from channels.layers import get_channel_layer

from django_steps.models import WorkflowEvent
from django_steps.signals import workflow_event_committed
from graphql_api.live import streams

logger = logging.getLogger("graphql_api.events")

__all__ = ["connect", "publish_event"]


class _Outbox:
    """Messages waiting to be sent from one event loop, by one task, in order.

    A hub only needs to hear the newest committed cursor (it reads everything up to it from the
    history), so messages that queue up while a send is under way are sent as one: the newest.
    A burst of commits costs the channel layer one message, not one per change."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: list[tuple[Any, dict]] = []
        self.sending = False

    def put(self, layer: Any, message: dict) -> None:  # runs on self.loop
        self.pending.append((layer, message))
        if not self.sending:
            self.sending = True
            self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                layer, message = max(batch, key=lambda item: int(item[1]["cursor"]))
                try:
                    await layer.group_send(streams.GROUP, message)
                except Exception as error:
                    logger.error(
                        "Could not publish workflow events up to %s to the channel layer (%s); "
                        "subscribers will read them from the history.",
                        message["cursor"],
                        error,
                        exc_info=error,
                    )
        finally:
            self.sending = False


_outboxes: dict[asyncio.AbstractEventLoop, _Outbox] = {}
_outboxes_lock = threading.Lock()


def _outbox(loop: asyncio.AbstractEventLoop) -> _Outbox:
    outbox = _outboxes.get(loop)
    if outbox is None:
        with _outboxes_lock:
            for stale in [other for other in _outboxes if other.is_closed()]:
                del _outboxes[stale]
            outbox = _outboxes.setdefault(loop, _Outbox(loop))
    return outbox


class _BackgroundLoop:
    """One daemon thread per process running an event loop for publishing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and loop.is_running():
            return loop
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name="django_steps publisher", daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop


_background = _BackgroundLoop()


def publish_event(event: WorkflowEvent) -> bool:
    """Announce one committed event to the channel layer, without waiting for it.

    Returns False (after logging) when there is no channel layer or the message could not be
    handed over; a failure of the send itself is logged when it happens. Never raises.
    """
    try:
        layer = get_channel_layer()
        if layer is None:
            return False
        loop = streams.running_hub_loop() or _background.loop()
        outbox = _outbox(loop)
        for _group, message in streams.event_messages(event):
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                outbox.put(layer, message)
            else:
                loop.call_soon_threadsafe(outbox.put, layer, message)
    except Exception:
        logger.exception(
            "Could not publish workflow event %s (instance %s) to the channel layer; "
            "subscribers will read it from the history.",
            event.cursor,
            event.instance_id,
        )
        return False
    return True


def on_workflow_event_committed(sender, event: WorkflowEvent, **kwargs) -> None:
    publish_event(event)


def connect() -> None:
    workflow_event_committed.connect(
        on_workflow_event_committed, dispatch_uid="graphql_api.live.events.publish"
    )
