"""Where each history row goes in the global, commit-ordered history, and how readers read it.

The hand-written SQL of the engine lives here (the order, the cursors, the readers' horizon,
the next slot) and in :mod:`django_steps.statements` (a change's one read and one write), with
their tests in ``tests/django_steps/test_history_order.py``.

The problem
===========

Subscribers resume from a cursor: "every event after the last one I received". A cursor is
only sound if no event can ever appear *below* a cursor a reader already holds. An
auto-increment id cannot promise that: on PostgreSQL a transaction that took id 7 may commit
after one that took id 8, and a reader that saw 8 would skip 7 forever. Positions taken from
one counter row locked until commit would be sound, but every writer of every instance would
wait on that row, and a transaction changing instances A then B would deadlock against a single
change of B: so writers share no row.

PostgreSQL: transaction ids and the snapshot's ``xmin``
=======================================================

Each row stores ``txid``, the writing transaction's id (``pg_current_xact_id()``), and a
``position`` inside it; the global order is ``(txid, position)``. Readers only take rows with
``txid < pg_snapshot_xmin(pg_current_snapshot())``: every transaction below ``xmin`` has ended,
and every transaction still running has an id at or above it, so nothing can ever be added
below what a reader has read. Writers share nothing (no row, lock or sequence), so changes of
different instances never wait for each other. The price: a long-running transaction anywhere
in the cluster that holds a transaction id holds the horizon back — events are *delivered*
later (never lost, never reordered); keep transactions short.

Transaction ids follow the order transactions first wrote, not the order they committed. For
events of *different* instances that is harmless (a reader sees neither until both are final).
For one instance it is not: a transaction with an older id (it wrote something else first)
may wait for the instance's row lock while a younger one changes the instance and commits; its
event, the instance's next version, would sort *before* the one it follows. So a writer places
its own events at multiples of :data:`STRIDE` in its own ``txid`` and, when the instance's
last event sorts after that, takes the slot right after the instance's last event instead
(``(its txid, its position + 1)``). That slot is free: slots between two multiples of
:data:`STRIDE` are only taken this way, one instance at a time, under that instance's row
lock. And it is safe: the writer's own, older ``txid`` keeps every reader's horizon below it
until it ends. So an instance's events always sort in ``sequence`` order.

A change written optimistically (one compare-and-set statement in autocommit) gets its
transaction id inside that statement, after every transaction with an event of the instance
committed (one committed after its read would have failed the compare-and-set), so its
statement's snapshot has them all and its own slot is the later one; its ``UPDATE`` holds the
row lock while it writes, so a locking writer placing an event after it waits, as before.

SQLite: one writer at a time
============================

SQLite lets one transaction write at a time, from its first write to its commit. ``txid`` is
0 and ``position`` is the previous maximum plus one, taken while writing: gapless, in commit
order, and readers need no horizon. PostgreSQL and SQLite are the supported databases.

The cursor
==========

A cursor is the pair as one decimal number, ``txid * 2**63 + position``. Rows written before
``txid`` existed (migration ``0003``) keep ``txid`` 0 and their position, and sort before every
row written since, so the plain positions handed out as cursors then still work.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import BooleanField, ExpressionWrapper, QuerySet
from django.db.models.expressions import RawSQL

from .models import WorkflowEvent

__all__ = [
    "STRIDE",
    "CURSOR_LIMIT",
    "cursor_of",
    "split_cursor",
    "after",
    "up_to",
    "visible",
    "horizon",
    "newest",
    "is_ahead",
    "renumber",
    "event_table",
    "slot_sql",
    "next_slot",
]

#: Own events of a transaction are ``STRIDE`` apart; the slots between take the events of older
#: transactions that changed the same instance afterwards. (A 256th such transaction in a row,
#: each having waited for the previous one's row lock, would continue into the next block, or
#: fail on the unique ``(txid, position)`` constraint and change nothing.)
STRIDE = 256
_SHIFT = 2**63
#: Cursors are below this (txid and position are PostgreSQL bigints).
CURSOR_LIMIT = _SHIFT * _SHIFT


def cursor_of(txid: int, position: int) -> int:
    return txid * _SHIFT + position


def split_cursor(cursor: int) -> tuple[int, int]:
    return divmod(cursor, _SHIFT)


def event_table() -> str:
    return WorkflowEvent._meta.db_table


def _boolean(sql: str, params: tuple) -> ExpressionWrapper:
    return ExpressionWrapper(RawSQL(sql, params), output_field=BooleanField())


def after(queryset: QuerySet, cursor: int) -> QuerySet:
    """Rows of ``queryset`` (of events) strictly after ``cursor``, as a keyset condition the
    ``(…, txid, position)`` indexes serve."""
    return _keyset(queryset, ">", cursor)


def up_to(queryset: QuerySet, cursor: int) -> QuerySet:
    """Rows of ``queryset`` at or before ``cursor``."""
    return _keyset(queryset, "<=", cursor)


def _keyset(queryset: QuerySet, operator: str, cursor: int) -> QuerySet:
    txid, position = split_cursor(cursor)
    qn = connections[queryset.db].ops.quote_name
    table = qn(event_table())
    return queryset.filter(
        _boolean(
            f"({table}.{qn('txid')}, {table}.{qn('position')}) {operator} (%s, %s)",
            (txid, position),
        )
    )


def visible(queryset: QuerySet) -> QuerySet:
    """Rows no transaction still running can add anything below (see the module docstring)."""
    if connections[queryset.db].vendor != "postgresql":
        return queryset
    qn = connections[queryset.db].ops.quote_name
    return queryset.filter(
        _boolean(
            f"{qn(event_table())}.{qn('txid')} "
            "< pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            (),
        )
    )


def horizon(using: str) -> int:
    """The smallest cursor that may not be final yet: every event below it is final, as of now.
    (Read it *before* reading events, so that what the read returns covers all below it.)"""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return CURSOR_LIMIT
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return cursor_of(int(cursor.fetchone()[0]), 0)


def is_ahead(cursor: int, using: str) -> bool:
    """True for a cursor this database never handed out: from a later transaction than any so
    far (PostgreSQL), or past the newest event (SQLite) — e.g. after a restore into another
    cluster followed by :func:`renumber`. Clients holding one must reload and start afresh."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as db:
            db.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
            return split_cursor(cursor)[0] >= int(db.fetchone()[0])
    newest_row = (
        WorkflowEvent.objects.using(using)
        .order_by("-txid", "-position")
        .values_list("txid", "position")
        .first()
    )
    return cursor > (cursor_of(*newest_row) if newest_row else 0)


def renumber(using: str) -> int:
    """Give every stored event ``txid`` 0 and positions 1, 2, 3… in their current order, so that
    events written from now on sort after them whatever the transaction ids (run it after
    restoring a dump into another PostgreSQL cluster, before serving). Returns the row count."""
    connection = connections[using]
    qn = connection.ops.quote_name
    table, txid, position, pk = qn(event_table()), qn("txid"), qn("position"), qn("id")
    with connection.cursor() as db:
        # Two steps: negative positions first, so no row ever collides with one not yet moved.
        db.execute(
            f"UPDATE {table} SET {position} = -r.n FROM (SELECT {pk} AS i, "
            f"ROW_NUMBER() OVER (ORDER BY {txid}, {position}) AS n FROM {table}) r "
            f"WHERE {table}.{pk} = r.i"
        )
        db.execute(f"UPDATE {table} SET {txid} = 0, {position} = -{position}")
        return db.rowcount


def newest(queryset: QuerySet) -> int:
    """The cursor of the newest visible row of ``queryset`` (0 when there is none)."""
    row = visible(queryset).order_by("-txid", "-position").values_list("txid", "position").first()
    return cursor_of(*row) if row else 0


# --------------------------------------------------------------------------- the next slot


def slot_sql(qn: Any, instance_param: str) -> str:
    """A one-row SELECT of ``(txid, position)`` for the next event of one instance (PostgreSQL);
    ``instance_param`` is the placeholder of the instance id."""
    table, txid, position = qn(event_table()), qn("txid"), qn("position")
    instance, sequence = qn("instance_id"), qn("sequence")
    return (
        "SELECT CASE WHEN l.t IS NULL OR (l.t, l.p) < (x.t, x.p) THEN x.t ELSE l.t END, "
        "CASE WHEN l.t IS NULL OR (l.t, l.p) < (x.t, x.p) THEN x.p ELSE l.p + 1 END "
        "FROM (SELECT s.t, "
        f"COALESCE((SELECT (MAX(e.{position}) / {STRIDE} + 1) * {STRIDE} FROM {table} e "
        f"WHERE e.{txid} = s.t), 0) AS p "
        "FROM (SELECT pg_current_xact_id()::text::bigint AS t) s) x "
        f"LEFT JOIN (SELECT e.{txid} AS t, e.{position} AS p FROM {table} e "
        f"WHERE e.{instance} = {instance_param} ORDER BY e.{sequence} DESC LIMIT 1) l ON true"
    )


def next_slot(using: str, instance_id: int) -> tuple[int, int]:
    """``(txid, position)`` for the next event of ``instance_id``, inside the writing transaction
    (after the instance row is locked or created)."""
    connection = connections[using]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(slot_sql(qn, "%(instance)s"), {"instance": instance_id})
            txid, position = cursor.fetchone()
            return int(txid), int(position)
        if connection.vendor == "sqlite":
            cursor.execute(
                f"SELECT COALESCE(MAX({qn('position')}), 0) + 1 FROM {qn(event_table())} "
                f"WHERE {qn('txid')} = 0"
            )
            return 0, int(cursor.fetchone()[0])
    raise NotImplementedError(
        f"django-steps keeps its history on PostgreSQL or SQLite, not {connection.vendor}."
    )
