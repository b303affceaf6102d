"""Every mutation through ``/graphql/``: what it does, and each error code it can return."""

from __future__ import annotations

import pytest

from django_steps.models import Workflow, WorkflowEvent, WorkflowInstance
from tests.conftest import camel, make_workflow, statuses, two_steps
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import client_for, codes, gid

pytestmark = pytest.mark.django_db

ROUTED = {
    "steps": [
        {
            "name": "Review",
            "is_initial_step": True,
            "statuses": statuses("Open", "Done", hold="Paused", cancellation="Dropped"),
        },
        {"name": "Manager", "statuses": statuses("Waiting")},
        {"name": "Paid", "is_final_step": True, "statuses": statuses("Pending", "Paid")},
    ],
    "transitions": [
        {"from_step": "Review", "to_step": "Manager", "condition": "amount > 1000", "priority": 10},
        {"from_step": "Review", "to_step": "Paid", "condition": "amount <= 100", "priority": 5},
        {"from_step": "Manager", "to_step": "Paid"},
    ],
}


@pytest.fixture
def routed(db):
    return make_workflow("Routed", ROUTED)


@pytest.fixture
def routed_instance(routed, claim):
    from django_steps.services import start_workflow_instance

    return start_workflow_instance("Routed", claim)


def start_input(object_id, content_type: str = "claims.claim") -> dict:
    """The variables starting "Claim Processing" on an object."""
    return {
        "input": {
            "workflowName": "Claim Processing",
            "contentType": content_type,
            "objectId": object_id,
        }
    }


def iid(instance) -> str:
    return gid("WorkflowInstance", instance.pk)


# ------------------------------------------------------------------------------------ start


def test_start_creates_an_instance_on_the_initial_step_and_records_the_actor(
    as_operator, claim_workflow, claim
):
    data = as_operator.data(ops.START, start_input(claim.pk))["startWorkflowInstance"]
    assert data["__typename"] == "WorkflowInstance"
    assert (
        data["state"],
        data["version"],
        data["currentStep"]["name"],
        data["currentStepStatus"]["name"],
    ) == (
        "ACTIVE",
        1,
        "Submit Claim",
        "Draft",
    )
    assert data["contentType"] == "claims.claim" and data["objectId"] == str(claim.pk)
    event = WorkflowEvent.objects.get()
    assert event.kind == "STARTED" and event.actor.username == "operator"


def test_start_again_returns_the_unfinished_instance(as_operator, instance, claim):
    data = as_operator.data(ops.START, start_input(claim.pk))["startWorkflowInstance"]
    assert data["id"] == iid(instance)
    assert WorkflowInstance.objects.count() == 1


def test_start_works_for_uuid_and_text_primary_keys(operator, claim_workflow):
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    from tests.testapp.models import CodeThing, UUIDThing

    claim_workflow.content_types.add(
        *ContentType.objects.get_for_models(UUIDThing, CodeThing).values()
    )
    from django_steps.versions import publish_workflow

    publish_workflow(claim_workflow)  # an ORM edit is a draft until published
    # Starting needs the permission to view the object too.
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_uuidthing", "view_codething"])
    )
    as_operator = client_for(operator)
    thing = UUIDThing.objects.create()
    code = CodeThing.objects.create(code="A-1/ü")
    for content_type, pk in (("testapp.uuidthing", str(thing.pk)), ("testapp.codething", code.pk)):
        data = as_operator.data(ops.START, start_input(pk, content_type))["startWorkflowInstance"]
        assert data["__typename"] == "WorkflowInstance"
        assert (data["contentType"], data["objectId"]) == (content_type, pk)


@pytest.mark.parametrize(
    "workflow_name, content_type, object_id, code, field",
    [
        ("Nope", "claims.claim", "CLAIM", "WORKFLOW_NOT_FOUND", None),
        # A model the workflow does not list, or no model at all: one answer, whatever the id.
        ("Claim Processing", "claims.nothing", "CLAIM", "MODEL_NOT_ALLOWED", None),
        ("Claim Processing", "garbage", "CLAIM", "MODEL_NOT_ALLOWED", None),
        ("Claim Processing", "testapp.uuidthing", "not-a-uuid", "MODEL_NOT_ALLOWED", None),
        ("Claim Processing", "auth.user", "1", "MODEL_NOT_ALLOWED", None),
        ("Claim Processing", "claims.claim", "999999", "OBJECT_NOT_FOUND", None),
        ("Claim Processing", "claims.claim", "not-a-number", "OBJECT_NOT_FOUND", None),
        ("Claim Processing", "claims.claim", "9" * 40, "OBJECT_NOT_FOUND", None),
    ],
)
def test_start_errors(
    as_operator, claim_workflow, claim, workflow_name, content_type, object_id, code, field
):
    object_id = str(claim.pk) if object_id == "CLAIM" else object_id
    payload = as_operator.data(
        ops.START,
        {
            "input": {
                "workflowName": workflow_name,
                "contentType": content_type,
                "objectId": object_id,
            }
        },
    )["startWorkflowInstance"]
    assert codes(payload) == [code]
    assert payload["messages"][0]["kind"] == "ERROR"
    assert WorkflowInstance.objects.count() == 0


# ------------------------------------------------------------------------------ update status


def test_update_status_advances_and_records_actor_and_context(as_operator, routed_instance):
    data = as_operator.data(
        ops.UPDATE_STATUS,
        {
            "input": {
                "instanceId": iid(routed_instance),
                "statusName": "Done",
                "context": {"amount": 5000},
            }
        },
    )["updateWorkflowStepStatus"]
    assert (data["currentStep"]["name"], data["currentStepStatus"]["name"], data["version"]) == (
        "Manager",
        "Waiting",
        2,
    )
    last = data["lastEvent"]
    assert last["kind"] == "ADVANCED" and last["actor"]["username"] == "operator"
    assert last["transition"]["id"]
    # what the condition read, apart: the claim's amount (1500.00) and the client's input
    assert last["context"]["input"] == {"amount": 5000}
    assert last["context"]["object"]["amount"] == "1500.00"


def test_update_status_uses_the_objects_fields_without_context(as_operator, routed_instance):
    # the claim's amount is 1500.00 (a Decimal): "amount > 1000" matches
    data = as_operator.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": iid(routed_instance), "statusName": "Done"}}
    )
    assert data["updateWorkflowStepStatus"]["currentStep"]["name"] == "Manager"


def test_update_status_completes_on_a_final_step(as_operator, instance):
    for status in ("Submitted", "Approved", "Approved"):
        data = as_operator.data(
            ops.UPDATE_STATUS, {"input": {"instanceId": iid(instance), "statusName": status}}
        )
    data = data["updateWorkflowStepStatus"]
    assert data["state"] == "COMPLETED" and data["isCompleted"] and data["completedAt"]
    assert data["availableStatuses"] == []


def test_no_transition_is_visible_and_advance_retries_it(as_operator, routed_instance, claim):
    type(claim).objects.filter(pk=claim.pk).update(amount=500)
    data = as_operator.data(
        ops.UPDATE_STATUS,
        {
            "input": {
                "instanceId": iid(routed_instance),
                "statusName": "Done",
                "context": {"amount": 50},  # the client's input: the conditions read the claim's
            }
        },
    )["updateWorkflowStepStatus"]
    assert data["lastEvent"]["kind"] == "NO_TRANSITION"
    assert data["isAwaitingTransition"] and data["currentStep"]["name"] == "Review"

    type(claim).objects.filter(pk=claim.pk).update(amount=50)  # the claim changed: retry
    retried = as_operator.data(
        ops.ADVANCE,
        {"input": {"instanceId": iid(routed_instance), "expectedVersion": 2}},
    )["advanceWorkflowInstance"]
    assert (
        retried["currentStep"]["name"],
        retried["version"],
        retried["isAwaitingTransition"],
    ) == ("Paid", 3, False)


def test_a_condition_reading_input_the_client_did_not_send_is_a_condition_error(as_operator, claim):
    make_workflow(
        "Scored",
        {
            **ROUTED,
            "transitions": [
                {"from_step": "Review", "to_step": "Manager", "condition": "input.score > 5"},
                {"from_step": "Manager", "to_step": "Paid"},
            ],
        },
    )
    from django_steps.services import start_workflow_instance

    instance = start_workflow_instance("Scored", claim)
    variables = {"input": {"instanceId": iid(instance), "statusName": "Done"}}
    for context in (None, {"other": 1}):
        payload = as_operator.data(
            ops.UPDATE_STATUS, {"input": {**variables["input"], "context": context}}
        )["updateWorkflowStepStatus"]
        assert codes(payload) == ["CONDITION_ERROR"]
        assert payload["messages"][0]["kind"] == "ERROR"
    instance.refresh_from_db()
    assert instance.version == 1 and instance.events.count() == 1
    done = as_operator.data(
        ops.UPDATE_STATUS, {"input": {**variables["input"], "context": {"score": 6}}}
    )["updateWorkflowStepStatus"]
    assert done["currentStep"]["name"] == "Manager"


@pytest.mark.parametrize(
    "variables, code, kind",
    [
        ({"statusName": "Nope"}, "UNKNOWN_STATUS", "VALIDATION"),
        ({"statusName": "Done", "context": [1, 2]}, "INVALID_CONTEXT", "VALIDATION"),
        ({"statusName": "Done", "context": "amount"}, "INVALID_CONTEXT", "VALIDATION"),
    ],
)
def test_update_status_errors_change_nothing(as_operator, routed_instance, variables, code, kind):
    payload = as_operator.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": iid(routed_instance), **variables}}
    )["updateWorkflowStepStatus"]
    assert codes(payload) == [code]
    assert payload["messages"][0]["kind"] == kind
    routed_instance.refresh_from_db()
    assert routed_instance.version == 1 and routed_instance.events.count() == 1


def test_update_status_of_a_held_and_of_a_finished_instance(as_operator, routed_instance):
    as_operator.data(ops.HOLD, {"input": {"instanceId": iid(routed_instance)}})
    payload = as_operator.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": iid(routed_instance), "statusName": "Open"}}
    )
    assert codes(payload["updateWorkflowStepStatus"]) == ["INSTANCE_ON_HOLD"]
    # the cancellation status is still accepted while on hold
    data = as_operator.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": iid(routed_instance), "statusName": "Dropped"}}
    )
    assert data["updateWorkflowStepStatus"]["state"] == "CANCELLED"
    payload = as_operator.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": iid(routed_instance), "statusName": "Open"}}
    )
    assert codes(payload["updateWorkflowStepStatus"]) == ["INSTANCE_FINISHED"]


@pytest.mark.parametrize(
    "operation, field, extra",
    [
        (ops.UPDATE_STATUS, "updateWorkflowStepStatus", {"statusName": "Open"}),
        (ops.ADVANCE, "advanceWorkflowInstance", {}),
        (ops.HOLD, "setWorkflowOnHold", {}),
        (ops.RESUME, "resumeWorkflowInstance", {}),
        (ops.CANCEL, "cancelWorkflowInstance", {}),
    ],
)
@pytest.mark.parametrize(
    "make_id, code",
    [
        (lambda i: "garbage!", "INVALID_ID"),
        (lambda i: "", "INVALID_ID"),
        (lambda i: gid("Workflow", i.workflow_id), "INVALID_ID"),
        (lambda i: gid("NoSuchType", i.pk), "INVALID_ID"),
        (lambda i: gid("WorkflowInstance", "abc"), "INVALID_ID"),
        (lambda i: gid("WorkflowInstance", i.pk + 1000), "INSTANCE_NOT_FOUND"),
        (lambda i: gid("WorkflowInstance", -1), "INSTANCE_NOT_FOUND"),
        (lambda i: gid("WorkflowInstance", 10**30), "INSTANCE_NOT_FOUND"),
    ],
)
def test_instance_mutations_with_bad_ids(
    as_operator, routed_instance, operation, field, extra, make_id, code
):
    payload = as_operator.data(
        operation, {"input": {"instanceId": make_id(routed_instance), **extra}}
    )[field]
    assert codes(payload) == [code]
    assert payload["messages"][0]["field"] == "instanceId"


# -------------------------------------------------------------------------- hold/resume/cancel


def test_hold_resume_cancel(as_operator, routed_instance):
    held = as_operator.data(
        ops.HOLD, {"input": {"instanceId": iid(routed_instance), "expectedVersion": 1}}
    )["setWorkflowOnHold"]
    assert (held["state"], held["currentStepStatus"]["name"]) == ("ON_HOLD", "Paused")
    assert [s["name"] for s in held["availableStatuses"]] == ["Dropped"]
    resumed = as_operator.data(ops.RESUME, {"input": {"instanceId": iid(routed_instance)}})[
        "resumeWorkflowInstance"
    ]
    assert (resumed["state"], resumed["currentStepStatus"]["name"], resumed["version"]) == (
        "ACTIVE",
        "Open",
        3,
    )
    cancelled = as_operator.data(ops.CANCEL, {"input": {"instanceId": iid(routed_instance)}})[
        "cancelWorkflowInstance"
    ]
    assert (cancelled["state"], cancelled["currentStepStatus"]["name"]) == ("CANCELLED", "Dropped")
    assert cancelled["isCompleted"] and cancelled["completedAt"]
    kinds = list(routed_instance.events.values_list("kind", flat=True))
    assert kinds == ["STARTED", "ON_HOLD", "RESUMED", "CANCELLED"]


def test_hold_resume_advance_cancel_errors(as_operator, routed_instance):
    i = {"instanceId": iid(routed_instance)}

    def refused(operation: str, field: str, **extra) -> list[str]:
        return codes(as_operator.data(operation, {"input": {**i, **extra}})[field])

    assert refused(ops.RESUME, "resumeWorkflowInstance") == ["NOT_ON_HOLD"]
    assert refused(ops.ADVANCE, "advanceWorkflowInstance") == ["NOT_AWAITING_TRANSITION"]
    stale = as_operator.data(ops.HOLD, {"input": {**i, "expectedVersion": 0}})["setWorkflowOnHold"]
    assert stale["__typename"] == "VersionConflict"
    as_operator.data(ops.HOLD, {"input": i})
    assert refused(ops.HOLD, "setWorkflowOnHold") == ["INSTANCE_ON_HOLD"]
    assert refused(ops.ADVANCE, "advanceWorkflowInstance") == ["INSTANCE_ON_HOLD"]
    assert refused(ops.ADVANCE, "advanceWorkflowInstance", context=3) == ["INVALID_CONTEXT"]
    as_operator.data(ops.CANCEL, {"input": i})
    for operation, field in (
        (ops.CANCEL, "cancelWorkflowInstance"),
        (ops.HOLD, "setWorkflowOnHold"),
        (ops.RESUME, "resumeWorkflowInstance"),
        (ops.ADVANCE, "advanceWorkflowInstance"),
    ):
        assert refused(operation, field) == ["INSTANCE_FINISHED"]


# -------------------------------------------------------------------------------- definitions

DEFINITION = camel(
    two_steps(
        "Draft",
        "Booked",
        first_statuses=statuses("Editing", "Sent"),
        second_statuses=statuses("Open", "Closed"),
        condition="amount < 100",
        priority=1,
        name="Expenses",
        description="Small expenses",
    )
)


def test_create_workflow_from_a_definition_document(as_designer):
    data = as_designer.data(ops.CREATE_WORKFLOW, {"input": DEFINITION})["createWorkflow"]
    assert data["__typename"] == "Workflow" and data["name"] == "Expenses"
    assert [
        (s["name"], s["order"], s["isInitialStep"], s["isFinalStep"]) for s in data["steps"]
    ] == [
        ("Draft", 1, True, False),
        ("Booked", 2, False, True),
    ]
    assert data["steps"][0]["statuses"][1] == {
        "name": "Sent",
        "isDefaultStatus": False,
        "isCompletionStatus": True,
    }
    assert data["transitions"] == [
        {
            "fromStep": {"name": "Draft"},
            "toStep": {"name": "Booked"},
            "condition": "amount < 100",
            "priority": 1,
        }
    ]
    from django_steps.definitions import export_workflow

    exported = export_workflow(Workflow.objects.get(name="Expenses"))
    assert exported["steps"][0]["statuses"][0]["is_default_status"] is True


def test_create_workflow_refuses_an_invalid_definition_atomically(as_designer):
    bad = {
        **DEFINITION,
        "steps": [{**DEFINITION["steps"][0], "isInitialStep": False}, DEFINITION["steps"][1]],
        "transitions": [{"fromStep": "Draft", "toStep": "Nowhere", "condition": "amount <"}],
    }
    payload = as_designer.data(ops.CREATE_WORKFLOW, {"input": bad})["createWorkflow"]
    assert set(codes(payload)) == {"INVALID_DEFINITION"}
    assert len(payload["messages"]) >= 2  # every problem, each with its path
    assert all(m["kind"] == "VALIDATION" for m in payload["messages"])
    assert not Workflow.objects.exists()


def test_create_workflow_with_malformed_cel_names_the_condition(as_designer):
    bad = {
        **DEFINITION,
        "transitions": [{"fromStep": "Draft", "toStep": "Booked", "condition": "amount <<< ("}],
    }
    payload = as_designer.data(ops.CREATE_WORKFLOW, {"input": bad})["createWorkflow"]
    assert set(codes(payload)) == {"INVALID_DEFINITION"}
    assert any("transitions" in (m["field"] or "") for m in payload["messages"])
    assert not Workflow.objects.exists()


def test_create_workflow_refuses_an_existing_name(as_designer, claim_workflow):
    payload = as_designer.data(
        ops.CREATE_WORKFLOW, {"input": {**DEFINITION, "name": "Claim Processing"}}
    )
    assert codes(payload["createWorkflow"]) == ["INVALID_DEFINITION"]
    assert payload["createWorkflow"]["messages"][0]["field"] == "name"


def test_update_workflow_replaces_the_definition(as_designer):
    as_designer.data(ops.CREATE_WORKFLOW, {"input": DEFINITION})
    changed = {
        **DEFINITION,
        "description": "v2",
        "transitions": [{"fromStep": "Draft", "toStep": "Booked"}],
    }
    data = as_designer.data(ops.UPDATE_WORKFLOW, {"input": changed})["updateWorkflow"]
    assert data["description"] == "v2" and data["transitions"] == [{"condition": ""}]


def test_update_workflow_errors(as_designer, claim, claim_workflow):
    payload = as_designer.data(ops.UPDATE_WORKFLOW, {"input": DEFINITION})["updateWorkflow"]
    assert codes(payload) == ["WORKFLOW_NOT_FOUND"]
    from django_steps.services import start_workflow_instance

    instance = start_workflow_instance("Claim Processing", claim)
    # dropping the step the instance is on publishes a version without it; the instance stays
    # on its own
    doc = {
        "name": "Claim Processing",
        "steps": [
            {
                "name": "Review Claim",
                "isInitialStep": True,
                "isFinalStep": True,
                "statuses": [
                    {"name": "Under Review", "isDefaultStatus": True},
                    {"name": "Approved", "isCompletionStatus": True},
                ],
            }
        ],
    }
    payload = as_designer.data(ops.UPDATE_WORKFLOW, {"input": doc})["updateWorkflow"]
    assert payload["__typename"] == "Workflow"
    assert claim_workflow.steps.count() == 1
    claim_workflow.refresh_from_db()
    assert claim_workflow.definition_version == 2
    instance.refresh_from_db()
    assert (instance.definition_version.number, instance.current_step.name) == (1, "Submit Claim")


def test_delete_workflow(as_designer, claim_workflow, claim):
    from django_steps.services import start_workflow_instance

    instance = start_workflow_instance("Claim Processing", claim)
    payload = as_designer.data(ops.DELETE_WORKFLOW, {"input": {"name": "Claim Processing"}})[
        "deleteWorkflow"
    ]
    assert codes(payload) == ["WORKFLOW_IN_USE"]
    instance.delete()
    data = as_designer.data(ops.DELETE_WORKFLOW, {"input": {"name": "Claim Processing"}})[
        "deleteWorkflow"
    ]
    assert data == {
        "__typename": "DeletedWorkflow",
        "id": gid(
            "DeletedWorkflow", claim_workflow.pk
        ),  # no live object has this ID (Relay caches by ID)
        "workflowId": gid("Workflow", claim_workflow.pk),
        "name": "Claim Processing",
    }
    assert not Workflow.objects.exists()
    payload = as_designer.data(ops.DELETE_WORKFLOW, {"input": {"name": "Claim Processing"}})[
        "deleteWorkflow"
    ]
    assert codes(payload) == ["WORKFLOW_NOT_FOUND"]


# ------------------------------------------------------------------------------------ session


def test_login_me_logout(db):
    from tests.graphql_api.conftest import make_user

    make_user("ada")
    gql = client_for(None)
    assert gql.data(ops.ME)["me"] is None
    payload = gql.data(ops.LOGIN, {"username": "ada", "password": "wrong"})["login"]
    assert codes(payload) == ["INVALID_CREDENTIALS"]
    user = gql.data(ops.LOGIN, {"username": "ada", "password": "pw"})["login"]
    assert user["__typename"] == "User" and user["username"] == "ada"
    assert gql.data(ops.ME)["me"]["username"] == "ada"
    assert gql.data(ops.LOGOUT)["logout"] is True
    assert gql.data(ops.ME)["me"] is None
    assert gql.data(ops.LOGOUT)["logout"] is False


def test_a_status_is_set_by_the_id_available_statuses_and_viewer_can_hand_out(
    as_operator, instance
):
    query = """query($id: ID!) { workflowInstance(id: $id) {
        availableStatuses { id name } viewerCan { statuses { id name } } } }"""
    i = gid("WorkflowInstance", instance.pk)
    data = as_operator.data(query, {"id": i})["workflowInstance"]
    submitted = next(s for s in data["availableStatuses"] if s["name"] == "Submitted")
    assert submitted in data["viewerCan"]["statuses"]
    moved = as_operator.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusId": submitted["id"]}}
    )["updateWorkflowStepStatus"]
    assert moved["currentStep"]["name"] == "Review Claim"
    # The same ID again: it is a status of the step the instance left, not of the current one.
    again = as_operator.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusId": submitted["id"]}}
    )
    assert codes(again["updateWorkflowStepStatus"]) == ["UNKNOWN_STATUS"]
    for both_or_neither in ({"statusId": submitted["id"], "statusName": "Approved"}, {}):
        payload = as_operator.data(
            ops.UPDATE_STATUS, {"input": {"instanceId": i, **both_or_neither}}
        )
        assert [
            (m["code"], m["field"]) for m in payload["updateWorkflowStepStatus"]["messages"]
        ] == [("BAD_USER_INPUT", "status")]
    wrong_type = as_operator.data(ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusId": i}})
    assert codes(wrong_type["updateWorkflowStepStatus"]) == ["INVALID_ID"]
