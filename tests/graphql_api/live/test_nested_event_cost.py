"""What an event of a document nesting an instance's history in its history costs: what the same
selection costs over HTTP, whatever the number of history rows.

An event's ``instance`` is an object, so its ``history`` is read off it (not prefetched with a
parent, as under ``workflowInstance`` over HTTP); the inner ``instance { history }`` of each of
its rows was then read one query per row: a hostile subscriber's event cost ~18 times the same
query over HTTP."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_steps import services
from django_steps.models import Workflow, WorkflowEvent
from tests.conftest import CLAIM_PROCESSING, make_workflow
from tests.graphql_api.conftest import client_for

from .conftest import login_session, make_user, new_claim
from .helpers import PROTOCOLS, GraphQLSocket, add_events, instance_gid
from .test_event_budget import counting, newest

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

#: The attacker's selection (sizes as variables): each row's context, and its instance's history.
PAGES = """history(first: $outer) { edges { node { kind context
  instance { history(first: $inner) { edges { node { kind context sequence } } } }
} } }"""

SUBSCRIPTION = (
    "subscription($id: ID, $after: String, $outer: Int, $inner: Int) {"
    " workflowInstanceEvents(instanceId: $id, after: $after) { instance { " + PAGES + " } } }"
)

#: The same selection over HTTP, on the instance itself.
QUERY = "query($id: ID!, $outer: Int, $inner: Int) { workflowInstance(id: $id) { " + PAGES + " } }"


def claimant_instance(rows: int) -> tuple:
    """An instance of a claim its claimant sees (no global permission on claims: each context is
    checked against the claim), with ``rows`` events; and the claimant."""
    if not Workflow.objects.filter(name="Claim Processing").exists():
        make_workflow("Claim Processing", CLAIM_PROCESSING)
    owner = make_user(f"rita{rows}", "django_steps.view_workflowinstance")
    claim = new_claim()
    claim.owner = owner
    claim.save()
    instance = services.start_workflow_instance("Claim Processing", claim)
    add_events(instance, rows)
    # The context a condition was evaluated with (the claim's data): on every row here.
    WorkflowEvent.objects.filter(instance=instance).update(context={"title": "Broken window"})
    return instance, owner


def over_http(user, variables: dict) -> tuple[int, dict]:
    gql = client_for(user)
    gql.data(QUERY, variables)  # the per-process caches warm, as for the socket's first event
    with CaptureQueriesContext(connection) as queries:
        data = gql.data(QUERY, variables)
    return len(queries), data["workflowInstance"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_events_statements_are_the_http_querys_whatever_the_rows(application, protocol):
    measured = []
    for rows in (5, 50):
        instance, owner = await run(claimant_instance)(rows)
        variables = {"id": instance_gid(instance), "outer": rows, "inner": 3}
        session = await run(login_session)(owner)
        async with GraphQLSocket(application, session_key=session, protocol=protocol) as ws:
            sub = await ws.subscribe(SUBSCRIPTION, after=await run(newest)(), **variables)
            assert await ws.nothing_more(sub, 0.3)
            async with counting() as statements:
                await run(services.update_workflow_step_status)(instance, "Draft")
                [event] = await ws.events(sub, 1)
        http, data = await run(over_http)(owner, variables)
        history = event["instance"]["history"]["edges"]
        assert len(history) == rows
        assert history[0]["node"]["context"] == {"title": "Broken window"}  # the claimant's
        assert len(history[0]["node"]["instance"]["history"]["edges"]) == 3
        assert event["instance"] == data  # what the same query answers
        measured.append((statements.count, http))
    (small, small_http), (large, large_http) = measured
    assert small == large  # 10x the rows: the same statements
    # Over HTTP the request also reads the session and the user (the socket did when it opened)
    assert 0 < large <= large_http == small_http


async def test_who_may_read_context_is_decided_again_for_each_event(application, settings):
    """A project rule shows every instance; the claim's context is for who may view the claim
    (its owner). The owner loses the claim between two events: the second one's context is null
    (what the first event proved is not kept for the next)."""
    settings.DJANGO_STEPS = {
        **getattr(settings, "DJANGO_STEPS", {}),
        "VISIBLE_INSTANCES": lambda user, queryset: queryset,
    }
    instance, owner = await run(claimant_instance)(2)
    variables = {"id": instance_gid(instance), "outer": 3, "inner": 1}
    session = await run(login_session)(owner)
    async with GraphQLSocket(application, session_key=session) as ws:
        sub = await ws.subscribe(SUBSCRIPTION, after=await run(newest)(), **variables)
        assert await ws.nothing_more(sub, 0.3)
        await run(services.update_workflow_step_status)(instance, "Draft")
        [first] = await ws.events(sub, 1)
        assert first["instance"]["history"]["edges"][0]["node"]["context"] is not None

        def give_away() -> None:
            claim = instance.content_object
            claim.owner = make_user("someone", "django_steps.view_workflowinstance")
            claim.save()

        await run(give_away)()
        await run(services.update_workflow_step_status)(instance, "Draft")
        [second] = await ws.events(sub, 1)
        edges = second["instance"]["history"]["edges"]
        assert len(edges) == 3  # still shown: the project's rule
        assert [edge["node"]["context"] for edge in edges] == [None, None, None]
