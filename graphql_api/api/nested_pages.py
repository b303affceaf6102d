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
edges, cursors and the resolution of a page without a prefetch are strawberry-django's.

**A prefetched page is a list, not a queryset per parent.** Django stores a prefetched relation
as one ``QuerySet`` per parent (a clone of the page's queryset filtered to the parent: ~25 µs
each) unless the ``Prefetch`` has a ``to_attr``; strawberry-django's optimizer builds its
``Prefetch`` without one and then resolves each parent's connection from that queryset,
re-encoding every edge's ordering values into a cursor. A page of 100 instances with their
``history`` spent ~45 % of its time there. So :func:`page_nested` also names an attribute for
the page (:func:`page_attr`: the field and its paging arguments), :func:`with_page_attrs` (run
on the optimizer's result) gives those ``Prefetch`` lookups that ``to_attr``, and the field
(:class:`PrefetchedPages`) builds each parent's connection straight from the list
(:meth:`KeysetConnection.from_prefetched`), with the same edges, cursors, page info and
``totalCount``. Upstream, the change would be an option of the optimizer's nested-connection
prefetch to use ``to_attr`` and a ``resolve_connection`` that accepts the list (strawberry-django
``optimizer._get_hints_from_django_relation`` / ``DjangoCursorConnection.resolve_connection``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any

import strawberry
from django.db.models import (
    Case,
    Count,
    ExpressionWrapper,
    F,
    IntegerField,
    OrderBy,
    Prefetch,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Least, RowNumber
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry_django.optimizer import mark_optimized_by_prefetching
from strawberry_django.pagination import _PaginationWindow
from strawberry_django.queryset import (
    CONFIG_KEY,
    StrawberryDjangoQuerySetConfig,
    get_queryset_config,
)
from strawberry_django.relay import (
    DjangoCursorConnection,
    DjangoCursorEdge,
    OrderedCollectionCursor,
)
from strawberry_django.relay.cursor_connection import annotate_ordering_fields, build_tuple_compare
from strawberry_django.relay.utils import resolve_edge_class

__all__ = ["KeysetConnection", "NestedPage", "page_attr", "page_nested", "with_page_attrs"]


@strawberry.type(name="KeysetConnection", description="A connection to a list of items.")
class KeysetConnection(DjangoCursorConnection[relay.NodeType]):
    """strawberry-django's cursor connection; a nested one is paged by :func:`page_nested`."""

    @classmethod
    def from_prefetched(
        cls, parent: Any, rows: list[Any], page: NestedPage, *, first: int | None, last: int | None
    ) -> Any:
        """The connection of ``parent`` from its prefetched ``rows`` (in the order
        :func:`page_nested` reads them): what strawberry-django's ``resolve_connection`` makes of
        the same rows, without a queryset per parent."""
        has_previous_page = has_next_page = False
        results = rows
        if first is not None:
            if last is None:
                has_next_page = len(results) > first
                results = results[:first]
            elif results and getattr(results[0], "_strawberry_row_number_fwd", 0) > first:
                has_next_page = True  # paging both ways: drop the row read past `first`
                results = results[1:]
        if last is not None:
            has_previous_page = len(results) > last
            results = results[:last][::-1]  # read backwards (page_nested): turned round
        edge = _edge_class(cls)
        edges = [edge(cursor=cls.edge_cursor(row, page), node=row) for row in results]
        return cls(
            edges=edges,
            total_count_qs=_CountedPage(rows) if rows else page.empty_for(parent),
            page_info=relay.PageInfo(
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
                has_previous_page=has_previous_page,
                has_next_page=has_next_page,
            ),
        )

    @classmethod
    def edge_cursor(cls, row: Any, page: NestedPage) -> str:
        """The cursor of ``row``'s edge (strawberry-django's: its ordering values)."""
        values = OrderedCollectionCursor.from_model(row, page)
        return to_base64(DjangoCursorEdge.CURSOR_PREFIX, str(values))


_EDGE_CLASSES: dict[type, type] = {}


def _edge_class(connection: type) -> type:
    found = _EDGE_CLASSES.get(connection)
    if found is None:
        found = _EDGE_CLASSES[connection] = resolve_edge_class(connection)
    return found


class _NotDistinct:
    distinct = False


class _CountedPage:
    """What strawberry-django's ``totalCount`` reads of a non-empty prefetched page (in place of
    the parent's queryset): its rows, each carrying the count of the parent's whole set
    (``_strawberry_total_count``), marked as prefetched and not DISTINCT."""

    __slots__ = ("_result_cache",)
    query = _NotDistinct

    def __init__(self, rows: list[Any]) -> None:
        self._result_cache = rows


setattr(
    _CountedPage,
    CONFIG_KEY,
    StrawberryDjangoQuerySetConfig(optimized=True, optimized_by_prefetching=True),
)


class NestedPage(list):
    """The ordering descriptors of a nested page (strawberry-django keeps them in the queryset's
    config, which every clone copies), the attribute of each parent the page is prefetched to
    (``attr``), the parent's relation (``relation``) and the page's queryset."""

    def __init__(self, attr: str, relation: str) -> None:
        super().__init__()
        self.attr = attr
        self.relation = relation
        self.queryset: QuerySet | None = None

    def empty_for(self, parent: Any) -> QuerySet:
        """The queryset Django would have stored for ``parent`` with no row on its page: what
        ``totalCount`` counts (none for an empty first page, the parent's set otherwise)."""
        queryset = getattr(parent, self.relation)._apply_rel_filters(self.queryset)
        queryset._result_cache = []
        queryset._prefetch_done = True
        return queryset


#: The arguments a nested page depends on (with any other, e.g. a filter, it is not prefetched
#: to an attribute: strawberry-django resolves it as before).
PAGING_ARGUMENTS = ("after", "before", "first", "last")
#: What strawberry passes to a field's resolver besides its arguments.
_NOT_ARGUMENTS = frozenset(("root", "info"))


def page_attr(field_name: str, arguments: dict[str, Any]) -> str | None:
    """The attribute a nested page of ``field_name`` with these arguments is prefetched to
    (equal arguments, equal page), or None when it depends on more than paging arguments."""
    if any(
        value is not None
        for name, value in arguments.items()
        if name not in PAGING_ARGUMENTS and name not in _NOT_ARGUMENTS
    ):
        return None
    return _attr(field_name, *(arguments.get(name) for name in PAGING_ARGUMENTS))


@functools.lru_cache(maxsize=1024)
def _attr(field_name: str, *paging: Any) -> str:
    # asked once per parent of a page, with the same arguments: remembered
    digest = hashlib.blake2b(repr(paging).encode(), digest_size=8).hexdigest()
    return f"_steps_page_{field_name}_{digest}"


def with_page_attrs(lookups: list[Any]) -> list[Any]:
    """``lookups`` with each ``Prefetch`` of a nested page (:func:`page_nested` given ``attr``)
    stored as a list on its parents (``to_attr``) instead of as a queryset per parent."""
    fixed = []
    for lookup in lookups:
        if isinstance(lookup, Prefetch) and lookup.queryset is not None and not lookup.to_attr:
            page = get_queryset_config(lookup.queryset).ordering_descriptors
            if isinstance(page, NestedPage):
                optimized = lookup
                lookup = Prefetch(
                    lookup.prefetch_through, queryset=lookup.queryset, to_attr=page.attr
                )
                sentinel = getattr(optimized, "_optimizer_sentinel", None)
                if sentinel is not None:  # how strawberry-django recognises its own
                    lookup._optimizer_sentinel = sentinel
        fixed.append(lookup)
    return fixed


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
    page: NestedPage | None = None,
) -> QuerySet:
    """The page of every parent's connection in one queryset (cursors already checked), marked
    as prefetched for strawberry-django's connection: rows in page order (reversed with
    ``last``, as it expects), each carrying ``_strawberry_total_count``. With ``page`` (no
    descriptors yet), the page is prefetched to ``page.attr`` (:func:`with_page_attrs`)."""
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
    if page is not None:
        page.extend(readable)
        readable = page
    get_queryset_config(queryset).ordering_descriptors = readable
    queryset = mark_optimized_by_prefetching(queryset)
    if page is not None:
        page.queryset = queryset
    return queryset
