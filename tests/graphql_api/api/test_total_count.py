"""`totalCount` of a connection is the size of the whole filtered set on every page, whatever the
cursor, forwards and backwards, at the top level and nested (an instance's `history`,
`Workflow.instances`), with or without `edges` selected — and reading it costs the same number
of queries on a page of 2 or of 5 parents (#20 point 7)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from claims.models import Claim
from django_steps import services
from django_steps.models import WorkflowInstance
from tests.graphql_api.conftest import gid

pytestmark = pytest.mark.django_db

HISTORY = """query History($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  workflowInstance(id: $id) {
    history(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { sequence } }
    }
  }
}"""

HISTORY_COUNT_ONLY = """query History($id: ID!, $first: Int, $after: String, $last: Int,
  $before: String) {
  workflowInstance(id: $id) {
    history(first: $first, after: $after, last: $last, before: $before) { totalCount }
  }
}"""

INSTANCES = """query Instances($first: Int, $after: String, $last: Int, $before: String) {
  workflow(name: "Claim Processing") {
    instances(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { id } }
    }
  }
}"""

TOP = """query Top($first: Int, $after: String, $last: Int, $before: String) {
  workflowInstances(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { id } }
  }
}"""

#: Every instance of a page, each with its history after the same cursor.
HISTORIES = """query Histories($n: Int!, $after: String) {
  workflowInstances(first: $n) {
    edges { node { history(first: 2, after: $after) { totalCount edges { node { sequence } } } } }
  }
}"""


def start(title: str) -> WorkflowInstance:
    claim = Claim.objects.create(title=title, claimant="x", amount=Decimal("1"))
    return services.start_workflow_instance("Claim Processing", claim)


def with_history(title: str, holds: int) -> WorkflowInstance:
    instance = start(title)
    for _ in range(holds):
        services.set_workflow_on_hold(instance)
        services.resume_workflow_instance(instance)
    return instance


def walk(client, query, variables, pick, size, *, backwards=False) -> list[dict]:
    """Every page of a connection, following its cursors to the end."""
    pages, cursor = [], None
    while True:
        arguments = {"last": size, "before": cursor} if backwards else {"first": size}
        if cursor and not backwards:
            arguments["after"] = cursor
        page = pick(client.data(query, {**variables, **arguments}))
        pages.append(page)
        info = page["pageInfo"]
        if not (info["hasPreviousPage"] if backwards else info["hasNextPage"]):
            return pages
        cursor = info["startCursor"] if backwards else info["endCursor"]


def test_the_history_count_is_the_whole_history_on_every_page_both_ways(as_viewer, claim_workflow):
    instance = with_history("long", 3)  # 7 events
    variables = {"id": gid("WorkflowInstance", instance.pk)}

    def pick(data):
        return data["workflowInstance"]["history"]

    for backwards in (False, True):
        pages = walk(as_viewer, HISTORY, variables, pick, 2, backwards=backwards)
        assert [page["totalCount"] for page in pages] == [7, 7, 7, 7]
        sequences = [e["node"]["sequence"] for page in pages for e in page["edges"]]
        assert sorted(sequences) == [1, 2, 3, 4, 5, 6, 7]


def test_the_history_count_alone_is_the_whole_history_after_any_cursor(as_viewer, claim_workflow):
    instance = with_history("long", 3)
    variables = {"id": gid("WorkflowInstance", instance.pk)}
    cursors = [
        edge["cursor"]
        for edge in as_viewer.data(HISTORY, {**variables, "first": 10})["workflowInstance"][
            "history"
        ]["edges"]
    ]
    for cursor in cursors:  # the last one: an empty page, still the whole count
        for arguments in ({"first": 2, "after": cursor}, {"last": 2, "before": cursor}):
            for query in (HISTORY, HISTORY_COUNT_ONLY):
                page = as_viewer.data(query, {**variables, **arguments})
                assert page["workflowInstance"]["history"]["totalCount"] == 7


def test_the_count_of_a_workflows_instances_holds_on_every_page_both_ways(
    as_viewer, claim_workflow
):
    for i in range(5):
        start(f"c{i}")

    def pick(data):
        return data["workflow"]["instances"]

    for backwards in (False, True):
        pages = walk(as_viewer, INSTANCES, {}, pick, 2, backwards=backwards)
        assert [page["totalCount"] for page in pages] == [5, 5, 5]
        assert len({e["node"]["id"] for page in pages for e in page["edges"]}) == 5


def test_the_top_level_count_holds_on_every_page_both_ways(as_viewer, claim_workflow):
    for i in range(5):
        start(f"c{i}")

    def pick(data):
        return data["workflowInstances"]

    for backwards in (False, True):
        pages = walk(as_viewer, TOP, {}, pick, 2, backwards=backwards)
        assert [page["totalCount"] for page in pages] == [5, 5, 5]


def test_first_and_last_together_on_a_nested_page_after_a_cursor(as_viewer, claim_workflow):
    instance = with_history("long", 3)  # 7 events
    variables = {"id": gid("WorkflowInstance", instance.pk)}
    first = as_viewer.data(HISTORY, {**variables, "first": 2})["workflowInstance"]["history"]
    page = as_viewer.data(
        HISTORY,
        {**variables, "first": 3, "last": 2, "after": first["pageInfo"]["endCursor"]},
    )["workflowInstance"]["history"]
    assert [e["node"]["sequence"] for e in page["edges"]] == [4, 5]
    assert page["totalCount"] == 7 and page["pageInfo"]["hasNextPage"]


def test_nested_counts_after_a_cursor_cost_the_same_queries_for_2_or_5_parents(
    as_viewer, claim_workflow
):
    instances = [with_history(f"c{i}", 2) for i in range(5)]  # 5 events each
    first = as_viewer.data(HISTORY, {"id": gid("WorkflowInstance", instances[0].pk), "first": 1})[
        "workflowInstance"
    ]["history"]["pageInfo"]["endCursor"]
    counted = []
    for n in (2, 5):
        with CaptureQueriesContext(connection) as queries:
            data = as_viewer.data(HISTORIES, {"n": n, "after": first})
        counted.append(len(queries))
        for edge in data["workflowInstances"]["edges"]:
            assert edge["node"]["history"]["totalCount"] == 5
    assert counted[0] == counted[1]


ORDERED = """query Ordered($first: Int, $after: String, $last: Int, $before: String) {
  workflow(name: "Claim Processing") {
    instances(first: $first, after: $after, last: $last, before: $before,
      ordering: [{version: DESC}, {startedAt: ASC}], filters: {state: ACTIVE}) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { id version } }
    }
  }
}"""


def test_a_nested_page_with_ordering_and_filters_counts_the_filtered_set_both_ways(
    as_viewer, claim_workflow
):
    instances = [start(f"c{i}") for i in range(6)]
    for instance in instances[:2]:
        services.set_workflow_on_hold(instance)
        services.resume_workflow_instance(instance)  # version 3: first in the ordering
    services.cancel_workflow_instance(instances[5])  # filtered out

    def pick(data):
        return data["workflow"]["instances"]

    forwards = walk(as_viewer, ORDERED, {}, pick, 2)
    assert [page["totalCount"] for page in forwards] == [5, 5, 5]
    order = [e["node"]["id"] for page in forwards for e in page["edges"]]
    assert len(set(order)) == 5
    assert [e["node"]["version"] for e in forwards[0]["edges"]] == [3, 3]
    backwards = walk(as_viewer, ORDERED, {}, pick, 2, backwards=True)
    assert [page["totalCount"] for page in backwards] == [5, 5, 5]
    assert [e["node"]["id"] for page in reversed(backwards) for e in page["edges"]] == order
