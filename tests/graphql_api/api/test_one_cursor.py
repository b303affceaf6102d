"""One cursor per event (#20 point 4): an instance's `history` edges carry the events' own
`cursor`, which `history(after:/before:)`, `workflowEvents(after:)` and the subscriptions all
read; edge cursors handed out before keep working on `history`; `workflowEvents(first: 0)` is a
consistent head read."""

from __future__ import annotations

import json

import pytest
from strawberry.relay import to_base64

from django_steps import services
from django_steps.models import WorkflowEvent
from tests.conftest import wait_until_final
from tests.graphql_api.api.test_total_count import HISTORY, start, with_history
from tests.graphql_api.conftest import gid

pytestmark = pytest.mark.django_db
#: `workflowEvents` reads committed events only (on PostgreSQL, below the snapshot's horizon)
COMMITTED = pytest.mark.django_db(transaction=True)

EVENTS = """query Events($after: String, $first: Int, $instanceId: ID) {
  workflowEvents(after: $after, first: $first, instanceId: $instanceId) {
    cursor
    pageInfo { hasNextPage endCursor }
    edges { cursor node { cursor sequence } }
  }
}"""

HISTORY_CURSORS = """query History($id: ID!, $after: String) {
  workflowInstance(id: $id) {
    history(first: 10, after: $after) {
      pageInfo { startCursor endCursor }
      edges { cursor node { cursor sequence } }
    }
  }
}"""


def history(client, instance, **arguments) -> dict:
    variables = {"id": gid("WorkflowInstance", instance.pk), **arguments}
    return client.data(HISTORY, variables)["workflowInstance"]["history"]


def sequences(page: dict) -> list[int]:
    return [edge["node"]["sequence"] for edge in page["edges"]]


def test_a_history_edge_cursor_is_the_events_cursor(as_viewer, claim_workflow):
    instance = with_history("long", 2)  # 5 events
    page = as_viewer.data(HISTORY_CURSORS, {"id": gid("WorkflowInstance", instance.pk)})[
        "workflowInstance"
    ]["history"]
    stored = [str(e.cursor) for e in WorkflowEvent.objects.filter(instance=instance)]
    assert [edge["cursor"] for edge in page["edges"]] == stored
    assert [edge["node"]["cursor"] for edge in page["edges"]] == stored
    assert (page["pageInfo"]["startCursor"], page["pageInfo"]["endCursor"]) == (
        stored[0],
        stored[-1],
    )


def test_the_history_pages_forwards_and_backwards_by_event_cursor(as_viewer, claim_workflow):
    instance = with_history("long", 3)  # 7 events
    cursors = [str(e.cursor) for e in WorkflowEvent.objects.filter(instance=instance)]
    assert sequences(history(as_viewer, instance, first=2, after=cursors[2])) == [4, 5]
    assert sequences(history(as_viewer, instance, last=2, before=cursors[4])) == [3, 4]
    assert sequences(history(as_viewer, instance, first=10, after=cursors[-1])) == []


@COMMITTED
def test_an_edge_cursor_is_read_by_workflow_events_and_a_head_cursor_by_history(
    as_viewer, claim_workflow
):
    instance = with_history("long", 2)
    instance_id = gid("WorkflowInstance", instance.pk)
    edge = history(as_viewer, instance, first=2)["edges"][-1]["cursor"]
    wait_until_final()
    feed = as_viewer.data(EVENTS, {"after": edge, "instanceId": instance_id})["workflowEvents"]
    assert [e["node"]["sequence"] for e in feed["edges"]] == [3, 4, 5]
    head = as_viewer.data(EVENTS, {"first": 0, "instanceId": instance_id})["workflowEvents"]
    services.set_workflow_on_hold(instance)  # committed after the head was read
    assert sequences(history(as_viewer, instance, first=10, after=head["cursor"])) == [6]


def test_edge_cursors_handed_out_before_keep_working_on_history(as_viewer, claim_workflow):
    instance = with_history("long", 2)
    third = WorkflowEvent.objects.get(instance=instance, sequence=3)
    legacy = to_base64("orderedcursor", json.dumps([str(third.pk)]))
    assert sequences(history(as_viewer, instance, first=10, after=legacy)) == [4, 5]
    assert sequences(history(as_viewer, instance, last=10, before=legacy)) == [1, 2]


@pytest.mark.parametrize("cursor", ["9" * 40, "12a", to_base64("orderedcursor", "[1]")])
def test_a_cursor_that_is_no_events_is_refused_with_the_argument_named(
    as_viewer, claim_workflow, cursor
):
    instance = start("one")
    variables = {"id": gid("WorkflowInstance", instance.pk), "first": 2, "after": cursor}
    [error] = as_viewer(HISTORY, variables)["errors"]
    assert (error["extensions"]["code"], error["extensions"]["field"]) == (
        "BAD_USER_INPUT",
        "after",
    )


def test_an_event_cursor_is_refused_by_a_connection_of_instances(as_viewer, claim_workflow):
    start("one")
    result = as_viewer('{ workflowInstances(first: 2, after: "15") { totalCount } }')
    [error] = result["errors"]
    assert (error["extensions"]["code"], error["extensions"]["field"]) == (
        "BAD_USER_INPUT",
        "after",
    )


@COMMITTED
def test_first_zero_reads_a_consistent_head(as_viewer, claim_workflow):
    with_history("long", 2)
    wait_until_final()
    head = as_viewer.data(EVENTS, {"first": 0})["workflowEvents"]
    newest = str(WorkflowEvent.objects.order_by("txid", "position").last().cursor)
    assert head["edges"] == []
    assert head["cursor"] == head["pageInfo"]["endCursor"] == newest
    assert head["pageInfo"]["hasNextPage"] is False
    # with `after`, `first: 0` says whether events follow it
    older = as_viewer.data(EVENTS, {"first": 0, "after": "0"})["workflowEvents"]
    assert older["pageInfo"] == {"hasNextPage": True, "endCursor": "0"}
