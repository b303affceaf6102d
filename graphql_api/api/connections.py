"""Connections with keyset cursors (strawberry-django's ``DjangoCursorConnection``).

A cursor encodes the ordering values of its row, not an offset. Page 2 fetched after a row was
inserted or removed elsewhere neither repeats nor skips a row, which infinite scroll on a live
list needs. Every ordering ends with the primary key, so it is total. The default orderings are
indexed: instances by primary key, newest first (a cursor's condition is one ``id < n``), an
instance's events oldest first in the global history's order ``(txid, position)``, whose edge
cursors are the events' own (:mod:`graphql_api.api.event_cursors`): a page deep in a long list
or a long history costs what the first page costs. A page reads ``first + 1`` rows; nested
connections (``history`` of a page of instances) are read for the whole page in one query
(strawberry-django's optimizer, paged by :mod:`graphql_api.api.nested_pages` so that their
``totalCount`` ignores the cursor).

What this module adds:

* :func:`connection`, the field to declare one: a page is bounded when the client gives neither
  ``first`` nor ``last`` (``max_results``, ``MAX_PAGE_SIZE``) — strawberry-django would read
  every row;
* the GraphQL names stay those of the first version's connections (``WorkflowInstanceConnection``,
  ``WorkflowInstanceEdge``; :data:`CONNECTION_NAMES`, applied by the schema's name converter in
  :mod:`graphql_api.composition`): clients generated against them keep compiling;
* :func:`fix_pagination_descriptions`: strawberry describes ``last`` with ``after``'s text.

``totalCount`` is ``Int!`` and counted only when selected, with one ``COUNT`` (never a window over
every row). A nested connection needs ``first`` or ``last``: strawberry-django's optimizer pages
it in SQL from the arguments as written (the cost limit refuses one without, see
:mod:`graphql_api.security.cost`).

**Cursors from clients.** A malformed or foreign cursor is ``BAD_USER_INPUT`` with ``field``
``after``/``before``, never a server fault. Its shape (base64 of ``orderedcursor:`` and a short
JSON list of strings) is checked before the operation runs (:mod:`graphql_api.security.cost`). Its
values
are checked against the columns of the connection's ordering (:func:`check_cursors`) before any
SQL holds them: as many values as ordering columns, each one its column can parse and hold — an
integer within the column's range on this database (SQLite's driver raises ``OverflowError``
past 64 bits; PostgreSQL would compare it as a number and answer an empty page), a datetime that
exists in UTC, no null for a non-null column, text without unpaired surrogates (nor NUL on
PostgreSQL). strawberry-django decodes a cursor in two places, neither with a hook, so it is
checked in both: a root connection in our subclass of its connection extension (the queryset
and the cursor meet there), a nested one in our field's ``get_queryset``, which the optimizer
calls with the arguments when it pages the nested connection inside the parent's query — there
the refusal is the parent's error (its query cannot run), with ``field`` and the connection named
in the message.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import strawberry_django
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.db.models import QuerySet
from graphql import GraphQLObjectType
from strawberry.extensions.field_extension import FieldExtension
from strawberry_django.fields.field import (
    StrawberryDjangoConnectionExtension,
    StrawberryDjangoField,
)
from strawberry_django.optimizer import is_optimized_by_prefetching
from strawberry_django.relay import (
    DjangoCursorConnection,
    DjangoCursorEdge,
    OrderedCollectionCursor,
)
from strawberry_django.relay.cursor_connection import OrderingDescriptor, annotate_ordering_fields

# Imported for their patches of strawberry-django, applied before any type of ours is converted
# into a schema: a column field resolves as a basic field; a queryset's clone copies its config
# cheaply.
from graphql_api.api import column_fields, queryset_clone  # noqa: F401
from graphql_api.api.event_cursors import EventConnection
from graphql_api.api.ids import schema_name
from graphql_api.api.nested_pages import KeysetConnection, NestedPage, page_attr, page_nested
from graphql_api.security.error_codes import TransportCode
from graphql_api.security.errors import query_error
from graphql_api.security.permissions import ledger

__all__ = [
    "CONNECTION_NAMES",
    "NESTED_PAGE",
    "Connection",
    "check_cursors",
    "connection",
    "fix_pagination_descriptions",
    "page_reader",
]

#: What the description of a connection below the root says (the cost limit refuses a nested
#: connection without a page size: :mod:`graphql_api.security.cost`).
NESTED_PAGE = (
    "Give `first` or `last` (at most `MAX_PAGE_SIZE`, 100 by default): without either the "
    "request is refused with BAD_USER_INPUT."
)

#: Our keyset connection type, generic over the node type (a nested one paged by
#: :func:`graphql_api.api.nested_pages.page_nested`).
Connection = KeysetConnection

#: The GraphQL names of strawberry-django's generic types -> the suffix their specializations
#: over our node types get (``WorkflowInstanceConnection``, not ``…CursorConnection``).
CONNECTION_NAMES = {
    DjangoCursorConnection.__strawberry_definition__.name: "Connection",
    KeysetConnection.__strawberry_definition__.name: "Connection",
    EventConnection.__strawberry_definition__.name: "Connection",
    DjangoCursorEdge.__strawberry_definition__.name: "Edge",
}


class BoundedPage(FieldExtension):
    """Wraps the connection: no ``first`` and no ``last`` means a page of ``max_results``; each of
    them, when given, must be within ``0..max_results`` (``BAD_USER_INPUT`` naming it)."""

    def __init__(self, max_results: int) -> None:
        self.max_results = max_results

    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        for name in ("first", "last"):  # strawberry-django checks them one at a time, not both
            size = kwargs.get(name)
            if size is not None and not 0 <= size <= self.max_results:
                raise query_error(
                    TransportCode.BAD_USER_INPUT,
                    f"`{name}` must be between 0 and {self.max_results}.",
                    field=name,
                )
        if kwargs.get("first") is None and kwargs.get("last") is None:
            kwargs["first"] = self.max_results
        return next_(source, info, **kwargs)


# ------------------------------------------------------------------------------ cursor checks


def check_cursors(queryset: QuerySet, *, after: str | None, before: str | None, where: str) -> None:
    """Refuse (``BAD_USER_INPUT``, ``field`` the argument) a cursor that does not fit the
    ordering of ``queryset`` (see the module docstring). Reads no row."""
    descriptors: list[OrderingDescriptor] | None = None
    for argument, cursor in (("after", after), ("before", before)):
        if not cursor:
            continue  # strawberry reads an empty cursor as none
        if descriptors is None:
            descriptors = annotate_ordering_fields(queryset)[1]
        if not _cursor_fits(cursor, descriptors, queryset.db):
            raise query_error(
                TransportCode.BAD_USER_INPUT,
                f"`{argument}` of `{where}` is not a cursor of this connection.",
                field=argument,
            )


def _cursor_fits(cursor: str, descriptors: list[OrderingDescriptor], using: str) -> bool:
    try:
        # strawberry-django's own decoding: the prefix, a JSON list of strings or nulls, one per
        # ordering column, each parsed by its column (ValueError otherwise)
        values = OrderedCollectionCursor.from_cursor(cursor, descriptors).field_values
    except (ValueError, TypeError, RecursionError):
        return False
    connection = connections[using]
    for descriptor, value in zip(descriptors, values, strict=True):
        if value is None:
            if not descriptor.maybe_null:
                return False
        elif not _value_fits(value, descriptor.order_by.expression.output_field, connection):
            return False
    return True


def _value_fits(value: Any, field: models.Field, connection: Any) -> bool:
    """Whether the database can compare ``field``'s column with ``value`` (parsed by the field)."""
    if isinstance(value, str):
        if "\x00" in value and connection.vendor == "postgresql":
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # an unpaired surrogate: no driver sends it
            return False
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and isinstance(field, models.IntegerField)
    ):
        try:
            low, high = connection.ops.integer_field_range(field.get_internal_type())
        except KeyError:  # a custom integer type: the widest column
            low, high = -(2**63), 2**63 - 1
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    elif isinstance(value, float) and not math.isfinite(value):
        return False
    elif isinstance(value, Decimal) and not value.is_finite():
        return False
    elif isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return not settings.USE_TZ  # the cursors we hand out carry their offset
        try:
            value.astimezone(dt.UTC)  # what the database compares (SQLite stores UTC)
        except OverflowError:
            return False
    try:
        field.get_db_prep_value(value, connection)  # what the SQL parameter will be
    except (OverflowError, ValueError, TypeError, ValidationError):
        return False
    return True


def _where(info: Any) -> str:
    raw = info._raw_info  # strawberry's Info has no parent type
    return f"{raw.parent_type.name}.{raw.field_name}"


#: Reads a cursor given as ``after``/``before`` (``argument``) into the connection's keyset
#: cursor (see :func:`graphql_api.api.event_cursors.read_event_cursor`).
CursorReader = Callable[..., "str | None"]


def _read_cursors(
    reader: CursorReader | None, where: str, after: str | None, before: str | None
) -> tuple[str | None, str | None]:
    if reader is None:
        return after, before
    return (
        reader(after, argument="after", where=where),
        reader(before, argument="before", where=where),
    )


class _CheckedConnectionExtension(StrawberryDjangoConnectionExtension):
    """strawberry-django's connection extension, checking the cursors of a connection it pages
    itself (a root one, or a nested one the optimizer did not prefetch) against its queryset."""

    def __init__(self, *args: Any, cursor_reader: CursorReader | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cursor_reader = cursor_reader
        self.field_name = ""

    def apply(self, field: Any) -> None:
        super().apply(field)
        self.field_name = field.python_name

    def resolve(
        self,
        next_: Any,
        source: Any,
        info: Any,
        *,
        before: str | None = None,
        after: str | None = None,
        first: int | None = None,
        last: int | None = None,
        **kwargs: Any,
    ) -> Any:
        if source is not None:
            arguments = {"after": after, "before": before, "first": first, "last": last}
            found = self.prefetched(source, info, {**kwargs, **arguments})
            if found is not None:
                return found
        if before or after:
            where, unchecked = _where(info), next_
            after, before = _read_cursors(self.cursor_reader, where, after, before)

            def check(nodes: Any) -> Any:
                if isinstance(nodes, QuerySet) and not is_optimized_by_prefetching(nodes):
                    check_cursors(nodes, after=after, before=before, where=where)
                return nodes

            def checked_next(source: Any, info: Any, **kwargs: Any) -> Any:
                nodes = unchecked(source, info, **kwargs)
                if inspect.isawaitable(nodes):

                    async def checked() -> Any:
                        return check(await nodes)

                    return checked()
                return check(nodes)

            next_ = checked_next
        return super().resolve(
            next_, source, info, before=before, after=after, first=first, last=last, **kwargs
        )

    def prefetched(self, source: Any, info: Any, arguments: dict[str, Any]) -> Any:
        """The connection of ``source`` from its page prefetched with it as a list
        (nested_pages.py), or None when there is none for these arguments."""
        attr = page_attr(self.field_name, arguments)
        rows = getattr(source, attr, None) if attr else None
        page = ledger(info).pages.get(attr) if rows is not None else None
        if page is None:
            return None
        return self.connection_type.from_prefetched(
            source, rows, page, first=arguments["first"], last=arguments["last"]
        )


def page_reader(definition: Any, field: Any, type_name: str, graphql_field: Any) -> Any:
    """A resolver for a nested connection of ours that builds the page prefetched with its
    parent (bounds checked, ``first`` defaulted as :class:`BoundedPage` does) without strawberry's
    resolver path (``Info``, argument conversion, the extension chain); any other case (no
    prefetched page, a size out of bounds, a filter) goes to strawberry's resolver
    (:func:`graphql_api.api.column_fields.install_row_readers` installs it)."""
    kinds = [type(extension) for extension in field.extensions]
    if type(field) is not _ConnectionField or kinds != [_CheckedConnectionExtension, BoundedPage]:
        return None
    checked, bounded = field.extensions
    full, most = graphql_field.resolve, bounded.max_results

    def read_page(source: Any, info: Any, **kwargs: Any) -> Any:
        first, last = kwargs.get("first"), kwargs.get("last")
        if (
            source is not None
            and (first is None or 0 <= first <= most)
            and (last is None or 0 <= last <= most)
        ):
            if first is None and last is None:
                first = most
            arguments = {**kwargs, "first": first, "last": last}
            arguments.setdefault("after", None)
            arguments.setdefault("before", None)
            found = checked.prefetched(source, info, arguments)
            if found is not None:
                return found
        return full(source, info, **kwargs)

    return read_page


class _ConnectionField(StrawberryDjangoField):
    """Checks the cursors of a nested connection and pages it when the optimizer prefetches it
    inside its parent's query (the only caller that passes ``after``/``before`` and the related
    field to ``get_queryset``)."""

    def get_queryset(self, queryset: QuerySet, info: Any, **kwargs: Any) -> QuerySet:
        queryset = super().get_queryset(queryset, info, **kwargs)
        if is_optimized_by_prefetching(queryset):
            return queryset
        after, before = kwargs.get("after"), kwargs.get("before")
        if after or before:
            where = self._where(info)
            after, before = _read_cursors(self.cursor_reader, where, after, before)
            check_cursors(queryset, after=after, before=before, where=where)
        related_field_id = kwargs.get("_strawberry_related_field_id")
        if related_field_id is not None and self.is_connection:
            first, last = kwargs.get("first"), kwargs.get("last")
            if first is None and last is None:
                first = self._max_results()  # as BoundedPage makes it when resolving
            page = None
            if issubclass(self._connection_class(), KeysetConnection):
                arguments = {k: v for k, v in kwargs.items() if not k.startswith("_")}
                attr = page_attr(self.python_name, {**arguments, "first": first, "last": last})
                if attr is not None:
                    page = NestedPage(attr, self.django_name or self.python_name)
                    ledger(info).pages[attr] = page
            queryset = page_nested(
                queryset,
                related_field_id=related_field_id,
                after=after,
                before=before,
                first=first,
                last=last,
                max_results=self._max_results(),
                page=page,
            )
        return queryset

    def _connection_class(self) -> type:
        connection_type = next(
            extension.connection_type
            for extension in self.extensions
            if isinstance(extension, _CheckedConnectionExtension)
        )
        return connection_type if isinstance(connection_type, type) else object

    @property
    def cursor_reader(self) -> CursorReader | None:
        return next(
            (
                extension.cursor_reader
                for extension in self.extensions
                if isinstance(extension, _CheckedConnectionExtension)
            ),
            None,
        )

    def _max_results(self) -> int:
        return next(
            extension.max_results
            for extension in self.extensions
            if isinstance(extension, BoundedPage)
        )

    def _where(self, info: Any) -> str:
        definition = getattr(self.origin, "__strawberry_definition__", None)
        parent = schema_name(info, definition.name) if definition is not None else "?"
        return f"{parent}.{info.schema.config.name_converter.from_field(self)}"


def connection(
    graphql_type: Any = None,
    *,
    max_results: int,
    description: str,
    cursor_reader: CursorReader | None = None,
    **options: Any,
) -> Any:
    """``strawberry_django.connection`` whose page is bounded without ``first``/``last`` and whose
    cursors are checked against their columns (after ``cursor_reader``, if given, read them)."""
    args = (graphql_type,) if graphql_type is not None else ()
    options.setdefault("field_cls", _ConnectionField)
    field = strawberry_django.connection(
        *args, description=description, max_results=max_results, **options
    )
    # strawberry-django adds its connection extension itself: ours in its place (the optimizer
    # finds it with isinstance, and still sees a DjangoCursorConnection)
    field.extensions = [
        _CheckedConnectionExtension(max_results=extension.max_results, cursor_reader=cursor_reader)
        if type(extension) is StrawberryDjangoConnectionExtension
        else extension
        for extension in field.extensions
    ]
    field.extensions.append(BoundedPage(max_results))  # last: it wraps the connection extension
    return field


def fix_pagination_descriptions(graphql_schema: Any) -> None:
    """strawberry describes ``last`` as "the items that come after the specified cursor" (a
    copy of ``after``'s text); say what it does."""
    for named in graphql_schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for field in named.fields.values():
            last, after = field.args.get("last"), field.args.get("after")
            if last is not None and after is not None and last.description == after.description:
                last.description = (
                    "Returns the last n items from the list (before `before`, if given)."
                )
