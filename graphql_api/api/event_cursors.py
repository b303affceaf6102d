"""One cursor per event: an instance's ``history`` hands out the events' own ``cursor`` (the one of
``WorkflowEvent.cursor``, ``workflowEvents`` and the subscriptions) as its edge cursors, and reads
that cursor back as ``after``/``before``.

The history is ordered like the global history, by ``(txid, position)`` (for one instance that is
its ``sequence`` order, see :mod:`django_steps.history`), so an event cursor is a place in it
without reading a row: ``history(after: c)`` is the instance's events committed after ``c``, any
cursor ``c`` the server handed out (also a head cursor that is no event's). The connection's own
keyset cursor is still what strawberry-django pages with: :func:`read_event_cursor` turns an
event cursor into it. Edge cursors handed out before (base64 of ``orderedcursor:["<id>"]``)
keep working: the event they name is looked up once.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, ClassVar

import strawberry
from strawberry import relay
from strawberry.relay.utils import from_base64, to_base64

from django_steps.history import cursor_of, split_cursor
from django_steps.models import WorkflowEvent
from graphql_api.api.nested_pages import KeysetConnection
from graphql_api.live.reads import InvalidCursor, format_cursor, parse_cursor
from graphql_api.security.error_codes import TransportCode
from graphql_api.security.errors import query_error

__all__ = ["EventConnection", "read_event_cursor"]

_PREFIX = "orderedcursor"  # strawberry-django's DjangoCursorEdge.CURSOR_PREFIX
#: The id a keyset cursor built from an event cursor carries (the ordering ends with the primary
#: key): past every id after the cursor, below every id before it, so that only ``(txid,
#: position)`` decides, and the event at the cursor itself is excluded both ways.
_LAST_ID, _FIRST_ID = 2**63 - 1, 0


@strawberry.type(name="EventConnection", description="A connection to a list of items.")
class EventConnection(KeysetConnection[relay.NodeType]):
    """A keyset connection of events whose edge cursors are the events' ``cursor``."""

    #: Its cursors are checked by :func:`read_event_cursor`, not as keyset cursors by the cost
    #: estimate (:mod:`graphql_api.security.cost`).
    EVENT_CURSORS: ClassVar[bool] = True

    @classmethod
    def resolve_connection(cls, nodes: Any, **kwargs: Any) -> Any:
        page = super().resolve_connection(nodes, **kwargs)
        if inspect.isawaitable(page):

            async def with_cursors() -> Any:
                return _with_event_cursors(await page)

            return with_cursors()
        return _with_event_cursors(page)

    @classmethod
    def edge_cursor(cls, row: Any, page: Any) -> str:
        # a prefetched page (nested_pages.py): the event's cursor straight from its (txid,
        # position), the first two of the page's ordering values
        txid, position = (getattr(row, descriptor.attname) for descriptor in page[:2])
        return format_cursor(cursor_of(int(txid), int(position)))


def _with_event_cursors(page: Any) -> Any:
    for edge in page.edges:
        # the keyset cursor holds (txid, position, id): no row attribute to load
        txid, position, _pk = json.loads(from_base64(edge.cursor)[1])
        edge.cursor = format_cursor(cursor_of(int(txid), int(position)))
    if page.edges:
        page.page_info.start_cursor = page.edges[0].cursor
        page.page_info.end_cursor = page.edges[-1].cursor
    return page


def read_event_cursor(cursor: str | None, *, argument: str, where: str) -> str | None:
    """The keyset cursor of the history for ``cursor``: an event cursor, or an edge cursor
    handed out before event cursors. Anything else is ``BAD_USER_INPUT`` naming ``argument``
    (the connection's own keyset cursors are never handed out)."""
    if not cursor:
        return cursor  # strawberry reads an empty cursor as none
    refusal = query_error(
        TransportCode.BAD_USER_INPUT,
        f"`{argument}` of `{where}` is not a cursor of this connection.",
        field=argument,
    )
    if len(cursor) > 1000:
        raise refusal
    if cursor.strip().isascii() and cursor.strip().isdigit():
        try:
            txid, position = split_cursor(parse_cursor(cursor))
        except InvalidCursor as error:
            raise refusal from error
        edge_id = _LAST_ID if argument == "after" else _FIRST_ID
        return _keyset(txid, position, edge_id)
    keyset = _from_id_cursor(cursor)
    if keyset is None:
        raise refusal
    return keyset


def _keyset(txid: int, position: int, pk: int) -> str:
    return to_base64(
        _PREFIX, json.dumps([str(txid), str(position), str(pk)], separators=(",", ":"))
    )


def _from_id_cursor(cursor: str) -> str | None:
    """An edge cursor of the history ordered by id (``["<id>"]``), as today's keyset cursor."""
    try:
        prefix, raw = from_base64(cursor)
        values = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    if prefix != _PREFIX or not isinstance(values, list) or len(values) != 1:
        return None
    pk = values[0]
    if not isinstance(pk, str) or not pk.isascii() or not pk.isdigit() or len(pk) > 19:
        return None
    row = WorkflowEvent.objects.filter(pk=int(pk)).values_list("txid", "position").first()
    return _keyset(row[0], row[1], int(pk)) if row else None
