"""The stored history as the event streams read it: cursors, which events a stream carries, and
the reads themselves (batches with everything attached, bounded replay pages).

See :mod:`graphql_api.live.streams` for the cursor and the replay; everything here is importable
from there too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

__all__ = [
    "CursorTooOld",
    "InvalidCursor",
    "StreamSpec",
    "Visible",
    "format_cursor",
    "parse_cursor",
    "read_events",
]

BATCH = 500
#: Events per replay read: small, so that a cancelled stream stops after one short read.
REPLAY_PAGE = 100
#: PostgreSQL ``statement_timeout`` of one replay page (milliseconds).
REPLAY_STATEMENT_TIMEOUT_MS = 5_000
#: The default of ``SUBSCRIPTION_REPLAY_WINDOW``: most events a replay sends before going live.
REPLAY_WINDOW = 10_000
_CURSOR_RE = re.compile(r"^[0-9]{1,39}$")
#: Rows joined to every event read (few: PostgreSQL's planning time grows fast with joins). Steps,
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
