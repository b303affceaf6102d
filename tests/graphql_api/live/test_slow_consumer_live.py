"""A reader that stops reading costs the server bounded memory, under daphne (whose send never
blocks) and uvicorn: its socket is closed with CONSUMER_TOO_SLOW (close code 4413), and the
client resumes by cursor with nothing lost."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from channels.db import database_sync_to_async as run
from websockets.exceptions import ConnectionClosed

from tests.servers import graphql

from .conftest import login_session, make_user
from .helpers import instance_gid
from .live import open_socket, server
from .test_event_size import gated_instance

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

EVENTS, NOTES, ALIASES = 400, 8_000, 16
#: Each event's context repeated under aliases: ~130 KB per message (~52 MB for all), while the
#: stored history stays small (what the server holds to read it does not hide what it sends).
LARGE = (
    "subscription Large($instanceId: ID, $after: String) {"
    " workflowInstanceEvents(instanceId: $instanceId, after: $after) { cursor sequence "
    + " ".join(f"c{n}: context" for n in range(ALIASES))
    + " } }"
)


def _setup():
    instance = gated_instance(tries=EVENTS - 1, notes=NOTES)
    return login_session(make_user("ops", is_superuser=True, is_staff=True)), instance


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Reader:
    """A graphql-transport-ws client that answers pings while it reads, and can stop reading."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.sequences: list[int] = []
        self.cursor: str | None = None
        self.close: tuple[int | None, str | None] | None = None

    async def read(self, count: int | None = None, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        try:
            while count is None or len(self.sequences) < count:
                left = deadline - time.monotonic()
                message = json.loads(await asyncio.wait_for(self.ws.recv(), max(left, 0.01)))
                if message["type"] == "ping":
                    await self.ws.send(json.dumps({**message, "type": "pong"}))
                elif message["type"] == "next":
                    data = message["payload"]["data"]["workflowInstanceEvents"]
                    self.sequences.append(data["sequence"])
                    self.cursor = data["cursor"]
                elif message["type"] != "pong":
                    raise AssertionError(message)
        except ConnectionClosed as closed:
            received = closed.rcvd
            self.close = (received.code, received.reason) if received else (None, None)


async def _open(port: int, session: str, instance, after: str) -> Reader:
    # the client library stops reading the TCP socket once 4 messages wait
    ws = await open_socket(port, session, max_queue=4)
    variables = {"instanceId": instance_gid(instance), "after": after}
    payload = {"query": LARGE, "variables": variables}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return Reader(ws)


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_reader_that_stops_is_closed_and_resumes_by_cursor(claim_workflows, kind):
    session, instance = await run(_setup)()
    env = {"TEST_GRAPHQL_SETTINGS": json.dumps({"WEBSOCKET_SEND_TIMEOUT": 2})}
    with server(kind, env=env) as port:
        # The first event of the instance is its start (sequence 1): replay everything after it.
        first = await asyncio.to_thread(
            graphql,
            port,
            "query($id: ID!) { workflowEvents(instanceId: $id, first: 1) "
            "{ edges { node { cursor } } } }",
            session,
            id=instance_gid(instance),
        )
        start = first["data"]["workflowEvents"]["edges"][0]["node"]["cursor"]
        await asyncio.sleep(1)
        before = _rss_mb(port.process.pid)
        reader = await _open(port, session, instance, after=start)
        await reader.read(3)  # a good start, then the client stops reading
        await asyncio.sleep(6)
        grown = _rss_mb(port.process.pid) - before
        print(f"{kind}: RSS grew {grown:.1f} MB while the reader was stalled")
        assert grown < 25, f"{grown:.1f} MB"  # ~52 MB were to be sent
        await reader.read()  # what was on its way, then the close
        code, reason = reader.close
        assert code == 4413, reader.close
        assert reason == ("CONSUMER_TOO_SLOW" if kind == "uvicorn" else ""), (
            reason
        )  # daphne sends no reason
        assert len(reader.sequences) < EVENTS - 1
        # Resume by cursor: the rest, once each, in order.
        resumed = await _open(port, session, instance, after=reader.cursor)
        await resumed.read(EVENTS - 1 - len(reader.sequences))
        await resumed.ws.close()
        # The server answers normally right after.
        me = await asyncio.to_thread(graphql, port, "{ me { username } }", session)
        assert me == {"data": {"me": {"username": "ops"}}}
    assert reader.sequences + resumed.sequences == list(range(2, EVENTS + 1))
