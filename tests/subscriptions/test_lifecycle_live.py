"""A worker's life cycle with real servers: SIGTERM ends it promptly whatever its sockets were
doing; an idle channel layer logs nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect

from django_steps import services

from .conftest import login_session, make_user, new_claim
from .helpers import EVENTS, instance_gid
from .live import server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

run = database_sync_to_async


def _setup():
    viewer = login_session(
        make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    )
    instance = services.start_workflow_instance("Claim Processing", new_claim("c"))
    return viewer, instance


async def _socket(port: int, session: str):
    ws = await connect(
        f"ws://127.0.0.1:{port}/graphql/",
        subprotocols=["graphql-transport-ws"],
        additional_headers={"Cookie": f"sessionid={session}"},
        origin=f"http://127.0.0.1:{port}",
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def _subscribe(ws, operation_id: str, **variables) -> None:
    payload = {"query": EVENTS, "variables": variables}
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))


def _stopped_within(process, seconds: float) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
    except Exception:
        process.kill()
        process.wait(5)
        pytest.fail(f"the worker was still running {seconds} s after SIGTERM")
    return time.monotonic() - started


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
@pytest.mark.parametrize("layer", ["memory", "redis", "redis, cancelled as a timeout"])
async def test_sigterm_ends_a_worker_with_open_and_closed_subscriptions(
    claim_workflows, kind, layer, tmp_path
):
    """The reported hang: after subscriptions were closed, a task receiving from the channel
    layer stayed "cancelling" and the worker never exited on SIGTERM (the third layer makes the
    race that caused it happen every time)."""
    if layer != "memory" and not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis: set REDIS_URL=redis://... (CI does)")
    viewer, instance = await run(_setup)()
    redis_url = os.environ["REDIS_URL"] if layer != "memory" else None
    env = {}
    if layer == "redis, cancelled as a timeout":
        env["TEST_CHANNEL_LAYER_BACKEND"] = "tests.testapp.layers.CancelAsTimeoutRedisLayer"
    with server(kind, redis_url=redis_url, log=tmp_path / "server.log", env=env) as port:
        closed = await _socket(port, viewer)
        for n in range(10):
            await _subscribe(closed, f"c{n}", instanceId=instance_gid(instance))
        await asyncio.sleep(0.5)
        for n in range(10):
            await closed.send(json.dumps({"id": f"c{n}", "type": "complete"}))
        await closed.close()
        still_open = await _socket(port, viewer)
        for n in range(5):
            await _subscribe(still_open, f"o{n}", after="0")
        await _subscribe(still_open, "live", instanceId=instance_gid(instance))
        await asyncio.sleep(1.5)
        took = await asyncio.to_thread(_stopped_within, port.process, 5)
        await still_open.close()
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert took < 5
