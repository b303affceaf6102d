"""Live event streams behind the ``workflowInstanceEvents`` subscription: replay, live, gap fill.

Kept free of strawberry so it can be tested and reused on its own; the GraphQL field in
:mod:`graphql_api.subscriptions` only resolves arguments, checks permissions and iterates
:func:`stream_events`.

The cursor
==========

A cursor is ``WorkflowEvent.position`` written as a decimal string (``"42"``). Positions are
global (one sequence for all instances and workflows), gapless, and **follow commit order**:
the engine takes the next position from the single ``EventCounter`` row inside the writing
transaction, and that row stays locked until the transaction commits (a rollback gives the
number back). So when position ``p`` is visible, every position below ``p`` is committed and
visible too. Reading "events with ``position > cursor``, ordered by position" therefore never
skips an event that commits later, which an auto-increment id or a timestamp cannot promise:
on PostgreSQL a transaction that took id 7 may commit after one that took id 8, and a reader
that saw 8 and saved it as its cursor would lose 7 forever. Per-instance ``sequence`` (1, 2,
3…, equal to the instance's version) orders one instance only; it is used below as a cheap
contiguity check for single-instance streams, never as the cursor. The price of this choice is
that writers of history serialise on one row for the (short) rest of their transaction.

One cursor works for every stream (one instance, one workflow, everything), so a client can
store the last ``cursor`` it received and pass it back as ``after`` on any reconnection.

The algorithm
=============

1. Join the channel-layer group of the stream **first** (events published before joining
   would otherwise be lost), then read the stored history after the cursor and deliver it.
   Without ``after`` the stream starts "now": at the last committed position.
2. Deliver live events in position order, skipping any position at or below the last one
   delivered (the replay and the live feed overlap by design; every event is delivered once).
3. Fill gaps from history before delivering a live event that does not directly follow the
   last delivered one. The channel layer is at most once (channels-redis drops past a
   channel's ``capacity``, Redis may restart) and two publishers may reach Redis out of
   commit order. "Directly follows" is ``sequence == last + 1`` for one instance and
   ``position == last + 1`` for everything; for one workflow positions legitimately skip (other
   workflows' events), so the range between is read from history (an indexed query on
   ``(workflow, position)``).
4. The history, not the channel layer, is the source of truth: when the stream has been idle
   for ``catch_up_interval`` seconds, and after any channel-layer error (the consumer reports
   receive errors, see :class:`ChannelMembership`), it re-joins its group (Redis forgets group
   membership when it restarts) and reads whatever was committed meanwhile. While the layer is
   down it keeps reading history every ``retry_interval`` seconds, so events committed during
   an outage still arrive, exactly once and in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Max
from django.utils.dateparse import parse_datetime

from django_steps.models import WorkflowEvent
from django_steps.selectors import events_after

logger = logging.getLogger("graphql_api.streams")

__all__ = [
    "ChannelMembership",
    "InvalidCursor",
    "StreamSpec",
    "event_from_message",
    "event_messages",
    "format_cursor",
    "membership_for",
    "parse_cursor",
    "stream_events",
]

#: Prefix of every channel-layer message type and group name used here.
PREFIX = "django_steps"
#: One message type per kind of group, so a socket that joined several groups (one subscription
#: per instance, one for everything…) hands each message only to the streams it is meant for.
MESSAGE_TYPES = {
    "instance": f"{PREFIX}.event.instance",
    "workflow": f"{PREFIX}.event.workflow",
    "all": f"{PREFIX}.event.all",
}
BATCH = 500
_CURSOR_RE = re.compile(r"^[0-9]{1,18}$")
#: Put into a stream's queue when the channel layer failed: re-join and catch up now.
_LAYER_FAILED = {"type": f"{PREFIX}.layer_failed"}


class InvalidCursor(ValueError):
    """Raised when an ``after`` cursor is not one this server hands out."""

    code = "INVALID_CURSOR"


def format_cursor(position: int) -> str:
    return str(position)


def parse_cursor(cursor: str | None) -> int | None:
    """The position encoded in ``cursor`` (``None`` for no cursor)."""
    if cursor is None:
        return None
    text = str(cursor).strip()
    if not _CURSOR_RE.match(text):
        raise InvalidCursor(f"{cursor!r} is not a cursor: pass back the `cursor` of an event.")
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

    @property
    def group(self) -> str:
        if self.kind == "instance":
            return group_name("instance", self.instance_id)
        if self.kind == "workflow":
            return group_name("workflow", self.workflow_id)
        return group_name("all")

    @property
    def message_type(self) -> str:
        return MESSAGE_TYPES[self.kind]

    def matches(self, message: dict) -> bool:
        if self.instance_id is not None and message.get("instance_id") != self.instance_id:
            return False
        if self.workflow_id is not None and message.get("workflow_id") != self.workflow_id:
            return False
        return True


def group_name(kind: str, pk: int | None = None) -> str:
    return f"{PREFIX}.{kind}" if pk is None else f"{PREFIX}.{kind}.{pk}"


# --------------------------------------------------------------------------- messages

_FIELDS = [f for f in WorkflowEvent._meta.concrete_fields]


def event_messages(event: WorkflowEvent) -> list[tuple[str, dict]]:
    """The (group, message) pairs that announce one committed event to every stream kind.

    The event's fields travel as one JSON string: cheap to copy per receiving channel (the
    in-memory layer deep-copies each message) and safe for msgpack (channels-redis).
    """
    data = json.dumps({f.attname: getattr(event, f.attname) for f in _FIELDS}, cls=DjangoJSONEncoder)
    base = {
        "position": event.position,
        "sequence": event.sequence,
        "instance_id": event.instance_id,
        "workflow_id": event.workflow_id,
        "event": data,
    }
    return [
        (group_name("instance", event.instance_id), {"type": MESSAGE_TYPES["instance"], **base}),
        (group_name("workflow", event.workflow_id), {"type": MESSAGE_TYPES["workflow"], **base}),
        (group_name("all"), {"type": MESSAGE_TYPES["all"], **base}),
    ]


@lru_cache(maxsize=2048)
def _decode(data: str) -> WorkflowEvent:
    values: dict[str, Any] = json.loads(data)
    if values.get("created_at"):
        values["created_at"] = parse_datetime(values["created_at"])
    event = WorkflowEvent(**values)
    event._state.adding = False
    event._state.db = "default"
    return event


def event_from_message(message: dict) -> WorkflowEvent:
    """The :class:`WorkflowEvent` carried by a live message, without a database query.

    Decoded once per process and shared by every subscription that receives it (read only).
    """
    return _decode(message["event"])


# --------------------------------------------------------------------------- membership


class ChannelMembership:
    """Group membership of one consumer's channel, shared by all subscriptions on its socket.

    Counts references so one subscription leaving a group does not silently unsubscribe
    another one on the same socket, re-adds on demand (Redis forgets groups when it restarts,
    and channels-redis expires memberships after ``group_expiry``), and tells every stream
    when the channel layer failed (:meth:`layer_failed`, called by the consumer).
    """

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self._refs: Counter[str] = Counter()
        self._lock = asyncio.Lock()
        self._queues: set[asyncio.Queue] = set()
        self.failures = 0

    @property
    def layer(self) -> Any:
        return self.consumer.channel_layer

    async def join(self, group: str) -> None:
        """Add the channel to ``group`` (again). Raises when the channel layer is unreachable."""
        async with self._lock:
            await self.layer.group_add(group, self.consumer.channel_name)

    def acquire(self, group: str) -> None:
        self._refs[group] += 1

    async def release(self, group: str) -> None:
        async with self._lock:
            self._refs[group] -= 1
            if self._refs[group] > 0:
                return
            del self._refs[group]
            try:
                await self.layer.group_discard(group, self.consumer.channel_name)
            except Exception:  # the group expires on its own; nothing to lose here
                logger.debug("group_discard(%s) failed", group, exc_info=True)

    def register(self, message_type: str, queue: asyncio.Queue) -> None:
        # ChannelsConsumer.dispatch hands every message of this type to these queues.
        self.consumer.listen_queues[message_type].add(queue)
        self._queues.add(queue)

    def unregister(self, message_type: str, queue: asyncio.Queue) -> None:
        self.consumer.listen_queues[message_type].discard(queue)
        self._queues.discard(queue)

    def layer_failed(self, exc: BaseException | None = None) -> None:
        """The channel layer failed (receive or send): every stream re-joins and catches up."""
        self.failures += 1
        for queue in list(self._queues):
            queue.put_nowait(_LAYER_FAILED)


def membership_for(consumer: Any) -> ChannelMembership:
    membership = getattr(consumer, "_django_steps_membership", None)
    if membership is None:
        membership = ChannelMembership(consumer)
        consumer._django_steps_membership = membership
    return membership


# --------------------------------------------------------------------------- history reads


def _options() -> dict:
    return getattr(settings, "DJANGO_STEPS_GRAPHQL", {}) or {}


def _read(spec: StreamSpec, after: int, until: int | None) -> list[WorkflowEvent]:
    qs = events_after(after, instance_id=spec.instance_id, workflow_id=spec.workflow_id, until=until)
    return list(qs[:BATCH])


def _baseline(spec: StreamSpec, after: int | None) -> tuple[int, int]:
    """(last position, last sequence) the stream starts after."""
    if spec.instance_id is not None:
        qs = WorkflowEvent.objects.filter(instance_id=spec.instance_id)
        if after is not None:
            qs = qs.filter(position__lte=after)
        row = qs.order_by("-position").values_list("position", "sequence").first()
        last_sequence = row[1] if row else 0
        if after is not None:
            return after, last_sequence
        return (row[0] if row else 0), last_sequence
    if after is not None:
        return after, 0
    return WorkflowEvent.objects.aggregate(m=Max("position"))["m"] or 0, 0


# --------------------------------------------------------------------------- the stream


class _Stream:
    def __init__(self, spec: StreamSpec, last: int, last_sequence: int) -> None:
        self.spec = spec
        self.last = last  # every event of the stream at or below this position was delivered
        self.last_sequence = last_sequence  # instance streams only

    def follows(self, message: dict) -> bool:
        """True if nothing of this stream can lie between the last delivered event and this one."""
        if self.spec.kind == "instance":
            return message["sequence"] == self.last_sequence + 1
        return message["position"] == self.last + 1

    def delivered(self, event: WorkflowEvent) -> None:
        self.last = max(self.last, event.position)
        self.last_sequence = max(self.last_sequence, event.sequence)

    async def history(self, until: int | None = None) -> AsyncIterator[WorkflowEvent]:
        """Committed events after ``last`` (up to ``until``), in position order."""
        while True:
            batch = await database_sync_to_async(_read)(self.spec, self.last, until)
            for event in batch:
                if event.position > self.last:
                    self.delivered(event)
                    yield event
            if len(batch) < BATCH:
                break
        if until is not None and until > self.last:
            # Nothing of this stream between: the range is known to be complete.
            self.last = until


async def stream_events(
    consumer: Any,
    spec: StreamSpec,
    *,
    after: int | None = None,
    catch_up_interval: float | None = None,
    retry_interval: float | None = None,
) -> AsyncIterator[WorkflowEvent]:
    """Every committed event of ``spec`` after ``after`` (or from now), once each, in commit order.

    ``consumer`` is the Channels consumer of the socket (strawberry's ``GraphQLWSConsumer``).
    """
    options = _options()
    if catch_up_interval is None:
        catch_up_interval = float(options.get("SUBSCRIPTION_CATCH_UP_SECONDS", 5.0))
    if retry_interval is None:
        retry_interval = float(options.get("SUBSCRIPTION_RETRY_SECONDS", 0.5))
    membership = membership_for(consumer)
    queue: asyncio.Queue = asyncio.Queue()
    message_type = spec.message_type
    group = spec.group
    membership.register(message_type, queue)
    membership.acquire(group)
    joined = False

    async def join() -> bool:
        try:
            await membership.join(group)
        except Exception as exc:
            logger.warning("Cannot join %s (%s); reading history until the channel layer is back", group, exc)
            return False
        return True

    try:
        # 1. Join first, then read history: nothing committed in between can be missed.
        joined = await join()
        last, last_sequence = await database_sync_to_async(_baseline)(spec, after)
        stream = _Stream(spec, last, last_sequence)
        async for event in stream.history():
            yield event

        while True:
            timeout = catch_up_interval if joined else retry_interval
            try:
                message = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                # 4. Idle (or the layer is down): refresh membership and read what was missed.
                joined = await join()
                async for event in stream.history():
                    yield event
                continue
            if message is _LAYER_FAILED or message.get("type") == _LAYER_FAILED["type"]:
                joined = await join()
                async for event in stream.history():
                    yield event
                continue
            if not spec.matches(message):
                continue  # another subscription's event on the same socket
            position = message["position"]
            if position <= stream.last:
                continue  # 2. already delivered (replay overlap, duplicate, late arrival)
            if stream.follows(message):
                event = event_from_message(message)
                stream.delivered(event)
                yield event
            else:
                # 3. Something is missing before this event: fill from history up to it.
                async for event in stream.history(until=position):
                    yield event
    finally:
        membership.unregister(message_type, queue)
        await membership.release(group)
