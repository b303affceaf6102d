"""Apollo's APQ on both WebSocket protocols (#20 point 6): a subscription sent as a hash alone the
server does not know is refused with PERSISTED_QUERY_NOT_FOUND, the hash with its query runs and
is kept, then the hash alone runs; a hash that is not the query's is BAD_REQUEST."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from channels.db import database_sync_to_async
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from django_steps import services

from .conftest import new_claim
from .helpers import PROTOCOLS, GraphQLSocket, instance_gid

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async


@pytest.fixture
def apq(settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "PERSISTED_QUERIES": "apq"}


def document() -> str:
    """A subscription no other test sent (the persisted-query cache outlives a test)."""
    return (
        f"subscription S{uuid.uuid4().hex}($instanceId: ID) "
        "{ workflowInstanceEvents(instanceId: $instanceId) { kind sequence } }"
    )


def codes(payload: dict) -> list[str]:
    errors = payload.get("errors") or []
    errors = [errors] if isinstance(errors, dict) else errors  # graphql-ws: one error object
    return [error["extensions"]["code"] for error in errors]


async def send(ws: GraphQLSocket, variables: dict, *, query: str | None, digest: str) -> str:
    id_ = uuid.uuid4().hex
    payload = {
        "variables": variables,
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
    }
    if query is not None:
        payload["query"] = query
    kind = "subscribe" if ws.protocol == GRAPHQL_TRANSPORT_WS_PROTOCOL else "start"
    await ws.communicator.send_json_to({"id": id_, "type": kind, "payload": payload})
    return id_


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_apq_round_trip_over_a_websocket(
    apq, application, claim_workflows, viewer_session, protocol
):
    instance = await run(
        lambda: services.start_workflow_instance("Claim Processing", new_claim())
    )()
    variables = {"instanceId": instance_gid(instance)}
    query = document()
    digest = hashlib.sha256(query.encode()).hexdigest()
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        unknown = await ws.result(await send(ws, variables, query=None, digest=digest))
        assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
        wrong = await ws.result(await send(ws, variables, query=document(), digest=digest))
        assert codes(wrong) == ["BAD_REQUEST"]
        with_query = await send(ws, variables, query=query, digest=digest)
        await ws.nothing_more(with_query, 0.3)  # joined
        alone = await send(ws, variables, query=None, digest=digest)
        await ws.nothing_more(alone, 0.3)
        await run(services.set_workflow_on_hold)(instance)
        for sub in (with_query, alone):
            payload = await ws.result(sub)
            assert not payload.get("errors"), payload
            [event] = payload["data"].values()
            assert event == {"kind": "ON_HOLD", "sequence": 2}
