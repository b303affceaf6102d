"""``inboxEvents`` over a real WebSocket (Channels' communicator): the viewer's work items as
they open, are claimed and close, live and replayed by cursor, and nobody else's."""

from __future__ import annotations

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async

from claims.models import Claim
from django_steps import services
from django_steps.definitions import import_workflow
from django_steps.models import WorkItem
from tests.django_steps.test_workitems import ASSIGNED

from .conftest import login_session, make_user
from .helpers import COMPLETE, PROTOCOLS, GraphQLSocket, error_codes

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

INBOX_EVENTS = """
subscription Inbox($after: String) {
  inboxEvents(after: $after) {
    cursor
    kind
    workItem { id step { name } claimedBy { username } instance { id } }
    event { kind version }
  }
}
"""

ACT = (
    "django_steps.view_workflowinstance",
    "django_steps.change_workflowinstance",
)


def setup_people() -> dict:
    import_workflow(ASSIGNED)
    return {
        "alice": make_user("alice", *ACT),
        "rita": make_user("rita", *ACT, groups=("reviewers",)),
        "rex": make_user("rex", *ACT, groups=("reviewers",)),
    }


def start(owner):
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("5"), owner=owner)
    return services.start_workflow_instance("Assigned Claims", claim)


def submit(instance) -> None:
    services.update_workflow_step_status(instance, "Submitted")


def claim_it(instance, user) -> None:
    item = WorkItem.objects.get(instance=instance, closed_at__isnull=True)
    services.claim_work_item(item, user)


async def messages(ws: GraphQLSocket, sub: str, count: int) -> list[dict]:
    out = []
    for _ in range(count):
        payload = await ws.result(sub)
        assert payload is not COMPLETE and not payload.get("errors"), payload
        out.append(payload["data"]["inboxEvents"])
    return out


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_opened_claimed_by_someone_else_and_closed_arrive_live(application, protocol):
    people = await run(setup_people)()
    session = await run(login_session)(people["rita"])
    async with GraphQLSocket(application, protocol=protocol, session_key=session) as ws:
        sub = await ws.subscribe(INBOX_EVENTS)
        await ws.nothing_more(sub, 0.3)  # joined
        instance = await run(start)(people["alice"])  # alice's item: not rita's business
        await run(submit)(instance)
        [opened] = await messages(ws, sub, 1)
        assert opened["kind"] == "OPENED" and opened["workItem"]["step"]["name"] == "Review Claim"
        await run(claim_it)(instance, people["rex"])
        [claimed] = await messages(ws, sub, 1)
        assert claimed["kind"] == "CLAIMED"
        assert claimed["workItem"]["claimedBy"] == {"username": "rex"}
        assert claimed["event"]["version"] == opened["event"]["version"]  # a note
        await run(services.update_workflow_step_status)(instance, "Approved")
        [closed] = await messages(ws, sub, 1)
        assert closed["kind"] == "CLOSED" and int(closed["cursor"]) > int(claimed["cursor"])
        assert await ws.nothing_more(sub)


async def test_a_change_closing_one_item_and_opening_the_next_sends_both_with_one_cursor(
    application,
):
    people = await run(setup_people)()
    alice = people["alice"]
    await run(lambda: alice.groups.add(people["rita"].groups.get()))()  # a reviewer as well
    session = await run(login_session)(alice)
    instance = await run(start)(alice)
    async with GraphQLSocket(application, session_key=session) as ws:
        sub = await ws.subscribe(INBOX_EVENTS, after=str(instance.last_event.cursor))
        await run(submit)(instance)  # her item closes; the reviewers' opens
        closed, opened = await messages(ws, sub, 2)
        assert (closed["kind"], opened["kind"]) == ("CLOSED", "OPENED")
        assert closed["cursor"] == opened["cursor"]
        assert opened["workItem"]["step"]["name"] == "Review Claim"
        assert await ws.nothing_more(sub)


async def test_replay_after_a_cursor_gives_what_followed_it(application):
    people = await run(setup_people)()
    instance = await run(start)(people["alice"])
    await run(submit)(instance)
    await run(claim_it)(instance, people["rita"])
    await run(services.update_workflow_step_status)(instance, "Approved")
    session = await run(login_session)(people["rex"])
    async with GraphQLSocket(application, session_key=session) as ws:
        sub = await ws.subscribe(INBOX_EVENTS, after="0")
        history = await messages(ws, sub, 3)
        assert [m["kind"] for m in history] == ["OPENED", "CLAIMED", "CLOSED"]
        assert await ws.nothing_more(sub)
        await ws.stop(sub)
        again = await ws.subscribe(INBOX_EVENTS, after=history[0]["cursor"])
        assert [m["kind"] for m in await messages(ws, again, 2)] == ["CLAIMED", "CLOSED"]
        assert await ws.nothing_more(again)


async def test_a_user_never_sees_items_outside_the_visibility_rule(application):
    def named_bob_on_alice_s_claim():
        people = setup_people()
        bob = make_user("bob", *ACT)
        first = {**ASSIGNED["steps"][0], "assignees": {"expression": '"bob"'}}
        import_workflow({**ASSIGNED, "name": "Bob Acts", "steps": [first, *ASSIGNED["steps"][1:]]})
        claim = Claim.objects.create(
            title="t", claimant="c", amount=Decimal("5"), owner=people["alice"]
        )
        instance = services.start_workflow_instance("Bob Acts", claim)
        assert WorkItem.objects.get(instance=instance).candidate_users.get() == bob
        return bob, instance

    bob, instance = await run(named_bob_on_alice_s_claim)()  # a candidate who may not see it
    session = await run(login_session)(bob)
    async with GraphQLSocket(application, session_key=session) as ws:
        sub = await ws.subscribe(INBOX_EVENTS, after="0")
        await run(submit)(instance)
        assert await ws.nothing_more(sub)


async def test_anonymous_sockets_are_refused(application):
    async with GraphQLSocket(application) as ws:
        sub = await ws.subscribe(INBOX_EVENTS)
        assert error_codes(await ws.result(sub)) == ["PERMISSION_DENIED"]
