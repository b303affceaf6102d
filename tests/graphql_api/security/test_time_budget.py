"""A time budget per request: ``MAX_SECONDS`` of wall-clock time, then the operation's SQL stops
and its fields fail with ``TIMEOUT`` (#17, "Cost counts work"). SQLite interrupts a running
statement through its progress handler, PostgreSQL through ``statement_timeout``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from graphql_api.security.budget import is_timeout, time_budget
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import submitted_claims

pytestmark = pytest.mark.django_db


@pytest.fixture
def hundred_instances(claim_workflow, operator):
    submitted_claims(100, operator)


def _budget(settings, seconds):
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "MAX_SECONDS": seconds,
        "MAX_COST": 0,  # the cost limit would refuse HEAVY before it runs
    }


def _timeouts(result: dict) -> list[dict]:
    return [e for e in result.get("errors") or () if e["extensions"]["code"] == "TIMEOUT"]


def _statement_timeout() -> str:
    """The connection's ``statement_timeout`` as PostgreSQL shows it (``"0"``: none)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


# ---------------------------------------------------------------------------- over GraphQL


def test_a_request_over_its_budget_stops_with_timeout(as_viewer, hundred_instances, settings):
    _budget(settings, 0)
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as whole:
        assert "errors" not in as_viewer(ops.HEAVY)
    unbounded = time.perf_counter() - started

    _budget(settings, unbounded / 4)
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as cut:
        result = as_viewer(ops.HEAVY)
    bounded = time.perf_counter() - started
    print(
        f"\n20 heavy aliases: {unbounded:.2f} s, {len(whole)} statements without a budget; "
        f"{bounded:.2f} s, {len(cut)} statements with {unbounded / 4:.2f} s"
    )
    # nothing of a cut-short result is kept (a check that failed may have hidden rows)
    assert result["data"] is None and len(_timeouts(result)) == len(result["errors"]) == 1
    assert "time budget" in result["errors"][0]["message"]
    # stopped part way: its statements stopped once the budget was spent (the Python work
    # between two statements runs on, so the time it took is printed, not held to a bound)
    assert len(cut) < len(whole), (len(cut), len(whole))

    # the server answers normally right after, within the same budget
    quick = as_viewer("{ workflowInstances(first: 5) { edges { node { id } } } }")
    assert "errors" not in quick and len(quick["data"]["workflowInstances"]["edges"]) == 5


def test_a_mutation_over_its_budget_changes_nothing(as_operator, instance, settings):
    from graphql_api.schema import schema  # noqa: F401  (the budget's SQL hook is installed)
    from tests.graphql_api.conftest import gid

    _budget(settings, 1e-9)  # spent before the first statement
    result = as_operator(
        """mutation($id: ID!) { setWorkflowOnHold(input: {instanceId: $id}) {
             __typename ... on WorkflowInstance { state } } }""",
        {"id": gid("WorkflowInstance", instance.pk)},
    )
    assert _timeouts(result), result
    instance.refresh_from_db()
    assert instance.state == "ACTIVE" and instance.version == 1


def test_the_budget_follows_the_setting_and_can_be_turned_off(as_viewer, instance, settings):
    _budget(settings, 1e-9)
    assert _timeouts(as_viewer("{ workflowInstances(first: 1) { edges { node { id } } } }"))
    _budget(settings, 0)
    assert "errors" not in as_viewer("{ workflowInstances(first: 1) { edges { node { id } } } }")


# ------------------------------------------------------------ a statement already running


LONG_SQLITE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
    "SELECT count(*) FROM c"
)


@contextlib.contextmanager
def _cut_short(seconds: float) -> Iterator[SimpleNamespace]:
    """Runs the block within a budget of ``seconds`` and expects the budget to stop it with a
    timeout; the object yielded holds the block's ``elapsed`` seconds once it is over."""
    cut = SimpleNamespace(elapsed=None)
    started = time.perf_counter()
    with pytest.raises(Exception) as raised, time_budget(seconds):
        yield cut
    cut.elapsed = time.perf_counter() - started
    assert is_timeout(raised.value), raised.value


def test_sqlite_interrupts_a_statement_at_the_deadline():
    if connection.vendor != "sqlite":
        pytest.skip("the PostgreSQL test is below")
    with _cut_short(0.2) as cut, connection.cursor() as cursor:
        cursor.execute(LONG_SQLITE)
    assert cut.elapsed < 0.7, cut.elapsed
    with connection.cursor() as cursor:  # the connection goes on, without a budget
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_cuts_a_statement_with_statement_timeout():
    with _cut_short(0.2) as cut, connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(5)")
    assert cut.elapsed < 0.7, cut.elapsed
    with connection.cursor() as cursor:  # outside a budget: the server's default again
        cursor.execute("SELECT 1")
    assert _statement_timeout() == "0"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_cuts_a_statement_begun_late_in_the_budget_at_the_deadline():
    """``statement_timeout`` counts from each statement's start: it follows what is left."""
    with _cut_short(1.5) as cut, connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # sets the timeout to the whole budget
        time.sleep(1.0)
        cursor.execute("SELECT pg_sleep(5)")
    assert cut.elapsed < 2.0  # not 1.0 + 1.5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_cuts_a_transaction_after_reads_with_the_session_timeout_they_set():
    """A mutation reads, then writes in a transaction: the transaction keeps the timeout the
    reads set for the session (no SET LOCAL of its own), while it is within the slack; begun
    later in the budget, it gets its own, following what is left."""
    from django.db import transaction

    for pause in (0.0, 1.0):
        with _cut_short(1.5) as cut:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")  # outside a transaction: the session's timeout
            time.sleep(pause)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(5)")
        assert cut.elapsed < 2.0, pause  # not pause + 1.5
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert _statement_timeout() == "0"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_cuts_a_statement_inside_a_transaction():
    from django.db import transaction

    with _cut_short(0.2) as cut, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(5)")
    assert cut.elapsed < 0.7
    assert _statement_timeout() == "0"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_request_over_its_budget_stops_with_timeout(hundred_instances, settings):
    from tests.graphql_api.conftest import STAFF, VIEW, client_for, make_user

    as_viewer = client_for(make_user("viewer2", *VIEW, groups=STAFF))
    _budget(settings, 0.3)
    started = time.perf_counter()
    result = as_viewer(ops.HEAVY)
    assert result["data"] is None and _timeouts(result)
    assert time.perf_counter() - started < 2.0
    assert "errors" not in as_viewer("{ workflowInstances(first: 5) { edges { node { id } } } }")


def test_a_refused_operation_leaves_no_budget_behind(as_viewer, instance, settings):
    """An operation refused by the cost limit (an extension refusing as execution starts) must not
    leave its deadline on the thread: the next request would then time out."""
    _budget(settings, 0.2)
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "MAX_COST": 10}
    refused = as_viewer("{ workflowInstances(first: 100) { edges { node { id } } } }")
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["QUERY_TOO_COMPLEX"]
    time.sleep(0.3)
    assert "errors" not in as_viewer("{ me { username } }")
    with connection.cursor() as cursor:  # and code outside GraphQL has no budget either
        cursor.execute("SELECT 1")


# --------------------------------------------------------------------------- over WebSocket


@pytest.mark.django_db(transaction=True)
async def test_a_query_over_its_budget_on_a_websocket_answers_timeout(settings):
    """Over graphql-transport-ws the resolvers query in worker threads: the budget reaches them."""
    from channels.db import database_sync_to_async as run

    from graphql_api.live.routing import get_application
    from tests.conftest import CLAIM_PROCESSING, make_workflow
    from tests.graphql_api.live.conftest import login_session, make_user
    from tests.graphql_api.live.helpers import GraphQLSocket, error_codes

    await run(make_workflow)("Claim Processing", CLAIM_PROCESSING)
    session = await run(
        lambda: login_session(
            make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
        )
    )()
    query = "query { workflowInstances(first: 5) { edges { node { id } } } }"
    async with GraphQLSocket(
        get_application(), protocol="graphql-transport-ws", session_key=session
    ) as ws:
        _budget(settings, 1e-9)
        refused = await ws.result(await ws.subscribe(query))
        assert error_codes(refused) == ["TIMEOUT"] and refused.get("data") is None
        _budget(settings, 10)
        answered = await ws.result(await ws.subscribe(query))
        assert not answered.get("errors") and answered["data"]["workflowInstances"]["edges"] == []


@pytest.mark.django_db(transaction=True)
async def test_an_operation_inside_a_hosts_budget_of_the_same_length_gets_its_own(settings):
    """A host's own budget around serving a socket (an ASGI middleware of its own, say) that
    happens to be ``MAX_SECONDS`` long is not the HTTP view's budget for a request: an operation
    on that socket, once the host's budget ran out, still gets its own."""
    import asyncio

    from channels.db import database_sync_to_async as run

    from graphql_api.live.routing import get_application
    from tests.conftest import CLAIM_PROCESSING, make_workflow
    from tests.graphql_api.live.conftest import login_session, make_user
    from tests.graphql_api.live.helpers import GraphQLSocket, error_codes

    await run(make_workflow)("Claim Processing", CLAIM_PROCESSING)
    session = await run(
        lambda: login_session(
            make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
        )
    )()
    _budget(settings, 1.0)
    # The socket's user, re-read before its first operation, is kept for the second.
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "SUBSCRIPTION_RECHECK_SECONDS": 60,
    }
    application, hosts = get_application(), []

    async def budgeted(scope, receive, send):  # the host's middleware
        with time_budget(1.0) as budget:
            hosts.append(budget)
            await application(scope, receive, send)

    query = "query { workflowInstances(first: 5) { edges { node { id } } } }"
    async with GraphQLSocket(budgeted, protocol="graphql-transport-ws", session_key=session) as ws:
        first = await ws.result(await ws.subscribe(query))
        await asyncio.sleep(max(hosts[0].remaining(), 0) + 0.05)  # the host's budget ran out
        answered = await ws.result(await ws.subscribe(query))
    assert not error_codes(first), first
    assert not error_codes(answered), answered
    assert answered["data"]["workflowInstances"]["edges"] == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_no_statement_timeout_outlives_its_budget_through_a_rolled_back_transaction():
    """A budget set outside a transaction is the session's; lifted inside a later transaction
    that rolls back (autocommit turned off, as some code does), it must not come back."""
    from django.db import transaction

    with time_budget(10), connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # the session's timeout: ten seconds
    transaction.set_autocommit(False)
    try:
        assert _statement_timeout() == "0"
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    assert _statement_timeout() == "0"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_pooled_connection_comes_back_without_the_last_requests_timeout():
    """With psycopg's pool (the default settings), a connection handed back keeps its session:
    the next user of it must not inherit a timeout set for the session by a budget."""
    with time_budget(10), connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # the session's timeout: ten seconds
    seen = []
    for _ in range(12):  # every connection of the pool in turn (it hands them out in order)
        connection.close()  # back to the pool, as at the end of a request
        seen.append(_statement_timeout())
    assert set(seen) == {"0"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_back_to_back_requests_send_no_statement_of_the_budget(as_operator, instance, tmp_path):
    """Over HTTP the whole request is under its budget (the session and user loads too), and a
    session keeps the timeout an earlier budget of the same length set: from the second request
    on, the database sees the request's own statements only (no ``SET``, no ``RESET``), and the
    timeout is still in effect for them."""
    from django.test.utils import CaptureQueriesContext
    from psycopg import pq

    from tests.graphql_api.conftest import gid

    variables = {"id": gid("WorkflowInstance", instance.pk)}
    hold, resume = (
        f"mutation($id: ID!) {{ {name}(input: {{instanceId: $id}}) {{ __typename }} }}"
        for name in ("setWorkflowOnHold", "resumeWorkflowInstance")
    )
    assert "errors" not in as_operator(hold, variables)
    trace = tmp_path / "libpq.trace"
    session = connection.connection.pgconn
    with open(trace, "w") as out, CaptureQueriesContext(connection) as own:
        session.trace(out.fileno())
        session.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        result = as_operator(resume, variables)
        session.untrace()
    assert result["data"]["resumeWorkflowInstance"]["__typename"] == "WorkflowInstance"
    sent = [  # what the driver sent: the SQL of each Query / Parse message
        line.split("\t")[3]
        for line in trace.read_text().splitlines()
        if line.split("\t")[:1] == ["F"] and line.split("\t")[2] in ("Query", "Parse")
    ]
    sent = [sql for sql in sent if not sql.strip(' "').startswith(("BEGIN", "COMMIT"))]
    assert not [sql for sql in sent if "statement_timeout" in sql], sent
    assert len(sent) == len(own.captured_queries), sent
    with connection.connection.cursor() as cursor:  # the driver's cursor: no budget check
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "10s"
    assert _statement_timeout() == "0"  # a statement outside any budget: the default again


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_session_keeps_an_earlier_budgets_timeout_while_it_fits_the_deadline():
    """A statement runs with a timeout that lets it reach the deadline and stops it at most
    PG_TIMEOUT_SLACK after, whichever budget set it: a budget a little shorter than the one
    before it (a request whose first statement starts late) keeps the session's; a much shorter
    or a longer one sets its own."""

    def timeout_within(seconds: float) -> str:
        with time_budget(seconds):
            with connection.cursor() as cursor:  # through the budget's check
                cursor.execute("SELECT 1")
            with connection.connection.cursor() as cursor:  # the driver's: no check, no SET
                cursor.execute("SHOW statement_timeout")
                return cursor.fetchone()[0]

    assert timeout_within(10) == "10s"
    assert timeout_within(9.8) == "10s"  # kept: 10 s is within 9.8 s + the slack
    assert timeout_within(5) == "5s"  # would outlive the deadline by more: set
    assert timeout_within(10) == "10s"  # 5 s would stop it before its deadline: set
