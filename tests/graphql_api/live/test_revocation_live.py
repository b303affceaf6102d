"""Revocation is pushed to running subscriptions: after a logout over HTTP, a deactivation or a
lost permission, the next event committed is not delivered and the subscription ends with
PERMISSION_DENIED, at once, not at the next periodic re-check (set to a minute here)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group, Permission

from django_steps import services
from tests.servers import graphql

from .conftest import login_session, make_user, new_claim
from .helpers import EVENTS, instance_gid
from .live import HOLD, RESUME, open_socket, server

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

run = database_sync_to_async

LOGOUT = "mutation { logout }"


def _setup():
    viewer = make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    operator = make_user("ops", is_superuser=True, is_staff=True)
    instance = services.start_workflow_instance("Claim Processing", new_claim("c"))
    return viewer, login_session(viewer), login_session(operator), instance


def _logout_over_http(port: int, session: str, viewer) -> None:
    assert graphql(port, LOGOUT, session) == {"data": {"logout": True}}


def _deactivate(port: int, session: str, viewer) -> None:
    viewer.is_active = False
    viewer.save()


def _remove_permission(port: int, session: str, viewer) -> None:
    viewer.user_permissions.remove(Permission.objects.get(codename="view_workflowinstance"))


def _leave_group(port: int, session: str, viewer) -> None:
    viewer.groups.clear()


def _group_loses_permission(port: int, session: str, viewer) -> None:
    Group.objects.get(name="readers").permissions.clear()


@pytest.mark.parametrize(
    "revoke",
    [_logout_over_http, _deactivate, _remove_permission, _leave_group, _group_loses_permission],
)
async def test_no_event_after_a_revocation_reaches_the_socket(claim_workflows, revoke):
    viewer, session, operator, instance = await run(_setup)()
    if revoke in (_leave_group, _group_loses_permission):  # the permission comes from a group

        def through_a_group():
            viewer.user_permissions.clear()
            readers = Group.objects.create(name="readers")
            readers.permissions.add(Permission.objects.get(codename="view_workflowinstance"))
            viewer.groups.set([readers, Group.objects.get(name="reviewers")])

        await run(through_a_group)()
    env = {"TEST_GRAPHQL_SETTINGS": json.dumps({"SUBSCRIPTION_RECHECK_SECONDS": 60})}
    with server("uvicorn", redis_url=os.environ["REDIS_URL"], env=env) as port:
        async with await open_socket(port, session) as ws:
            variables = {"instanceId": instance_gid(instance)}
            payload = {"query": EVENTS, "variables": variables}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            await asyncio.sleep(0.5)

            async def change(operation: str) -> None:
                result = await asyncio.to_thread(
                    graphql, port, operation, operator, id=instance_gid(instance)
                )
                assert "errors" not in result, result

            async def next_message() -> dict:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if message["type"] == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                        continue
                    return message

            await change(HOLD)
            delivered = await next_message()
            assert delivered["payload"]["data"]["workflowInstanceEvents"]["kind"] == "ON_HOLD"

            await run(revoke)(port, session, viewer)  # returns once it is committed
            await change(RESUME)  # committed after the revocation returned
            refused = await next_message()
            assert refused["type"] == "next" and refused["payload"]["data"] is None
            errors = refused["payload"]["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["PERMISSION_DENIED"]
            assert (await next_message())["type"] == "complete"
