"""How ``graphql_api.security.errors`` turns failures into answers: hostile values anywhere in
an operation end in a coded message of bounded length, never a 500 or a masked error, and client
errors are logged in one line without a traceback while a server fault is logged with it."""

from __future__ import annotations

import logging

import pytest

from django_steps import services
from django_steps.models import Workflow
from tests.graphql_api import operations as ops
from tests.graphql_api.api.test_mutations import DEFINITION
from tests.graphql_api.conftest import b64, gid

pytestmark = pytest.mark.django_db

BIG = "x" * 10_240


# ------------------------------------------------------------------------------- hostile values


def test_ten_kilobyte_strings_everywhere(as_admin, instance, claim):
    i = gid("WorkflowInstance", instance.pk)
    checks = [
        (
            ops.START,
            {"input": {"workflowName": BIG, "contentType": "claims.claim", "objectId": claim.pk}},
            "startWorkflowInstance",
            "WORKFLOW_NOT_FOUND",
        ),
        (
            ops.START,
            {
                "input": {
                    "workflowName": "Claim Processing",
                    "contentType": BIG,
                    "objectId": claim.pk,
                }
            },
            "startWorkflowInstance",
            "MODEL_NOT_ALLOWED",
        ),
        (
            ops.START,
            {
                "input": {
                    "workflowName": "Claim Processing",
                    "contentType": "claims.claim",
                    "objectId": BIG,
                }
            },
            "startWorkflowInstance",
            "OBJECT_NOT_FOUND",
        ),
        (
            ops.UPDATE_STATUS,
            {"input": {"instanceId": i, "statusName": BIG}},
            "updateWorkflowStepStatus",
            "UNKNOWN_STATUS",
        ),
        (
            ops.UPDATE_STATUS,
            {"input": {"instanceId": BIG, "statusName": "x"}},
            "updateWorkflowStepStatus",
            "INVALID_ID",
        ),
        (
            ops.CREATE_WORKFLOW,
            {"input": {**DEFINITION, "name": BIG}},
            "createWorkflow",
            "INVALID_DEFINITION",
        ),
        (
            ops.CREATE_WORKFLOW,
            {
                "input": {
                    **DEFINITION,
                    "transitions": [
                        {"fromStep": "Draft", "toStep": "Booked", "condition": BIG + " <"}
                    ],
                }
            },
            "createWorkflow",
            "INVALID_DEFINITION",
        ),
        (
            ops.CREATE_WORKFLOW,
            {
                "input": {
                    **DEFINITION,
                    "transitions": [
                        {"fromStep": "Draft", "toStep": "Booked", "condition": "(" * 5000}
                    ],
                }
            },
            "createWorkflow",
            "INVALID_DEFINITION",
        ),
        (ops.DELETE_WORKFLOW, {"input": {"name": BIG}}, "deleteWorkflow", "WORKFLOW_NOT_FOUND"),
        (ops.LOGIN, {"username": BIG, "password": BIG}, "login", "INVALID_CREDENTIALS"),
    ]
    for operation, variables, field, code in checks:
        payload = as_admin.data(operation, variables)[field]
        assert code in [m["code"] for m in payload.get("messages", [])], (field, str(payload)[:300])
        assert all(len(m["message"]) < 2000 for m in payload["messages"])
    assert as_admin.data(ops.WORKFLOW, {"name": BIG})["workflow"] is None
    assert as_admin(ops.NODE, {"id": BIG})["errors"][0]["extensions"]["code"] == "INVALID_ID"
    filters = {"workflowName": BIG, "currentStepName": BIG, "contentType": BIG, "objectId": BIG}
    assert (
        as_admin.data(ops.INSTANCES, {"filters": filters})["workflowInstances"]["totalCount"] == 0
    )
    assert Workflow.objects.count() == 1


def test_null_bytes_and_unpaired_surrogates_are_bad_input_not_500(as_admin, instance, claim):
    """SQLite stores them; PostgreSQL's driver refuses them: either way no 500, no masked error."""
    i = gid("WorkflowInstance", instance.pk)
    for value in ("\x00", "a\x00b", "\ud83d", "🙂" * 100, "' OR 1=1 --"):
        response = as_admin.post(ops.WORKFLOW, {"name": value})
        assert response.status_code == 200
        result = response.json()
        assert result.get("data") == {"workflow": None}
        assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in result.get("errors", []))
        for operation, variables, field in (
            (
                ops.START,
                {
                    "input": {
                        "workflowName": value,
                        "contentType": "claims.claim",
                        "objectId": value,
                    }
                },
                "startWorkflowInstance",
            ),
            (
                ops.UPDATE_STATUS,
                {"input": {"instanceId": i, "statusName": value}},
                "updateWorkflowStepStatus",
            ),
            (ops.CREATE_WORKFLOW, {"input": {**DEFINITION, "name": value + "x"}}, "createWorkflow"),
        ):
            payload = as_admin.data(operation, variables)[field]
            if payload["__typename"] == "OperationInfo":
                assert "INTERNAL_SERVER_ERROR" not in [m["code"] for m in payload["messages"]]


# -------------------------------------------------------------------------------------- logging


def test_client_errors_are_logged_in_one_line_without_traceback(
    as_viewer, as_operator, instance, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    i = gid("WorkflowInstance", instance.pk)
    as_viewer("{ workflows { ")  # syntax
    as_viewer("{ nope }")  # validation
    as_viewer(ops.INSTANCES, {"after": b64("arrayconnection:-5")})  # bad input
    as_viewer(ops.NODE, {"id": "garbage"})  # invalid id, raised by a resolver
    as_viewer(ops.NESTED_HISTORY, {"id": i})  # cost
    client_records = list(caplog.records)
    assert len(client_records) == 5, [r.getMessage() for r in client_records]
    for record in client_records:
        assert record.levelno in (logging.INFO, logging.WARNING), record.getMessage()
        assert record.exc_info is None and "\n" not in record.getMessage()
        assert record.name == "graphql_api"
    codes = [r.getMessage().split()[3] for r in client_records]
    assert codes == [
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "BAD_USER_INPUT",
        "INVALID_ID",
        "QUERY_TOO_COMPLEX",
    ]
    assert client_records[-1].levelno == logging.WARNING

    caplog.clear()

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "set_workflow_on_hold", boom)
    as_operator(ops.HOLD, {"input": {"instanceId": i}})
    [fault] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert fault.levelno == logging.ERROR and fault.exc_info and fault.exc_info[0] is RuntimeError
    assert "setWorkflowOnHold" in fault.getMessage()
    assert not [r for r in caplog.records if r.name.startswith("strawberry")]
