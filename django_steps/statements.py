"""A change's statements: the one read (the instance with its step, status, workflow, version
and content object, with the row lock or for a compare-and-set) and the one write (the
instance's UPDATE, the history row in its slot, work items and timers: one statement on
PostgreSQL, two on SQLite), written by hand with named parameters.

Where each history row goes (its slot) and why is :mod:`django_steps.history`; the values sent
and the models built from the row are :mod:`django_steps.rows`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import Model
from django.utils import timezone

from . import deadlines, history, rows
from .models import Workflow, WorkflowEvent, WorkflowInstance, WorkflowTimer, WorkflowVersion

__all__ = [
    "read_for_change",
    "write_in_one_statement",
    "write_in_two_statements",
]


#: Primary keys the one-statement read can join from ``object_id`` (text) with a cast.
_INTEGER_KEYS = {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField"}
_INTEGER_KEYS |= {"BigIntegerField", "SmallIntegerField", "PositiveIntegerField"}


class _Reader:
    """One change's read as one statement (see :func:`read_for_change`), built once per
    database, content type and locking."""

    def __init__(self, using: str, model: type[Model] | None, lock: bool) -> None:
        connection = connections[using]
        qn = connection.ops.quote_name
        self.model = model
        parts: list[tuple[type[Model], str, list]] = [
            (WorkflowInstance, "i", list(WorkflowInstance._meta.concrete_fields)),
            (Workflow, "w", list(Workflow._meta.concrete_fields)),
            (
                WorkflowVersion,
                "v",
                [f for f in WorkflowVersion._meta.concrete_fields if f.name != "document"],
            ),
        ]
        joins = [
            f"INNER JOIN {qn(Workflow._meta.db_table)} w ON w.{qn('id')} = i.{qn('workflow_id')}",
            f"INNER JOIN {qn(WorkflowVersion._meta.db_table)} v "
            f"ON v.{qn('id')} = i.{qn('definition_version_id')}",
        ]
        if model is not None:
            parts.append((model, "o", list(model._meta.concrete_fields)))
            cast = "bigint" if connection.vendor == "postgresql" else "integer"
            joins.append(
                f"LEFT JOIN {qn(model._meta.db_table)} o ON o.{qn(model._meta.pk.column)} = "
                f"CAST(CASE WHEN i.{qn('content_type_id')} = %s THEN i.{qn('object_id')} END "
                f"AS {cast})"
            )
        columns, self.parts = [], []
        for part_model, alias, fields in parts:
            start = len(columns)
            converters = []  # (column, its converters, its expression) where it has some
            for n, f in enumerate(fields):
                sql, functions = rows.read_as(connection, f, f"{alias}.{qn(f.column)}")
                columns.append(sql)
                column = f.get_col(alias)
                functions += connection.ops.get_db_converters(column)
                functions += f.get_db_converters(connection)
                if functions:
                    converters.append((start + n, functions, column))
            self.parts.append(
                (part_model, [f.attname for f in fields], start, len(columns), converters)
            )
        self.sql = (
            f"SELECT {', '.join(columns)} FROM {qn(WorkflowInstance._meta.db_table)} i "
            f"{' '.join(joins)} WHERE i.{qn('id')} = %s"
        )
        if lock and connection.features.has_select_for_update_of:
            self.sql += " FOR UPDATE OF i"


def _joinable(using: str, content_type_id: int | None) -> type[Model] | None:
    """The model of ``content_type_id`` if the read can join its row: an installed model in
    one table (no parents) keyed by an integer. (Django's cache of content types answers, as
    for a generic foreign key.)"""
    if content_type_id is None:
        return None
    manager = _content_types.get(using)
    if manager is None:  # a copy sharing the default manager's cache (made once: it copies)
        manager = _content_types[using] = ContentType.objects.db_manager(using)
    try:
        content_type = manager.get_for_id(content_type_id)
    except ContentType.DoesNotExist:
        return None
    model = content_type.model_class()
    if model is None or model._meta.concrete_model._meta.parents:
        return None
    if model._meta.pk.get_internal_type() not in _INTEGER_KEYS:
        return None
    return model


_content_types: dict[str, Any] = {}
_readers: dict[tuple, _Reader] = {}


def read_for_change(
    using: str, instance_id: Any, content_type_id: int | None = None, *, lock: bool = False
) -> WorkflowInstance | None:
    """The instance ``instance_id`` with its workflow and its version (``document`` deferred)
    — and, when ``content_type_id`` is the instance's content type and its model can be
    joined, its content object (``None`` if deleted) — read in ONE statement (``lock``: with
    its row locked, ``FOR UPDATE OF`` the instance alone). ``None`` when it does not exist."""
    model = _joinable(using, content_type_id)
    connection = connections[using]
    key = (using, model, lock, connection.timezone)  # rows.read_as depends on the time zone
    reader = _readers.get(key)
    if reader is None:
        reader = _readers[key] = _Reader(using, model, lock)
    params = [instance_id] if model is None else [content_type_id, instance_id]
    with _statement_cursor(connection) as cursor:
        cursor.execute(reader.sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    row = list(row)
    built = []
    for part, names, start, end, converters in reader.parts:
        for index, functions, expression in converters:
            for convert in functions:
                row[index] = convert(row[index], expression, connection)
        built.append(rows.from_row(part, using, names, row[start:end]))
    instance = built[0]
    WorkflowInstance.workflow.field.set_cached_value(instance, built[1])
    WorkflowInstance.definition_version.field.set_cached_value(instance, built[2])
    if model is not None and instance.content_type_id == content_type_id:
        obj = built[3] if built[3].pk is not None else None
        WorkflowInstance.content_object.set_cached_value(instance, obj)
    return instance


# --------------------------------------------------------------------------- writing


def _statement_cursor(connection: Any) -> Any:
    """A cursor for the change path's read and write (:func:`read_for_change`,
    :func:`write_in_one_statement`). When the connection prepares statements (psycopg 3 with
    Django's ``OPTIONS["prepare_threshold"]`` set; Django leaves it off by default for poolers
    in transaction mode), a server-binding cursor: psycopg prepares each of these statements
    after that many uses on the connection, and PostgreSQL then neither parses nor plans it
    again — most of the server's time for them. Otherwise Django's own cursor, as everywhere.
    While queries are logged (``DEBUG``, ``CaptureQueriesContext``) Django's own cursor is used,
    whose log shows each statement with its values; either way Django wraps the cursor, so
    ``execute_wrapper`` hooks and error wrapping apply."""
    if connection.vendor == "postgresql" and not connection.queries_logged:
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        if getattr(connection.connection, "prepare_threshold", None) is not None:
            from django.db.backends.postgresql.base import ServerBindingCursor

            connection.validate_thread_sharing()
            with connection.wrap_database_errors:
                return connection.make_cursor(ServerBindingCursor(connection.connection))
    return connection.cursor()


def write_in_one_statement(
    using: str,
    event: Any,
    *,
    update: Any = None,
    fields=(),
    work: Any = None,
    timers: Any = None,
    expect: tuple[int, int] | None = None,
) -> bool:
    """PostgreSQL: insert ``event`` at its place in the global order — and first, when
    ``update`` is given, save ``fields`` of that (already locked) instance; with ``work`` (a
    :class:`django_steps.workitems.Plan`), close and open its work items; with ``timers`` (a
    :class:`django_steps.deadlines.Plan`), disarm, arm, pause or resume its timers — in ONE
    statement (data-modifying CTEs): one round trip instead of the ORM path's three or more,
    with the same effects. Sets ``event``'s ``pk``, ``txid`` and ``position``.

    ``expect``: compare-and-set (a change read without a lock, in autocommit): the ``UPDATE``
    applies only if the instance is still at ``(version, last_sequence)``, every other part
    only if it did; False, nothing written, when another change came first (see the module
    docstring for why its slot is sound).

    Every value is a named parameter (``%(u_<column>)s``, ``%(e_<column>)s``); the statement is
    built from the models' fields, so a new column needs no edit here."""
    connection = connections[using]
    params: dict[str, Any] = {"instance": event.instance_id}
    if expect is not None:
        params["cas_version"], params["cas_sequence"] = expect
    key = (using, type(update) if update is not None else None, tuple(fields), expect is not None)
    cached = _statements.get(key) if work is None and timers is None else None
    sql, sets, columns = cached or _statement(connection, update, fields, expect is not None)
    rows.parameters(params, "u_", sets, update, False, connection)
    rows.parameters(params, "e_", columns, event, True, connection)
    if work is not None or timers is not None:  # their CTEs go before the INSERT
        ctes = []
        guard = " AND EXISTS (SELECT 1 FROM u)" if expect is not None else ""
        if timers is not None:
            ctes.extend(_timer_ctes(connection, timers, params, guard))
        head, _, insert = sql.partition(" INSERT INTO ")
        insert = "INSERT INTO " + insert
        if work is None:
            sql = f"{head}, {', '.join(ctes)} {insert}"
        else:
            ctes.append(f"e AS ({insert})")
            ctes.extend(_work_item_ctes(connection, work, params))
            sql = f"{head}, {', '.join(ctes)} SELECT * FROM e"
    elif cached is None:
        _statements[key] = (sql, sets, columns)
    with _statement_cursor(connection) as cursor:
        cursor.execute(sql, params)
        written = cursor.fetchone()
    if written is None:
        return False
    event.pk, event.txid, event.position = written
    event._state.adding = False
    event._state.db = using
    return True


def write_in_two_statements(using: str, event: Any, *, update: Any = None, fields=()) -> None:
    """SQLite: save ``fields`` of ``update`` (if given), then insert ``event`` at the next
    position, read by the INSERT itself (one writer at a time): two statements built once, where
    the ORM takes three. Sets ``event``'s ``pk``, ``txid`` and ``position``."""
    connection = connections[using]
    key = (using, type(update) if update is not None else None, tuple(fields))
    built = _sqlite_statements.get(key)
    if built is None:
        built = _sqlite_statements[key] = _sqlite_statement(connection, update, fields)
    update_sql, sets, insert_sql, columns = built
    with connection.cursor() as cursor:
        if update is not None:
            values = [f.get_db_prep_save(f.pre_save(update, add=False), connection) for f in sets]
            cursor.execute(update_sql, [*values, update.pk])
        values = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in columns]
        cursor.execute(insert_sql, values)
        event.pk, event.txid, event.position = cursor.fetchone()
    event._state.adding = False
    event._state.db = using


_sqlite_statements: dict[tuple, tuple[str, list, str, list]] = {}


def _event_columns() -> list:
    """The event's columns a write sets from the event (its place in the order aside)."""
    return [
        field
        for field in WorkflowEvent._meta.concrete_fields
        if not field.primary_key and field.name not in ("txid", "position")
    ]


def _sqlite_statement(connection: Any, update: Any, fields) -> tuple[str, list, str, list]:
    qn = connection.ops.quote_name
    update_sql, sets = "", []
    if update is not None:
        meta = update._meta
        sets = [meta.get_field(name) for name in fields]
        update_sql = (
            f"UPDATE {qn(meta.db_table)} SET {', '.join(f'{qn(f.column)} = %s' for f in sets)} "
            f"WHERE {qn(meta.pk.column)} = %s"
        )
    columns = _event_columns()
    table, txid, position = qn(history.event_table()), qn("txid"), qn("position")
    insert_sql = (
        f"INSERT INTO {table} ({', '.join(qn(f.column) for f in columns)}, {txid}, {position}) "
        f"SELECT {', '.join('%s' for _ in columns)}, 0, COALESCE(MAX({position}), 0) + 1 "
        f"FROM {table} WHERE {txid} = 0 RETURNING {qn('id')}, {txid}, {position}"
    )
    return update_sql, sets, insert_sql, columns


#: The statement of a change without timers or work items, by database, model, fields and
#: compare-and-set: built once (only its parameters change).
_statements: dict[tuple, tuple[str, list, list]] = {}


def _statement(connection: Any, update: Any, fields, compare: bool) -> tuple[str, list, list]:
    """``(sql, fields of the instance set, columns of the event)`` of
    :func:`write_in_one_statement`: ``WITH u AS (UPDATE …), slot AS (…) INSERT …``, the
    CTEs of timers and work items to be inserted before `` INSERT INTO ``."""
    qn = connection.ops.quote_name
    ctes, sets = [], []
    if update is not None:
        meta = update._meta
        sets = [meta.get_field(name) for name in fields]
        assignments = ", ".join(f"{qn(f.column)} = %(u_{f.column})s" for f in sets)
        where = f"{qn(meta.pk.column)} = %(instance)s"
        if compare:
            where += (
                f" AND {qn('version')} = %(cas_version)s"
                f" AND {qn('last_sequence')} = %(cas_sequence)s"
            )
        ctes.append(
            f"u AS (UPDATE {qn(meta.db_table)} SET {assignments} "
            f"WHERE {where} RETURNING {qn(meta.pk.column)})"
        )
    ctes.append(f"slot(t, p) AS ({history.slot_sql(qn, '%(instance)s')})")
    columns = _event_columns()
    insert = (
        f"INSERT INTO {qn(history.event_table())} ({', '.join(qn(f.column) for f in columns)}, "
        f"{qn('txid')}, {qn('position')}) "
        f"SELECT {', '.join(f'%(e_{f.column})s' for f in columns)}, slot.t, slot.p "
        f"FROM slot{', u' if compare else ''} "
        f"RETURNING {qn('id')}, {qn('txid')}, {qn('position')}"
    )
    return f"WITH {', '.join(ctes)} {insert}", sets, columns


def _work_item_ctes(connection: Any, work: Any, params: dict[str, Any]) -> list[str]:
    """The CTEs closing the instance's open work item and opening the planned one (``e``: the
    event just inserted, whose id they record). One instance has at most one open item: its
    row lock serialises its changes."""
    from .models import WorkItem, WorkItemCandidate  # the models import this module

    qn = connection.ops.quote_name
    items, candidates = qn(WorkItem._meta.db_table), qn(WorkItemCandidate._meta.db_table)
    params["w_now"] = timezone.now()
    ctes = []
    if work.close:
        ctes.append(
            f"wc AS (UPDATE {items} SET {qn('closed_at')} = %(w_now)s, "
            f"{qn('closed_event_id')} = (SELECT {qn('id')} FROM e) "
            f"WHERE {qn('instance_id')} = %(instance)s AND {qn('closed_at')} IS NULL "
            "AND EXISTS (SELECT 1 FROM e))"
        )
    if work.step_id is None:
        return ctes
    params["w_step"] = work.step_id
    params["w_groups"] = WorkItem._meta.get_field("candidate_groups").get_db_prep_save(
        list(work.groups), connection
    )
    ctes.append(
        f"wo AS (INSERT INTO {items} ({qn('instance_id')}, {qn('step_id')}, "
        f"{qn('candidate_groups')}, {qn('opened_at')}, {qn('opened_event_id')}) "
        f"SELECT %(instance)s, %(w_step)s, %(w_groups)s, %(w_now)s, e.{qn('id')} FROM e "
        f"RETURNING {qn('id')})"
    )
    rows = [(user, "") for user in work.users] + [(None, group) for group in work.groups]
    if rows:
        values = []
        for i, (user, group) in enumerate(rows):
            params[f"w_u{i}"], params[f"w_g{i}"] = user, group
            values.append(f"(%(w_u{i})s::bigint, %(w_g{i})s)")
        ctes.append(
            f"wk AS (INSERT INTO {candidates} ({qn('item_id')}, {qn('user_id')}, {qn('group')}) "
            f"SELECT wo.{qn('id')}, c.u, c.g FROM wo, (VALUES {', '.join(values)}) AS c(u, g))"
        )
    return ctes


def _timer_ctes(connection: Any, plan: Any, params: dict[str, Any], guard: str) -> list[str]:
    """The CTEs keeping the instance's timers in step with the change (as
    :func:`django_steps.deadlines.apply` does through the ORM). They read the table as it was
    before the statement, so the timers armed are never the ones disarmed or paused.
    ``guard``: a condition (`` AND …``) every part needs (the compare-and-set matched)."""
    qn = connection.ops.quote_name
    meta = WorkflowTimer._meta
    table, mine = qn(meta.db_table), f"{qn('instance_id')} = %(instance)s"
    unfired = f"{mine} AND {qn('fired_at')} IS NULL{guard}"
    due, remaining = qn("due_at"), qn("remaining")
    ctes = []
    if plan.disarm:
        ctes.append(f"td AS (DELETE FROM {table} WHERE {mine}{guard})")
    if plan.pause:
        params["t_now"] = timezone.now()
        ctes.append(
            f"tp AS (UPDATE {table} SET {remaining} = GREATEST({due} - %(t_now)s, "
            f"INTERVAL '0'), {due} = NULL WHERE {unfired} AND {due} IS NOT NULL)"
        )
    if plan.resume:
        params["t_now"], params["t_latest"] = timezone.now(), deadlines.LATEST
        ctes.append(  # held at the latest due time Python reads back, as deadlines.shifted
            f"tr AS (UPDATE {table} SET {due} = LEAST(%(t_now)s + {remaining}, %(t_latest)s), "
            f"{remaining} = NULL "
            f"WHERE {unfired} AND {remaining} IS NOT NULL)"
        )
    if plan.arm:
        columns = [field for field in meta.concrete_fields if not field.primary_key]
        # one INSERT … SELECT per timer: it can carry the guard, and its values take the
        # columns' types (a VALUES list in a sub-select would make untyped ones text)
        for i, timer in enumerate(plan.arm):
            for field in columns:
                value = field.pre_save(timer, add=True)
                params[f"t{i}_{field.column}"] = field.get_db_prep_save(value, connection)
            ctes.append(
                f"ta{i} AS (INSERT INTO {table} ({', '.join(qn(f.column) for f in columns)}) "
                f"SELECT {', '.join(f'%(t{i}_{f.column})s' for f in columns)} WHERE TRUE{guard})"
            )
    return ctes
