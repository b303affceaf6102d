"""A time budget per operation: ``DJANGO_STEPS_GRAPHQL["MAX_SECONDS"]`` of wall-clock time.

The cost limit (:mod:`graphql_api.security.cost`) bounds what an operation may return; this
bounds how long it may run, whatever the reason (a table much larger than usual, a slow disk, a
rule that queries). Once the budget is spent the operation's database work stops, and it answers
``{"data": null, "errors": [{"extensions": {"code": "TIMEOUT"}}]}`` (nothing of a result cut
short is kept: code that reads a failed query as "no rows" may have answered wrongly):

* **every SQL statement** of the operation first checks the deadline (a Django execute wrapper,
  on every connection, also in the worker threads an asynchronous operation queries in);
* **a statement already running** is cut at the deadline: SQLite's progress handler interrupts
  it; on PostgreSQL ``statement_timeout`` is what is left of the budget, rounded up to
  :data:`PG_TIMEOUT_STEP_MS` (set again once it would outlive the deadline by more than
  :data:`PG_TIMEOUT_SLACK`): ``SET`` for the session outside a transaction, reset to the server's
  default by the next statement outside any budget, and inside one ``SET LOCAL`` — unless the
  timeout in effect already fits (lets the statement run to the deadline, and stops it at most
  :data:`PG_TIMEOUT_SLACK` after): the one this budget set, the session's for a mutation's
  transaction after its reads, or, on a pooled session, one an earlier budget left, while nothing
  outside a budget ran on it since. The HTTP view budgets the whole request (the session and
  user loads too), so back-to-back GraphQL requests on a session need neither ``SET`` nor
  ``RESET``.

Python work between statements is not interrupted (it is bounded by the other limits: cost,
depth, tokens, input sizes). A subscription runs as long as its socket; each event it sends is
executed under a budget of its own (:mod:`graphql_api.live.execution`), and over it that event
answers the same ``TIMEOUT``. A host's own code can use :func:`time_budget` around any work.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.signals import connection_created
from graphql import GraphQLError

from graphql_api.security.error_codes import TransportCode

__all__ = [
    "TIMEOUT",
    "Budget",
    "RequestTimeout",
    "current_budget",
    "end_budget",
    "is_timeout",
    "time_budget",
    "timeout_error",
    "within_budget",
]

TIMEOUT = TransportCode.TIMEOUT

#: SQLite virtual-machine instructions between two deadline checks (a check costs far less than
#: the instructions between two, and a thousand of them still run in a small fraction of a ms).
SQLITE_CHECK_EVERY = 1000


class Budget:
    """The deadline of one operation (``time.monotonic()`` seconds). ``whole_request``: the HTTP
    view's budget for its request, the one the operation it serves keeps (by this mark, not by
    its length: a host's budget of the same length is not the request's)."""

    __slots__ = ("deadline", "seconds", "spent", "whole_request")

    def __init__(self, seconds: float, *, whole_request: bool = False) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.spent = False  # a statement was refused or cut: the work is incomplete
        self.whole_request = whole_request

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class RequestTimeout(Exception):
    """Raised instead of running a statement once the operation's time budget is spent
    (``TIMEOUT``). Not a ``DatabaseError``: code that reads a database failure as "no such row"
    must not hide it."""

    code = TIMEOUT

    def __init__(self, seconds: float | None = None) -> None:
        limit = f" of {seconds:g} s" if seconds else ""
        super().__init__(
            f"The request ran over its time budget{limit} and was stopped. Ask for less (smaller "
            "pages, fewer nested lists) or try again later."
        )


#: ``transaction_status`` of a database session with no transaction open (libpq's
#: ``PQTRANS_IDLE``, the same in psycopg and psycopg2).
_IDLE = 0

_budget: ContextVar[Budget | None] = ContextVar("django_steps_time_budget", default=None)


@contextmanager
def time_budget(seconds: float | None, *, whole_request: bool = False) -> Iterator[Budget | None]:
    """Run the block under a budget of ``seconds`` (none if false): its SQL stops at the deadline
    with :class:`RequestTimeout` (or the database's own cancellation, see :func:`is_timeout`).
    ``whole_request``: the budget of a whole HTTP request, which its operation keeps."""
    if not seconds:
        yield None
        return
    for connection in connections.all(initialized_only=True):
        _install(connection)  # connections opened before this module was imported
    budget = Budget(float(seconds), whole_request=whole_request)
    with within_budget(budget):
        yield budget


@contextmanager
def within_budget(budget: Budget | None) -> Iterator[None]:
    """Run the block under ``budget``, begun earlier by :func:`time_budget`: the rest of an
    operation that left the block where its budget was set (an awaitable it returned)."""
    token = _budget.set(budget)
    try:
        yield
    finally:
        _budget.reset(token)


def current_budget() -> Budget | None:
    """The budget the code running now is under, if any."""
    return _budget.get()


def end_budget(budget: Budget | None) -> None:
    """Clear ``budget`` if it is still the current one (a block that could not end it)."""
    if budget is not None and _budget.get() is budget:
        _budget.set(None)


def is_timeout(error: BaseException | None) -> bool:
    """Whether ``error`` is a statement stopped by a time budget: ours, SQLite's interrupt, or
    PostgreSQL's statement timeout (``57014 query_canceled``)."""
    if isinstance(error, RequestTimeout):
        return True
    if not isinstance(error, DatabaseError):
        return False
    cause = error.__cause__ or error
    if getattr(cause, "sqlstate", None) == "57014" or getattr(cause, "pgcode", None) == "57014":
        return "statement timeout" in str(cause)
    return str(error) == "interrupted"  # sqlite3.OperationalError from the progress handler


def timeout_error(budget: Budget | None) -> GraphQLError:
    """The one error of an operation stopped by ``budget`` (answered with ``data: null``),
    whether the operation ran or the request was stopped before it (loading the session)."""
    return GraphQLError(
        str(RequestTimeout(budget.seconds if budget is not None else None)),
        extensions={"code": TIMEOUT, "classification": TransportCode.BAD_USER_INPUT},
    )


# ----------------------------------------------------------------------- the database side


def _check_deadline(execute: Any, sql: str, params: Any, many: bool, context: dict) -> Any:
    budget = _budget.get()
    connection = context["connection"]
    if budget is None:
        if connection.vendor == "postgresql" and _timeout_in_effect(connection):
            _lift_statement_timeout(connection)
        return execute(sql, params, many, context)
    remaining = budget.remaining()
    if remaining <= 0:
        budget.spent = True
        raise RequestTimeout(budget.seconds)
    if connection.vendor == "postgresql":
        _set_statement_timeout(connection, remaining)
    try:
        return execute(sql, params, many, context)
    except DatabaseError as error:
        if is_timeout(error):
            budget.spent = True
        raise


#: Seconds a running statement may outlive the deadline before PostgreSQL's timeout is set again
#: (``statement_timeout`` counts from each statement's start: set once, it would let a statement
#: begun late in the budget run the whole budget again). At most one ``SET`` per this interval.
PG_TIMEOUT_SLACK = 0.5
#: The timeout is set rounded up to a multiple of this many milliseconds: budgets of the same
#: length then ask for the same value, and a session keeps the one an earlier budget set (no
#: ``SET`` per request) while nothing outside a budget runs on it in between.
PG_TIMEOUT_STEP_MS = 100


def _in_transaction(connection: Any) -> bool:
    """Inside a transaction (an atomic block, or autocommit turned off), where a ``SET`` or
    ``RESET`` of the session is undone by a rollback."""
    return connection.in_atomic_block or not connection.get_autocommit()


#: Milliseconds: the ``statement_timeout`` a budget set for a database session (the
#: driver's connection), by session; absent: the server's default. Kept by session, not by
#: Django connection: a pool (psycopg's, the default settings) hands a session to the next Django
#: connection as it was, and that one must know what it inherits (reset it before its first
#: statement outside a budget, or keep it for a budget it fits).
_session_timeouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _timeout_in_effect(connection: Any) -> int:
    """The ``statement_timeout`` (milliseconds) the next statement of ``connection`` runs with,
    as far as budgets set it (0: none)."""
    session = connection.connection
    if _in_transaction(connection):
        # ``_steps_local``: (session, milliseconds) of the SET LOCAL of a transaction.
        local = getattr(connection, "_steps_local", None)
        if local is not None:
            if local[0] is session and session.info.transaction_status != _IDLE:
                return local[1]
            connection._steps_local = None  # that transaction has ended (this statement begins one)
    return _session_timeouts.get(session, 0)


def _set_statement_timeout(connection: Any, remaining: float) -> None:
    """Make the next statement stop at the deadline (``remaining`` seconds from now): ``SET`` for
    the session outside a transaction, ``SET LOCAL`` inside one (a rollback would bring a
    session value back) — unless the timeout in effect already does: one that lets the
    statement run to the deadline and ends at most :data:`PG_TIMEOUT_SLACK` after it, whichever
    budget set it (this one, the session's for a mutation's transaction after its reads, or an
    earlier request's left on this session: a request that starts its first statement a little
    late keeps it, and the next request does not set it back)."""
    milliseconds = _timeout_in_effect(connection)
    if milliseconds and remaining * 1000 <= milliseconds <= (remaining + PG_TIMEOUT_SLACK) * 1000:
        return
    wanted = max(1, math.ceil(remaining * 1000 / PG_TIMEOUT_STEP_MS)) * PG_TIMEOUT_STEP_MS
    local = _in_transaction(connection)
    session = connection.connection
    with session.cursor() as cursor:  # the raw cursor: no wrapper, no recursion
        cursor.execute("SELECT set_config('statement_timeout', %s, %s)", [f"{wanted}ms", local])
    if local:
        connection._steps_local = (session, wanted)  # until the transaction ends
    else:
        _session_timeouts[session] = wanted


def _lift_statement_timeout(connection: Any) -> None:
    """No timeout for the next statement (it runs outside any budget)."""
    session = connection.connection
    if not _in_transaction(connection):
        with session.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
        _session_timeouts.pop(session, None)
    else:
        # In a transaction a rollback would undo a RESET: lift the limit for this transaction
        # only, and leave the session's RESET to the first statement outside one.
        with session.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', '0', true)")
        connection._steps_local = (session, 0)


def _sqlite_progress() -> int:
    budget = _budget.get()
    return 1 if budget is not None and time.monotonic() > budget.deadline else 0


def _install(connection: Any) -> None:
    """Add the deadline check to ``connection`` (once per connection object; the SQLite handler
    again for each new database connection)."""
    if _check_deadline not in connection.execute_wrappers:
        connection.execute_wrappers.append(_check_deadline)
    if connection.vendor == "sqlite" and connection.connection is not None:
        connection.connection.set_progress_handler(_sqlite_progress, SQLITE_CHECK_EVERY)


def _connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    _install(connection)


connection_created.connect(_connection_created, dispatch_uid="graphql_api.security.budget")
