"""Stop means stop; replay costs what it returns (issue #17, items 1, 2 and 10's cursor leak).

* ``complete`` / ``stop`` and closing the socket end an operation's work at once, even in the
  middle of 50 replays of thousands of events: no further result arrives, the process goes idle
  (CPU time measured in this process, where the in-process server runs) and answers at once;
* a socket runs at most ``WEBSOCKET_MAX_OPERATIONS`` operations, a user holds at most
  ``WEBSOCKET_MAX_CONNECTIONS_PER_USER`` sockets;
* a replay reads only what its user may see, filtered in SQL: the statements it runs do not
  grow with history the user cannot see; ``after`` further back than
  ``SUBSCRIPTION_REPLAY_WINDOW`` visible events is ``CURSOR_TOO_OLD``;
* a cursor past the newest event is not refused (that answer would reveal everyone's activity):
  it reads like the newest event the user may see.

In-process sockets (channels' communicator over the real ASGI application) on any database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.db.backends.utils import CursorWrapper
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from django_steps import services
from django_steps.models import WorkflowEvent

from .conftest import login_session
from .helpers import COMPLETE, PROTOCOLS, GraphQLSocket, add_events, error_codes, instance_gid
from .test_roles import demo  # noqa: F401 - the demo users and their instances

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

#: A subscription as a dashboard writes it: the event and the instance it changed.
REPLAY = """
subscription Replay($after: String, $instanceId: ID) {
  workflowInstanceEvents(after: $after, instanceId: $instanceId) {
    cursor kind sequence state context instance { id version state }
  }
}
"""
EVENTS_PAGE = """query Page($after: String) {
  workflowEvents(after: $after, first: 100) { cursor edges { cursor } pageInfo { hasNextPage } }
}"""
ME = "query { me { username } }"


def _options(settings, **values) -> None:
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, **values}


def _http(session_key: str, query: str, **variables) -> dict:
    client = Client()
    client.cookies["sessionid"] = session_key
    body = json.dumps({"query": query, "variables": variables})
    response = client.post("/graphql/", data=body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


async def _drain(ws: GraphQLSocket, seconds: float) -> int:
    """Read every message for ``seconds``; the number of results (``next``/``data``) among them."""
    before = sum(len(b) for b in ws.buffers.values())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        while (remaining := deadline - loop.time()) > 0:
            await ws._pump(remaining)
    results = (
        sum(1 for b in ws.buffers.values() for payload in b if payload is not COMPLETE) - before
    )
    for buffer in ws.buffers.values():
        buffer.clear()
    return max(results, 0)


def _results_sent(ws: GraphQLSocket) -> int:
    """Results (``next``/``data``) the server has sent that this client has not read yet."""
    waiting = list(ws.communicator.output_queue._queue)  # the communicator's unread output
    return sum(
        1
        for raw in waiting
        if raw.get("type") == "websocket.send"
        and json.loads(raw["text"]).get("type") in ("next", "data")
    )


async def _replaying(ws: GraphQLSocket, results: int = 200, timeout: float = 15) -> None:
    """Read until ``results`` results have arrived: the replays are under way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = 0
    while seen < results:
        remaining = deadline - loop.time()
        assert remaining > 0, f"only {seen} results within {timeout}s"
        seen += await _drain(ws, min(remaining, 0.2))


async def _cpu_over(seconds: float) -> float:
    """CPU time this process (every thread) spends while the event loop idles ``seconds``."""
    start = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - start


@pytest.fixture
def busy(demo, settings):  # noqa: F811
    """alice (a claimant) and rita (a reviewer) and 3,000 events on bob's claim: 50 replays of
    them is minutes of work for a server that does not stop."""
    users, instances = demo
    add_events(instances["bob"], 3000)
    _options(settings, WEBSOCKET_MAX_OPERATIONS=50)
    return users, instances


# --------------------------------------------------------------------------- stop means stop


async def test_closing_a_socket_with_50_replays_leaves_the_server_idle(application, busy):
    users, _ = busy
    session = await run(login_session)(users["rita"])
    async with GraphQLSocket(application, session_key=session) as ws:
        ids = [await ws.subscribe(REPLAY, after="0") for _ in range(50)]
        await _replaying(ws)
        await ws.communicator.disconnect()
        cpu = await _cpu_over(3.0)
        assert cpu < 0.6, f"{cpu:.2f} s of CPU in the 3 s after the close (limit: 20 % of a core)"
        assert len(ids) == 50
    # and it answers at once
    async with GraphQLSocket(application, session_key=session) as again:
        started = time.monotonic()
        first = await again.result(await again.subscribe(ME), timeout=2)
        assert first["data"] == {"me": {"username": "rita"}}
        assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_complete_stops_every_replay_at_once(application, busy, protocol):
    users, instances = busy
    session = await run(login_session)(users["rita"])
    async with GraphQLSocket(application, protocol=protocol, session_key=session) as ws:
        ids = [await ws.subscribe(REPLAY, after="0") for _ in range(50)]
        await _replaying(ws)
        for id_ in ids:
            await ws.stop(id_)
        # What the server sends from now on, whatever this client has still to read of before.
        await asyncio.sleep(0.3)  # grace: the stops are read
        sent = _results_sent(ws)
        cpu = await _cpu_over(2.0)
        assert _results_sent(ws) == sent, "results sent after complete"
        assert cpu < 0.4, f"{cpu:.2f} s of CPU in the 2 s after complete"
        await _drain(ws, 0.5)
        # the socket goes on: a new subscription gets a new event at once
        live = await ws.subscribe(REPLAY, instanceId=instance_gid(instances["alice"]))
        assert await ws.nothing_more(live, 0.3)
        await run(services.set_workflow_on_hold)(instances["alice"])
        (event,) = await ws.events(live, 1)
        assert event["kind"] == "ON_HOLD"


# --------------------------------------------------------------------------- limits


async def test_operations_beyond_the_per_socket_limit_are_refused(application, demo, settings):  # noqa: F811
    users, _ = demo
    _options(settings, WEBSOCKET_MAX_OPERATIONS=3)
    session = await run(login_session)(users["rita"])
    async with GraphQLSocket(application, session_key=session) as ws:
        running = [await ws.subscribe(REPLAY) for _ in range(3)]
        assert await ws.nothing_more(running[-1], 0.3)
        refused = await ws.result(await ws.subscribe(REPLAY))
        assert error_codes(refused) == ["TOO_MANY_OPERATIONS"]
        await ws.stop(running[0])
        await asyncio.sleep(0.1)
        assert await ws.nothing_more(await ws.subscribe(REPLAY), 0.3)  # room again


async def _open(application, session: str) -> tuple[GraphQLWebsocketCommunicator, dict]:
    communicator = GraphQLWebsocketCommunicator(
        application,
        "/graphql/",
        headers=[(b"cookie", f"sessionid={session}".encode())],
        protocol=GRAPHQL_TRANSPORT_WS_PROTOCOL,
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "connection_init"})
    return communicator, await communicator.receive_output(timeout=3)


async def test_sockets_beyond_the_per_user_limit_are_closed_with_a_code(
    application,
    demo,  # noqa: F811 - the fixture imported above
    settings,
):
    users, _ = demo
    _options(settings, WEBSOCKET_MAX_CONNECTIONS_PER_USER=2)
    alice = await run(login_session)(users["alice"])
    rita = await run(login_session)(users["rita"])
    first, ack = await _open(application, alice)
    assert json.loads(ack["text"])["type"] == "connection_ack"
    second, _ = await _open(application, alice)
    third, closed = await _open(application, alice)
    assert closed["type"] == "websocket.close" and closed["code"] == 4429
    assert closed["reason"].startswith("TOO_MANY_CONNECTIONS:")
    others, ack = await _open(application, rita)  # another user is not affected
    assert json.loads(ack["text"])["type"] == "connection_ack"
    await first.disconnect()
    fourth, ack = await _open(application, alice)  # a closed socket makes room
    assert json.loads(ack["text"])["type"] == "connection_ack"
    for communicator in (second, others, fourth, third):
        await communicator.disconnect()


# --------------------------------------------------------------------------- replay cost


def _hold_resume(instance, times: int) -> list[int]:
    for _ in range(times):
        services.set_workflow_on_hold(instance)
        services.resume_workflow_instance(instance)
    return list(
        WorkflowEvent.objects.filter(instance=instance)
        .order_by("txid", "position")
        .values_list("txid", "position")
    )


@contextlib.contextmanager
def _event_reads():
    """Count the SQL statements that read the event table, in every thread."""
    counted = []
    original = CursorWrapper._execute

    def execute(self, sql, params, *ignored):
        if "django_steps_workflowevent" in sql and sql.lstrip().upper().startswith("SELECT"):
            counted.append(sql)
        return original(self, sql, params, *ignored)

    with mock.patch.object(CursorWrapper, "_execute", execute):
        yield counted


async def _replay_alone(application, session: str, expected: int) -> tuple[list[dict], int]:
    async with GraphQLSocket(application, session_key=session) as ws:
        with _event_reads() as reads:
            sub = await ws.subscribe(REPLAY, after="0")
            events = await ws.events(sub, expected)
            assert await ws.nothing_more(sub, 0.5)
            return events, len(reads)


async def test_a_replay_reads_what_its_user_may_see_whatever_else_is_stored(
    application,
    demo,  # noqa: F811
    settings,
):
    users, instances = demo
    _options(settings, SUBSCRIPTION_CATCH_UP_SECONDS=60)  # no periodic read during the count
    await run(_hold_resume)(instances["alice"], 5)  # 1 start + 10: alice's 11 events
    alice = await run(login_session)(users["alice"])
    mine = await run(
        lambda: list(
            WorkflowEvent.objects.filter(instance=instances["alice"])
            .order_by("txid", "position")
            .values_list("sequence", flat=True)
        )
    )()
    assert len(mine) == 11

    await run(add_events)(instances["bob"], 50)
    few, reads_with_little = await _replay_alone(application, alice, len(mine))
    await run(add_events)(instances["bob"], 3000)
    many, reads_with_much = await _replay_alone(application, alice, len(mine))

    for events in (few, many):
        assert {e["instance"]["id"] for e in events} == {instance_gid(instances["alice"])}
        assert [e["sequence"] for e in events] == mine
    assert reads_with_much == reads_with_little, (
        "the replay's SQL grows with history its user may not see"
    )


async def test_a_cursor_further_back_than_the_replay_window_is_cursor_too_old(
    application,
    demo,  # noqa: F811
    settings,
):
    users, instances = demo
    await run(_hold_resume)(instances["alice"], 5)  # alice's 11 events
    await run(add_events)(instances["bob"], 500)  # not hers: they do not count
    _options(settings, SUBSCRIPTION_REPLAY_WINDOW=5)
    alice = await run(login_session)(users["alice"])
    page = (await run(_http)(alice, EVENTS_PAGE, after="0"))["data"]["workflowEvents"]
    cursors = [edge["cursor"] for edge in page["edges"]]
    assert len(cursors) == 11
    async with GraphQLSocket(application, session_key=alice) as ws:
        too_old = await ws.subscribe(REPLAY, after="0")
        refused = await ws.result(too_old)
        assert error_codes(refused) == ["CURSOR_TOO_OLD"]
        assert "workflowEvents" in refused["errors"][0]["message"]
        assert refused["data"] is None
        assert await ws.result(too_old) is COMPLETE  # nothing sent, nothing skipped
        # within the window (5 of hers after it, hundreds of bob's): replayed
        recent = await ws.subscribe(REPLAY, after=cursors[5])
        assert [e["cursor"] for e in await ws.events(recent, 5)] == cursors[6:]
        assert await ws.nothing_more(recent, 0.3)


async def test_a_cursor_past_the_newest_event_reads_like_the_newest_the_user_may_see(
    application,
    demo,  # noqa: F811
):
    users, instances = demo
    await run(add_events)(instances["bob"], 20)  # the newest events are bob's
    newest = await run(lambda: max(e.cursor for e in WorkflowEvent.objects.all()))()
    alice = await run(login_session)(users["alice"])
    cursors = [str(newest - 10), str(newest), str(newest + 1), str(newest + 10**6), str(2**100)]

    answers = [
        (await run(_http)(alice, EVENTS_PAGE, after=c))["data"]["workflowEvents"] for c in cursors
    ]
    assert all(a["edges"] == [] and not a["pageInfo"]["hasNextPage"] for a in answers), answers

    async with GraphQLSocket(application, session_key=alice) as ws:
        subs = [await ws.subscribe(REPLAY, after=c) for c in cursors]
        for sub in subs:
            assert await ws.nothing_more(sub, 0.2)  # no INVALID_CURSOR, no replay
        await run(services.set_workflow_on_hold)(instances["alice"])
        for sub in subs:  # and every one of them goes live alike
            (event,) = await ws.events(sub, 1)
            assert event["kind"] == "ON_HOLD"


async def _open_from(application, address: str):
    communicator = GraphQLWebsocketCommunicator(
        application, "/graphql/", protocol=GRAPHQL_TRANSPORT_WS_PROTOCOL
    )
    # Set before the application runs (it starts at the first await): the client's address,
    # as the ASGI server puts it in the scope.
    communicator.scope["client"] = [address, 50000]
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "connection_init"})
    return communicator, await communicator.receive_output(timeout=3)


async def test_sockets_not_logged_in_are_limited_per_client_address(application, settings):
    # An outside tester opened 600 sockets without a login: the per-user limit counts users.
    _options(settings, WEBSOCKET_MAX_ANONYMOUS_PER_ADDRESS=2)
    first, ack = await _open_from(application, "203.0.113.7")
    assert json.loads(ack["text"])["type"] == "connection_ack"
    second, _ = await _open_from(application, "203.0.113.7")
    third, closed = await _open_from(application, "203.0.113.7")
    assert closed["type"] == "websocket.close" and closed["code"] == 4429
    assert closed["reason"].startswith("TOO_MANY_CONNECTIONS:")
    other, ack = await _open_from(application, "198.51.100.1")  # another address is not affected
    assert json.loads(ack["text"])["type"] == "connection_ack"
    await first.disconnect()
    fourth, ack = await _open_from(application, "203.0.113.7")  # a closed socket makes room
    assert json.loads(ack["text"])["type"] == "connection_ack"
    for communicator in (second, other, fourth, third):
        await communicator.disconnect()
