"""The ``inboxEvents`` subscription: the viewer's inbox as it changes, resumable by cursor.

It is the event stream of :mod:`graphql_api.live.streams` (the same hub, replay, gap fill and
cursors as ``workflowInstanceEvents``, and the same access checks while it runs:
:func:`graphql_api.live.subscriptions._guarded`), narrowed to the history rows that touch a work
item the viewer is concerned by — a candidate (in person or through a group) or its claimant —
and turned into one :class:`InboxEventType` per work item such a row touches: ``OPENED`` when
an instance enters an assigned step, ``CLOSED`` when it leaves it, ``CLAIMED``, ``RELEASED``,
``DELEGATED``. One change can close one item and open the next: both messages carry that
change's cursor, CLOSED first. Resuming with ``after`` (the last cursor received) replays what
followed, exactly as for the event streams.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db.models import Q, QuerySet
from strawberry.types import Info

from django_steps import authorization, selectors
from django_steps.choices import FINISHED_STATES, EventKind
from django_steps.models import WorkflowEvent, WorkItem
from graphql_api.api.inbox import WorkItemType
from graphql_api.api.types import WorkflowEventType
from graphql_api.live.streams import (
    CursorTooOld,
    InvalidCursor,
    StreamSpec,
    parse_cursor,
    stream_events,
)
from graphql_api.live.subscriptions import Access, _guarded, resume_cursor
from graphql_api.security.error_codes import ErrorCode
from graphql_api.security.errors import query_error
from graphql_api.security.permissions import current_user

__all__ = ["InboxEventType", "inbox_events", "inbox_messages"]

#: The notes about a work item (their ``detail`` names it: ``{"workItem": id}``).
_ITEM_NOTES = (EventKind.CLAIMED, EventKind.RELEASED, EventKind.DELEGATED)
#: The events that can open or close a work item.
_MOVES = (EventKind.STARTED, EventKind.ADVANCED, EventKind.MIGRATED, *FINISHED_STATES)


@strawberry.enum(name="InboxEventKind", description="What happened to a work item.")
class InboxEventKind(enum.Enum):
    OPENED = strawberry.enum_value("OPENED", description="An instance entered an assigned step.")
    CLAIMED = strawberry.enum_value("CLAIMED", description="Someone claimed it.")
    RELEASED = strawberry.enum_value("RELEASED", description="Its claimant gave it back.")
    DELEGATED = strawberry.enum_value("DELEGATED", description="It was handed to a user.")
    CLOSED = strawberry.enum_value("CLOSED", description="The instance left the step.")


@strawberry.type(
    name="InboxEvent", description="A change of a work item the viewer is concerned by."
)
class InboxEventType:
    kind: InboxEventKind = strawberry.field(description="What happened.")
    work_item: WorkItemType = strawberry.field(description="The work item, as it is now.")
    event: WorkflowEventType = strawberry.field(description="The history row that recorded it.")
    cursor: str = strawberry.field(
        description="The event's cursor: pass it as `after` to resume after this message."
    )


def _concerning(user: Any) -> QuerySet[WorkItem]:
    return selectors.work_items_touching(user)


def inbox_filter(user: Any):
    """The SQL filter of the history rows that touch ``user``'s work items (for the replay)."""

    def visible(queryset: QuerySet[WorkflowEvent]) -> QuerySet[WorkflowEvent]:
        items = _concerning(user)
        touching = (
            Q(pk__in=items.values("opened_event_id"))
            | Q(pk__in=items.values("closed_event_id"))
            | Q(kind__in=_ITEM_NOTES, instance_id__in=items.values("instance_id"))
        )
        return authorization.visible_events(user, queryset.filter(touching))

    return visible


def inbox_messages(user: Any, event: WorkflowEvent) -> list[InboxEventType]:
    """The inbox messages ``event`` makes for ``user`` (none when it touches none of their
    items). Sync: one query, only for events that can touch a work item."""
    if event.kind in _ITEM_NOTES:
        item_id = (event.detail or {}).get("workItem")
        match = Q(pk=item_id)
    elif event.kind in _MOVES:
        match = Q(opened_event_id=event.pk) | Q(closed_event_id=event.pk)
    else:
        return []
    items = list(
        _concerning(user)
        .filter(match)
        .select_related("instance", "step", "claimed_by")
        .order_by("pk")  # the closed item (older) first
    )
    messages = []
    for item in items:
        if event.kind in _ITEM_NOTES:
            kind = InboxEventKind[event.kind]
        else:
            kind = (
                InboxEventKind.CLOSED if item.closed_event_id == event.pk else InboxEventKind.OPENED
            )
        messages.append(
            InboxEventType(kind=kind, work_item=item, event=event, cursor=str(event.cursor))
        )
    return messages


def _start(user: Any, after: int | None) -> int | None:
    if user is None or not user.is_authenticated or not user.is_active:
        raise query_error(ErrorCode.PERMISSION_DENIED, "Log in to follow your inbox.")
    if not authorization.may_read_instances(user):
        raise query_error(
            ErrorCode.PERMISSION_DENIED, "You do not have permission to view workflow instances."
        )
    return resume_cursor(user, StreamSpec(), after)


async def inbox_events(info: Info, after: str | None) -> AsyncGenerator[InboxEventType, None]:
    """The messages of ``Subscription.inboxEvents`` (see the module docstring)."""
    try:
        position = parse_cursor(after)
    except InvalidCursor as error:
        raise query_error(error.code, str(error)) from error
    user = current_user(info)
    position = await database_sync_to_async(_start)(user, position)
    spec = StreamSpec()
    access = Access(info, user)
    events = stream_events(
        get_channel_layer(), spec, after=position, visible=inbox_filter(user), idle=access.ttl
    )
    try:
        async with contextlib.aclosing(_guarded(events, access, spec, info)) as guarded:
            async for event in guarded:
                if event.kind not in _ITEM_NOTES and event.kind not in _MOVES:
                    continue  # cannot touch a work item: no query
                for message in await database_sync_to_async(inbox_messages)(access.user, event):
                    yield message
    except CursorTooOld as error:
        raise query_error(error.code, str(error)) from error
