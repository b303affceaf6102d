"""Connections with keyset cursors (strawberry-django's ``DjangoCursorConnection``).

A cursor encodes the ordering values of its row, not an offset. Page 2 fetched after a row was
inserted or removed elsewhere neither repeats nor skips a row, which infinite scroll on a live
list needs. Every ordering ends with the primary key, so it is total. The default orderings are
the primary key alone (instances newest first, an instance's events oldest first: the ids of one
instance's events follow its versions, each written under the instance's row lock), so a
cursor's condition is one indexed ``id > n``: a page deep in a long list or a long history costs
what the first page costs. A page reads ``first + 1`` rows; nested connections (``history`` of a
page of instances) are read for the whole page in one query (strawberry-django's optimizer).

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
:mod:`graphql_api.cost`). A malformed or foreign cursor is ``BAD_USER_INPUT``.
"""

from __future__ import annotations

from typing import Any

import strawberry_django
from strawberry.extensions.field_extension import FieldExtension
from strawberry_django.relay import DjangoCursorConnection, DjangoCursorEdge

__all__ = ["CONNECTION_NAMES", "Connection", "connection", "fix_pagination_descriptions"]

#: Our keyset connection type, generic over the node type.
Connection = DjangoCursorConnection

#: The GraphQL names of strawberry-django's generic types -> the suffix their specializations
#: over our node types get (``WorkflowInstanceConnection``, not ``…CursorConnection``).
CONNECTION_NAMES = {
    DjangoCursorConnection.__strawberry_definition__.name: "Connection",
    DjangoCursorEdge.__strawberry_definition__.name: "Edge",
}


class BoundedPage(FieldExtension):
    """Wraps the connection: no ``first`` and no ``last`` means a page of ``max_results``; each of
    them, when given, must be within ``0..max_results`` (``BAD_USER_INPUT`` naming it)."""

    def __init__(self, max_results: int) -> None:
        self.max_results = max_results

    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        from .errors import BAD_USER_INPUT, query_error

        for name in ("first", "last"):  # strawberry-django checks them one at a time, not both
            size = kwargs.get(name)
            if size is not None and not 0 <= size <= self.max_results:
                raise query_error(BAD_USER_INPUT, f"`{name}` must be between 0 and {self.max_results}.", field=name)
        if kwargs.get("first") is None and kwargs.get("last") is None:
            kwargs["first"] = self.max_results
        return next_(source, info, **kwargs)


def connection(graphql_type: Any = None, *, max_results: int, description: str, **options: Any) -> Any:
    """``strawberry_django.connection`` whose page is bounded without ``first``/``last``."""
    args = (graphql_type,) if graphql_type is not None else ()
    field = strawberry_django.connection(*args, description=description, max_results=max_results, **options)
    field.extensions.append(BoundedPage(max_results))  # last: it wraps the connection extension
    return field


def fix_pagination_descriptions(graphql_schema: Any) -> None:
    """strawberry describes ``last`` as "the items that come after the specified cursor" (a
    copy of ``after``'s text); say what it does."""
    from graphql import GraphQLObjectType

    for named in graphql_schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for field in named.fields.values():
            last, after = field.args.get("last"), field.args.get("after")
            if last is not None and after is not None and last.description == after.description:
                last.description = "Returns the last n items from the list (before `before`, if given)."
