"""The hand-written SQL of :mod:`django_steps.stats` (PostgreSQL only).

Django's ORM has no ordered-set aggregate (``percentile_cont(…) WITHIN GROUP (ORDER BY …)``)
and cannot aggregate over a queryset's rows as a derived table, which is what the percentiles
of the time spent on a step need: the visits are a queryset (the visibility rule and the
pairing of each leaving event with the one that entered the step stay ORM), and this module
wraps its SQL in one grouping statement, so the durations never leave the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections
from django.db.models import QuerySet

__all__ = ["percentiles"]


def percentiles(
    visits: QuerySet, fractions: Sequence[float], using: str
) -> list[tuple[int, int, float, ...]]:
    """``(group, count, *percentiles in seconds)`` per group of ``visits``, a ``values_list``
    of two columns: the group (a step id) and a duration (an ``interval``, null ones left out).
    ``percentile_cont``: linear interpolation between the closest ranks."""
    sql, params = visits.query.get_compiler(using).as_sql()
    fractions_sql = ", ".join(["%s"] * len(fractions))
    columns = ", ".join(f"spent[{index}]" for index in range(1, len(fractions) + 1))
    statement = (
        f"SELECT grouped, n, {columns} FROM ("
        "SELECT v.col1 AS grouped, count(*) AS n, "
        f"percentile_cont(ARRAY[{fractions_sql}]::float8[]) "
        "WITHIN GROUP (ORDER BY extract(epoch FROM v.col2)) AS spent "
        f"FROM ({sql}) AS v (col1, col2) WHERE v.col2 IS NOT NULL GROUP BY v.col1"
        ") AS per_group"
    )
    with connections[using].cursor() as cursor:
        cursor.execute(statement, (*fractions, *params))
        return [tuple(row) for row in cursor.fetchall()]
