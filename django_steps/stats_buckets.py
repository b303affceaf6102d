"""The figures of :mod:`django_steps.stats` bucket by bucket, read from the history: what each
bucket's events changed (per status, and starts and ends), and the visits that ended in it.

A bucket's figures are those of its own events only, so once the bucket is over (and its
events final) they never change: :mod:`django_steps.stats` keeps them in Django's cache and
reads here only the buckets it does not hold. The counts of now (the unfinished instances per
status) are read in the same statement as the moves, so no change can fall between the two.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, router
from django.db.models import (
    BooleanField,
    CharField,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import Window as Over
from django.db.models.functions import Lag, Trunc
from django.utils import timezone

from . import authorization, stats_sql
from .choices import FINISHED_STATES, UNFINISHED_STATES, EventKind, InstanceState
from .models import WorkflowEvent, WorkflowInstance

__all__ = ["Figures", "aware", "floor", "read"]

TRUNC = {"HOUR": "hour", "DAY": "day"}


@dataclass
class Figures:
    """One bucket's events: ``changes`` to the unfinished instances per status id, ``kinds``
    (instances started, completed, cancelled: ``{EventKind: n}``) and ``spent``, the durations
    in seconds of the visits that ended in it per step id, ascending."""

    changes: dict[int, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    spent: dict[int, list[float]] = field(default_factory=dict)


def aware(value: dt.datetime) -> dt.datetime:
    if timezone.is_naive(value):
        return timezone.make_aware(value, dt.UTC)
    return value.astimezone(dt.UTC)


def floor(value: dt.datetime, bucket: str) -> dt.datetime:
    value = value.replace(minute=0, second=0, microsecond=0)
    return value.replace(hour=0) if bucket == "DAY" else value


def _instances(workflow: Any, actor: Any) -> QuerySet:
    rows = WorkflowInstance.objects.filter(workflow=workflow).order_by()
    return rows if actor is None else authorization.visible_instances(actor, rows)


def _events(workflow: Any, actor: Any) -> QuerySet:
    rows = WorkflowEvent.objects.filter(workflow=workflow).order_by()
    return rows if actor is None else authorization.visible_events(actor, rows)


#: Events that move an instance between the counts: it changes its status or whether it is
#: finished (a start has no status before it). Notes move none.
_MOVES = Q(from_status__isnull=True) | ~Q(from_status=F("to_status")) | ~Q(from_state=F("state"))

#: Events after which the instance is on another step (or on its first): where a visit starts.
_ENTERS = Q(from_step__isnull=True) | ~Q(from_step=F("to_step"))

#: The event kind that finishes an instance in each finished state.
_FINISHED_BY = {
    InstanceState.COMPLETED: EventKind.COMPLETED,
    InstanceState.CANCELLED: EventKind.CANCELLED,
}

#: Events that finish an instance.
_FINISHES = Q(from_state__in=UNFINISHED_STATES, state__in=FINISHED_STATES)

#: Events that end a visit: leaving the step, or finishing the instance on it.
_LEAVES = Q(from_state__in=UNFINISHED_STATES) & (
    ~Q(from_step=F("to_step")) | Q(state__in=FINISHED_STATES)
)


def _moves(
    workflow: Any, actor: Any, since: dt.datetime, bucket: str
) -> tuple[dict[int, int], dict[dt.datetime, Figures]]:
    """The unfinished instances per current status, and the changes and kinds of the events
    since ``since`` (all of them, the window's end aside: a series walks back from now)."""
    nothing = Value(None, output_field=DateTimeField())
    now = (
        _instances(workflow, actor)
        .filter(state__in=UNFINISHED_STATES)
        .annotate(
            start=nothing,
            from_status=Value(None, output_field=IntegerField()),
            from_state=Value(None, output_field=CharField()),
        )
        .values_list("start", "from_status", "from_state", "current_step_status", "state")
        .annotate(n=Count("*"))
    )
    moves = (
        _events(workflow, actor)
        .filter(_MOVES, created_at__gte=since)
        .annotate(start=Trunc("created_at", TRUNC[bucket], tzinfo=dt.UTC))
        .values_list("start", "from_status", "from_state", "to_status", "state")
        .annotate(n=Count("pk"))
    )
    figures: dict[dt.datetime, Figures] = defaultdict(Figures)
    current: dict[int, int] = {}
    for start, from_status, from_state, to_status, state, n in moves.union(now, all=True):
        if start is None:
            current[to_status] = current.get(to_status, 0) + n
            continue
        kinds, changes = figures[aware(start)].kinds, figures[aware(start)].changes
        kind = None
        if from_state is None:  # a start (the only event without a state before it)
            kind = EventKind.STARTED
        elif state in FINISHED_STATES and from_state in UNFINISHED_STATES:
            kind = _FINISHED_BY[state]
        if kind is not None:
            kinds[kind] = kinds.get(kind, 0) + n
        if from_status is not None and from_state in UNFINISHED_STATES:
            changes[from_status] = changes.get(from_status, 0) - n
        if state in UNFINISHED_STATES:
            changes[to_status] = changes.get(to_status, 0) + n
    return current, figures


def _visits(workflow: Any, actor: Any, since: dt.datetime, until: dt.datetime) -> QuerySet:
    """The visits that ended in ``[since, until)``: ``(step, left at, spent)`` per leaving
    event (SQLite: each visit's start looked up through the ``(instance, sequence)`` index)."""
    entered = (
        WorkflowEvent.objects.filter(
            _ENTERS, instance_id=OuterRef("instance_id"), sequence__lt=OuterRef("sequence")
        )
        .order_by("-sequence")
        .values("created_at")[:1]
    )
    spent = ExpressionWrapper(
        F("created_at") - Subquery(entered, output_field=DateTimeField()),
        output_field=DurationField(),
    )
    return (
        _events(workflow, actor)
        .filter(_LEAVES, created_at__gte=since, created_at__lt=until)
        .annotate(spent=spent)
        .values_list("from_step", "created_at", "spent")
    )


def _boundaries(workflow: Any, actor: Any, since: dt.datetime, until: dt.datetime) -> QuerySet:
    """The events of ``[since, until)`` that enter a step or finish an instance, each with the
    time of the instance's previous one there (``entered``; see
    :func:`django_steps.stats_sql.visit_durations`)."""
    previous = Over(Lag("created_at"), partition_by=[F("instance_id")], order_by="sequence")
    return (
        _events(workflow, actor)
        .filter(_ENTERS | _FINISHES, created_at__gte=since, created_at__lt=until)
        .annotate(entered=previous, leaves=ExpressionWrapper(_LEAVES, BooleanField()))
        .values_list("instance_id", "sequence", "created_at", "from_step_id", "leaves", "entered")
    )


def _spent(
    workflow: Any, actor: Any, since: dt.datetime, until: dt.datetime, bucket: str
) -> list[tuple[int, dt.datetime, list[float]]]:
    using = router.db_for_read(WorkflowEvent)
    if connections[using].vendor == "postgresql":
        rows = stats_sql.visit_durations(
            _boundaries(workflow, actor, since, until), TRUNC[bucket], using
        )
        return [(step, aware(start), list(values)) for step, start, values in rows]
    spent: dict[tuple[int, dt.datetime], list[float]] = defaultdict(list)
    for step, left, duration in _visits(workflow, actor, since, until):
        if duration is not None:
            spent[step, floor(aware(left), bucket)].append(duration.total_seconds())
    return [(step, start, sorted(values)) for (step, start), values in spent.items()]


def read(
    workflow: Any, actor: Any, since: dt.datetime, until: dt.datetime, bucket: str
) -> tuple[dict[int, int], dict[dt.datetime, Figures]]:
    """The unfinished instances per status now, and the figures of every bucket from ``since``
    on: changes and kinds up to now, visits of the buckets before ``until`` (those of the
    window). Only what ``actor`` may see, when given."""
    current, figures = _moves(workflow, actor, since, bucket)
    if since < until:  # (a past window whose buckets are all kept reads no visit)
        for step, start, values in _spent(workflow, actor, since, until, bucket):
            figures[start].spent[step] = values
    return current, dict(figures)
