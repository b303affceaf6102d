"""What a dashboard shows without refetching lists (#20 point 2): `WorkflowStepStatus.
instanceCounts` (by state, only what the viewer may see, counted inside the query that loads
the statuses) and the instance filters by current status, states, finished, `updatedAfter` and
workflow ID."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from claims.models import Claim
from django_steps import services
from django_steps.models import WorkflowInstance, WorkflowStepStatus
from tests.conftest import CLAIM_PROCESSING, make_workflow
from tests.graphql_api.conftest import VIEW, client_for, gid, make_user

pytestmark = pytest.mark.django_db

STATUS_COUNTS = """query Counts($name: String!) {
  workflow(name: $name) {
    steps { statuses { name instanceCounts { total active onHold completed cancelled } } }
  }
}"""

FILTERED = """query Filtered($filters: WorkflowInstanceFilter) {
  workflowInstances(first: 100, filters: $filters) { totalCount edges { node { id } } }
}"""


def start(title: str, owner=None, workflow: str = "Claim Processing") -> WorkflowInstance:
    claim = Claim.objects.create(title=title, claimant="x", amount=Decimal("1"), owner=owner)
    return services.start_workflow_instance(workflow, claim)


def counts_by_status(data: dict) -> dict[str, dict]:
    return {
        f"{step_index}:{status['name']}": status["instanceCounts"]
        for step_index, step in enumerate(data["workflow"]["steps"])
        for status in step["statuses"]
    }


@pytest.fixture
def mixed(claim_workflow):
    """Three on Draft (one held, one withdrawn), one Under Review."""
    draft, held, withdrawn, review = (start(f"c{i}") for i in range(4))
    services.set_workflow_on_hold(held)
    services.cancel_workflow_instance(withdrawn)
    services.update_workflow_step_status(review, "Submitted")
    return draft, held, withdrawn, review


def test_each_custom_status_counts_its_instances_by_state(as_viewer, mixed):
    found = counts_by_status(as_viewer.data(STATUS_COUNTS, {"name": "Claim Processing"}))
    zero = {"total": 0, "active": 0, "onHold": 0, "completed": 0, "cancelled": 0}
    assert found["0:Draft"] == {**zero, "total": 1, "active": 1}
    assert found["0:On Hold"] == {**zero, "total": 1, "onHold": 1}
    assert found["0:Withdrawn"] == {**zero, "total": 1, "cancelled": 1}
    assert found["1:Under Review"] == {**zero, "total": 1, "active": 1}
    assert found["1:Approved"] == zero


def test_status_counts_cover_only_the_instances_the_viewer_may_see(claim_workflow):
    alice = make_user("alice", *VIEW)  # not a reviewer: sees her own claims only
    start("hers", owner=alice)
    start("someone else's")
    found = counts_by_status(client_for(alice).data(STATUS_COUNTS, {"name": "Claim Processing"}))
    assert found["0:Draft"]["total"] == 1


def test_status_counts_cost_the_same_queries_for_one_or_many_workflows(as_viewer, mixed):
    query = """{ workflows(first: 10) { edges { node { steps { statuses {
      instanceCounts { total } } } } } } }"""
    counted = []
    for extra in range(2):
        with CaptureQueriesContext(connection) as queries:
            as_viewer.data(query)
        counted.append(len(queries))
        make_workflow(f"More {extra}", CLAIM_PROCESSING)
    assert counted[0] == counted[1]


def ids(data: dict) -> set[str]:
    return {edge["node"]["id"] for edge in data["workflowInstances"]["edges"]}


def test_instances_filtered_by_current_status_match_its_count(as_viewer, mixed):
    draft, held, withdrawn, review = mixed
    on_hold = WorkflowStepStatus.objects.get(step__name="Submit Claim", name="On Hold")
    data = as_viewer.data(
        FILTERED, {"filters": {"currentStatusId": gid("WorkflowStepStatus", on_hold.pk)}}
    )
    assert ids(data) == {gid("WorkflowInstance", held.pk)}


def test_instances_filtered_by_states_finished_and_workflow_id(as_viewer, mixed):
    draft, held, withdrawn, review = mixed
    other = make_workflow("Other", CLAIM_PROCESSING)
    elsewhere = start("elsewhere", workflow="Other")
    g = lambda instance: gid("WorkflowInstance", instance.pk)  # noqa: E731
    states = as_viewer.data(FILTERED, {"filters": {"states": ["ON_HOLD", "CANCELLED"]}})
    assert ids(states) == {g(held), g(withdrawn)}
    assert ids(as_viewer.data(FILTERED, {"filters": {"states": []}})) == set()
    finished = as_viewer.data(FILTERED, {"filters": {"isFinished": True}})
    assert ids(finished) == {g(withdrawn)}
    unfinished = as_viewer.data(FILTERED, {"filters": {"isFinished": False}})
    assert ids(unfinished) == {g(draft), g(held), g(review), g(elsewhere)}
    by_workflow = as_viewer.data(FILTERED, {"filters": {"workflowId": gid("Workflow", other.pk)}})
    assert ids(by_workflow) == {g(elsewhere)}


def test_instances_changed_since_a_time(as_viewer, mixed):
    draft, held, withdrawn, review = mixed
    since = timezone.now() + timedelta(microseconds=1)
    WorkflowInstance.objects.filter(pk=draft.pk).update(updated_at=since - timedelta(days=1))
    services.resume_workflow_instance(held)
    changed = as_viewer.data(FILTERED, {"filters": {"updatedAfter": since.isoformat()}})
    assert ids(changed) == {gid("WorkflowInstance", held.pk)}


@pytest.mark.parametrize("name", ["workflowId", "currentStatusId"])
def test_an_id_filter_of_another_type_is_invalid_id_naming_it(as_viewer, mixed, name):
    result = as_viewer(FILTERED, {"filters": {name: gid("User", 1)}})
    [error] = result["errors"]
    assert error["extensions"]["code"] == "INVALID_ID"
    assert error["extensions"]["field"] == f"filters.{name}"
