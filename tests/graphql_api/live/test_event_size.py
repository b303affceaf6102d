"""An event too large for a WebSocket message is never dropped silently: the subscription ends
with ``EVENT_TOO_LARGE`` and the event's cursor, the event can be read over HTTP, and a new
subscription goes on after it — on both protocols (here in process; against daphne and uvicorn
in test_event_size_live.py)."""

from __future__ import annotations

import json
import logging

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from django_steps import services
from django_steps.models import WorkflowEvent
from graphql_api.security.extensions import DEFAULTS
from tests.conftest import make_workflow, statuses, two_steps

from .conftest import new_claim
from .helpers import COMPLETE, EVENTS, PROTOCOLS, GraphQLSocket, error_codes, instance_gid

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

LIMIT = DEFAULTS["WEBSOCKET_MAX_MESSAGE_SIZE"]

#: A step whose completion status leads on only when the context says ``go``: each try with
#: ``go: false`` writes a NO_TRANSITION event that stores its context.
GATED = two_steps(
    "Gate",
    "Through",
    first_statuses=statuses("Waiting", "Ready", hold="Paused"),
    condition="input.go",
    content_types=["claims.claim"],
)

#: 40 events of 60,000 characters of context each: the instance's history is 2.4 MB of JSON,
#: each stored context well within HISTORY_CONTEXT_MAX_SIZE.
TRIES, NOTES = 40, 60_000

#: Every event with its instance's last 40 events and their contexts: over 2 MiB per message.
BIG = """
subscription Big($instanceId: ID, $after: String) {
  workflowInstanceEvents(instanceId: $instanceId, after: $after) {
    cursor
    kind
    instance { history(last: 40) { edges { node { context } } } }
  }
}
"""

MISSED = """
query Missed($after: String, $instanceId: ID) {
  workflowEvents(after: $after, instanceId: $instanceId) {
    cursor
    edges { node { cursor kind instance { history(last: 40) { edges { node { context } } } } } }
  }
}
"""


def gated_instance(tries: int = TRIES, notes: int = NOTES):
    """An instance of GATED with ``tries`` events after its start, each holding ``notes``
    characters of context."""
    make_workflow("Gated", GATED)
    instance = services.start_workflow_instance("Gated", new_claim())
    context = {"go": False, "notes": "x" * notes}
    services.update_workflow_step_status(instance, "Ready", context)
    for _ in range(tries - 1):
        services.advance_workflow_instance(instance, context)
    return instance


def last_cursor(instance) -> str:
    return str(
        WorkflowEvent.objects.filter(instance_id=instance.pk).order_by("-sequence")[0].cursor
    )


def over_http(session_key: str, query: str, **variables) -> dict:
    client = Client()
    client.cookies["sessionid"] = session_key
    response = client.post(
        "/graphql/",
        data=json.dumps({"query": query, "variables": variables}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    result = response.json()
    assert "errors" not in result, result["errors"]
    return result["data"]


async def too_large(ws: GraphQLSocket, sub: str) -> dict:
    """The subscription's next message must be the EVENT_TOO_LARGE error, then ``complete``."""
    payload = await ws.result(sub)
    assert payload is not COMPLETE, "completed without an error"
    assert error_codes(payload) == ["EVENT_TOO_LARGE"], payload
    assert payload["data"] is None
    assert await ws.result(sub) is COMPLETE
    [error] = payload["errors"]
    return error


@pytest.fixture
def big(transactional_db):
    return gated_instance()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_live_event_too_large_ends_the_subscription_with_its_cursor(
    application, viewer_session, big, protocol, caplog
):
    previous = await run(last_cursor)(big)
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        sub = await ws.subscribe(BIG, instanceId=instance_gid(big))
        assert await ws.nothing_more(sub, 0.3)  # live now
        with caplog.at_level(logging.WARNING, logger="graphql_api.routing"):
            await run(services.set_workflow_on_hold)(big)
            error = await too_large(ws, sub)
        held = await run(last_cursor)(big)
        assert error["extensions"]["cursor"] == held
        assert (
            error["extensions"]["size"] > 2 * 1024 * 1024
            and error["extensions"]["maxSize"] == LIMIT
        )
        assert "workflowEvents(after:" in error["message"]
        assert any(
            "EVENT_TOO_LARGE" in r.getMessage() and held in r.getMessage() for r in caplog.records
        )

        # The subscription is over: nothing more reaches it.
        await run(services.resume_workflow_instance)(big)
        assert await ws.nothing_more(sub, 0.5)

        # Nothing is lost: the client reads what it missed over HTTP, from the last cursor it had...
        feed = await run(over_http)(
            viewer_session, MISSED, after=previous, instanceId=instance_gid(big)
        )
        nodes = [edge["node"] for edge in feed["workflowEvents"]["edges"]]
        assert [(n["cursor"], n["kind"]) for n in nodes][0] == (held, "ON_HOLD")
        assert [n["kind"] for n in nodes] == ["ON_HOLD", "RESUMED"]
        contexts = [e["node"]["context"] for e in nodes[0]["instance"]["history"]["edges"]]
        # its last 40 events: 38 tries (whole contexts), then ON_HOLD and RESUMED
        notes = [c["input"]["notes"] for c in contexts if c is not None]
        assert sum(n == "x" * NOTES for n in notes) == TRIES - 2

        # ... and subscribes again after it: the next event arrives (a normal one, on the same
        # socket).
        again = await ws.subscribe(
            EVENTS, instanceId=instance_gid(big), after=feed["workflowEvents"]["cursor"]
        )
        assert await ws.nothing_more(again, 0.3)
        await run(services.set_workflow_on_hold)(big)
        [event] = await ws.events(again, 1)
        assert event["kind"] == "ON_HOLD" and int(event["cursor"]) > int(
            feed["workflowEvents"]["cursor"]
        )


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_replayed_event_too_large_is_reported_too(
    application, viewer_session, big, protocol
):
    await run(services.set_workflow_on_hold)(big)
    await run(services.resume_workflow_instance)(big)
    held = await run(
        lambda: str(WorkflowEvent.objects.get(instance_id=big.pk, kind="ON_HOLD").cursor)
    )()
    before = await run(
        lambda: str(WorkflowEvent.objects.get(instance_id=big.pk, sequence=TRIES + 1).cursor)
    )()
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        sub = await ws.subscribe(BIG, instanceId=instance_gid(big), after=before)
        assert (await too_large(ws, sub))["extensions"]["cursor"] == held
        # going on after the event that could not be sent: the rest is replayed
        again = await ws.subscribe(EVENTS, instanceId=instance_gid(big), after=held)
        [resumed] = await ws.events(again, 1)
        assert resumed["kind"] == "RESUMED"


async def test_other_subscriptions_on_the_socket_go_on(application, viewer_session, big):
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        large = await ws.subscribe(BIG, instanceId=instance_gid(big))
        small = await ws.subscribe(EVENTS, instanceId=instance_gid(big))
        assert await ws.nothing_more(small, 0.3)
        await run(services.set_workflow_on_hold)(big)
        await too_large(ws, large)
        await run(services.resume_workflow_instance)(big)
        assert [e["kind"] for e in await ws.events(small, 2)] == ["ON_HOLD", "RESUMED"]


# --------------------------------------------------------------------------- the setting

#: The same event three times under aliases.
ALIASED = """
subscription Aliased($instanceId: ID) {
  workflowInstanceEvents(instanceId: $instanceId) {
    cursor
    a: toStep { name description order isInitialStep isFinalStep }
    b: toStep { name description order isInitialStep isFinalStep }
    c: toStep { name description order isInitialStep isFinalStep }
    d: toStep { name description order isInitialStep isFinalStep }
    e: toStep { name description order isInitialStep isFinalStep }
  }
}
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_limit_is_a_setting(
    application, viewer_session, claim_workflows, settings, protocol
):
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "WEBSOCKET_MAX_MESSAGE_SIZE": 300,
    }
    instance = await run(
        lambda: services.start_workflow_instance("Claim Processing", new_claim())
    )()
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        small = await ws.subscribe(
            "subscription($i: ID) { workflowInstanceEvents(instanceId: $i) { cursor } }",
            i=instance_gid(instance),
        )
        aliased = await ws.subscribe(ALIASED, instanceId=instance_gid(instance))
        assert await ws.nothing_more(small, 0.3)
        await run(services.set_workflow_on_hold)(instance)
        error = await too_large(ws, aliased)
        assert 300 < error["extensions"]["size"] < 1000 and error["extensions"]["maxSize"] == 300
        [event] = await ws.events(small, 1)
        assert event["cursor"] == error["extensions"]["cursor"]

    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "WEBSOCKET_MAX_MESSAGE_SIZE": 0,
    }  # off
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        aliased = await ws.subscribe(ALIASED, instanceId=instance_gid(instance))
        assert await ws.nothing_more(aliased, 0.3)
        await run(services.resume_workflow_instance)(instance)
        assert len(await ws.events(aliased, 1)) == 1


async def test_a_query_result_too_large_over_the_socket_is_reported(
    application, viewer_session, big
):
    """graphql-transport-ws also carries queries: a result too large is RESULT_TOO_LARGE (no
    cursor), and the socket goes on."""
    query = (
        "query($id: ID!) { workflowInstance(id: $id) { "
        "history(last: 40) { edges { node { context } } } } }"
    )
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        op = await ws.subscribe(query, id=instance_gid(big))
        payload = await ws.result(op)
        assert error_codes(payload) == ["RESULT_TOO_LARGE"] and payload["data"] is None
        assert "cursor" not in payload["errors"][0]["extensions"]
        assert await ws.result(op) is COMPLETE
        op = await ws.subscribe(
            "query($id: ID!) { workflowInstance(id: $id) { state } }", id=instance_gid(big)
        )
        assert (await ws.result(op))["data"] == {"workflowInstance": {"state": "ACTIVE"}}


# ------------------------------------------------------------- another schema's subscription


def burst_schema():
    """A host's schema whose subscription yields without ever waiting: a result too large, then
    small ones that are already on their way when the operation is ended."""
    import strawberry

    @strawberry.type
    class Query:
        ping: str = "pong"

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def burst(self) -> str:
            yield "x" * 2000
            for i in range(3):
                yield f"small {i}"

    return strawberry.Schema(query=Query, subscription=Subscription)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_nothing_follows_the_error_of_a_subscription_that_never_waits(settings, protocol):
    from graphql_api.live.routing import websocket_application

    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "WEBSOCKET_MAX_MESSAGE_SIZE": 1000,
    }
    async with GraphQLSocket(websocket_application(burst_schema()), protocol=protocol) as ws:
        sub = await ws.subscribe("subscription { burst }")
        payload = await ws.result(sub)
        assert error_codes(payload) == ["RESULT_TOO_LARGE"] and payload["data"] is None
        assert payload["errors"][0]["extensions"]["size"] > 2000
        assert await ws.result(sub) is COMPLETE
        assert await ws.nothing_more(sub, 0.5)
        again = await ws.subscribe("subscription { burst }")
        assert error_codes(await ws.result(again)) == ["RESULT_TOO_LARGE"]  # the socket goes on
