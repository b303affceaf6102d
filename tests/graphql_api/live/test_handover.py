"""Catch up over HTTP (`workflowEvents`), then subscribe with the cursor it gave: every event
exactly once, whatever is committed between the two, for all instances, one workflow and one
instance."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from django_steps import services
from django_steps.models import WorkflowEvent

from .conftest import new_claim
from .helpers import GraphQLSocket, instance_gid

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

FEED = """query Feed($after: String, $first: Int, $instanceId: ID, $workflowName: String) {
  workflowEvents(
    after: $after, first: $first, instanceId: $instanceId, workflowName: $workflowName
  ) {
    cursor
    pageInfo { hasNextPage }
    edges { cursor }
  }
}"""


def read_over_http(session_key: str, **variables) -> tuple[list[str], str]:
    """Every event of the stream over HTTP, 3 at a time; returns (their cursors, where to go on)."""
    client = Client()
    client.cookies["sessionid"] = session_key
    client.get("/graphql/")  # the CSRF cookie
    seen: list[str] = []
    after = None
    while True:
        response = client.post(
            "/graphql/",
            json.dumps({"query": FEED, "variables": {**variables, "after": after, "first": 3}}),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
        )
        feed = response.json()["data"]["workflowEvents"]
        seen += [edge["cursor"] for edge in feed["edges"]]
        after = feed["cursor"]
        if not feed["pageInfo"]["hasNextPage"]:
            return seen, after


def stored(**filters) -> list[str]:
    return [
        str(e.cursor) for e in WorkflowEvent.objects.filter(**filters).order_by("txid", "position")
    ]


@pytest.mark.parametrize("stream", ["all", "workflow", "instance"])
async def test_http_then_subscribe_loses_and_repeats_nothing(
    application, claim_workflows, viewer_session, stream
):
    instances = await run(
        lambda: [
            services.start_workflow_instance(
                "Claim Processing" if i % 2 else "Claim Triage", new_claim(f"c{i}")
            )
            for i in range(4)
        ]
    )()
    target = instances[1]  # a Claim Processing instance
    variables, filters = {
        "all": ({}, {}),
        "workflow": ({"workflowName": "Claim Processing"}, {"workflow__name": "Claim Processing"}),
        "instance": ({"instanceId": instance_gid(target)}, {"instance": target}),
    }[stream]

    def change_everything():
        for instance in instances:
            services.set_workflow_on_hold(instance)
            services.resume_workflow_instance(instance)

    await run(change_everything)()
    over_http, cursor = await run(read_over_http)(viewer_session, **variables)
    assert over_http == await run(stored)(**filters)
    await run(change_everything)()  # committed after the HTTP read, before the subscription
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        sub = await ws.subscribe(after=cursor, **variables)
        expected_replay = [c for c in await run(stored)(**filters) if c not in over_http]
        replayed = await ws.events(sub, len(expected_replay))
        await run(change_everything)()  # live, after the subscription
        everything = await run(stored)(**filters)
        live = await ws.events(sub, len(everything) - len(over_http) - len(replayed))
        assert await ws.nothing_more(sub, 0.3)
    received = [event["cursor"] for event in replayed + live]
    assert over_http + received == everything  # each once, in order, none missing
