"""Pages of nested connections (an instance's ``history``, ``Workflow.instances``) read for every
parent in one query, with a ``totalCount`` that is the whole filtered set whatever the cursor.

strawberry-django pages a nested connection inside the parent's prefetch with window functions,
but it puts the cursor in the ``WHERE`` clause: the ``COUNT(*) OVER (PARTITION BY parent)`` it
reads ``totalCount`` from then counts only the rows after the cursor (6, 4, 2… page after page).
Here the cursor is a window too: each row's position in its parent's whole filtered set, the
number of rows at or before ``after`` (at or after ``before``), and the page is the positions
between them — so the count window sees every row. Still one query per nested connection for
the whole page of parents; its rows are those of the parents' partitions (as before, where the
window read every row after the cursor).

:class:`KeysetConnection` is strawberry-django's ``DjangoCursorConnection`` under another class,
so that its optimizer leaves the nested paging to :func:`page_nested` (called from the field's
``get_queryset``, which the optimizer calls with the arguments) instead of applying its own; the
edges, cursors and the resolution of a page are strawberry-django's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry
from django.db.models import (
    Case,
    Count,
    ExpressionWrapper,
    F,
    IntegerField,
    OrderBy,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Least, RowNumber
from strawberry import relay
from strawberry_django.optimizer import mark_optimized_by_prefetching
from strawberry_django.pagination import _PaginationWindow
from strawberry_django.queryset import get_queryset_config
from strawberry_django.relay import DjangoCursorConnection, OrderedCollectionCursor
from strawberry_django.relay.cursor_connection import annotate_ordering_fields, build_tuple_compare

__all__ = ["KeysetConnection", "page_nested"]


@strawberry.type(name="KeysetConnection", description="A connection to a list of items.")
class KeysetConnection(DjangoCursorConnection[relay.NodeType]):
    """strawberry-django's cursor connection; a nested one is paged by :func:`page_nested`."""


def _window(expression: Any, partition: str, order_by: list | None = None) -> _PaginationWindow:
    # strawberry-django's marker class: its fallback count for an empty page removes exactly
    # these (filters and annotations) and counts the rest, the whole filtered set
    return _PaginationWindow(expression, partition_by=partition, order_by=order_by)


def _rows_matching(condition: Any, partition: str, *, matching: bool = True) -> _PaginationWindow:
    """How many rows of the parent's set meet ``condition`` (``matching=False``: do not)."""
    yes, no = (1, 0) if matching else (0, 1)
    return _window(
        Sum(Case(When(condition, then=Value(yes)), default=Value(no), output_field=IntegerField())),
        partition,
    )


def page_nested(
    queryset: QuerySet,
    *,
    related_field_id: str,
    after: str | None,
    before: str | None,
    first: int | None,
    last: int | None,
    max_results: int,
) -> QuerySet:
    """The page of every parent's connection in one queryset (cursors already checked), marked
    as prefetched for strawberry-django's connection: rows in page order (reversed with
    ``last``, as it expects), each carrying ``_strawberry_total_count``."""
    if first is None and last is None:
        first = max_results
    queryset, descriptors, order_by = annotate_ordering_fields(queryset)
    annotations: dict[str, Any] = {
        "_strawberry_total_count": _window(Count(1), related_field_id),
        "_steps_position": _window(RowNumber(), related_field_id, order_by),
    }
    # Every bound a filter compares with is an annotation of its own (or a plain number): Django
    # then filters the windows with no column of its own added, and keeps the columns as
    # selected (with one added, it re-selects them by expression, and merges equal ones)
    filters: list[dict[str, Any]] = []
    low: Any = Value(0)  # positions after the page's start (exclusive)
    if after:
        values = OrderedCollectionCursor.from_cursor(after, descriptors).field_values
        # rows not after the cursor: positions 1..skipped
        annotations["_steps_skipped"] = _rows_matching(
            build_tuple_compare(descriptors, values, False), related_field_id, matching=False
        )
        low = F("_steps_skipped")
        filters.append({"_steps_position__gt": low})
    if before:
        values = OrderedCollectionCursor.from_cursor(before, descriptors).field_values
        # rows before the cursor: positions 1..kept
        annotations["_steps_kept"] = _rows_matching(
            build_tuple_compare(descriptors, values, True), related_field_id
        )
        filters.append({"_steps_position__lte": F("_steps_kept")})
    if first is not None:
        # one row more than asked: strawberry-django reads `hasNextPage` from it
        top: Any = first + 1
        if after:
            annotations["_steps_top"] = low + Value(first + 1)
            top = F("_steps_top")
        filters.append({"_steps_position__lte": top})
        if last is not None:
            top_value = Value(top) if isinstance(top, int) else top
            high = Least(F("_steps_kept"), top_value) if before else top_value
            annotations["_strawberry_row_number_fwd"] = F("_steps_position") - low
            annotations["_steps_floor"] = high - Value(last + 2)
            filters.append({"_steps_position__gt": F("_steps_floor")})
    elif last is not None:
        # the last `last + 1` positions up to the end (the cursor, or the parent's last row)
        end = F("_steps_kept") if before else F("_strawberry_total_count")
        annotations["_steps_start"] = end - Value(last + 1)
        filters.append({"_steps_position__gt": F("_steps_start")})
    # strawberry-django's edge cursors read the ordering values off each row, but the optimizer
    # applies the selection's `only()` after this (dropping an ordering column nobody selected,
    # which each row would then load in a query of its own): read them from copies instead
    # (and the page is ordered by the copies: an ORDER BY column the query does not select
    # would make Django re-select the columns by expression, as above)
    readable, ordering = [], []
    for index, descriptor in enumerate(descriptors):
        if descriptor.attname in {"pk", queryset.model._meta.pk.attname}:
            readable.append(descriptor)
            name = "pk"
        else:
            name = f"_steps_order_value_{index}"
            output = descriptor.order_by.expression.output_field
            annotations[name] = ExpressionWrapper(F(descriptor.attname), output_field=output)
            readable.append(dataclasses.replace(descriptor, attname=name))
        order = descriptor.order_by
        ordering.append(
            OrderBy(
                F(name),
                descending=order.descending,
                nulls_first=order.nulls_first,
                nulls_last=order.nulls_last,
            )
        )
    queryset = queryset.annotate(**annotations).order_by(*ordering)
    for condition in filters:
        queryset = queryset.filter(**condition)
    if last is not None:
        queryset = queryset.reverse()
    get_queryset_config(queryset).ordering_descriptors = readable
    return mark_optimized_by_prefetching(queryset)
