"""A workflow can be named by its global ID wherever it could be named by name: starting,
migrating and deleting (``workflowId`` beside ``workflowName`` / ``name``, exactly one), reading
the history (``workflowEvents(workflowId:)``) and filtering lists (``workflowId``). By ID
alone: ``node(id:)``. An ID of no workflow is WORKFLOW_NOT_FOUND, as a name of none."""

from __future__ import annotations

import pytest

from django_steps.definitions import import_workflow
from django_steps.models import Workflow, WorkflowInstance
from django_steps.services import start_workflow_instance
from tests.conftest import make_workflow, two_steps, wait_until_final
from tests.graphql_api import operations as ops
from tests.graphql_api.api.test_inbox_api import ACT, ASSIGNED, inbox
from tests.graphql_api.api.test_inbox_api import start as start_assigned
from tests.graphql_api.api.test_versions_api import MIGRATE
from tests.graphql_api.conftest import bad_input, codes, gid, make_user

pytestmark = pytest.mark.django_db


def start(gql, claim, **workflow) -> dict:
    data = {"contentType": "claims.claim", "objectId": str(claim.pk), **workflow}
    return gql.data(ops.START, {"input": data})["startWorkflowInstance"]


def test_start_by_id_is_start_by_name(as_operator, claim_workflow, claim):
    by_id = start(as_operator, claim, workflowId=gid("Workflow", claim_workflow.pk))
    assert (by_id["__typename"], by_id["workflow"]["name"]) == (
        "WorkflowInstance",
        claim_workflow.name,
    )
    # the same instance again (an unfinished one exists), whichever way it is named
    by_name = start(as_operator, claim, workflowName=claim_workflow.name)
    assert by_name["id"] == by_id["id"] and WorkflowInstance.objects.count() == 1


def test_start_needs_exactly_one_way_of_naming_the_workflow(as_operator, claim_workflow, claim):
    both = start(
        as_operator,
        claim,
        workflowName=claim_workflow.name,
        workflowId=gid("Workflow", claim_workflow.pk),
    )
    assert codes(both) == ["BAD_USER_INPUT"] and both["messages"][0]["field"] == "workflowName"
    assert codes(start(as_operator, claim)) == ["BAD_USER_INPUT"]
    for raw, code in (
        (gid("Workflow", claim_workflow.pk + 100), "WORKFLOW_NOT_FOUND"),
        (gid("WorkflowInstance", 1), "INVALID_ID"),
        ("garbage", "INVALID_ID"),
    ):
        refused = start(as_operator, claim, workflowId=raw)
        assert codes(refused) == [code] and refused["messages"][0]["field"] == "workflowId"
    assert not WorkflowInstance.objects.exists()


def test_migrate_by_id_is_migrate_by_name(as_admin, claim_workflow, claim):
    start_workflow_instance(claim_workflow.name, claim)
    answers = [
        as_admin.data(MIGRATE, {"input": {"toVersion": 1, "dryRun": True, **workflow}})[
            "migrateWorkflowInstances"
        ]
        for workflow in (
            {"workflowName": claim_workflow.name},
            {"workflowId": gid("Workflow", claim_workflow.pk)},
        )
    ]
    assert answers[0]["__typename"] == "WorkflowMigration" and answers[0] == answers[1]
    wrong = as_admin.data(
        MIGRATE, {"input": {"toVersion": 1, "workflowId": gid("Workflow", claim_workflow.pk + 9)}}
    )["migrateWorkflowInstances"]
    assert codes(wrong) == ["WORKFLOW_NOT_FOUND"] and wrong["messages"][0]["field"] == "workflowId"


def test_delete_by_id(as_designer):
    workflow = make_workflow("Unused", two_steps())
    deleted = as_designer.data(
        ops.DELETE_WORKFLOW, {"input": {"workflowId": gid("Workflow", workflow.pk)}}
    )["deleteWorkflow"]
    assert (deleted["name"], deleted["workflowId"]) == ("Unused", gid("Workflow", workflow.pk))
    assert not Workflow.objects.filter(name="Unused").exists()
    both = as_designer.data(
        ops.DELETE_WORKFLOW, {"input": {"name": "x", "workflowId": gid("Workflow", 1)}}
    )["deleteWorkflow"]
    assert codes(both) == ["BAD_USER_INPUT"] and both["messages"][0]["field"] == "name"


EVENTS = """
query Events($name: String, $id: ID) {
  workflowEvents(workflowName: $name, workflowId: $id) { edges { node { kind instance { id } } } }
}
"""


@pytest.mark.django_db(transaction=True)  # it reads final events: committed ones (PostgreSQL)
def test_workflow_events_by_id(as_operator, claim_workflow, claim):
    other = make_workflow("Other", two_steps(content_types=["claims.claim"]))
    mine = start_workflow_instance(claim_workflow.name, claim)
    start_workflow_instance(other.name, claim)
    wait_until_final()
    by_id = as_operator.data(EVENTS, {"id": gid("Workflow", claim_workflow.pk)})
    by_name = as_operator.data(EVENTS, {"name": claim_workflow.name})
    assert by_id == by_name
    assert [e["node"]["instance"]["id"] for e in by_id["workflowEvents"]["edges"]] == [
        gid("WorkflowInstance", mine.pk)
    ]
    error = bad_input(as_operator(EVENTS, {"name": "x", "id": gid("Workflow", other.pk)}))
    assert error["extensions"]["field"] == "workflowName"
    missing = as_operator(EVENTS, {"id": gid("Workflow", other.pk + 50)})
    assert [e["extensions"]["code"] for e in missing["errors"]] == ["WORKFLOW_NOT_FOUND"]


def test_the_inbox_filters_on_the_workflow_id(db):
    assigned = import_workflow(ASSIGNED)
    alice = make_user("alice", *ACT)
    start_assigned(alice)
    assert inbox(alice, filters={"workflowId": gid("Workflow", assigned.pk)})["totalCount"] == 1
    other = make_workflow("Other", two_steps())
    assert inbox(alice, filters={"workflowId": gid("Workflow", other.pk)})["totalCount"] == 0
    # the same answer as by name, combined with the other filters
    both = {"workflowName": "Assigned Claims", "workflowId": gid("Workflow", assigned.pk)}
    assert inbox(alice, filters={**both, "claimed": False})["totalCount"] == 1
