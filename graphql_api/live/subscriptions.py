"""The ``workflowInstanceEvents`` subscription: committed history, live, resumable by cursor.

Arguments are resolved and permissions checked before the stream starts, so a refused
subscription gets one error (``extensions.code``: ``PERMISSION_DENIED``, ``INVALID_ID``,
``NOT_FOUND``, ``INVALID_CURSOR`` for a string that is not a cursor, ``CURSOR_TOO_OLD`` for one
outside the replay window) on both WebSocket protocols. The replay reads only the events the
user may see, filtered in SQL (:func:`visible_to`). A well-formed cursor past the newest event
is not refused (that answer would let a binary search find the newest cursor of the whole
history, i.e. everyone's activity): it counts as the newest event the user may see
(:func:`resume_cursor`), so it behaves exactly like any cursor after their last event. The
stream itself (replay, live, gap fill, outage recovery, and the choice of cursor) is
:mod:`graphql_api.live.streams`. An event whose message would be too large for the socket ends
the subscription with ``EVENT_TOO_LARGE`` and the event's cursor (:mod:`graphql_api.live.adapter`;
the event being sent is named by :data:`sending_event`).

Access while the stream runs
============================

A socket outlives the checks made when it opened, so the subscription keeps checking
(:class:`Access`):

* **Its user.** Every ``SUBSCRIPTION_RECHECK_SECONDS`` (2) — before the next event is sent, and
  on a timer while no event comes — and before the next event after a revocation pushed by
  :mod:`graphql_api.live.revocation` (logout: the subscription ends without re-reading), the user is
  read again: through the socket's session when it
  has one (a logout deletes the session, a password change invalidates its hash), then their
  ``is_active`` and their permission to read instances. Once that fails, no further event data
  is sent and the subscription ends with ``PERMISSION_DENIED``.
* **Each event's instance** goes through the visibility rule (workflow-wide and all-instance
  streams carry only what the user may see; a per-instance stream ends with ``NOT_FOUND`` when
  the instance becomes hidden). Decisions are kept per visibility class and instance (per user
  and instance for a user of an opaque class: :func:`django_steps.authorization.visibility_class`)
  for the same few seconds and shared by every subscription of the process, so a thousand
  sockets of one class cost one query per instance, not a thousand. The class is taken again
  with the user.

While a subscription is parked (the hub writes shared results to its socket,
:mod:`graphql_api.live.direct`), the timer is not its own: one per user and session
(:class:`_Lease`) takes the decisions again half-way through their life for every parked
subscription of the pair, and when that check fails each of them wakes, checks on its own and
ends. A thousand dashboards on one session thus wake one task per interval, not a thousand.

Shared fan-out
==============

Every subscriber of one class that sends the same document and variables gets one execution
of the event, serialised once (:mod:`graphql_api.live.execution`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import router
from graphql import GraphQLError
from strawberry.types import Info

from django_steps import authorization, history
from django_steps.models import Workflow, WorkflowEvent, WorkflowInstance
from django_steps.selectors import newest_cursor
from graphql_api.api.ids import parse_global_id
from graphql_api.api.types import WorkflowEventType
from graphql_api.live import revocation, socket_auth
from graphql_api.live.direct import DirectSink
from graphql_api.live.execution import send_shared, share_base, share_key, shares_directly
from graphql_api.live.shared import direct_operation, sending_event, sharing_class
from graphql_api.live.streams import (
    IDLE,
    CursorTooOld,
    InvalidCursor,
    StreamSpec,
    parse_cursor,
    stream_events,
)
from graphql_api.security import permissions
from graphql_api.security.error_codes import ErrorCode
from graphql_api.security.errors import ApiError, query_error
from graphql_api.security.permissions import current_user

if TYPE_CHECKING:  # lazy below: inbox.py builds on this module
    from graphql_api.live.inbox import InboxEventType

__all__ = ["Subscription", "resolve_stream"]

logger = logging.getLogger("graphql_api.streams")

_DENIED = "You may no longer read workflow instances on this connection."


def resolve_stream(
    user,
    instance_id: str | None,
    workflow_name: str | None,
    after: int | None = None,
    *,
    info: Any = None,
) -> StreamSpec:
    """Check the user and the arguments of an event stream (``workflowInstanceEvents``,
    ``workflowEvents``): sync, in a worker thread under ASGI."""
    if user is None or not user.is_authenticated or not user.is_active:
        raise query_error(ErrorCode.PERMISSION_DENIED, "Log in to subscribe to workflow events.")
    if not authorization.may_read_instances(user):
        raise query_error(
            ErrorCode.PERMISSION_DENIED, "You do not have permission to view workflow instances."
        )
    workflow_id = None
    if workflow_name is not None:
        workflow_id = (
            Workflow.objects.filter(name=workflow_name).values_list("pk", flat=True).first()
        )
        if workflow_id is None:
            raise query_error(
                ErrorCode.WORKFLOW_NOT_FOUND, "No workflow has this name.", field="workflowName"
            )
    if instance_id is None:
        return StreamSpec(workflow_id=workflow_id)
    try:
        pk = parse_global_id(instance_id, "WorkflowInstance", field="instanceId", info=info)
    except ApiError as error:
        raise query_error(error.code, error.message, field=error.field) from error
    visible = authorization.visible_instances(user, WorkflowInstance.objects.filter(pk=pk))
    instance_workflow_id = visible.values_list("workflow_id", flat=True).first()
    if instance_workflow_id is None or (
        workflow_id is not None and instance_workflow_id != workflow_id
    ):
        raise query_error(
            ErrorCode.INSTANCE_NOT_FOUND,
            "No workflow instance has this ID" + (" in this workflow." if workflow_id else "."),
            field="instanceId",
        )
    return StreamSpec(instance_id=pk, workflow_id=instance_workflow_id)


def visible_to(user):
    """The SQL filter of the events ``user`` may see (for
    :func:`~graphql_api.live.streams.stream_events`)."""
    return lambda queryset: authorization.visible_events(user, queryset)


def resume_cursor(user, spec: StreamSpec, after: int | None) -> int | None:
    """``after``, or for a cursor past the newest event (one this history never handed out, e.g.
    after a restore) the newest event of the stream ``user`` may see: reading after either gives
    the same events, so nothing tells the two apart (sync)."""
    if after is None or not history.is_ahead(after, router.db_for_read(WorkflowEvent)):
        return after
    newest = newest_cursor(instance_id=spec.instance_id, workflow_id=spec.workflow_id, user=user)
    return min(after, newest)


def _resolve(user, instance_id, workflow_name, after, info) -> tuple[StreamSpec, int | None]:
    spec = resolve_stream(user, instance_id, workflow_name, after, info=info)
    return spec, resume_cursor(user, spec, after)


def _socket_turn(info: Info) -> asyncio.Lock | None:
    """The lock the subscriptions of one socket pass through, one at a time, before each event
    they send. Without it, 50 replays on one socket put 50 events' work into every turn of the
    event loop, and whatever else the process does (the socket's own ``complete`` first) waits
    behind it; with it (a fair lock: one waiter woken per release), each turn of the loop
    carries about one event per socket. The lock is never held across an ``await``, so an
    operation that ends anywhere cannot keep it."""
    consumer = info.context.get("ws") if isinstance(info.context, dict) else None
    if consumer is None:
        return None
    turn = getattr(consumer, "_django_steps_turn", None)
    if turn is None:
        turn = consumer._django_steps_turn = asyncio.Lock()
    return turn


# --------------------------------------------------------------------------- access


def _session_key(info: Info) -> str | None:
    consumer = info.context.get("ws") if isinstance(info.context, dict) else None
    session = (getattr(consumer, "scope", None) or {}).get("session")
    return getattr(session, "session_key", None)


class Access:
    """The user of one subscription, re-checked while it runs (see the module docstring)."""

    def __init__(self, info: Info, user: Any) -> None:
        self.user_pk = user.pk
        self.session_key = _session_key(info)
        self.ttl = socket_auth.recheck_seconds()
        self.user = user
        #: The user's visibility class (None: opaque, decisions per user), taken again with
        #: the user: see :func:`django_steps.authorization.visibility_class`.
        self.visibility_class: Any = None

    def copy(self) -> Access:
        """The same user, session and decisions; checks of the copy (a lease's) replace its
        ``user`` and ``visibility_class``, never this one's."""
        return copy.copy(self)

    async def check_user(self, ahead: float = 0.0) -> None:
        """Raise ``PERMISSION_DENIED`` once the user may no longer read instances (the user is
        read again as for every operation on a socket: :func:`socket_auth.user_now`; at once,
        whatever the interval, after a revocation: :mod:`graphql_api.live.revocation`).
        ``ahead``: decisions kept for less than that many seconds are taken again now."""
        if revocation.session_ended(self.session_key):
            raise query_error(ErrorCode.PERMISSION_DENIED, _DENIED)
        # After a pushed change the decisions below are taken again (socket_auth.Decisions).
        user = await socket_auth.user_now(self.user_pk, self.session_key, ahead=ahead)
        if user is not None:
            may_read = await socket_auth.DECISIONS.get(
                ("may-read", self.user_pk, self.session_key),
                self.ttl,
                lambda: authorization.may_read_instances(user),
                ahead=ahead,
            )
            if not may_read:
                user = None
        if user is None:
            raise query_error(ErrorCode.PERMISSION_DENIED, _DENIED)
        self.visibility_class = await socket_auth.DECISIONS.get(
            ("class", self.user_pk, self.session_key),
            self.ttl,
            lambda: authorization.visibility_class(user),
            ahead=ahead,
        )
        self.user = user

    def keep_sink(self, sink: DirectSink, base: tuple | None, info: Info) -> None:
        """Just checked: the hub may write to ``sink`` (its share key as of this check) while
        the decisions of its user and session hold (:class:`_Lease`, kept fresh for every sink
        of the pair by one timer) and no revocation came for the user since."""
        sharing_class.set(self.visibility_class)
        lease = _LEASES.get((self.user_pk, self.session_key))
        if lease is None or lease.ended:
            lease = _LEASES[(self.user_pk, self.session_key)] = _Lease(self)
        lease.took(self)
        sink.checked(share_key(base, info.context), lease, self.visibility_class)
        lease.add(sink)

    def decisions_until(self) -> float:
        """Until when the decisions on the user (as :meth:`check_user` took them) hold."""
        keys = [(kind, self.user_pk, self.session_key) for kind in ("user", "may-read", "class")]
        return socket_auth.DECISIONS.expiry(keys)

    async def may_see(self, instance_id: int) -> bool:
        """Whether the user may see the instance: decided once per visibility class (the same
        for all its members) and instance, or per user for an opaque one, every few seconds."""
        user = self.user

        def compute() -> bool:
            return authorization.visible_instances(
                user, WorkflowInstance.objects.filter(pk=instance_id)
            ).exists()

        if self.visibility_class is not None:
            key: tuple = ("instance of class", self.visibility_class, instance_id)
        else:
            key = ("instance", self.user_pk, self.session_key, instance_id)
        return await socket_auth.DECISIONS.get(key, self.ttl, compute)


class _Lease:
    """The access decisions of one user and session in this process, for every direct sink of
    that pair: the hub writes to a sink while they hold (:meth:`DirectSink.ready`). One timer
    takes them again shortly before they expire, as each subscription's own timer did, so a
    thousand parked subscriptions of one session wake no task of theirs between events. When the
    check fails (or cannot be made), the lease ends and wakes each of its streams, which checks
    on its own (and ends with ``PERMISSION_DENIED``, or takes a new lease)."""

    def __init__(self, access: Access) -> None:
        # Its own copy: the lease re-checks on its timer, apart from the stream it came from.
        self.access = access.copy()
        self.ttl = access.ttl
        self.valid_until = 0.0
        self.epoch: Any = None
        self.visibility_class: Any = None
        self.sinks: set[DirectSink] = set()
        self.ended = False
        self.task: asyncio.Task | None = None

    def took(self, access: Access) -> None:
        """``access`` was just checked (the same decisions as this lease's): note them."""
        self.valid_until = access.decisions_until()
        self.epoch = revocation.user_epoch(access.user_pk)
        self.visibility_class = access.visibility_class

    def add(self, sink: DirectSink) -> None:
        self.sinks.add(sink)
        if self.task is None:
            self.task = asyncio.ensure_future(self._keep_fresh())

    def discard(self, sink: DirectSink) -> None:
        self.sinks.discard(sink)
        if not self.sinks and self.task is not None and not self.ended:
            self._end()
            self.task.cancel()

    async def _keep_fresh(self) -> None:
        access = self.access
        try:
            while self.sinks:
                # Half-way through the decisions' life: one timer for the pair, so it can
                # afford the margin against a busy loop or database thread.
                delay = self.valid_until - time.monotonic() - self.ttl / 2
                if delay > 0:
                    await asyncio.sleep(delay)
                if not self.sinks:
                    return
                await access.check_user(self.ttl * 3 / 4)
                self.took(access)
                if self.valid_until - time.monotonic() <= self.ttl / 4:
                    return  # not kept (e.g. a revocation meanwhile): each stream checks
        except Exception as error:  # refused, or the check failed: each stream checks
            if not isinstance(error, GraphQLError):
                logger.warning("Re-checking a socket user failed (%r)", error)
        finally:
            self._end()

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.valid_until = 0.0
        if _LEASES.get((self.access.user_pk, self.access.session_key)) is self:
            del _LEASES[(self.access.user_pk, self.access.session_key)]
        sinks, self.sinks = self.sinks, set()
        for sink in sinks:
            sink.wake()


#: (user pk, session key) -> its :class:`_Lease` in this process.
_LEASES: dict[tuple, _Lease] = {}


async def _guarded(
    events: AsyncGenerator[WorkflowEvent, None],
    access: Access,
    spec: StreamSpec,
    info: Info,
    sink: DirectSink | None = None,
    base: tuple | None = None,
):
    """``events`` (a :func:`~graphql_api.live.streams.stream_events` given ``idle=access.ttl``),
    re-checking access before each one and every few seconds while idle (:data:`IDLE`); the
    ``sink`` the hub writes to meanwhile learns the outcome (:meth:`Access.keep_sink`)."""
    try:
        async for event in events:
            # While idle with a sink, the stream wakes shortly before the decisions expire
            # (graphql_api.live.streams): take them again then, so the hub may go on writing.
            await access.check_user(access.ttl / 2 if sink is not None and event is IDLE else 0.0)
            if sink is not None:
                access.keep_sink(sink, base, info)
            if event is IDLE:
                continue
            if not await access.may_see(event.instance_id):
                if spec.instance_id is not None:
                    raise query_error(
                        ErrorCode.INSTANCE_NOT_FOUND,
                        "No workflow instance has this ID.",
                        field="instanceId",
                    )
                continue
            permissions.begin_event(info, event.instance_id)
            yield event
    finally:
        if sink is not None and sink.lease is not None:
            sink.lease.discard(sink)
        await events.aclose()


#: The guarded event stream, for the other subscriptions riding it (:mod:`graphql_api.live.counts`).
guarded_events = _guarded


@strawberry.type(
    description="Real-time updates, over WebSocket (`graphql-transport-ws` or `graphql-ws`)."
)
class Subscription:
    @strawberry.subscription(
        description=(
            "Every change committed to workflow instances the viewer may see, as it happens, in "
            "commit order: one instance (`instanceId`), one workflow (`workflowName`), or, with "
            "neither, all of them. Needs `view_workflowinstance`. With `after` (the `cursor` of "
            "the last event a client received), the stored events after it are replayed first and "
            "live ones follow, with no gap and no duplicate, so a reconnecting client misses "
            "nothing. Events are sent only once their transaction has committed. Ends with "
            "PERMISSION_DENIED once the viewer logs out, is deactivated or loses the permission, "
            "and with EVENT_TOO_LARGE (the event's `cursor` in `extensions`) when an event is too "
            "large for one WebSocket message: read it and what follows with `workflowEvents`, "
            "then subscribe again with `after`. With `after`, only the events the viewer may see "
            "are read; a cursor with more than `SUBSCRIPTION_REPLAY_WINDOW` such events after it "
            "is refused with CURSOR_TOO_OLD: catch up with `workflowEvents` first."
        )
    )
    async def workflow_instance_events(
        self,
        info: Info,
        instance_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Global ID of one `WorkflowInstance` to follow."),
        ] = None,
        workflow_name: Annotated[
            str | None,
            strawberry.argument(description="Name of a workflow: follow all its instances."),
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Resume after this event `cursor` (replays what was missed)."
            ),
        ] = None,
    ) -> AsyncGenerator[WorkflowEventType, None]:
        try:
            position = parse_cursor(after)
        except InvalidCursor as error:
            raise query_error(error.code, str(error)) from error
        user = current_user(info)
        spec, position = await database_sync_to_async(_resolve)(
            user, instance_id, workflow_name, position, info
        )
        access = Access(info, user)
        direct = direct_operation.get() if shares_directly(info) else None
        raw = info._raw_info
        base = share_base(raw.schema, raw.operation, raw.fragments, raw.variable_values)
        # Documents that read the viewer are executed per user: no one to write to directly.
        sink = None
        if direct is not None and base is not None and not base[2]:
            sink = DirectSink(direct, raw.operation, access.user_pk, access.session_key)
        events = stream_events(
            get_channel_layer(),
            spec,
            after=position,
            visible=visible_to(user),
            idle=access.ttl,
            sink=sink,
        )
        try:
            # aclosing: when the operation ends (complete, close, cancel), the stream is closed
            # now, not whenever the garbage collector finalises it.
            turn = _socket_turn(info)
            guarded = _guarded(events, access, spec, info, sink, base)
            async with contextlib.aclosing(guarded) as guarded:
                async for event in guarded:
                    if turn is not None:
                        async with turn:  # wait for this socket's turn (see _socket_turn)
                            pass
                    # This generator runs in the operation's task: the executor and the sender
                    # see these (graphql_api.live.execution, graphql_api.live.adapter).
                    sending_event.set(event)
                    sharing_class.set(access.visibility_class)
                    if direct is not None and await send_shared(event, base, info, direct):
                        continue  # another subscriber's result, sent as is: nothing to execute
                    yield event
        except CursorTooOld as error:
            raise query_error(error.code, str(error)) from error

    @strawberry.subscription(
        description=(
            "The viewer's inbox as it changes: a message each time a work item they are "
            "concerned by (a candidate, in person or through a group, or its claimant) is OPENED, "
            "CLAIMED (by them or someone else), RELEASED, DELEGATED or CLOSED, in commit order. "
            "The same cursors as `workflowInstanceEvents`: with `after`, what followed it is "
            "replayed first, with no gap and no duplicate; one change can close an item and open "
            "the next (two messages, one cursor). Ends with PERMISSION_DENIED once the viewer may "
            "no longer read instances."
        )
    )
    async def inbox_events(
        self,
        info: Info,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Resume after this `cursor` (replays what was missed)."
            ),
        ] = None,
    ) -> AsyncGenerator[Annotated[InboxEventType, strawberry.lazy("graphql_api.live.inbox")], None]:
        from graphql_api.live.inbox import inbox_events  # a cycle: see TYPE_CHECKING above

        async with contextlib.aclosing(inbox_events(info, after)) as messages:
            async for message in messages:
                yield message
