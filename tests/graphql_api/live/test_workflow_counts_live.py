"""`workflowCounts` over real WebSockets (#20 point 2): the workflow's counts at once, then again
after changes, coalesced (a burst of changes costs at most a few pushes), only for changes the
viewer may see, ending with PERMISSION_DENIED once the viewer may no longer read instances."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission

from claims.models import Claim
from django_steps import services

from .conftest import login_session, make_user, new_claim
from .helpers import COMPLETE, PROTOCOLS, GraphQLSocket, error_codes

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

COUNTS = """subscription Counts($name: String, $id: ID) {
  workflowCounts(workflowName: $name, workflowId: $id) {
    name
    instanceCounts { total active onHold }
    steps { name instanceCounts { total } statuses { name instanceCounts { total active onHold } } }
  }
}"""


def start_many(count: int, owner=None) -> list:
    instances = []
    for i in range(count):
        claim = new_claim(f"c{i}")
        if owner is not None:
            Claim.objects.filter(pk=claim.pk).update(owner=owner)
        instances.append(services.start_workflow_instance("Claim Processing", claim))
    return instances


def draft_count(push: dict) -> int:
    [step] = [s for s in push["steps"] if s["name"] == "Submit Claim"]
    [draft] = [s for s in step["statuses"] if s["name"] == "Draft"]
    return draft["instanceCounts"]["active"]


async def pushes_until(ws: GraphQLSocket, sub: str, total: int, timeout: float = 10) -> list[dict]:
    """The pushes received until the workflow's total reaches ``total``."""
    received = []
    while True:
        payload = await ws.result(sub, timeout)
        assert payload is not COMPLETE and not payload.get("errors"), payload
        received.append(payload["data"]["workflowCounts"])
        if received[-1]["instanceCounts"]["total"] == total:
            return received


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_counts_come_at_once_then_coalesced_after_a_burst(
    application, claim_workflows, viewer_session, protocol
):
    await run(start_many)(2)
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        sub = await ws.subscribe(COUNTS, name="Claim Processing")
        [first] = await pushes_until(ws, sub, 2)
        assert first["instanceCounts"] == {"total": 2, "active": 2, "onHold": 0}
        assert draft_count(first) == 2
        instances = await run(start_many)(10)  # 10 changes in a burst
        pushes = await pushes_until(ws, sub, 12)
        assert len(pushes) <= 3  # coalesced: not one per change
        assert draft_count(pushes[-1]) == 12
        await run(services.set_workflow_on_hold)(instances[0])
        [held] = await pushes_until(ws, sub, 12)
        assert held["instanceCounts"] == {"total": 12, "active": 11, "onHold": 1}


async def test_only_changes_the_viewer_may_see_push_and_counts_are_theirs(
    application, claim_workflows
):
    alice = await run(lambda: make_user("alice", "django_steps.view_workflowinstance"))()
    session = await run(login_session)(alice)
    await run(start_many)(3)  # others' claims
    async with GraphQLSocket(application, session_key=session) as ws:
        sub = await ws.subscribe(COUNTS, name="Claim Processing")
        [first] = await pushes_until(ws, sub, 0)
        await run(start_many)(2)  # still others'
        assert await ws.nothing_more(sub, 1.5)
        await run(start_many)(1, alice)
        [mine] = await pushes_until(ws, sub, 1)
        assert draft_count(mine) == 1


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({}, "BAD_USER_INPUT"),
        ({"name": "Claim Processing", "id": "V29ya2Zsb3c6MQ=="}, "BAD_USER_INPUT"),
        ({"name": "No such workflow"}, "WORKFLOW_NOT_FOUND"),
        ({"id": "VXNlcjox"}, "INVALID_ID"),
    ],
)
async def test_arguments_are_checked_before_anything_is_sent(
    application, claim_workflows, viewer_session, variables, code
):
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        payload = await ws.result(await ws.subscribe(COUNTS, **variables))
        assert error_codes(payload) == [code]


async def test_an_anonymous_socket_cannot_follow_counts(application, claim_workflows):
    async with GraphQLSocket(application) as ws:
        payload = await ws.result(await ws.subscribe(COUNTS, name="Claim Processing"))
        assert error_codes(payload) == ["PERMISSION_DENIED"]


async def test_the_counts_end_when_the_viewer_loses_the_permission(application, claim_workflows):
    viewer = await run(
        lambda: make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    )()
    session = await run(login_session)(viewer)
    async with GraphQLSocket(application, session_key=session) as ws:
        sub = await ws.subscribe(COUNTS, name="Claim Processing")
        await pushes_until(ws, sub, 0)

        def revoke() -> None:
            viewer.user_permissions.remove(Permission.objects.get(codename="view_workflowinstance"))

        await run(revoke)()
        await run(start_many)(1)
        while True:
            payload = await asyncio.wait_for(ws.result(sub, 10), 15)
            if payload.get("errors"):
                assert error_codes(payload) == ["PERMISSION_DENIED"]
                break
            # a push already under way may still come; its counts are from before
