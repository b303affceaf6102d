"""Shared fan-out: one execution per (document, variables, visibility class) per event, the same
result for every subscriber as when alone, nothing for a subscriber who may not see the event."""

from __future__ import annotations

import contextlib
import inspect
import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from django_steps import authorization, services
from django_steps.models import WorkflowEvent
from graphql_api.live.execution import VIEWER_DEPENDENT
from graphql_api.live.shared import STATS

from .conftest import login_session, make_user, new_claim
from .helpers import (
    COMPLETE,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    PROTOCOLS,
    GraphQLSocket,
    error_codes,
)

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

#: Class-dependent fields only: the counts are of the instances the viewer may see.
SHARED_DOCUMENT = """
subscription($w: String, $after: String) {
  workflowInstanceEvents(workflowName: $w, after: $after) {
    cursor kind
    ...Where
  }
}
fragment Where on WorkflowEvent {
  toStatus { name }
  instance { id state }
  workflow { name instanceCounts { total active onHold } }
}
"""

#: The same, and what the viewer may do: viewer-dependent (through a fragment).
VIEWER_DOCUMENT = SHARED_DOCUMENT.replace("instance { id state }", "instance { id ...Can }") + (
    "fragment Can on WorkflowInstance { viewerCan { hold resume cancel } }"
)


def people() -> dict:
    """Two reviewers (one visibility class: every claim), the owner of a claim (opaque: the
    object rule), another claimant (who may not see it); and the two claims' instances."""
    view = "django_steps.view_workflowinstance"
    change = "django_steps.change_workflowinstance"
    users = {
        "reviewer": make_user("reviewer", view, change, groups=("reviewers",)),
        "colleague": make_user("colleague", view, change, groups=("reviewers",)),
        "owner": make_user("owner", view, change),
        "stranger": make_user("stranger", view, change),
    }
    watched = new_claim("Broken window")
    watched.owner = users["owner"]
    watched.save()
    other = new_claim("Flooded cellar")
    other.owner = users["stranger"]
    other.save()
    return {
        "sessions": {name: login_session(user) for name, user in users.items()},
        "classes": {name: authorization.visibility_class(user) for name, user in users.items()},
        "watched": services.start_workflow_instance("Claim Processing", watched),
        "other": services.start_workflow_instance("Claim Processing", other),
    }


def newest_cursor() -> int:
    return max(e.cursor for e in WorkflowEvent.objects.all())


async def alone(application, session: str, document: str, after: int, protocol: str) -> dict:
    """What one subscriber gets for the first event after ``after`` with no one to share with
    (replayed from the history: an event object of its own)."""
    async with GraphQLSocket(application, session_key=session, protocol=protocol) as ws:
        sub = await ws.subscribe(document, w="Claim Processing", after=str(after))
        return await ws.result(sub)


@contextlib.asynccontextmanager
async def subscribed(application, cast: dict, names: list, document: str, protocol: str):
    """A socket per name (that person's session), each subscribed to ``document`` and live with
    nothing sent yet; yields (socket, subscription, name) triples."""
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(
                GraphQLSocket(application, session_key=cast["sessions"][name], protocol=protocol)
            )
            for name in names
        ]
        subs = [await ws.subscribe(document, w="Claim Processing") for ws in sockets]
        for ws, sub in zip(sockets, subs, strict=True):
            assert await ws.nothing_more(sub, 0.3)  # live, and nothing before the first event
        yield list(zip(sockets, subs, names, strict=True))


async def fan_out(application, cast: dict, document: str, protocol: str) -> tuple[dict, int]:
    """Five sockets on one event: the reviewer twice, the colleague, the owner, the stranger.
    Returns each socket's payload (None: nothing within half a second) and the event's cursor."""
    names = ["reviewer", "reviewer", "colleague", "owner", "stranger"]
    async with subscribed(application, cast, names, document, protocol) as subscribers:
        await run(services.set_workflow_on_hold)(cast["watched"])
        cursor = await run(newest_cursor)()
        got = {}
        for i, (ws, sub, name) in enumerate(subscribers):
            if name == "stranger":
                got[f"{i}:{name}"] = None if await ws.nothing_more(sub, 0.5) else "sent"
            else:
                got[f"{i}:{name}"] = await ws.result(sub)
        return got, cursor


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_one_execution_per_visibility_class(application, claim_workflows, protocol):
    cast = await run(people)()
    assert cast["classes"]["reviewer"] == cast["classes"]["colleague"] is not None
    assert cast["classes"]["owner"] is None  # the object rule decides per user: opaque
    before = await run(newest_cursor)()
    executions, serialised = STATS.executions, STATS.serialised

    got, cursor = await fan_out(application, cast, SHARED_DOCUMENT, protocol)

    # The reviewers' class once, the owner once; the stranger never.
    assert STATS.executions - executions == 2
    assert STATS.serialised - serialised == 2  # each shared payload serialised once
    assert got["4:stranger"] is None
    for key in ("0:reviewer", "1:reviewer", "2:colleague", "3:owner"):
        name = key.split(":")[1]
        solo = await alone(application, cast["sessions"][name], SHARED_DOCUMENT, before, protocol)
        assert got[key] == solo, key
    reviewer = got["0:reviewer"]["data"]["workflowInstanceEvents"]
    owner = got["3:owner"]["data"]["workflowInstanceEvents"]
    assert reviewer["cursor"] == owner["cursor"] == str(cursor)
    assert reviewer["workflow"]["instanceCounts"]["total"] == 2  # every claim
    assert owner["workflow"]["instanceCounts"]["total"] == 1  # their own


async def test_viewer_dependent_fields_run_per_user(application, claim_workflows):
    cast = await run(people)()
    before = await run(newest_cursor)()
    executions = STATS.executions

    got, _ = await fan_out(application, cast, VIEWER_DOCUMENT, PROTOCOLS[0])

    # viewerCan reads the viewer: once per user (the reviewer's two sockets share one).
    assert STATS.executions - executions == 3
    assert got["4:stranger"] is None
    for key in ("0:reviewer", "2:colleague", "3:owner"):
        name = key.split(":")[1]
        solo = await alone(
            application, cast["sessions"][name], VIEWER_DOCUMENT, before, PROTOCOLS[0]
        )
        assert got[key] == solo, key
    assert got["0:reviewer"] == got["1:reviewer"]


#: What a resolver calls when its answer depends on who asks beyond what they may see.
READS_THE_VIEWER = re.compile(
    r"current_user\(|may_view_attached_object\(|has_perm\(info|inbox_of\("
)


def test_every_field_reading_the_viewer_is_declared_viewer_dependent():
    """A new field whose resolver reads the viewer must join VIEWER_DEPENDENT, or subscribers of
    one visibility class would get each other's answers (root fields are not in events)."""
    from graphql import GraphQLObjectType

    from graphql_api.schema import schema

    roots = {"Query", "Mutation", "Subscription"}
    reading = set()
    for type_ in schema._schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name in roots:
            continue
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            resolver = getattr(definition, "base_resolver", None)
            if resolver is None:
                continue
            if READS_THE_VIEWER.search(inspect.getsource(resolver.wrapped_func)):
                reading.add((type_.name, name))
    assert reading  # the scan sees them: viewerCan, context, subject, inbox
    assert reading <= VIEWER_DEPENDENT, reading - VIEWER_DEPENDENT


# --------------------------------------------------------------------------- written by the hub


async def test_many_subscribers_get_their_events_in_order_written_by_the_hub(
    application, claim_workflows
):
    cast = await run(people)()
    names = ["reviewer", "colleague"] * 4 + ["stranger"]
    protocol = GRAPHQL_TRANSPORT_WS_PROTOCOL  # the hub writes frames of this protocol itself
    async with subscribed(application, cast, names, SHARED_DOCUMENT, protocol) as subscribers:
        direct = STATS.direct
        cursors = []
        for n in range(6):  # one at a time (parked sinks), then two in one go (a backlog)
            change = (
                services.set_workflow_on_hold if n % 2 == 0 else services.resume_workflow_instance
            )
            await run(change)(cast["watched"])
            cursors.append(str(await run(newest_cursor)()))
            if n < 4:
                for ws, sub, name in subscribers:
                    if name != "stranger":
                        got = await ws.events(sub, 1)
                        assert got[0]["cursor"] == cursors[-1]
        await run(services.set_workflow_on_hold)(cast["other"])  # the stranger's own claim
        cursors.append(str(await run(newest_cursor)()))

        for ws, sub, name in subscribers:
            if name == "stranger":
                (only,) = await ws.events(sub, 1)
                assert only["cursor"] == cursors[-1]  # nothing of the claim they may not see
            else:
                rest = await ws.events(sub, 3)
                assert [e["cursor"] for e in rest] == cursors[4:]
                assert rest[-1]["instance"]["state"] == "ON_HOLD"
            assert await ws.nothing_more(sub, 0.2)  # each event once
        # Most deliveries were written by the hub, no subscriber's task woken for them.
        assert STATS.direct - direct >= 4 * (len(names) - 2)


async def test_parked_subscribers_stay_written_to_past_the_recheck_and_end_when_access_goes(
    application, claim_workflows, settings
):
    """One re-check per user and session keeps every parked subscription of theirs writable
    while idle; when that check fails, each of them ends, with no event to carry it."""
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "SUBSCRIPTION_RECHECK_SECONDS": 1.0,
    }
    cast = await run(people)()
    names = ["reviewer", "colleague"] * 3
    protocol = GRAPHQL_TRANSPORT_WS_PROTOCOL
    async with subscribed(application, cast, names, SHARED_DOCUMENT, protocol) as subscribers:
        for ws, sub, _ in subscribers:  # idle over several re-check intervals
            assert await ws.nothing_more(sub, 0.5)
        direct = STATS.direct
        await run(services.set_workflow_on_hold)(cast["watched"])
        cursor = str(await run(newest_cursor)())
        for ws, sub, _ in subscribers:
            assert [e["cursor"] for e in await ws.events(sub, 1)] == [cursor]
        # One subscription of the class executed; the hub wrote to all the others.
        assert STATS.direct - direct == len(names) - 1

        # The reviewer is deactivated without a signal (an UPDATE): the periodic re-check ends
        # each of their subscriptions; the colleague's go on.
        await run(
            lambda: get_user_model().objects.filter(username="reviewer").update(is_active=False)
        )()
        for ws, sub, name in subscribers:
            if name == "reviewer":
                payload = await ws.result(sub)  # at the next periodic re-check
                assert error_codes(payload) == ["PERMISSION_DENIED"], payload
        await run(services.resume_workflow_instance)(cast["watched"])
        cursor = str(await run(newest_cursor)())
        for ws, sub, name in subscribers:
            if name == "colleague":
                assert [e["cursor"] for e in await ws.events(sub, 1)] == [cursor]
            else:
                assert await ws.result(sub) is COMPLETE  # ended, nothing after
                assert await ws.nothing_more(sub, 0.2)
