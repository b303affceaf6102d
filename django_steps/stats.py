"""A workflow's figures for dashboards, over a bounded window of time, from its history.

:func:`workflow_stats` answers three questions about one workflow, bucket by bucket (hours or
days, aligned in UTC), from ``since`` to ``until``:

* **how many instances were on each step and status** at the end of each bucket (unfinished
  ones: ``ACTIVE`` or ``ON_HOLD``; the bucket still running counts now);
* **how long instances stayed on each step**, median and 90th percentile, over the visits that
  ended in the window (a visit runs from the event that entered the step — the start, an
  advance, a migration to another step — to the one that left it or finished the instance);
* **throughput**: instances started, completed and cancelled per bucket.

Computed in SQL from the history, bucket by bucket (:mod:`django_steps.stats_buckets`):
per-status counts are the instances' current statuses less what the events after each bucket
changed (one statement: the current counts and the events grouped by bucket and move); the
durations pair each event that left a step with the one that entered it (on PostgreSQL by
``lag`` over the window's own events, :mod:`django_steps.stats_sql`; on SQLite through the
``(instance, sequence)`` index), sorted per step and bucket; the percentiles (``percentile_cont``'s
interpolation) are taken from the buckets' durations merged, so they are exact.

**Closed buckets are kept.** A bucket's figures are its own events' only, and the history is
append-only: once a bucket ended more than :data:`SETTLED_AFTER` ago, its figures are put in
Django's cache (setting ``STATS_CACHE``, an alias of ``CACHES``; ``None``: no cache) for
:data:`CACHE_SECONDS`, so a call reads from the database only the buckets the cache does not
hold (usually the one running now) and the current counts. Only the figures of every instance
are kept and served, to callers the visibility rule shows every instance of the workflow (or
none given); a viewer with a narrower rule is always counted afresh. What the cache can miss:
an event written into a bucket after it was kept (a transaction open longer than
:data:`SETTLED_AFTER`), an instance deleted with its history: at most until the entry expires.

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

from django.core.cache import caches
from django.db import connections, router, transaction
from django.db.models import Q, TextChoices
from django.utils import timezone

from . import authorization, stats_buckets, stats_sql
from .choices import EventKind
from .conf import steps_setting
from .models import Workflow, WorkflowEvent, WorkflowInstance, WorkflowStepStatus
from .stats_buckets import Figures, aware, floor

__all__ = [
    "CACHE_SECONDS",
    "DEFAULT_BUCKETS",
    "MAX_BUCKETS",
    "PERCENTILES",
    "SETTLED_AFTER",
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

#: The percentiles of the time spent on a step.
PERCENTILES = (0.5, 0.9)

#: How long after its end a bucket is taken as final (its events written and committed).
SETTLED_AFTER = dt.timedelta(minutes=10)

#: How long a closed bucket's figures stay in the cache.
CACHE_SECONDS = 3600

#: The layout of a cached bucket (changed with it, so old entries are never read).
_FORMAT = 1


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
    end = _in_range(until, "until") if until is not None else aware(now or timezone.now())
    last = floor(end, bucket)
    if last != end or until is None:  # the bucket holding `end` is in the window
        if last > _LATEST - length:
            raise WindowError("`until` is too late: a window ends by the year 9999.", "until")
        last += length
    if since is None:
        if last < _EARLIEST + DEFAULT_BUCKETS[bucket] * length:
            raise WindowError("`until` is too early for the default window: give `since`.", "until")
        start = last - DEFAULT_BUCKETS[bucket] * length
    else:
        begin = _in_range(since, "since")
        start = floor(begin, bucket)
        if start >= last or begin >= end:
            raise WindowError("`since` must be before `until`.", "since")
    window = Window(start, last, bucket)
    if window.buckets > MAX_BUCKETS:
        raise WindowError(
            f"The window holds {window.buckets} buckets; at most {MAX_BUCKETS} "
            f"(move `since` closer to `until`, or use days).",
            "since",
        )
    return window


#: The range of dates a window may cover (Python's ``datetime``, in UTC).
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def _in_range(value: dt.datetime, field: str) -> dt.datetime:
    """``value`` in UTC; :class:`WindowError` on ``field`` when UTC cannot hold it (a date in
    the year 1 or 9999 with an offset that moves it out)."""
    try:
        return aware(value)
    except OverflowError:
        raise WindowError(f"`{field}` is out of the range of dates.", field) from None


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


# --------------------------------------------------------------------------- closed buckets


def _key(workflow: Workflow, bucket: str, start: dt.datetime) -> str:
    """A closed bucket's cache key: the workflow's id and creation time (an id a rolled-back or
    deleted workflow handed out again never finds the old one's figures), the bucket."""
    born = int(workflow.created_at.timestamp() * 1_000_000)
    return f"django_steps:stats:{_FORMAT}:{workflow.pk}:{born}:{bucket}:{int(start.timestamp())}"


def _closed(window: Window, start: dt.datetime, now: dt.datetime) -> bool:
    return start + window.length <= now - SETTLED_AFTER


def _cached(workflow: Workflow, window: Window, now: dt.datetime) -> dict[dt.datetime, Figures]:
    """The figures of the window's closed buckets the cache holds."""
    cache = _cache()
    if cache is None:
        return {}
    keys = {_key(workflow, window.bucket, s): s for s in window.starts if _closed(window, s, now)}
    return {keys[key]: Figures(*value) for key, value in cache.get_many(list(keys)).items()}


def _keep(
    workflow: Workflow,
    window: Window,
    now: dt.datetime,
    since: dt.datetime,
    figures: dict[dt.datetime, Figures],
) -> None:
    """Put the closed buckets read from ``since`` on (``figures``, for every instance; a bucket
    without an event has none) in the cache."""
    cache = _cache()
    if cache is None:
        return
    kept = {
        _key(workflow, window.bucket, start): (
            figures.get(start, Figures()).changes,
            {str(kind): n for kind, n in figures.get(start, Figures()).kinds.items()},
            figures.get(start, Figures()).spent,
        )
        for start in window.starts
        if start >= since and _closed(window, start, now)
    }
    cache.set_many(kept, CACHE_SECONDS)


def _cache() -> Any:
    alias = steps_setting("STATS_CACHE")
    return None if alias is None else caches[alias]


# --------------------------------------------------------------------------- the figures


def _percentile(values: list[float], fraction: float) -> float:
    """``percentile_cont``: linear interpolation between the closest ranks."""
    position = fraction * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _on_status(
    window: Window, current: dict[int, int], figures: dict[dt.datetime, Figures]
) -> dict[int, list[int]]:
    """``{status id: counts per bucket}``: walking back from now, at the end of a bucket a
    status held what it holds now less what the events since then brought to it."""
    statuses = set(current) | {s for f in figures.values() for s in f.changes}
    series = {status: [0] * window.buckets for status in statuses}
    later = sorted(figures, reverse=True)
    running = {status: current.get(status, 0) for status in statuses}
    for index in reversed(range(window.buckets)):
        end = window.since + (index + 1) * window.length
        while later and later[0] >= end:  # (none for the bucket running now: it holds `current`)
            for status, n in figures[later.pop(0)].changes.items():
                running[status] -= n
        for status in statuses:
            series[status][index] = running[status]
    return series


def _time_on_step(window: Window, figures: dict[dt.datetime, Figures]) -> list[StepTime]:
    """Exact percentiles over the window: the buckets' sorted durations merged (a sort of
    sorted runs), per step."""
    spent: dict[int, list[float]] = defaultdict(list)
    for start in window.starts:
        for step, values in figures[start].spent.items() if start in figures else ():
            spent[step].extend(values)
    times = []
    for step, values in spent.items():
        values.sort()
        p50, p90 = (_percentile(values, f) for f in PERCENTILES)
        seconds = (dt.timedelta(seconds=p50), dt.timedelta(seconds=p90))
        times.append(StepTime(step, len(values), *seconds))
    return times


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
    now = aware(now or timezone.now())
    window = stats_window(since, until, bucket, now=now)
    using = router.db_for_read(WorkflowEvent)
    with transaction.atomic(using=using):
        stats_sql.prepare(connections[using])
        viewer = _viewer(workflow, actor, using)
        stats = _workflow_stats(workflow, viewer, window, now)
        if viewer is None and actor is not None and _viewer(workflow, actor, using) is not None:
            # An instance on a model the actor may not view started meanwhile: it may have
            # been counted. Count again with the rule applied.
            stats = _workflow_stats(workflow, actor, window, now)
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


def _workflow_stats(
    workflow: Workflow, actor: Any, window: Window, now: dt.datetime
) -> WorkflowStats:
    """The figures, counted for ``actor`` (``None``: every instance; only then are closed
    buckets taken from the cache and put in it: a narrower viewer's figures are never kept,
    so never served to anyone, and the wider ones never reach them)."""
    cached = _cached(workflow, window, now) if actor is None else {}
    since = next((start for start in window.starts if start not in cached), window.until)
    current, figures = stats_buckets.read(workflow, actor, since, window.until, window.bucket)
    if actor is None:
        _keep(workflow, window, now, since, figures)
    figures = {**cached, **figures}
    per_status = _on_status(window, current, figures)
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
    nothing = Figures()
    throughput = [
        Throughput(
            start,
            started=figures.get(start, nothing).kinds.get(EventKind.STARTED, 0),
            completed=figures.get(start, nothing).kinds.get(EventKind.COMPLETED, 0),
            cancelled=figures.get(start, nothing).kinds.get(EventKind.CANCELLED, 0),
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
            _time_on_step(window, figures),
            key=lambda time: order.get(time.step_id, len(order)),
        ),
    )
