"""Every permission rule: anonymous and permission-less users get PERMISSION errors on every
mutation and see nothing; reading needs view_*; changing needs change/add/delete perms."""

from __future__ import annotations

import contextvars
import threading
from types import SimpleNamespace

import pytest

from django_steps import authorization
from django_steps.models import Workflow, WorkflowEvent, WorkflowInstance
from graphql_api.security import permissions
from tests.graphql_api import operations as ops
from tests.graphql_api.api.test_mutations import DEFINITION
from tests.graphql_api.conftest import STAFF, client_for, gid, make_user

pytestmark = pytest.mark.django_db


def instance_mutations(instance, claim):
    i = gid("WorkflowInstance", instance.pk)
    return [
        (
            ops.START,
            "startWorkflowInstance",
            {
                "input": {
                    "workflowName": "Claim Processing",
                    "contentType": "claims.claim",
                    "objectId": claim.pk,
                }
            },
        ),
        *ops.instance_changes(i, "Submitted"),
    ]


def definition_mutations():
    return [
        (ops.CREATE_WORKFLOW, "createWorkflow", {"input": DEFINITION}),
        (
            ops.UPDATE_WORKFLOW,
            "updateWorkflow",
            {"input": {**DEFINITION, "name": "Claim Processing"}},
        ),
        (ops.DELETE_WORKFLOW, "deleteWorkflow", {"input": {"name": "Claim Processing"}}),
    ]


def assert_denied(payload):
    assert payload["__typename"] == "OperationInfo", payload
    assert [(m["kind"], m["code"]) for m in payload["messages"]] == [
        ("PERMISSION", "PERMISSION_DENIED")
    ]


@pytest.mark.parametrize("who", ["anonymous", "nobody", "viewer"])
def test_every_mutation_is_refused_without_permission(who, instance, claim):
    user = (
        None
        if who == "anonymous"
        else make_user(
            who,
            *(
                ("django_steps.view_workflow", "django_steps.view_workflowinstance")
                if who == "viewer"
                else ()
            ),
        )
    )
    gql = client_for(user)
    for operation, field, variables in instance_mutations(instance, claim) + definition_mutations():
        assert_denied(gql.data(operation, variables)[field])
    # nothing changed
    instance.refresh_from_db()
    assert instance.version == 1 and WorkflowEvent.objects.count() == 1
    assert list(Workflow.objects.values_list("name", flat=True)) == ["Claim Processing"]


def test_bad_ids_are_not_revealed_before_the_permission_check(anon):
    payload = anon.data(ops.HOLD, {"input": {"instanceId": "garbage"}})["setWorkflowOnHold"]
    assert_denied(payload)


def test_instance_mutations_need_change_workflowinstance(instance, claim):
    gql = client_for(make_user("changer", "django_steps.change_workflowinstance"))
    for operation, field, variables in instance_mutations(instance, claim):
        payload = gql.data(operation, variables)[field]
        assert (
            payload["__typename"] == "WorkflowInstance"
            or payload["messages"][0]["kind"] != "PERMISSION"
        )
    for operation, field, variables in definition_mutations():
        assert_denied(gql.data(operation, variables)[field])


@pytest.mark.parametrize(
    "perm, allowed",
    [
        ("django_steps.add_workflow", "createWorkflow"),
        ("django_steps.change_workflow", "updateWorkflow"),
        ("django_steps.delete_workflow", "deleteWorkflow"),
    ],
)
def test_each_definition_mutation_needs_its_own_permission(claim_workflow, perm, allowed):
    gql = client_for(make_user("designer1", perm))
    for operation, field, variables in definition_mutations():
        payload = gql.data(operation, variables)[field]
        if field == allowed:
            assert payload["__typename"] != "OperationInfo", payload
        else:
            assert_denied(payload)


def test_superuser_may_do_everything(as_admin, instance, claim):
    for operation, field, variables in (
        instance_mutations(instance, claim)[:2] + definition_mutations()[:1]
    ):
        assert as_admin.data(operation, variables)[field]["__typename"] != "OperationInfo"


def test_inactive_superuser_is_refused(instance, claim):
    user = make_user("ghost", superuser=True)
    gql = client_for(user)
    user.is_active = False
    user.save()
    operation, field, variables = instance_mutations(instance, claim)[3]
    assert gql.data(operation, variables)[field]["__typename"] == "OperationInfo"


READS = """
query Reads($instanceId: ID!, $workflowId: ID!, $eventId: ID!) {
  workflows { totalCount edges { node { name } } }
  workflow(name: "Claim Processing") { name instances(first: 0) { totalCount } }
  workflowInstances { totalCount edges { node { id } } }
  workflowInstance(id: $instanceId) { id }
  instanceNode: node(id: $instanceId) { id }
  workflowNode: node(id: $workflowId) { id }
  eventNode: node(id: $eventId) { id }
  evaluateTransitions(instanceId: $instanceId) { error }
}
"""


@pytest.fixture
def read_vars(instance):
    return {
        "instanceId": gid("WorkflowInstance", instance.pk),
        "workflowId": gid("Workflow", instance.workflow_id),
        "eventId": gid("WorkflowEvent", instance.events.get().pk),
    }


@pytest.mark.parametrize("who", ["anonymous", "nobody"])
def test_without_view_permissions_nothing_is_visible(who, read_vars):
    gql = client_for(None if who == "anonymous" else make_user(who))
    data = gql.data(READS, read_vars)
    assert data == {
        "workflows": {"totalCount": 0, "edges": []},
        "workflow": None,
        "workflowInstances": {"totalCount": 0, "edges": []},
        "workflowInstance": None,
        "instanceNode": None,
        "workflowNode": None,
        "eventNode": None,
        "evaluateTransitions": None,
    }


def test_view_workflow_shows_definitions_but_not_instances(read_vars):
    gql = client_for(make_user("designer2", "django_steps.view_workflow"))
    data = gql.data(READS, read_vars)
    assert data["workflows"]["totalCount"] == 1 and data["workflowNode"] is not None
    assert data["workflow"] == {"name": "Claim Processing", "instances": {"totalCount": 0}}
    assert data["workflowInstances"]["totalCount"] == 0
    assert (
        data["workflowInstance"] is None
        and data["instanceNode"] is None
        and data["eventNode"] is None
    )
    assert data["evaluateTransitions"] is None


def test_view_workflowinstance_shows_instances_and_history_but_not_the_definition_list(read_vars):
    gql = client_for(make_user("clerk", "django_steps.view_workflowinstance", groups=STAFF))
    data = gql.data(READS, read_vars)
    assert data["workflowInstances"]["totalCount"] == 1
    assert data["workflowInstance"] and data["instanceNode"] and data["eventNode"]
    assert data["evaluateTransitions"] == {"error": None}
    # the definition list needs view_workflow; the workflow an instance runs is shown with it
    assert (
        data["workflows"]["totalCount"] == 0
        and data["workflow"] is None
        and data["workflowNode"] is None
    )
    instance = gql.data(ops.INSTANCE, {"id": read_vars["instanceId"]})["workflowInstance"]
    assert instance["workflow"]["name"] == "Claim Processing" and len(ops.events(instance)) == 1


def test_viewer_sees_everything(as_viewer, read_vars):
    data = as_viewer.data(READS, read_vars)
    assert all(value is not None for value in data.values())
    assert data["workflow"]["instances"]["totalCount"] == 1
    assert WorkflowInstance.objects.count() == 1


def test_an_answer_asked_for_one_subscription_event_stays_out_of_the_next_events_ledger(
    instance, monkeypatch
):
    """A subscription's events each start from a ledger of their own (a revocation between two
    events must reach the second). A question still being answered for one event when the
    next begins (a slow rule, a cancelled execution's worker thread) writes its answer to the
    event that asked, not to the next one's."""
    asked, answer = threading.Event(), threading.Event()

    def slow_rule(user, obj):
        asked.set()
        answer.wait(10)
        return True

    monkeypatch.setattr(authorization, "may_view_object", slow_rule)
    key = (instance.content_type_id, instance.object_id)

    def operation():
        permissions.begin_socket_operation()
        info = SimpleNamespace()
        first = permissions.ledger(info).objects
        asking = threading.Thread(
            target=contextvars.copy_context().run,
            args=(permissions.may_view_attached_object, info, instance),
        )
        asking.start()
        assert asked.wait(10)
        permissions.begin_event(info, instance.pk)  # the next event, while the rule still runs
        answer.set()
        asking.join(10)
        return first, permissions.ledger(info).objects

    first, after = contextvars.copy_context().run(operation)
    assert first == {key: True}  # the event that asked has its answer
    assert key not in after  # the next event asks again
