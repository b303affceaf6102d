"""The hand-written SQL of :mod:`django_steps.stats` (PostgreSQL only; SQLite reads the same
rows through the ORM and computes in Python).

Django's ORM cannot aggregate over a queryset's rows as a derived table (the visits' durations,
sorted per step and bucket, paired from the window's events) and has no loose index scan (the
models a workflow's instances are on). The rows stay ORM querysets (the visibility rule, the
window, the pairing of events); this module wraps their SQL.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import QuerySet

from .models import WorkflowEvent, WorkflowInstance

__all__ = ["content_types", "prepare", "visit_durations"]


#: ``work_mem`` of the stats' transaction: the window's events (about 120,000 in the benchmark's
#: 30 days) are sorted and grouped in memory instead of in temporary files (the default 4 MB
#: spilled 7 to 9 MB to disk per sort).
WORK_MEM = "32MB"


def prepare(connection: Any) -> None:
    """Settings of the stats' transaction (PostgreSQL; ``set_config(…, true)``: they end with
    it — or, inside an outer transaction such as ``ATOMIC_REQUESTS``, with that one). No JIT
    compilation: the planner's estimate of the correlated lookups passes ``jit_above_cost``
    while the queries take tens of milliseconds, and compiling them took 0.8 to 2 seconds
    (``bench/stats.py``). And :data:`WORK_MEM` for the sorts."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('jit', 'off', true), set_config('work_mem', %s, true)", [WORK_MEM]
        )


def content_types(workflow_id: int, using: str) -> set[int]:
    """The content types of the workflow's instances, read from the
    ``(workflow, content_type, object_id)`` index one value at a time (a loose index scan: a
    few probes whatever the number of instances; PostgreSQL 15 has no skip scan of its own)."""
    table = connections[using].ops.quote_name(WorkflowInstance._meta.db_table)
    statement = (
        "WITH RECURSIVE found(ct) AS ("
        f"(SELECT content_type_id FROM {table} WHERE workflow_id = %s "
        "ORDER BY content_type_id LIMIT 1) "
        "UNION ALL "
        f"SELECT (SELECT content_type_id FROM {table} WHERE workflow_id = %s "
        "AND content_type_id > found.ct ORDER BY content_type_id LIMIT 1) "
        "FROM found WHERE found.ct IS NOT NULL"
        ") SELECT ct FROM found WHERE ct IS NOT NULL"
    )
    with connections[using].cursor() as cursor:
        cursor.execute(statement, (workflow_id, workflow_id))
        return {row[0] for row in cursor.fetchall()}


def visit_durations(boundaries: QuerySet, trunc: str, using: str) -> list[tuple[Any, ...]]:
    """``(step, bucket start, [seconds, ascending])`` of the visits that end in ``boundaries``,
    per step and bucket (``trunc``: ``hour`` or ``day``, of the leaving event's time in UTC;
    the start comes naive, in UTC).

    ``boundaries`` is a ``values_list`` of the window's events that enter a step or finish an
    instance — ``instance_id, sequence, created_at, from_step_id``, ``leaves`` (whether it
    ends a visit: it leaves its step, or finishes the instance on it) and ``entered``, the
    ``created_at`` of the instance's previous such event (``lag``; null for its first one in
    the window). A visit began at the previous step-entering event: ``entered``, or, for the
    first visit in the window of an instance that entered its step before the window, the
    ``(instance, sequence)`` index's answer (read only then: ``COALESCE`` evaluates its second
    argument only for a null first one).

    Pairing by ``lag`` over the window's own events instead of looking up each visit's start
    turned 90,000 index lookups into about 4,000 (``bench/stats.py``). The durations come back
    sorted, one array per step and bucket: the percentiles of a window are taken from the
    buckets' arrays merged (:mod:`django_steps.stats`), so a closed bucket's array can be kept."""
    connection = connections[using]
    sql, params = boundaries.query.get_compiler(using).as_sql()
    events = connection.ops.quote_name(WorkflowEvent._meta.db_table)
    statement = (
        "SELECT step, start, array_agg(time ORDER BY time) FROM ("
        "SELECT b.from_step_id AS step, date_trunc(%s, b.created_at AT TIME ZONE 'UTC') AS start, "
        "date_part('epoch', b.created_at - COALESCE(b.entered, ("
        f"SELECT p.created_at FROM {events} p WHERE p.instance_id = b.instance_id "
        "AND p.sequence < b.sequence AND p.from_step_id IS DISTINCT FROM p.to_step_id "
        "ORDER BY p.sequence DESC LIMIT 1))) AS time "
        f"FROM ({sql}) AS b (instance_id, sequence, created_at, from_step_id, leaves, entered) "
        "WHERE b.leaves) AS visits GROUP BY step, start"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, (trunc, *params))
        return cursor.fetchall()
