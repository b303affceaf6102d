"""A worker's life cycle with real servers: SIGTERM ends it promptly whatever its sockets were
doing; an idle channel layer logs nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import pytest
from channels.db import database_sync_to_async

from django_steps import services
from tests.servers import graphql

from .conftest import login_session, make_user, new_claim
from .helpers import EVENTS, instance_gid
from .live import HOLD, RESUME, RedisServer, messages, open_socket, server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

run = database_sync_to_async


def _setup():
    viewer = login_session(
        make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    )
    instance = services.start_workflow_instance("Claim Processing", new_claim("c"))
    return viewer, instance


async def _subscribe(ws, operation_id: str, **variables) -> None:
    payload = {"query": EVENTS, "variables": variables}
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))


def _stopped_within(process, seconds: float) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
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
        closed = await open_socket(port, viewer)
        for n in range(10):
            await _subscribe(closed, f"c{n}", instanceId=instance_gid(instance))
        await asyncio.sleep(0.5)
        for n in range(10):
            await closed.send(json.dumps({"id": f"c{n}", "type": "complete"}))
        await closed.close()
        still_open = await open_socket(port, viewer)
        for n in range(5):
            await _subscribe(still_open, f"o{n}", after="0")
        await _subscribe(still_open, "live", instanceId=instance_gid(instance))
        await asyncio.sleep(1.5)
        took = await asyncio.to_thread(_stopped_within, port.process, 5)
        await still_open.close()
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert took < 5


class _Stream:
    """One subscription on a real socket, recording when each event arrived."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.arrivals: list[tuple[float, dict]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in messages(self.ws):
            if message["type"] == "next":
                data = message["payload"]["data"]["workflowInstanceEvents"]
                self.arrivals.append((time.monotonic(), data))

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self.task.cancel()
        await self.ws.close()


async def _change(port: int, session: str, instance, hold: bool) -> float:
    """Hold or resume over HTTP; when the change had committed (its response came back)."""
    result = await asyncio.to_thread(
        graphql, port, HOLD if hold else RESUME, session, id=instance_gid(instance)
    )
    assert "errors" not in result, result
    return time.monotonic()


def _operator():
    return login_session(make_user("ops", is_superuser=True, is_staff=True))


@pytest.mark.redis
async def test_an_idle_redis_layer_logs_nothing_and_delivers_at_once(claim_workflows, tmp_path):
    """channels-redis blocks 5 s in BZPOPMIN while idle: a redis-py read timeout as short would
    fail every idle receive ("Channel layer receive failed", the feed marked down)."""
    viewer, instance = await run(_setup)()
    operator = await run(_operator)()
    log = tmp_path / "server.log"
    with server("uvicorn", redis_url=os.environ["REDIS_URL"], log=log) as port:
        stream = _Stream(await open_socket(port, viewer))
        await _subscribe(stream.ws, "1", instanceId=instance_gid(instance))
        await asyncio.sleep(12)  # more than two idle receives
        committed = await _change(port, operator, instance, hold=True)
        await stream.wait_for(1)
        await stream.close()
    assert [data["kind"] for _, data in stream.arrivals] == ["ON_HOLD"]
    assert (
        stream.arrivals[0][0] - committed < 2.0
    )  # an idle feed marked down polls at 0.5 s: not this
    text = log.read_text(errors="replace")
    assert "receive failed" not in text and "Timeout" not in text, text[-3000:]


@pytest.mark.redis
async def test_while_redis_is_frozen_events_follow_the_retry_interval(claim_workflows, tmp_path):
    """A frozen Redis (SIGSTOP) answers nothing and refuses nothing. Once the worker finds it down
    it reads the history every SUBSCRIPTION_RETRY_SECONDS (0.5): each attempt to rejoin used to
    wait for the client's read timeout (5 s), delaying events by as much."""
    redis = RedisServer()
    redis.start()
    viewer, instance = await run(_setup)()
    operator = await run(_operator)()
    try:
        with server("uvicorn", redis_url=redis.url, log=tmp_path / "server.log") as port:
            stream = _Stream(await open_socket(port, viewer))
            await _subscribe(stream.ws, "1", instanceId=instance_gid(instance))
            await asyncio.sleep(1)
            redis.freeze()
            await asyncio.sleep(7)  # a catch-up (5 s) finds it down
            committed = []
            for n in range(8):  # committed while Redis is frozen
                committed.append(await _change(port, operator, instance, hold=n % 2 == 0))
                await asyncio.sleep(0.4)
            await stream.wait_for(8)
            redis.thaw()
            await asyncio.sleep(1)
            for n in range(4):  # and after
                committed.append(await _change(port, operator, instance, hold=n % 2 == 0))
                await asyncio.sleep(0.4)
            await stream.wait_for(12)
            await stream.close()
    finally:
        redis.stop()
    assert [data["sequence"] for _, data in stream.arrivals] == list(range(2, 14))
    late = [
        round(arrived - done, 2)
        for (arrived, _), done in zip(stream.arrivals, committed, strict=False)
    ]
    # The retry interval, plus one bounded attempt to rejoin, plus reading the history.
    assert max(late) < 3.0, late  # not one read timeout per attempt to rejoin
