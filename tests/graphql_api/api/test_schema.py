"""The committed ``schema.graphql`` is what the code produces, is valid SDL, and every operation
the tests send validates against it. That every element is described:
``test_schema_descriptions``."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    build_schema,
    parse,
    validate,
)
from strawberry.printer import print_schema

from tests.graphql_api import operations as ops

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "schema.graphql"


@pytest.fixture(scope="module")
def sdl() -> str:
    return SCHEMA_FILE.read_text(encoding="utf-8")


def test_schema_file_matches_the_code(sdl):
    from graphql_api.schema import schema

    assert sdl == print_schema(schema), "schema.graphql is stale: run `make schema` and commit it"


def test_schema_file_is_valid_sdl_and_the_operations_validate(sdl):
    built = build_schema(sdl)
    assert set(ops.ALL) >= {
        "WORKFLOWS",
        "INSTANCES",
        "NODE",
        "EVALUATE",
        "START",
        "CREATE_WORKFLOW",
        "LOGIN",
    }
    for name, operation in ops.ALL.items():
        errors = validate(built, parse(operation))
        assert not errors, (name, errors)


def test_contract_names(sdl):
    built = build_schema(sdl)
    query = built.query_type.fields
    assert {
        "node",
        "workflows",
        "workflow",
        "workflowInstances",
        "workflowInstance",
        "evaluateTransitions",
        "me",
    } <= set(query)
    mutation = built.mutation_type.fields
    assert {
        "startWorkflowInstance",
        "updateWorkflowStepStatus",
        "advanceWorkflowInstance",
        "setWorkflowOnHold",
        "holdWorkflowInstance",
        "setWorkflowInstanceStatus",
        "resumeWorkflowInstance",
        "cancelWorkflowInstance",
        "createWorkflow",
        "updateWorkflow",
        "deleteWorkflow",
        "login",
        "logout",
    } <= set(mutation)
    for name in (
        "Workflow",
        "WorkflowStep",
        "WorkflowStepStatus",
        "WorkflowTransition",
        "WorkflowInstance",
        "WorkflowEvent",
    ):
        assert built.get_type("Node") in built.get_type(name).interfaces, name
    instance = built.get_type("WorkflowInstance").fields
    assert {
        "state",
        "version",
        "currentStep",
        "currentStepStatus",
        "workflow",
        "contentType",
        "objectId",
        "startedAt",
        "completedAt",
        "isCompleted",
        "availableStatuses",
        "history",
        "lastEvent",
        "viewerCan",
        "isAwaitingTransition",
    } <= set(instance)
    # v2: the history is a bounded, paged connection; the newest change is one field away.
    assert str(instance["history"].type) == "WorkflowEventConnection!"
    assert {"first", "after", "last", "before"} <= set(instance["history"].args)
    assert str(instance["lastEvent"].type) == "WorkflowEvent!"
    assert str(instance["version"].type) == "Int!" and str(instance["objectId"].type) == "ID!"
    event = built.get_type("WorkflowEvent").fields
    assert {
        "kind",
        "cursor",
        "sequence",
        "state",
        "fromStep",
        "toStep",
        "fromStatus",
        "toStatus",
        "requestedStatus",
        "transition",
        "actor",
        "context",
        "createdAt",
        "instance",
    } <= set(event)
    assert str(event["context"].type) == "JSON"
    assert {"steps", "transitions", "instances", "mermaid"} <= set(
        built.get_type("Workflow").fields
    )
    assert "totalCount" in built.get_type("WorkflowInstanceConnection").fields
    for name in (
        "startWorkflowInstance",
        "updateWorkflowStepStatus",
        "setWorkflowOnHold",
        "cancelWorkflowInstance",
    ):
        members = {t.name for t in mutation[name].type.of_type.types}
        # a change at a stale expectedVersion is VersionConflict (start takes none)
        conflict = set() if name == "startWorkflowInstance" else {"VersionConflict"}
        assert members == {"WorkflowInstance", "OperationInfo", *conflict}, name
    assert {t.name for t in mutation["createWorkflow"].type.of_type.types} == {
        "Workflow",
        "OperationInfo",
    }
