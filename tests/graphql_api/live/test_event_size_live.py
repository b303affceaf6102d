"""An event over 2 MiB against real daphne and uvicorn servers (daphne refuses WebSocket frames
over 1 MiB; uvicorn sends them, and the `websockets` client, like many, refuses to receive
them): on both protocols the subscription ends with ``EVENT_TOO_LARGE`` and the event's cursor,
never a silent ``complete``; the next event reaches a new subscription; and nothing committed is
lost — the client reads it over HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async

from tests.servers import graphql

from .conftest import login_session, make_user
from .helpers import EVENTS, PROTOCOLS, instance_gid
from .live import HOLD, RESUME, open_socket, server
from .test_event_size import BIG, MISSED, NOTES, TRIES, gated_instance, last_cursor

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

run = database_sync_to_async


class RawSocket:
    """Either protocol over the `websockets` library (its default 1 MiB receive limit kept)."""

    def __init__(self, port: int, session_key: str, protocol: str) -> None:
        self.port, self.session_key, self.protocol = port, session_key, protocol
        self.transport_ws = protocol == "graphql-transport-ws"

    async def __aenter__(self) -> RawSocket:
        self.ws = await open_socket(self.port, self.session_key, self.protocol)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def receive(self, timeout: float = 20) -> dict:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
            elif message["type"] not in ("ka", "pong"):
                return message

    async def subscribe(self, query: str, **variables) -> str:
        id_ = uuid.uuid4().hex
        kind = "subscribe" if self.transport_ws else "start"
        await self.ws.send(
            json.dumps(
                {"id": id_, "type": kind, "payload": {"query": query, "variables": variables}}
            )
        )
        await asyncio.sleep(0.5)  # let the server start streaming
        return id_

    async def messages_until_complete(self, id_: str) -> list[dict]:
        messages = []
        while True:
            message = await self.receive()
            assert message.get("id") == id_, message
            messages.append(message)
            if message["type"] in ("complete", "error"):
                return messages


async def change(port: int, session: str, instance, operation: str) -> None:
    result = await asyncio.to_thread(graphql, port, operation, session, id=instance_gid(instance))
    assert "errors" not in result, result
    [payload] = result["data"].values()
    assert payload["__typename"] == "WorkflowInstance", payload


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_an_event_over_2_mib_is_reported_not_dropped_by_a_live_server(claim_workflows, kind):
    operator = await run(
        lambda: login_session(make_user("ops", is_superuser=True, is_staff=True))
    )()
    viewer = await run(
        lambda: login_session(
            make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
        )
    )()
    instance = await run(gated_instance)()
    gid = instance_gid(instance)
    with server(kind) as port:
        for protocol in PROTOCOLS:
            previous = await run(last_cursor)(instance)
            async with RawSocket(port, viewer, protocol) as ws:
                sub = await ws.subscribe(BIG, instanceId=gid)
                await change(port, operator, instance, HOLD)
                messages = await ws.messages_until_complete(sub)
                result_type = "next" if ws.transport_ws else "data"
                assert [m["type"] for m in messages] == [result_type, "complete"], (
                    protocol,
                    messages,
                )
                [error] = messages[0]["payload"]["errors"]
                assert messages[0]["payload"]["data"] is None
                assert error["extensions"]["code"] == "EVENT_TOO_LARGE", error
                assert error["extensions"]["size"] > 2 * 1024 * 1024
                held = error["extensions"]["cursor"]
                assert held == await run(last_cursor)(instance)

                # A normal event right after reaches a new subscription that goes on after it.
                again = await ws.subscribe(EVENTS, instanceId=gid, after=held)
                await change(port, operator, instance, RESUME)
                message = await ws.receive()
                assert message["type"] == result_type and message["id"] == again, message
                event = message["payload"]["data"]["workflowInstanceEvents"]
                assert event["kind"] == "RESUMED" and int(event["cursor"]) > int(held)

            # Nothing committed is lost: the event that could not be sent, read over HTTP.
            feed = await asyncio.to_thread(
                graphql, port, MISSED, viewer, after=previous, instanceId=gid
            )
            assert "errors" not in feed, feed["errors"]
            nodes = [edge["node"] for edge in feed["data"]["workflowEvents"]["edges"]]
            assert [(n["cursor"], n["kind"]) for n in nodes] == [
                (held, "ON_HOLD"),
                (event["cursor"], "RESUMED"),
            ]
            contexts = [e["node"]["context"] for e in nodes[0]["instance"]["history"]["edges"]]
            notes = [c["input"]["notes"] for c in contexts if c is not None]
            assert sum(n == "x" * NOTES for n in notes) >= TRIES - 4
