"""Hostile or broken clients on the WebSocket protocol: malformed messages are refused as each
protocol prescribes (graphql-transport-ws: close with 4400; graphql-ws: an ``error`` or
``connection_error`` answer, and the socket goes on), without a traceback in the log, and
other sockets keep being served; the operations limit per socket is refused with a code."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from channels.db import database_sync_to_async
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from .conftest import login_session, make_user
from .helpers import EVENTS, PROTOCOLS, GraphQLSocket

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

ME = {"query": "{ me { username } }"}
DEEP = "[" * 100_000 + "]" * 100_000

#: name -> the raw text of a message strawberry's handlers tripped over (the socket stayed open,
#: dead). Written for graphql-transport-ws; {start} is replaced by the protocol's verb.
MALFORMED = {
    "payload not an object": json.dumps({"id": "1", "type": "{start}", "payload": "x"}),
    "id not a string": json.dumps({"id": {"a": 1}, "type": "{start}", "payload": ME}),
    "query not a string": json.dumps({"id": "1", "type": "{start}", "payload": {"query": 123}}),
    "variables not an object": json.dumps(
        {"id": "1", "type": "{start}", "payload": {**ME, "variables": [1]}}
    ),
    "variables nested 100k deep": '{"id": "1", "type": "{start}", '
    '"payload": {"query": "{ me { username } }", '
    '"variables": {"x": ' + DEEP + "}}}",
    "message not an object": json.dumps(["{start}"]),
    "no type": json.dumps({"id": "1", "payload": ME}),
    "stop with an id that is not a string": json.dumps({"id": ["1"], "type": "{stop}"}),
}


def _text(template: str, protocol: str) -> str:
    start, stop = (
        ("subscribe", "complete")
        if protocol == GRAPHQL_TRANSPORT_WS_PROTOCOL
        else ("start", "stop")
    )
    return template.replace("{start}", start, 1).replace("{stop}", stop, 1)


async def _next(ws: GraphQLSocket, timeout: float = 5) -> dict:
    """The next message that is not a keep-alive (``{"close": code}`` for a close)."""
    while True:
        raw = await asyncio.wait_for(ws.communicator.output_queue.get(), timeout)
        if raw["type"] == "websocket.close":
            return {"close": raw.get("code")}
        message = json.loads(raw["text"])
        if message.get("type") not in ("ka", "ping", "pong"):
            return message


async def _me(ws: GraphQLSocket) -> dict:
    return await ws.result(await ws.subscribe(ME["query"]))


@pytest.fixture
def session(transactional_db):
    return login_session(
        make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    )


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_message_closes_a_graphql_transport_ws_socket_with_4400(
    application, session, name, caplog
):
    caplog.set_level(logging.INFO)
    async with GraphQLSocket(application, session_key=session) as bystander:
        async with GraphQLSocket(application, session_key=session) as ws:
            await ws.communicator.send_to(
                text_data=_text(MALFORMED[name], GRAPHQL_TRANSPORT_WS_PROTOCOL)
            )
            assert await _next(ws) == {"close": 4400}
        # the server goes on serving the other socket
        assert await _me(bystander) == {"data": {"me": {"username": "viewer"}}}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    assert any("4400" in r.getMessage() for r in caplog.records)  # one line says why


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_message_is_answered_on_a_graphql_ws_socket_that_goes_on(
    application, session, name, caplog
):
    caplog.set_level(logging.INFO)
    async with GraphQLSocket(application, protocol=GRAPHQL_WS_PROTOCOL, session_key=session) as ws:
        await ws.communicator.send_to(text_data=_text(MALFORMED[name], GRAPHQL_WS_PROTOCOL))
        answer = await _next(ws)
        if answer["type"] == "error":  # a start with a usable id
            assert answer["id"] == "1" and answer["payload"]["extensions"]["code"] == "BAD_REQUEST"
        else:
            assert answer["type"] == "connection_error" and answer["payload"]["message"]
        # the socket still serves a subscription
        sub = await ws.subscribe(EVENTS)
        assert await ws.nothing_more(sub, 0.3)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_operation_beyond_the_limit_is_refused_with_a_code(
    application, session, protocol
):
    async with GraphQLSocket(application, protocol=protocol, session_key=session) as ws:
        # WEBSOCKET_MAX_OPERATIONS: 10 by default (a replay is real work: not strawberry's 100)
        subscriptions = [await ws.subscribe(EVENTS) for _ in range(10)]
        assert await ws.nothing_more(subscriptions[-1], 0.5)
        refused = await ws.result(await ws.subscribe(EVENTS))
        errors = (
            refused["errors"] if protocol == GRAPHQL_TRANSPORT_WS_PROTOCOL else [refused["errors"]]
        )
        assert [e["extensions"]["code"] for e in errors] == ["TOO_MANY_OPERATIONS"]
        assert "10 operations" in errors[0]["message"]
        # the others go on; ending one makes room for another
        await ws.stop(subscriptions[0])
        await asyncio.sleep(0.2)
        again = await ws.subscribe(EVENTS)
        assert await ws.nothing_more(again, 0.5)
