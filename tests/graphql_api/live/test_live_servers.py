"""Real servers, real sockets: the `websockets` client library against uvicorn and daphne
subprocesses that share the PostgreSQL test database and a Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
from channels.db import database_sync_to_async

from django_steps import services
from tests.conftest import wait_until_final
from tests.servers import graphql

from .conftest import login_session, make_user, new_claim
from .helpers import DELIVERY_WITHIN, EVENTS, instance_gid
from .live import HOLD, RESUME, RedisServer, messages, open_socket, server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

run = database_sync_to_async


class LiveSubscriber:
    """A graphql-transport-ws client built on the `websockets` library, collecting events."""

    def __init__(self, port: int, session_key: str | None, **variables) -> None:
        self.port, self.session_key, self.variables = port, session_key, variables
        self.events: list[dict] = []
        self.errors: list[dict] = []
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> LiveSubscriber:
        self.ws = await open_socket(self.port, self.session_key)
        self.id = uuid.uuid4().hex
        await self.ws.send(
            json.dumps(
                {
                    "id": self.id,
                    "type": "subscribe",
                    "payload": {"query": EVENTS, "variables": self.variables},
                }
            )
        )
        self._task = asyncio.create_task(self._read())
        await asyncio.sleep(0.5)  # let the server join its group
        return self

    async def _read(self) -> None:
        async for message in messages(self.ws):
            if message["type"] == "next":
                if message["payload"].get("errors"):
                    self.errors.extend(message["payload"]["errors"])
                else:
                    self.events.append(message["payload"]["data"]["workflowInstanceEvents"])
            elif message["type"] == "error":
                self.errors.extend(message["payload"])

    async def wait_for(self, count: int, timeout: float = DELIVERY_WITHIN) -> list[dict]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events) < count and not self.errors:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        return self.events

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await self.ws.close()


def _setup(n_instances: int = 2):
    session = login_session(make_user("ops", is_superuser=True, is_staff=True))
    viewer = login_session(
        make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    )
    instances = [
        services.start_workflow_instance("Claim Processing", new_claim(f"c{i}"))
        for i in range(n_instances)
    ]
    return session, viewer, instances


async def _change(port: int, session: str, instance, hold: bool) -> dict:
    result = await asyncio.to_thread(
        graphql, port, HOLD if hold else RESUME, session, id=instance_gid(instance)
    )
    assert "errors" not in result, result
    field = result["data"]["setWorkflowOnHold" if hold else "resumeWorkflowInstance"]
    assert field["__typename"] == "WorkflowInstance", field
    return field


def _assert_once_in_order(events: list[dict], expected_count: int) -> None:
    cursors = [int(e["cursor"]) for e in events]
    assert len(cursors) == expected_count, f"{len(cursors)} of {expected_count} events"
    assert cursors == sorted(set(cursors)), "duplicated or out of order"


async def test_websockets_client_library_against_a_live_uvicorn(claim_workflows):
    session, viewer, [instance, _] = await run(_setup)()
    await run(wait_until_final)()  # its STARTED event is history, not news, to the subscriber
    with server("uvicorn") as port:
        async with LiveSubscriber(port, None) as anonymous:
            await anonymous.wait_for(1)  # ends at the error
        assert [e["extensions"]["code"] for e in anonymous.errors] == ["PERMISSION_DENIED"]

        async with LiveSubscriber(port, viewer, instanceId=instance_gid(instance)) as subscriber:
            for i in range(6):
                await _change(port, session, instance, hold=i % 2 == 0)
            events = await subscriber.wait_for(6)
    assert [e["kind"] for e in events] == ["ON_HOLD", "RESUMED"] * 3
    assert [e["sequence"] for e in events] == [2, 3, 4, 5, 6, 7]
    assert [e["state"] for e in events] == ["ON_HOLD", "ACTIVE"] * 3


WORKFLOW_EVENTS = "query Events { workflowEvents(first: 1) { edges { cursor } } }"


async def test_a_denied_subscription_is_classified_as_a_denied_query_over_http(claim_workflows):
    """A socket refused for lack of permission carries what an HTTP query refused for the same
    reason carries: the code and a classification that says permission, not bad input."""
    nobody = await run(lambda: login_session(make_user("nobody")))()
    with server("uvicorn") as port:
        async with LiveSubscriber(port, nobody, workflowName="Claim Processing") as denied:
            await denied.wait_for(1)  # ends at the error
        over_http = await asyncio.to_thread(graphql, port, WORKFLOW_EVENTS, nobody)
    [http_error] = over_http["errors"]
    [socket_error] = denied.errors
    assert http_error["extensions"] == {
        "code": "PERMISSION_DENIED",
        "classification": "PERMISSION_DENIED",
    }
    assert socket_error["extensions"] == http_error["extensions"]


@pytest.mark.redis
async def test_two_servers_share_subscriptions_through_redis(claim_workflows):
    session, viewer, instances = await run(_setup)(3)
    redis_url = os.environ["REDIS_URL"]
    with (
        server("daphne", redis_url=redis_url) as port_a,
        server("uvicorn", redis_url=redis_url) as port_b,
    ):
        async with (
            LiveSubscriber(port_a, viewer, workflowName="Claim Processing") as on_a,
            LiveSubscriber(port_a, viewer, instanceId=instance_gid(instances[0])) as one_on_a,
        ):
            for i in range(20):  # every change made through server B
                await _change(port_b, session, instances[i % 3], hold=(i // 3) % 2 == 0)
            await on_a.wait_for(20)
            await one_on_a.wait_for(7)
    _assert_once_in_order(on_a.events, 20)
    _assert_once_in_order(one_on_a.events, 7)
    assert {e["instance"]["id"] for e in one_on_a.events} == {instance_gid(instances[0])}
    assert [e["kind"] for e in one_on_a.events] == ["ON_HOLD", "RESUMED"] * 3 + ["ON_HOLD"]


@pytest.mark.redis
async def test_redis_restart_mid_stream_loses_and_duplicates_nothing(claim_workflows, tmp_path):
    redis = RedisServer()
    redis.start()
    session, viewer, instances = await run(_setup)(2)
    try:
        with (
            server("uvicorn", redis_url=redis.url, log=tmp_path / "a.log") as port_a,
            server("daphne", redis_url=redis.url, log=tmp_path / "b.log") as port_b,
        ):
            subscribers = [
                LiveSubscriber(port_a, viewer),
                LiveSubscriber(port_a, viewer, workflowName="Claim Processing"),
                LiveSubscriber(port_b, viewer),
                LiveSubscriber(port_b, viewer, instanceId=instance_gid(instances[0])),
            ]
            for subscriber in subscribers:
                await subscriber.__aenter__()
            holds = {instance.pk: False for instance in instances}
            made = 0

            async def changes(count: int) -> None:
                nonlocal made
                for _ in range(count):
                    instance = instances[made % 2]
                    holds[instance.pk] = not holds[instance.pk]
                    # Alternate servers; a mutation must succeed even while Redis is down.
                    await _change(
                        port_a if made % 2 else port_b, session, instance, hold=holds[instance.pk]
                    )
                    made += 1
                    await asyncio.sleep(0.05)

            await changes(10)
            redis.stop()
            await changes(10)  # committed during the outage
            await asyncio.sleep(1)
            redis.start()  # same port, empty: group memberships are gone
            await asyncio.sleep(1)
            await changes(10)
            for subscriber in subscribers:
                await subscriber.wait_for(
                    30 if subscriber is not subscribers[3] else 15, timeout=30
                )
            for subscriber in subscribers:
                await subscriber.__aexit__(None, None, None)
    finally:
        redis.stop()
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert "Could not publish" in logs  # the outage really hit the publishers (logged, not raised)
    for subscriber in subscribers[:3]:
        assert not subscriber.errors
        _assert_once_in_order(subscriber.events, 30)
    _assert_once_in_order(subscribers[3].events, 15)
    assert [e["sequence"] for e in subscribers[3].events] == list(range(2, 17))
