"""One typed error model: every code the API can return is a value of `WorkflowErrorCode`, in the
schema, in the docs, and on every error path (the test client of tests/graphql_api also checks
every response it sees, see conftest.GQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from graphql import build_schema

from django_steps import exceptions
from graphql_api import views
from graphql_api.live import streams
from graphql_api.security import budget, errors
from graphql_api.security.error_codes import WorkflowErrorCode, markdown_table
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import codes, gid

ROOT = Path(__file__).resolve().parents[3]
VALUES = {member.value for member in WorkflowErrorCode}


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _constants(module) -> set[str]:
    """The codes a module names as constants: members of the code enums, never bare strings."""
    constants = {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, str) and name.isupper() and value == name
    }
    strings = sorted(name for name, value in constants.items() if type(value) is str)
    assert not strings, f"{module.__name__}: codes as bare strings, not enum members: {strings}"
    return set(constants.values())


def test_every_code_the_code_defines_is_in_the_enum():
    engine = {exceptions.WorkflowError.code} | {
        cls.code for cls in _subclasses(exceptions.WorkflowError)
    }
    api = _constants(errors) | _constants(views) | _constants(budget) | {streams.InvalidCursor.code}
    assert engine | api <= VALUES, sorted((engine | api) - VALUES)


def test_the_schema_types_mutation_codes_with_the_enum():
    schema = build_schema((ROOT / "schema.graphql").read_text())
    assert str(schema.get_type("OperationMessage").fields["code"].type) == "WorkflowErrorCode!"
    assert set(schema.get_type("WorkflowErrorCode").values) == VALUES


def test_the_docs_table_is_the_enum():
    text = (ROOT / "docs" / "graphql.md").read_text()
    block = re.search(r"<!-- error codes: generated -->\n(.*?)<!-- /error codes -->", text, re.S)
    assert block, "docs/graphql.md lost its generated code table"
    assert block.group(1) == markdown_table(), (
        "regenerate it: python -m graphql_api.security.error_codes"
    )


@pytest.fixture
def anonymous_client(db) -> Client:
    return Client()


def test_every_error_path_returns_a_code_of_the_enum(as_operator, as_viewer, anon, instance, claim):
    i = gid("WorkflowInstance", instance.pk)
    results = [
        anon.data(ops.HOLD, {"input": {"instanceId": i}})["setWorkflowOnHold"],  # PERMISSION_DENIED
        as_operator.data(ops.HOLD, {"input": {"instanceId": "garbage"}})[
            "setWorkflowOnHold"
        ],  # INVALID_ID
        as_operator.data(ops.HOLD, {"input": {"instanceId": gid("WorkflowInstance", 10**9)}})[
            "setWorkflowOnHold"
        ],
        as_operator.data(ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "Nope"}})[
            "updateWorkflowStepStatus"
        ],
        as_operator.data(ops.RESUME, {"input": {"instanceId": i}})[
            "resumeWorkflowInstance"
        ],  # NOT_ON_HOLD
        as_operator.data(
            ops.START, {"input": {"workflowName": "Nope", "contentType": "x.y", "objectId": "1"}}
        )["startWorkflowInstance"],
        as_operator.data(ops.LOGIN, {"username": "nobody", "password": "wrong"})["login"],
    ]
    seen = {code for payload in results for code in codes(payload)}
    assert seen == {
        "PERMISSION_DENIED",
        "INVALID_ID",
        "INSTANCE_NOT_FOUND",
        "UNKNOWN_STATUS",
        "NOT_ON_HOLD",
        "WORKFLOW_NOT_FOUND",
        "INVALID_CREDENTIALS",
    }
    for query, variables in [
        ('{ node(id: "x") { id } }', {}),
        ("{ nope }", {}),
        ("{", {}),
        (ops.INSTANCES, {"first": 1000}),
        ("query($id: ID!) { workflowInstance(id: $id) { history { totalCount } } }", {"id": i}),
    ]:
        for error in as_viewer(query, variables)["errors"]:
            assert error["extensions"]["code"] in VALUES, error
    # Refused before GraphQL runs: the same codes.
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/graphql/", json.dumps({"query": "{ me { id } }"}), content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "CSRF_FAILED"
    response = Client().put("/graphql/", "{}", content_type="application/json")
    assert response.json()["errors"][0]["extensions"]["code"] in VALUES
