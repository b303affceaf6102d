"""A workflow's figures for dashboards, over a bounded window of time, from its history.

:func:`workflow_stats` answers three questions about one workflow, bucket by bucket (hours or
days, aligned in UTC), from ``since`` to ``until``:

* **how many instances were on each step and status** at the end of each bucket (unfinished
  ones: ``ACTIVE`` or ``ON_HOLD``; the bucket still running counts now);
* **how long instances stayed on each step**, median and 90th percentile, over the visits that
  ended in the window (a visit runs from the event that entered the step — the start, an
  advance, a migration to another step — to the one that left it or finished the instance);
* **throughput**: instances started, completed and cancelled per bucket.

Computed in SQL from the history, grouped in the database: per-status counts are the
instances' current statuses less what the events after each bucket changed (one statement: the
current counts and the window's events grouped by bucket and move, so the cost follows the
events of the window and of the time since, not the whole history); the durations pair each
event that left a step in the window with the one that entered it (on PostgreSQL by ``lag`` over
the window's own events, with ``percentile_cont`` in the database: :mod:`django_steps.stats_sql`;
on SQLite through the ``(instance, sequence)`` index, with the same interpolation in Python).

The window is bounded: at most :data:`MAX_BUCKETS` buckets (96 days, or 96 hours); by default
the last :data:`DEFAULT_BUCKETS` buckets up to now. With ``actor``, only the instances (and
events) the actor may see are counted — the one visibility rule of
:mod:`django_steps.authorization`, applied as a filter of the same queries, and skipped when it
keeps every instance of the workflow (checked from the models its instances are on, before and
after counting); without, the caller is trusted and everything counts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connections, router, transaction
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
    TextChoices,
    Value,
)
from django.db.models.expressions import Window as Over
from django.db.models.functions import Lag, Trunc
from django.utils import timezone

from . import authorization, stats_sql
from .choices import FINISHED_STATES, UNFINISHED_STATES, EventKind, InstanceState
from .models import Workflow, WorkflowEvent, WorkflowInstance, WorkflowStep, WorkflowStepStatus

__all__ = [
    "DEFAULT_BUCKETS",
    "MAX_BUCKETS",
    "PERCENTILES",
    "Bucket",
    "StatusSeries",
    "StepSeries",
    "StepTime",
    "Throughput",
    "Window",
    "WindowError",
    "WorkflowStats",
    "stats_window",
    "workflow_stats",
]

#: The most buckets one window may hold (the points of every series).
MAX_BUCKETS = 96


class Bucket(TextChoices):
    """The length of one point of a series, aligned in UTC."""

    HOUR = "HOUR", "Hour"
    DAY = "DAY", "Day"


#: Buckets of the default window (ending with the one running now).
DEFAULT_BUCKETS = {Bucket.HOUR: 48, Bucket.DAY: 30}

_LENGTH = {Bucket.HOUR: dt.timedelta(hours=1), Bucket.DAY: dt.timedelta(days=1)}
_TRUNC = {Bucket.HOUR: "hour", Bucket.DAY: "day"}

#: The percentiles of the time spent on a step.
PERCENTILES = (0.5, 0.9)


class WindowError(ValueError):
    """A window that is not one: ``field`` names the argument at fault (``since``, ``until``)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Window:
    """``buckets`` buckets of ``bucket`` from ``since`` (a bucket's start) to ``until`` (the
    end of the last bucket, exclusive)."""

    since: dt.datetime
    until: dt.datetime
    bucket: str

    @property
    def length(self) -> dt.timedelta:
        return _LENGTH[Bucket(self.bucket)]

    @property
    def buckets(self) -> int:
        return int((self.until - self.since) / self.length)

    @property
    def starts(self) -> list[dt.datetime]:
        return [self.since + i * self.length for i in range(self.buckets)]


def _aware(value: dt.datetime) -> dt.datetime:
    if timezone.is_naive(value):
        return timezone.make_aware(value, dt.UTC)
    return value.astimezone(dt.UTC)


def _floor(value: dt.datetime, bucket: str) -> dt.datetime:
    value = value.replace(minute=0, second=0, microsecond=0)
    return value.replace(hour=0) if bucket == Bucket.DAY else value


def stats_window(
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    bucket: str = Bucket.DAY,
    *,
    now: dt.datetime | None = None,
) -> Window:
    """The window of whole buckets covering ``[since, until)``: ``since`` rounded down to a
    bucket's start, ``until`` up to a bucket's end. ``until`` defaults to now, ``since`` to
    :data:`DEFAULT_BUCKETS` buckets before the end. Raises :class:`WindowError` for an empty
    window or one of more than :data:`MAX_BUCKETS` buckets."""
    try:
        bucket = Bucket(bucket)
    except ValueError:
        raise WindowError("`bucket` must be HOUR or DAY.", "bucket") from None
    length = _LENGTH[bucket]
    end = _aware(until) if until is not None else _aware(now or timezone.now())
    last = _floor(end, bucket)
    if last != end or until is None:  # the bucket holding `end` is in the window
        last += length
    if since is None:
        start = last - DEFAULT_BUCKETS[bucket] * length
    else:
        start = _floor(_aware(since), bucket)
        if start >= last or _aware(since) >= end:
            raise WindowError("`since` must be before `until`.", "since")
    window = Window(start, last, bucket)
    if window.buckets > MAX_BUCKETS:
        raise WindowError(
            f"The window holds {window.buckets} buckets; at most {MAX_BUCKETS} "
            f"(move `since` closer to `until`, or use days).",
            "since",
        )
    return window


@dataclass(frozen=True)
class Throughput:
    """Instances started, completed and cancelled in the bucket starting at ``start``."""

    start: dt.datetime
    started: int
    completed: int
    cancelled: int


@dataclass(frozen=True)
class StatusSeries:
    """Unfinished instances on a status at the end of each bucket (``counts[i]`` for the i-th)."""

    status_id: int
    step_id: int
    counts: list[int]


@dataclass(frozen=True)
class StepSeries:
    """Unfinished instances on a step at the end of each bucket (its statuses' sum)."""

    step_id: int
    counts: list[int]


@dataclass(frozen=True)
class StepTime:
    """The visits of a step that ended in the window: how many, and the time they took."""

    step_id: int
    visits: int
    p50: dt.timedelta
    p90: dt.timedelta


@dataclass(frozen=True)
class WorkflowStats:
    workflow: Workflow
    window: Window
    throughput: list[Throughput]
    on_status: list[StatusSeries]
    on_step: list[StepSeries]
    time_on_step: list[StepTime]


# --------------------------------------------------------------------------- the rows counted


def _instances(workflow: Workflow, actor: Any) -> QuerySet:
    rows = WorkflowInstance.objects.filter(workflow=workflow).order_by()
    return rows if actor is None else authorization.visible_instances(actor, rows)


def _events(workflow: Workflow, actor: Any) -> QuerySet:
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


def _on_status(
    workflow: Workflow, actor: Any, window: Window
) -> tuple[dict[int, list[int]], dict[dt.datetime, dict[str, int]]]:
    """``{status id: counts per bucket}`` and ``{bucket start: {kind: n}}`` (starts and ends:
    an event with no state before it is a start, one from an unfinished state to a finished one
    completes or cancels).

    One statement (so one snapshot: no change can fall between the two halves): the unfinished
    instances per current status (rows without a bucket), and the events since the window's
    start that moved instances between statuses, grouped by bucket and move."""
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
        .filter(_MOVES, created_at__gte=window.since)
        .annotate(start=Trunc("created_at", _TRUNC[Bucket(window.bucket)], tzinfo=dt.UTC))
        .values_list("start", "from_status", "from_state", "to_status", "state")
        .annotate(n=Count("pk"))
    )
    changes: dict[dt.datetime, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    kinds: dict[dt.datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    current: dict[int, int] = {}
    for start, from_status, from_state, to_status, state, n in moves.union(now, all=True):
        if start is None:
            current[to_status] = current.get(to_status, 0) + n
            continue
        start = _aware(start)
        if from_state is None:  # a start (the only event without a state before it)
            kinds[start][EventKind.STARTED] += n
        elif state in FINISHED_STATES and from_state in UNFINISHED_STATES:
            kinds[start][_FINISHED_BY[state]] += n
        if from_status is not None and from_state in UNFINISHED_STATES:
            changes[start][from_status] -= n
        if state in UNFINISHED_STATES:
            changes[start][to_status] += n
    statuses = set(current) | {s for per in changes.values() for s in per}
    series = {status: [0] * window.buckets for status in statuses}
    # Walk back from now: at the end of a bucket, a status held what it holds now less what the
    # events since then brought to it.
    later = sorted(changes, reverse=True)
    running = {status: current.get(status, 0) for status in statuses}
    for index in reversed(range(window.buckets)):
        end = window.since + (index + 1) * window.length
        while later and later[0] >= end:  # (none for the bucket running now: it holds `current`)
            for status, n in changes[later.pop(0)].items():
                running[status] -= n
        for status in statuses:
            series[status][index] = running[status]
    return series, kinds


def _percentile(values: list[float], fraction: float) -> float:
    """``percentile_cont``: linear interpolation between the closest ranks."""
    position = fraction * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _visits(workflow: Workflow, actor: Any, window: Window) -> QuerySet:
    """The visits that ended in the window: ``(step, spent)`` per leaving event."""
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
        .filter(_LEAVES, created_at__gte=window.since, created_at__lt=window.until)
        .annotate(spent=spent)
        .values_list("from_step", "spent")
    )


def _boundaries(workflow: Workflow, actor: Any, window: Window) -> QuerySet:
    """The window's events that enter a step or finish an instance, each with the time of the
    instance's previous one in the window (``entered``; see
    :func:`django_steps.stats_sql.visit_percentiles`)."""
    previous = Over(Lag("created_at"), partition_by=[F("instance_id")], order_by="sequence")
    return (
        _events(workflow, actor)
        .filter(_ENTERS | _FINISHES, created_at__gte=window.since, created_at__lt=window.until)
        .annotate(entered=previous, leaves=ExpressionWrapper(_LEAVES, BooleanField()))
        .values_list("instance_id", "sequence", "created_at", "from_step_id", "leaves", "entered")
    )


def _time_on_step(workflow: Workflow, actor: Any, window: Window) -> list[StepTime]:
    using = router.db_for_read(WorkflowEvent)
    if connections[using].vendor == "postgresql":
        steps = WorkflowStep.all_objects.filter(workflow=workflow).values_list("pk", flat=True)
        rows = stats_sql.visit_percentiles(
            _boundaries(workflow, actor, window), list(steps), PERCENTILES, using
        )
    else:
        visits = _visits(workflow, actor, window)
        spent: dict[int, list[float]] = defaultdict(list)
        for step, duration in visits:
            if duration is not None:
                spent[step].append(duration.total_seconds())
        rows = []
        for step, values in spent.items():
            values.sort()
            rows.append((step, len(values), *(_percentile(values, f) for f in PERCENTILES)))
    return [
        StepTime(step, n, dt.timedelta(seconds=p50), dt.timedelta(seconds=p90))
        for step, n, p50, p90 in rows
    ]


def _ordered(workflow: Workflow, status_ids: Iterable[int]) -> list[tuple[int, int]]:
    """``(status id, step id)`` of the current definition's statuses and of ``status_ids``
    (statuses a later version removed, that instances held in the window), in the definition's
    order (steps, then statuses)."""
    rows = WorkflowStepStatus.all_objects.filter(
        Q(step__workflow=workflow, retired=False, step__retired=False) | Q(pk__in=list(status_ids))
    ).order_by("step__order", "step_id", "id")
    return list(rows.values_list("pk", "step_id"))


def workflow_stats(
    workflow: Workflow,
    *,
    actor: Any = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    bucket: str = Bucket.DAY,
    now: dt.datetime | None = None,
) -> WorkflowStats:
    """The figures of ``workflow`` over the window (:func:`stats_window`: raises
    :class:`WindowError`), counting only what ``actor`` may see when given."""
    now = _aware(now or timezone.now())
    window = stats_window(since, until, bucket, now=now)
    using = router.db_for_read(WorkflowEvent)
    with transaction.atomic(using=using):
        stats_sql.prepare(connections[using])
        viewer = _viewer(workflow, actor, using)
        stats = _workflow_stats(workflow, viewer, window)
        if viewer is None and actor is not None and _viewer(workflow, actor, using) is not None:
            # An instance on a model the actor may not view started meanwhile: it may have
            # been counted. Count again with the rule applied.
            stats = _workflow_stats(workflow, actor, window)
        return stats


def _viewer(workflow: Workflow, actor: Any, using: str) -> Any:
    """``actor``, or ``None`` when the visibility rule shows them every instance of the
    workflow (the usual reviewer or superuser: no filter to apply, so no join of the events
    with their instances)."""
    if actor is None:
        return None
    if connections[using].vendor == "postgresql":
        content_types = stats_sql.content_types(workflow.pk, using)
    else:
        content_types = set(
            WorkflowInstance.objects.filter(workflow=workflow)
            .order_by()
            .values_list("content_type_id", flat=True)
            .distinct()
        )
    return None if authorization.sees_every_instance_on(actor, content_types) else actor


def _workflow_stats(workflow: Workflow, actor: Any, window: Window) -> WorkflowStats:
    per_status, kinds = _on_status(workflow, actor, window)
    ordered = _ordered(workflow, per_status)
    empty = [0] * window.buckets
    on_status = [
        StatusSeries(status, step, per_status.get(status, empty)) for status, step in ordered
    ]
    steps: dict[int, list[int]] = {}
    for series in on_status:
        total = steps.setdefault(series.step_id, [0] * window.buckets)
        for index, n in enumerate(series.counts):
            total[index] += n
    order = {step: index for index, step in enumerate(steps)}
    throughput = [
        Throughput(
            start,
            started=kinds.get(start, {}).get(EventKind.STARTED, 0),
            completed=kinds.get(start, {}).get(EventKind.COMPLETED, 0),
            cancelled=kinds.get(start, {}).get(EventKind.CANCELLED, 0),
        )
        for start in window.starts
    ]
    return WorkflowStats(
        workflow=workflow,
        window=window,
        throughput=throughput,
        on_status=on_status,
        on_step=[StepSeries(step, counts) for step, counts in steps.items()],
        time_on_step=sorted(  # in the order of the steps' series (the definition's)
            _time_on_step(workflow, actor, window),
            key=lambda time: order.get(time.step_id, len(order)),
        ),
    )
