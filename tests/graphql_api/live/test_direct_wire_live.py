"""Shared results written by the hub below uvicorn's WebSocket protocol (graphql_api.live.wire):
under both of uvicorn's `websockets` implementations, subscribers sharing a document get
well-formed frames, every event once, in order, the same data as a subscriber alone, whether
their socket compresses or not."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async as run
from websockets.frames import Frame, Opcode

from django_steps import services
from graphql_api.live.wire import text_frame
from tests.graphql_api.live import live
from tests.servers import graphql

from .conftest import login_session, make_user, new_claim
from .helpers import EVENTS, instance_gid
from .live import HOLD, RESUME, messages, open_socket

SOCKETS, OPERATIONS, CHANGES = 3, 4, 6
#: Only the cursor: frames shorter than 126 bytes (the other length encoding).
SMALL = "subscription($w: String) { workflowInstanceEvents(workflowName: $w) { cursor } }"


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_frames_are_what_the_websockets_library_writes(size):
    data = b"x" * size
    assert text_frame(data) == Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


@pytest.fixture(params=["websockets-sansio", "websockets"])
def uvicorn_ws(request, monkeypatch):
    """live.server("uvicorn") with this ``--ws`` implementation."""
    command = live.asgi_command

    def with_ws(kind, app, port, *options, **kwargs):
        options = tuple(request.param if o == "websockets" else o for o in options)
        return command(kind, app, port, *options, **kwargs)

    monkeypatch.setattr(live, "asgi_command", with_ws)
    return request.param


def _setup():
    ops = login_session(make_user("ops", is_superuser=True, is_staff=True))
    viewer = login_session(
        make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    )
    return ops, viewer, services.start_workflow_instance("Claim Processing", new_claim())


async def _collect(ws, results: dict[str, list], count: int) -> None:
    async for message in messages(ws):
        assert message["type"] == "next", message
        results[message["id"]].append(message["payload"])
        if all(len(got) >= count for got in results.values()):
            return


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
async def test_shared_results_reach_every_subscriber_once_in_order(claim_workflows, uvicorn_ws):
    ops, viewer, instance = await run(_setup)()
    variables = {"workflowName": "Claim Processing"}
    with live.server("uvicorn") as port:
        sockets, results = [], []
        for n in range(SOCKETS):
            # The first socket compresses (permessage-deflate): its frames go through `send`.
            ws = await open_socket(port, viewer, **({} if n == 0 else {"compression": None}))
            mine: dict[str, list] = {}
            for k in range(OPERATIONS):
                query, name = (SMALL, "w") if k == 0 else (EVENTS, None)
                op = f"{n}-{k}"
                mine[op] = []
                payload = {
                    "query": query,
                    "variables": {"w": variables["workflowName"]} if name else variables,
                }
                await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
            sockets.append(ws)
            results.append(mine)
        await asyncio.sleep(1)  # every subscription live
        readers = [
            asyncio.create_task(_collect(ws, mine, CHANGES))
            for ws, mine in zip(sockets, results, strict=True)
        ]
        for i in range(CHANGES):
            answer = await asyncio.to_thread(
                graphql, port, RESUME if i % 2 else HOLD, ops, id=instance_gid(instance)
            )
            assert answer["data"], answer
        await asyncio.wait_for(asyncio.gather(*readers), 30)
        for ws in sockets:
            await ws.close()
    received = {op: got for mine in results for op, got in mine.items()}
    full = [got for op, got in received.items() if not op.endswith("-0")]
    small = [got for op, got in received.items() if op.endswith("-0")]
    assert len(full) == SOCKETS * (OPERATIONS - 1) and len(small) == SOCKETS
    first = full[0]
    events = [p["data"]["workflowInstanceEvents"] for p in first]
    assert [e["kind"] for e in events] == ["ON_HOLD", "RESUMED"] * (CHANGES // 2)
    cursors = [e["cursor"] for e in events]
    assert len(set(cursors)) == CHANGES and cursors == sorted(cursors, key=int)
    assert all(got == first for got in full)
    assert all(
        got == [{"data": {"workflowInstanceEvents": {"cursor": c}}} for c in cursors]
        for got in small
    )


def test_a_uvicorn_protocol_without_an_attribute_the_writer_reads_gets_no_writer():
    """A uvicorn or websockets version that renamed an attribute the direct write checks falls
    back to ``send`` (no writer), instead of failing at the first event."""
    import uvicorn.protocols.websockets.websockets_sansio_impl as sansio

    from graphql_api.live.wire import frame_writer

    protocol = sansio.WebSocketsSansIOProtocol.__new__(sansio.WebSocketsSansIOProtocol)
    assert frame_writer(protocol.send) is None  # no attributes at all: not even `conn`
    protocol.conn = object()  # `conn` present, the flags the check reads missing
    assert frame_writer(protocol.send) is None
