"""A time budget per operation: ``DJANGO_STEPS_GRAPHQL["MAX_SECONDS"]`` of wall-clock time.

The cost limit (:mod:`graphql_api.security.cost`) bounds what an operation may return; this bounds
how long
it may run, whatever the reason (a table much larger than usual, a slow disk, a rule that
queries). Once the budget is spent the operation's database work stops, and it answers
``{"data": null, "errors": [{"extensions": {"code": "TIMEOUT"}}]}`` (nothing of a result cut
short is kept: code that reads a failed query as "no rows" may have answered wrongly):

* **every SQL statement** of the operation first checks the deadline (a Django execute wrapper,
  on every connection, also in the worker threads an asynchronous operation queries in);
* **a statement already running** is cut at the deadline: SQLite's progress handler interrupts
  it; on PostgreSQL ``statement_timeout`` is set to what is left of the budget (again once that
  has shrunk by more than :data:`PG_TIMEOUT_SLACK`): ``SET`` for the session outside a
  transaction, reset to the server's default by the next statement outside any budget, and
  inside one ``SET LOCAL`` — unless the session's value this budget set still fits what is
  left (a mutation's transaction after its reads: one round trip fewer).

Python work between statements is not interrupted (it is bounded by the other limits: cost,
depth, tokens, input sizes). Subscriptions have no budget (they run as long as the socket); a
host's own code can use :func:`time_budget` around any work.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.signals import connection_created

from graphql_api.security.error_codes import TransportCode

__all__ = ["TIMEOUT", "Budget", "RequestTimeout", "end_budget", "is_timeout", "time_budget"]

TIMEOUT = TransportCode.TIMEOUT

#: SQLite virtual-machine instructions between two deadline checks (a check costs far less than
#: the instructions between two, and a thousand of them still run in a small fraction of a ms).
SQLITE_CHECK_EVERY = 1000


class Budget:
    """The deadline of one operation (``time.monotonic()`` seconds)."""

    __slots__ = ("deadline", "seconds", "spent")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.spent = False  # a statement was refused or cut: the work is incomplete

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


_budget: ContextVar[Budget | None] = ContextVar("django_steps_time_budget", default=None)


@contextmanager
def time_budget(seconds: float | None) -> Iterator[Budget | None]:
    """Run the block under a budget of ``seconds`` (none if false): its SQL stops at the deadline
    with :class:`RequestTimeout` (or the database's own cancellation, see :func:`is_timeout`)."""
    if not seconds:
        yield None
        return
    for connection in connections.all(initialized_only=True):
        _install(connection)  # connections opened before this module was imported
    budget = Budget(float(seconds))
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


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


# ----------------------------------------------------------------------- the database side


def _check_deadline(execute: Any, sql: str, params: Any, many: bool, context: dict) -> Any:
    budget = _budget.get()
    connection = context["connection"]
    if budget is None:
        if getattr(connection, "_steps_budget", None) is not None:
            _reset_statement_timeout(connection)
        return execute(sql, params, many, context)
    remaining = budget.remaining()
    if remaining <= 0:
        budget.spent = True
        raise RequestTimeout(budget.seconds)
    if connection.vendor == "postgresql":
        _set_statement_timeout(connection, budget, remaining)
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


def _in_transaction(connection: Any) -> bool:
    """Inside a transaction (an atomic block, or autocommit turned off), where a ``SET`` or
    ``RESET`` of the session is undone by a rollback."""
    return connection.in_atomic_block or not connection.get_autocommit()


def _set_statement_timeout(connection: Any, budget: Budget, remaining: float) -> None:
    local = _in_transaction(connection)
    current = getattr(connection, "_steps_local" if local else "_steps_budget", None)
    if current is budget:
        milliseconds = getattr(connection, "_steps_timeout_ms", 0)
        if time.monotonic() + milliseconds / 1000 <= budget.deadline + PG_TIMEOUT_SLACK:
            return
    elif (
        local
        and getattr(connection, "_steps_local", None) is None
        and getattr(connection, "_steps_budget", None) is budget
    ):
        # In a transaction that set no timeout of its own, the session's timeout this budget
        # set outside it still holds: no SET LOCAL while it is within the slack (a mutation's
        # transaction after its reads: one round trip fewer).
        milliseconds = getattr(connection, "_steps_session_ms", 0)
        if time.monotonic() + milliseconds / 1000 <= budget.deadline + PG_TIMEOUT_SLACK:
            return
    milliseconds = max(1, int(remaining * 1000))
    with connection.connection.cursor() as cursor:  # the raw cursor: no wrapper, no recursion
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, %s)", [f"{milliseconds}ms", local]
        )
    connection._steps_timeout_ms = milliseconds
    if local:
        connection._steps_local = budget  # until the transaction ends
    else:
        connection._steps_budget = budget
        connection._steps_session_ms = milliseconds
        _timed_sessions.add(connection.connection)


def _reset_statement_timeout(connection: Any) -> None:
    if connection.vendor != "postgresql":
        connection._steps_budget = None
    elif not _in_transaction(connection):
        with connection.connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
        connection._steps_budget = None
        _timed_sessions.discard(connection.connection)
    else:
        # In a transaction a rollback would undo a RESET: lift the limit for this transaction
        # only, and leave the session's RESET to the first statement outside one.
        with connection.connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', '0', true)")
        connection._steps_local = _UNLIMITED


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


#: Database sessions (the driver's connections) whose ``statement_timeout`` a budget set for the
#: session. A pool (psycopg's, the default settings) hands a session to the next Django
#: connection as it was: that one resets it before its first statement without a budget.
_timed_sessions: weakref.WeakSet = weakref.WeakSet()
#: ``_steps_budget`` of a connection whose session still has a timeout of an earlier budget.
_LEFTOVER = object()
#: ``_steps_local`` of a connection whose transaction lifted the timeout (none, until it ends).
_UNLIMITED = object()


def _connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    # A new session starts at the server's default timeout; a pooled one as it was left.
    connection._steps_budget = _LEFTOVER if connection.connection in _timed_sessions else None
    _install(connection)


connection_created.connect(_connection_created, dispatch_uid="graphql_api.security.budget")
