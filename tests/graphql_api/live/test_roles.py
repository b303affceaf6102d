"""The trust model on live streams: the demo's users (``demo_setup``) see only what their role
allows, and a socket stops at once when its user logs out, is deactivated or loses the permission.

In-process sockets (channels' communicator over the real ASGI application) on any database; the
last test drives a real server over TCP with the `websockets` library (PostgreSQL, as every live
server test)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from io import StringIO

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client

from claims.models import Claim
from django_steps import services
from tests.servers import graphql

from .conftest import login_session, socket_as
from .helpers import COMPLETE, EVENTS, GraphQLSocket, error_codes, instance_gid
from .live import HOLD, RESUME, open_socket, server

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async
User = get_user_model()

#: The subscription re-checks its user every SUBSCRIPTION_RECHECK_SECONDS (2 by default).
WITHIN = 8.0


@pytest.fixture
def demo(transactional_db):
    call_command("demo_setup", "--no-claims", stdout=StringIO())
    users = {name: User.objects.get(username=name) for name in ("alice", "bob", "rita")}
    claims = {
        name: Claim.objects.create(
            title=f"{name}'s claim", claimant=name, amount=100, owner=users[name]
        )
        for name in ("alice", "bob")
    }
    instances = {
        name: services.start_workflow_instance("Claim Processing", claim)
        for name, claim in claims.items()
    }
    return users, instances


def hold_and_resume(instance) -> None:
    services.set_workflow_on_hold(instance)
    services.resume_workflow_instance(instance)


@pytest.mark.parametrize("stream", ["all", "workflow"])
async def test_a_claimant_receives_only_their_own_instances_events(application, demo, stream):
    users, instances = demo
    variables = {"workflowName": "Claim Processing"} if stream == "workflow" else {}
    async with (
        await socket_as(application, users["alice"]) as alice,
        await socket_as(application, users["rita"]) as rita,
    ):
        hers = await alice.subscribe(**variables)
        everything = await rita.subscribe(**variables)
        assert await alice.nothing_more(hers, 0.3) and await rita.nothing_more(
            everything, 0.1
        )  # live now
        await run(hold_and_resume)(instances["bob"])
        await run(hold_and_resume)(instances["alice"])
        got = await alice.events(hers, 2)
        assert {e["instance"]["id"] for e in got} == {instance_gid(instances["alice"])}
        assert await alice.nothing_more(hers, 0.5)
        seen = await rita.events(everything, 4)
    assert [e["instance"]["id"] for e in seen] == [instance_gid(instances["bob"])] * 2 + [
        instance_gid(instances["alice"])
    ] * 2


async def test_another_users_instance_stream_is_not_found(application, demo):
    users, instances = demo
    async with await socket_as(application, users["alice"]) as alice:
        sub = await alice.subscribe(instanceId=instance_gid(instances["bob"]))
        assert error_codes(await alice.result(sub)) == ["INSTANCE_NOT_FOUND"]
        mine = await alice.subscribe(instanceId=instance_gid(instances["alice"]))
        assert await alice.nothing_more(mine, 0.3)  # live now
        await run(hold_and_resume)(instances["alice"])
        assert len(await alice.events(mine, 2)) == 2


def _give_to(instance, owner) -> None:
    Claim.objects.filter(pk=instance.object_id).update(owner=owner)


async def test_an_instance_stream_ends_with_instance_not_found_once_it_is_hidden(application, demo):
    # The same code as for an instance hidden from the start (and as mutations and queries).
    users, instances = demo
    async with await socket_as(application, users["alice"]) as alice:
        mine = await alice.subscribe(instanceId=instance_gid(instances["alice"]))
        assert await alice.nothing_more(mine, 0.3)  # live now
        await run(_give_to)(instances["alice"], users["bob"])
        await run(hold_and_resume)(instances["alice"])
        assert error_codes(await alice.result(mine)) == ["INSTANCE_NOT_FOUND"]


def _logout(session_key: str) -> None:
    client = Client()
    client.cookies["sessionid"] = session_key
    response = client.post("/accounts/logout/")
    assert response.status_code in (200, 302)


def _deactivate(user) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)


def _remove_permission(user) -> None:
    user.user_permissions.remove(Permission.objects.get(codename="view_workflowinstance"))


@pytest.mark.parametrize(
    "revoke",
    [_logout, _deactivate, _remove_permission],
    ids=["logout", "deactivation", "permission"],
)
@pytest.mark.parametrize("idle", [False, True], ids=["with-events", "idle"])
async def test_revoked_access_ends_the_stream_within_seconds(application, demo, revoke, idle):
    users, instances = demo
    session = await run(login_session)(users["alice"])
    async with GraphQLSocket(application, session_key=session) as alice:
        sub = await alice.subscribe()
        assert await alice.nothing_more(sub, 0.3)  # live now
        await run(hold_and_resume)(instances["alice"])
        assert len(await alice.events(sub, 2)) == 2
        await run(revoke)(session if revoke is _logout else users["alice"])
        revoked_at = time.monotonic()
        if not idle:
            await run(hold_and_resume)(instances["alice"])
        # Whatever still arrives, it ends with PERMISSION_DENIED, and nothing after.
        leaked = []
        while True:
            payload = await alice.result(sub, WITHIN)
            if payload is COMPLETE:
                pytest.fail("the stream completed without an error")
            if payload.get("errors"):
                assert error_codes(payload) == ["PERMISSION_DENIED"]
                break
            leaked.append(payload)
        assert time.monotonic() - revoked_at < WITHIN
        # The events committed after the revocation were not sent: at most what was already
        # on its way within the re-check interval (none when idle).
        assert len(leaked) <= (0 if idle else 2)
        # The subscription is over: at most its "complete", then nothing, whatever is committed.
        with contextlib.suppress(TimeoutError):
            assert await alice.result(sub, 1.0) is COMPLETE
        await run(hold_and_resume)(instances["alice"])
        assert await alice.nothing_more(sub, 1.0)


@pytest.mark.postgres
async def test_logout_stops_a_live_server_socket(demo):
    """The same over TCP against daphne, with the websockets library."""
    users, instances = demo
    session = await run(login_session)(users["alice"])
    operator = await run(login_session)(await run(User.objects.get)(username="demo"))

    async def hold_and_resume_on_the_server() -> (
        None
    ):  # committed by the server, which announces it
        for operation in (HOLD, RESUME):
            result = await asyncio.to_thread(
                graphql, port, operation, operator, id=instance_gid(instances["alice"])
            )
            assert "errors" not in result, result

    with server("daphne") as port:
        async with await open_socket(port, session) as ws:
            await ws.send(
                json.dumps(
                    {"id": "1", "type": "subscribe", "payload": {"query": EVENTS, "variables": {}}}
                )
            )
            await asyncio.sleep(0.5)
            await hold_and_resume_on_the_server()

            async def next_message() -> dict:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), WITHIN))
                    if message["type"] == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                        continue
                    return message

            assert [(await next_message())["type"] for _ in range(2)] == ["next", "next"]
            await run(_logout)(session)
            await hold_and_resume_on_the_server()
            messages = []
            while True:
                message = await next_message()
                messages.append(message)
                if message["type"] != "next" or message["payload"].get("errors"):
                    break
            last = messages[-1]
            errors = last["payload"] if last["type"] == "error" else last["payload"]["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["PERMISSION_DENIED"]
            assert len(messages) <= 3  # at most the two events already on their way
