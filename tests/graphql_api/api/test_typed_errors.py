"""Typed mutation errors (issue #20, point 1), through the GraphQL endpoint: a stale
``expectedVersion`` returns ``VersionConflict`` with the instance as now committed; each mutation
returns only the codes its ``<Name>ErrorCode`` enum (and its description) lists; ``field`` names
the input at fault; the status is chosen through a ``@oneOf`` input."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
import strawberry
from django.contrib.auth.models import AnonymousUser, User
from django.core.management import call_command
from django.test import RequestFactory
from strawberry.django.context import StrawberryDjangoContext

from claims.models import Claim
from django_steps import services
from django_steps.exceptions import WorkflowInUse
from django_steps.models import WorkflowEvent, WorkflowInstance
from graphql_api.api.payloads import mutation
from graphql_api.api.types import UserType
from graphql_api.composition import compose_schema
from graphql_api.security.error_codes import ErrorCode
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import client_for, codes, gid

pytestmark = pytest.mark.django_db

CONFLICT = """
fragment Outcome on WorkflowInstance { id version state }
mutation Change($input: {input}!) {
  {field}(input: $input) {
    __typename
    ...Outcome
    ... on OperationInfo { messages { code field } }
    ... on VersionConflict { code message current { ...Outcome currentStepStatus { name } } }
  }
}
"""

#: Each mutation that takes expectedVersion, with the input that names a change it can make.
CHANGES = [
    (
        "updateWorkflowStepStatus",
        "UpdateWorkflowStepStatusInput",
        {"status": {"name": "Submitted"}},
    ),
    (
        "setWorkflowInstanceStatus",
        "SetWorkflowInstanceStatusInput",
        {"status": {"name": "Submitted"}},
    ),
    ("advanceWorkflowInstance", "AdvanceWorkflowInstanceInput", {}),
    ("setWorkflowOnHold", "SetWorkflowOnHoldInput", {}),
    ("holdWorkflowInstance", "HoldWorkflowInstanceInput", {}),
    ("resumeWorkflowInstance", "ResumeWorkflowInstanceInput", {}),
    ("cancelWorkflowInstance", "CancelWorkflowInstanceInput", {}),
]


def change(field: str, input_type: str) -> str:
    return CONFLICT.replace("{input}", input_type).replace("{field}", field)


@pytest.mark.parametrize(("field", "input_type", "extra"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_stale_expected_version_returns_the_instance_as_now_committed(
    as_operator, operator, instance, field, input_type, extra
):
    services.set_workflow_on_hold(instance, actor=operator)  # someone else: version 1 -> 2
    events = WorkflowEvent.objects.count()
    variables = {"input": {"instanceId": gid("WorkflowInstance", instance.pk), **extra}}
    variables["input"]["expectedVersion"] = 1
    payload = as_operator.data(change(field, input_type), variables)[field]
    assert payload["__typename"] == "VersionConflict"
    assert payload["code"] == "VERSION_CONFLICT"
    assert payload["current"] == {
        "id": gid("WorkflowInstance", instance.pk),
        "version": 2,
        "state": "ON_HOLD",
        "currentStepStatus": {"name": "On Hold"},
    }
    assert "2" not in payload["message"]  # no value to parse: read `current.version`
    assert WorkflowEvent.objects.count() == events  # nothing changed
    # Retrying at `current.version` goes through (or is refused for what the instance is now).
    variables["input"]["expectedVersion"] = payload["current"]["version"]
    retried = as_operator.data(change(field, input_type), variables)[field]
    assert retried["__typename"] != "VersionConflict"


def test_a_conflict_with_the_callers_own_change_does_not_blame_someone_else(as_operator, instance):
    """The caller sends the version it read twice: the second change conflicts with its own
    first one, and the message says what is true in every case."""
    variables = {
        "input": {"instanceId": gid("WorkflowInstance", instance.pk), "expectedVersion": 1}
    }
    first = as_operator.data(change("setWorkflowOnHold", "SetWorkflowOnHoldInput"), variables)
    assert first["setWorkflowOnHold"]["__typename"] == "WorkflowInstance"
    field, input_type = "cancelWorkflowInstance", "CancelWorkflowInstanceInput"
    payload = as_operator.data(change(field, input_type), variables)[field]
    assert payload["__typename"] == "VersionConflict"
    message = payload["message"]
    assert "someone else" not in message
    assert "changed since the version you expected was read" in message


def test_an_old_client_that_does_not_select_the_conflict_gets_its_typename(as_operator, instance):
    services.set_workflow_on_hold(instance)
    variables = {
        "input": {"instanceId": gid("WorkflowInstance", instance.pk), "expectedVersion": 1}
    }
    # ops.CANCEL selects only `... on WorkflowInstance` and `... on OperationInfo`.
    payload = as_operator.data(ops.CANCEL, variables)["cancelWorkflowInstance"]
    assert payload == {"__typename": "VersionConflict"}
    assert WorkflowInstance.objects.get(pk=instance.pk).state == "ON_HOLD"


def test_a_hidden_instance_at_a_stale_version_is_not_found_not_a_conflict(db):
    # The visibility rule comes before the version: a conflict would show the instance.
    call_command("demo_setup", stdout=StringIO())
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    bobs = Claim.objects.filter(owner=bob).values_list("pk", flat=True)
    hidden = WorkflowInstance.objects.filter(object_id__in=[str(pk) for pk in bobs]).first()
    payload = client_for(alice).data(
        change("setWorkflowOnHold", "SetWorkflowOnHoldInput"),
        {"input": {"instanceId": gid("WorkflowInstance", hidden.pk), "expectedVersion": 99}},
    )["setWorkflowOnHold"]
    assert payload == {
        "__typename": "OperationInfo",
        "messages": [{"code": "INSTANCE_NOT_FOUND", "field": "instanceId"}],
    }


# ------------------------------------------------------------------------ fields and @oneOf

STATUS = """
mutation Set($input: SetWorkflowInstanceStatusInput!) {
  setWorkflowInstanceStatus(input: $input) {
    __typename
    ... on WorkflowInstance { currentStep { name } }
    ... on OperationInfo { messages { code field kind } }
  }
}
"""


def test_the_status_by_name_or_id_through_one_of(as_operator, instance):
    i = gid("WorkflowInstance", instance.pk)
    status = {s.name: s for s in instance.current_step.statuses.all()}
    by_id = gid("WorkflowStepStatus", status["Submitted"].pk)
    moved = as_operator.data(STATUS, {"input": {"instanceId": i, "status": {"id": by_id}}})
    assert moved["setWorkflowInstanceStatus"]["currentStep"] == {"name": "Review Claim"}
    by_name = as_operator.data(STATUS, {"input": {"instanceId": i, "status": {"name": "Approved"}}})
    assert by_name["setWorkflowInstanceStatus"]["currentStep"] == {"name": "Approve/Reject"}
    # Both members of the @oneOf: refused by GraphQL before anything runs.
    both = as_operator(
        STATUS, {"input": {"instanceId": i, "status": {"name": "Approved", "id": by_id}}}
    )
    assert (
        both.get("data") is None
        and both["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    )
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 3


#: The deprecated mutation, whose input still takes `statusName`/`statusId` beside `status`.
OLD_STATUS = STATUS.replace("SetWorkflowInstanceStatus", "UpdateWorkflowStepStatus").replace(
    "setWorkflowInstanceStatus", "updateWorkflowStepStatus"
)


@pytest.mark.parametrize(
    ("given", "code", "field"),
    [
        ({"status": {"name": "Nope"}}, "UNKNOWN_STATUS", "status.name"),
        ({"status": {"id": gid("WorkflowStepStatus", 10**9)}}, "UNKNOWN_STATUS", "status.id"),
        ({"status": {"id": gid("WorkflowStepStatus", 10**30)}}, "UNKNOWN_STATUS", "status.id"),
        ({"status": {"id": "garbage"}}, "INVALID_ID", "status.id"),
        ({"status": {"name": "Submitted"}, "context": [1]}, "INVALID_CONTEXT", "context"),
    ],
)
def test_field_names_the_input_at_fault(as_operator, instance, given, code, field):
    variables = {"input": {"instanceId": gid("WorkflowInstance", instance.pk), **given}}
    payload = as_operator.data(STATUS, variables)["setWorkflowInstanceStatus"]
    assert [(m["code"], m["field"]) for m in payload["messages"]] == [(code, field)]
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 1


@pytest.mark.parametrize(
    ("given", "code", "field"),
    [
        ({"statusName": "Nope"}, "UNKNOWN_STATUS", "statusName"),  # deprecated, still served
        ({"statusId": gid("WorkflowStepStatus", 10**9)}, "UNKNOWN_STATUS", "statusId"),
        ({}, "BAD_USER_INPUT", "status"),
        ({"status": {"name": "Submitted"}, "statusName": "Draft"}, "BAD_USER_INPUT", "status"),
    ],
)
def test_the_deprecated_status_fields_name_the_input_at_fault(
    as_operator, instance, given, code, field
):
    variables = {"input": {"instanceId": gid("WorkflowInstance", instance.pk), **given}}
    payload = as_operator.data(OLD_STATUS, variables)["updateWorkflowStepStatus"]
    assert [(m["code"], m["field"]) for m in payload["messages"]] == [(code, field)]
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 1


def test_the_new_name_takes_only_the_status_selector(as_operator, instance):
    """`setWorkflowInstanceStatus` was born without the deprecated fields: `status` is required."""
    variables = {"input": {"instanceId": gid("WorkflowInstance", instance.pk)}}
    result = as_operator(STATUS, variables)  # a variable missing a required field
    assert result.get("data") is None and result["errors"]
    variables["input"]["status"] = {"name": "Submitted"}
    variables["input"]["statusName"] = "Submitted"  # not a field of the new input
    result = as_operator(STATUS, variables)
    assert result.get("data") is None and result["errors"]
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 1


# ------------------------------------------------------------------------ declared codes

ENUM = """query($name: String!) {
  __type(name: $name) { enumValues { name } }
  __schema { mutationType { fields(includeDeprecated: true) { name description } } }
}"""

REFUSED = """mutation($input: {input}!) {
  {field}(input: $input) { __typename ... on OperationInfo { messages { code field } } }
}"""


def refused(gql, field: str, value: dict) -> list[tuple[str, str | None]]:
    """``(code, field)`` of each message of ``field``'s OperationInfo (input: ``<Name>Input``)."""
    input_type = field[0].upper() + field[1:] + "Input"
    query = REFUSED.replace("{input}", input_type).replace("{field}", field)
    payload = gql.data(query, {"input": value})[field]
    assert payload["__typename"] == "OperationInfo", (field, value, payload)
    return [(m["code"], m["field"]) for m in payload["messages"]]


def test_each_mutation_returns_only_the_codes_it_declares(
    as_operator, as_designer, as_admin, anon, operator, instance, caplog
):
    i = gid("WorkflowInstance", instance.pk)
    missing = gid("WorkflowInstance", 10**9)
    item = gid("WorkItem", 10**9)
    claims = {"workflowName": "Claim Processing", "contentType": "claims.claim", "objectId": "1"}
    submit = {"instanceId": i, "status": {"name": "Submitted"}}
    seen: dict[str, list[tuple[str, str | None]]] = {}

    def drive(gql, calls: list[tuple[str, dict]]) -> None:
        for field, value in calls:
            seen.setdefault(field, []).extend(refused(gql, field, value))

    drive(anon, [("startWorkflowInstance", claims), ("cancelWorkflowInstance", {"instanceId": i})])
    drive(anon, [("migrateWorkflowInstances", {"workflowName": "Nope", "toVersion": 1})])
    drive(
        as_admin,
        [("migrateWorkflowInstances", {"workflowId": gid("Workflow", 10**9), "toVersion": 1})],
    )
    drive(
        as_operator,
        [
            ("startWorkflowInstance", {**claims, "workflowName": "Nope"}),
            ("startWorkflowInstance", {**claims, "contentType": "auth.user"}),
            ("startWorkflowInstance", {**claims, "objectId": "999999"}),
            ("startWorkflowInstance", {**claims, "workflowId": gid("Workflow", 10**9)}),
            ("startWorkflowInstance", {**claims, "workflowId": "garbage"}),
            ("startWorkflowInstance", {**claims, "workflowName": None}),
            ("setWorkflowInstanceStatus", {**submit, "instanceId": "garbage"}),
            ("setWorkflowInstanceStatus", {**submit, "instanceId": missing}),
            ("setWorkflowInstanceStatus", {**submit, "status": {"name": "Nope"}}),
            ("setWorkflowInstanceStatus", {**submit, "context": 3}),
            ("updateWorkflowStepStatus", {**submit, "statusName": "Nope", "status": None}),
            ("advanceWorkflowInstance", {"instanceId": i}),
            ("advanceWorkflowInstance", {"instanceId": missing}),
            ("resumeWorkflowInstance", {"instanceId": i}),
            ("claimWorkItem", {"workItemId": item}),
            ("claimWorkItem", {"workItemId": "garbage"}),
            ("releaseWorkItem", {"workItemId": item}),
            ("releaseWorkItem", {"workItemId": "garbage"}),
            ("delegateWorkItem", {"workItemId": item, "userId": gid("User", 1)}),
            ("deleteWorkflow", {"name": "Claim Processing"}),
        ],
    )
    services.set_workflow_on_hold(instance, actor=operator)
    drive(
        as_operator,
        [
            ("setWorkflowOnHold", {"instanceId": i}),
            ("holdWorkflowInstance", {"instanceId": i}),
            ("setWorkflowInstanceStatus", submit),
        ],
    )
    services.cancel_workflow_instance(instance, actor=operator)
    drive(as_operator, [("cancelWorkflowInstance", {"instanceId": i})])
    drive(
        as_designer,
        [
            ("deleteWorkflow", {"name": "Nope"}),
            ("deleteWorkflow", {"name": "Claim Processing"}),
            ("deleteWorkflow", {"workflowId": gid("Workflow", 10**9)}),
            ("deleteWorkflow", {}),
        ],
    )
    login = as_operator.data(ops.LOGIN, {"username": "nobody", "password": "wrong"})["login"]
    nul = as_operator.data(ops.LOGIN, {"username": "no\x00body", "password": "x"})["login"]
    seen["login"] = [(code, None) for code in codes(login) + codes(nul)]

    described = {
        f["name"]: f["description"]
        for f in as_operator.data(ENUM, {"name": "X"})["__schema"]["mutationType"]["fields"]
    }
    for field, returned in seen.items():
        enum = field[0].upper() + field[1:] + "ErrorCode"
        declared = {
            v["name"] for v in as_operator.data(ENUM, {"name": enum})["__type"]["enumValues"]
        }
        assert {code for code, _ in returned} <= declared, field
        assert all(f"`{code}`" in described[field] for code in declared), field
        # every code naming an input says which one (refusals of state or permission name none)
        for code, at in returned:
            if code.endswith("_NOT_FOUND") or code in {"INVALID_ID", "UNKNOWN_STATUS"}:
                assert at, (field, code)
    assert {code for r in seen.values() for code, _ in r} >= {
        "PERMISSION_DENIED",
        "WORKFLOW_NOT_FOUND",
        "MODEL_NOT_ALLOWED",
        "OBJECT_NOT_FOUND",
        "INVALID_ID",
        "INSTANCE_NOT_FOUND",
        "UNKNOWN_STATUS",
        "INVALID_CONTEXT",
        "NOT_AWAITING_TRANSITION",
        "NOT_ON_HOLD",
        "INSTANCE_ON_HOLD",
        "INSTANCE_FINISHED",
        "WORK_ITEM_NOT_FOUND",
        "WORKFLOW_IN_USE",
        "INVALID_CREDENTIALS",
    }
    assert not [r for r in caplog.records if "does not declare" in r.getMessage()]


def test_a_code_outside_the_declaration_is_returned_and_logged(caplog):
    @strawberry.type
    class HostMutation:
        @mutation("Archive something.", perm=None, codes=[ErrorCode.NOT_CLAIMED])
        def archive_thing(self, info: strawberry.Info) -> UserType:
            raise WorkflowInUse("Still in use.")

    schema = compose_schema(mutation=HostMutation)
    assert list(schema._schema.type_map["ArchiveThingErrorCode"].values) == ["NOT_CLAIMED"]
    request = RequestFactory().post("/graphql/")
    request.user = AnonymousUser()
    with caplog.at_level(logging.ERROR, logger="graphql_api"):
        result = schema.execute_sync(
            "mutation { archiveThing { ... on OperationInfo { messages { code } } } }",
            context_value=StrawberryDjangoContext(request=request, response=None),
        )
    assert result.errors is None
    assert result.data == {"archiveThing": {"messages": [{"code": "WORKFLOW_IN_USE"}]}}
    assert any(
        r.levelno == logging.ERROR and "archiveThing" in r.getMessage() for r in caplog.records
    )
