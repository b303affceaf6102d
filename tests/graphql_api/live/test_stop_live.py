"""Stop means stop, against a real server process: a socket with 50 replaying subscriptions is
closed (or completes them all) and the server is idle right after, on uvicorn and daphne."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from channels.db import database_sync_to_async as run

from django_steps import services
from tests.conftest import make_workflow, statuses, two_steps
from tests.servers import graphql

from .conftest import login_session, make_user, new_claim
from .live import open_socket, server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

INSTANCES, CHANGES, SUBSCRIPTIONS = 150, 12, 50
REPLAY = (
    'subscription Replay { workflowInstanceEvents(after: "0") {'
    " cursor kind sequence state context instance { id version state } } }"
)
GATED = two_steps(
    "Open",
    "Done",
    first_statuses=[*statuses("New"), {"name": "Waiting"}],
    second_statuses=[{"name": "Closed", "is_default_status": True, "is_completion_status": True}],
)


def _history() -> str:
    """Some thousands of events, and a reviewer who may read them all."""
    make_workflow("Busy", GATED)
    for _ in range(INSTANCES):
        instance = services.start_workflow_instance("Busy", new_claim())
        for change in range(CHANGES):
            services.update_workflow_step_status(instance, ("Waiting", "New")[change % 2])
    return login_session(make_user("ops", is_superuser=True, is_staff=True))


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _replaying_socket(port: int, session: str):
    ws = await open_socket(port, session, max_size=None)
    for n in range(SUBSCRIPTIONS):
        await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": REPLAY}}))
    return ws


async def _read_for(ws, seconds: float, *, until: int | None = None) -> int:
    """How many results arrive on ``ws`` within ``seconds`` (or as soon as ``until`` did)."""
    received, deadline = 0, time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and (until is None or received < until):
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            break
        if message["type"] == "ping":
            await ws.send(json.dumps({**message, "type": "pong"}))
        elif message["type"] == "next":
            received += 1
    return received


#: How long the replays may take to send their first result: generous, because a loaded machine
#: (or a transaction elsewhere in the cluster holding the history's horizon back) delays it; the
#: wait ends at the first result, so a quiet machine does not pay it.
FIRST_RESULT_WITHIN = 30.0


async def _running(ws) -> bool:
    """Whether the subscriptions on ``ws`` send results: read until the first one arrives, or
    :data:`FIRST_RESULT_WITHIN` seconds pass without one."""
    return await _read_for(ws, FIRST_RESULT_WITHIN, until=1) > 0


async def _idle_after(port, seconds: float = 3.0) -> float:
    start = _cpu_seconds(port.process.pid)
    await asyncio.sleep(seconds)
    return _cpu_seconds(port.process.pid) - start


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_closing_a_socket_with_50_replays_leaves_the_server_idle(claim_workflows, kind):
    session = await run(_history)()
    env = {"TEST_GRAPHQL_SETTINGS": json.dumps({"WEBSOCKET_MAX_OPERATIONS": SUBSCRIPTIONS})}
    with server(kind, env=env) as port:
        ws = await _replaying_socket(port, session)
        assert await _running(ws)  # the replays are running
        await ws.close()
        busy = await _idle_after(port)
        print(f"{kind}: {busy:.3f} s of server CPU in the 3 s after the close")
        assert busy < 0.6  # under 20 % of a core
        me = await asyncio.to_thread(graphql, port, "{ me { username } }", session)
        assert me == {"data": {"me": {"username": "ops"}}}


async def test_complete_stops_every_replay_on_a_real_socket(claim_workflows):
    session = await run(_history)()
    env = {"TEST_GRAPHQL_SETTINGS": json.dumps({"WEBSOCKET_MAX_OPERATIONS": SUBSCRIPTIONS})}
    with server("uvicorn", env=env) as port:
        ws = await _replaying_socket(port, session)
        assert await _running(ws)  # the replays are running
        for n in range(SUBSCRIPTIONS):
            await ws.send(json.dumps({"id": str(n), "type": "complete"}))
        await _read_for(ws, 0.5)  # what was already on its way
        late = await _read_for(ws, 2.0)
        busy = await _idle_after(port, 2.0)
        print(f"after complete: {late} more results, {busy:.3f} s of server CPU in 2 s")
        assert late == 0
        assert busy < 0.4
        await ws.close()


#: A document each event of which costs the server real work: the instance's history with every
#: step's statuses and their counts, per edge (bounded by the cost limit, not by the event).
HEAVY = (
    "subscription Heavy%d {"
    ' workflowInstanceEvents(after: "0") { cursor instance { id history(first: 100) { edges {'
    " node { id toStep { name instanceCounts { total active } statuses { name"
    " instanceCounts { total onHold } } } fromStep { name statuses { name"
    " instanceCounts { total } } } } } } } } }"
)


async def test_closing_a_socket_stops_the_executions_its_subscriptions_were_waiting_for(
    claim_workflows,
):
    """A subscription executing an event runs it as a task its sharers may wait for; once the
    socket is gone nobody waits, so the work stops with it instead of running on."""
    session = await run(_history)()
    env = {"TEST_GRAPHQL_SETTINGS": json.dumps({"WEBSOCKET_MAX_OPERATIONS": 10})}
    with server("uvicorn", env=env) as port:
        ws = await open_socket(port, session, max_size=None)
        for n in range(10):  # distinct documents: nothing shared between them
            query = HEAVY % n
            await ws.send(
                json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": query}})
            )
        assert await _running(ws)  # the executions are running (each takes a while)
        await ws.close()
        busy = await _idle_after(port)
        print(f"heavy: {busy:.3f} s of server CPU in the 3 s after the close")
        assert busy < 0.6
