"""SQL queries per request do not grow with the page size (the optimizer joins and prefetches)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_steps.models import WorkflowInstance
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import gid, submitted_claims
from tests.graphql_api.live.helpers import add_events

pytestmark = pytest.mark.django_db

#: Whole request, for a superuser: session + user, count, page (with workflow, step and status
#: joined), history prefetch (with its steps, statuses, transition and actor joined).
MAX_QUERIES = 6


@pytest.fixture
def hundred_instances(claim_workflow, operator):
    submitted_claims(100, operator)


@pytest.fixture(autouse=True)
def _lift_the_cost_limit(settings):
    """A page of 100 instances with every relation of their history counts 80,501 objects at
    worst (100 events each), over the default ``MAX_COST``: these tests
    measure SQL queries, not the cost limit (tested in test_cost.py)."""
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "MAX_COST": 100_000}


def _count(gql, first: int) -> int:
    # Warm the per-process caches first (Django's ContentType cache is emptied whenever a test
    # database is flushed, and fills on the first request after): what is measured is what
    # every later request costs.
    gql.data(ops.INSTANCES_WITH_HISTORY, {"first": 1})
    with CaptureQueriesContext(connection) as queries:
        data = gql.data(ops.INSTANCES_WITH_HISTORY, {"first": first})
    edges = data["workflowInstances"]["edges"]
    assert len(edges) == first
    assert all(len(ops.events(e["node"])) == 2 for e in edges)
    assert ops.events(edges[0]["node"])[1]["actor"]["username"] == "operator"
    assert ops.events(edges[0]["node"])[1]["transition"]["id"]
    return len(queries)


def test_a_page_of_100_costs_what_a_page_of_10_costs(as_admin, hundred_instances):
    ten, hundred = _count(as_admin, 10), _count(as_admin, 100)
    print(f"\nSQL queries per request (superuser): page of 10 -> {ten}, page of 100 -> {hundred}")
    assert ten == hundred <= MAX_QUERIES


def test_the_same_holds_for_a_user_with_model_permissions(as_operator, hundred_instances):
    ten, hundred = _count(as_operator, 10), _count(as_operator, 100)
    print(
        f"\nSQL queries per request (user with view perms): page of 10 -> {ten}, page of 100 -> "
        f"{hundred}"
    )
    # three more than a superuser: Django loads the user's and the groups' permissions once,
    # django-rules the user's group names once
    assert ten == hundred <= MAX_QUERIES + 3


def test_nested_definitions_do_not_multiply_queries(as_admin, claim_workflow):
    from tests.conftest import CLAIM_PROCESSING, make_workflow

    for i in range(9):
        make_workflow(f"W{i}", CLAIM_PROCESSING)
    query = """{ workflows(first: 10) { totalCount edges { node {
        name steps { name statuses { name } } transitions { condition fromStep { name } toStep {
          name } }
    } } } }"""
    with CaptureQueriesContext(connection) as queries:
        data = as_admin.data(query)
    assert data["workflows"]["totalCount"] == 10
    # session, user, page, its count (asked for: one COUNT, never a window over every row),
    # steps, their statuses, transitions (steps joined)
    assert len(queries) <= 7, [q["sql"][:120] for q in queries.captured_queries]


#: An event's instance (an object: its history is read off it, not prefetched with a parent),
#: with each row's instance and that instance's history.
EVENT_IN_HISTORY = """query($id: ID!, $first: Int) { node(id: $id) { ... on WorkflowEvent {
  instance { history(first: $first) { edges { node { context
    instance { history(first: 3) { edges { node { sequence context } } } }
  } } } }
} } }"""


def test_an_objects_history_nesting_its_instances_history_does_not_multiply_queries(
    as_admin, claim_workflow, operator
):
    submitted_claims(1, operator)
    instance = WorkflowInstance.objects.get()
    add_events(instance, 49)
    event = instance.events.order_by("sequence").first()
    counts = []
    for first in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            data = as_admin.data(
                EVENT_IN_HISTORY, {"id": gid("WorkflowEvent", event.pk), "first": first}
            )
        edges = data["node"]["instance"]["history"]["edges"]
        assert len(edges) == first
        assert len(edges[0]["node"]["instance"]["history"]["edges"]) == 3
        counts.append(len(queries))
    # session, user, the event, its instance, the history page, the rows' instance, its history
    # page (10 and 55 when that page was read once per row)
    assert counts[0] == counts[1] <= 7, counts
