"""The WebSocket origin check against a real server and real handshakes: exactly the origins a
POST with the same session cookie would be accepted from (Django's CSRF origin rules)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .conftest import login_session, make_user
from .live import server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


async def _handshake(port: int, session: str, origin: str | None) -> int | dict:
    """The HTTP status of a refused handshake, or the answer to a query sent on the socket."""
    try:
        async with connect(
            f"ws://127.0.0.1:{port}/graphql/",
            subprotocols=["graphql-transport-ws"],
            additional_headers={"Cookie": f"sessionid={session}"},
            origin=origin,
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            query = {"query": "{ me { username } }"}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if message["type"] == "next":
                    return message["payload"]
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_only_the_sites_own_origin_and_trusted_ones_open_a_socket(transactional_db):
    session = await database_sync_to_async(lambda: login_session(make_user("ops")))()
    with server("uvicorn", env={"GRAPHQL_ALLOWED_ORIGINS": "https://app.example.com"}) as port:
        own = f"http://127.0.0.1:{port}"
        for origin in (
            "http://127.0.0.1:3000",
            "https://127.0.0.1",
            f"https://127.0.0.1:{port}",
            "ftp://127.0.0.1",
            "http://localhost:1337",
            f"http://localhost:{port}",  # a host of ALLOWED_HOSTS, but not this socket's
            "http://app.example.com",
            "null",
        ):
            assert await _handshake(port, session, origin) == 403, origin
        for origin in (own, "https://app.example.com", None):
            answer = await _handshake(port, session, origin)
            assert answer == {"data": {"me": {"username": "ops"}}}, origin
