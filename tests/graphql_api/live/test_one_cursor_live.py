"""A history edge cursor, read over HTTP, is the `after` of a subscription over a real WebSocket:
the stream replays exactly the events after it, then goes live (#20 point 4)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from django_steps import services
from tests.graphql_api.conftest import GQL

from .conftest import new_claim
from .helpers import PROTOCOLS, GraphQLSocket, instance_gid

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

HISTORY = """query($id: ID!) { workflowInstance(id: $id) {
  history(first: 2) { edges { cursor node { sequence } } } } }"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_history_edge_cursor_resumes_a_subscription(
    application, claim_workflows, viewer_session, protocol
):
    def setup():
        instance = services.start_workflow_instance("Claim Processing", new_claim())
        services.set_workflow_on_hold(instance)
        services.resume_workflow_instance(instance)  # 3 events
        client = Client()
        client.cookies["sessionid"] = viewer_session
        page = GQL(client).data(HISTORY, {"id": instance_gid(instance)})
        return instance, page["workflowInstance"]["history"]["edges"][-1]["cursor"]

    instance, cursor = await run(setup)()
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        sub = await ws.subscribe(instanceId=instance_gid(instance), after=cursor)
        [replayed] = await ws.events(sub, 1)
        assert replayed["sequence"] == 3 and int(replayed["cursor"]) > int(cursor)
        await run(services.set_workflow_on_hold)(instance)
        [live] = await ws.events(sub, 1)
        assert live["sequence"] == 4
        assert await ws.nothing_more(sub, 0.3)
