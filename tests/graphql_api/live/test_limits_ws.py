"""The limits apply to subscriptions too: refused before the stream starts, on both WebSocket
protocols, and the socket keeps serving ordinary subscriptions."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from django_steps.services import start_workflow_instance

from .conftest import new_claim
from .helpers import EVENTS, PROTOCOLS, GraphQLSocket, error_codes

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

NESTED = """
subscription { workflowInstanceEvents { instance { history(first: 100) { edges { node { instance {
  history(first: 100) { edges { node { id } } } } } } } } } }
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscription_over_the_cost_limit_is_refused(
    application, claim_workflow, viewer_session, protocol
):
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        refused = await ws.result(await ws.subscribe(NESTED))
        assert error_codes(refused) == ["QUERY_TOO_COMPLEX"]
        assert not refused.get("data")
        bad = await ws.result(await ws.subscribe(EVENTS, after="x" * 200_000))
        assert error_codes(bad) == ["BAD_USER_INPUT"]
        # the socket still serves an ordinary subscription
        sub = await ws.subscribe(EVENTS)
        await ws.nothing_more(sub, 0.3)
        await run(lambda: start_workflow_instance("Claim Processing", new_claim()))()
        [event] = await ws.events(sub, 1)
        assert event["kind"] == "STARTED"
