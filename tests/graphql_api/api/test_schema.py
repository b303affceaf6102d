"""The committed ``schema.graphql`` is what the code produces, is valid SDL, documents every type
and field, and every operation the tests send validates against it."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
    build_schema,
    parse,
    validate,
)
from strawberry.printer import print_schema

from tests.graphql_api import operations as ops

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "schema.graphql"

#: Types that strawberry / strawberry-django contribute, documented upstream.
UPSTREAM = {
    "PageInfo",
    "Node",
    "OperationInfo",
    "OperationMessage",
    "OperationMessageKind",
    "Ordering",
}


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


def test_every_type_and_field_has_a_description(sdl):
    built = build_schema(sdl)
    missing = []
    for name, gql_type in built.type_map.items():
        if name.startswith("__") or name in UPSTREAM:
            continue
        if isinstance(gql_type, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            if name not in {"Query", "Mutation", "Subscription"} and not name.endswith(
                ("Connection", "Edge")
            ):
                if not gql_type.description:
                    missing.append(name)
            for field_name, field in gql_type.fields.items():
                if field_name in {"AND", "OR", "NOT", "DISTINCT"} or name.endswith(
                    ("Connection", "Edge")
                ):
                    continue
                if not field.description:
                    missing.append(f"{name}.{field_name}")
        elif isinstance(gql_type, (GraphQLEnumType, GraphQLUnionType)) and not name.endswith(
            "Payload"
        ):
            if not gql_type.description:
                missing.append(name)
    assert not missing, f"undocumented: {missing}"


def test_every_type_field_and_argument_of_ours_says_what_it_is():
    """Docs live in the schema: what client developers read in their IDE and generated code."""
    from graphql import (
        GraphQLEnumType,
        GraphQLInputObjectType,
        GraphQLInterfaceType,
        GraphQLObjectType,
        GraphQLUnionType,
    )

    schema = build_schema(SCHEMA_FILE.read_text())
    missing = []
    for name, named in schema.type_map.items():
        if name.startswith("__") or name in {
            "String",
            "Int",
            "Float",
            "Boolean",
            "ID",
            "PageInfo",
            "Node",
            "Ordering",
        }:
            continue  # GraphQL's and strawberry(-django)'s own
        if isinstance(named, GraphQLUnionType) or name.endswith(("Connection", "Edge")):
            continue  # payload unions and strawberry's relay types (described by strawberry)
        if not named.description and name not in ("OperationMessageKind",):
            missing.append(name)
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            for field_name, field in named.fields.items():
                if name.endswith("Filter") and field_name in ("AND", "OR", "NOT", "DISTINCT"):
                    continue  # strawberry-django's logical filters
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description and arg_name not in ("filters", "ordering", "input"):
                        missing.append(f"{name}.{field_name}({arg_name})")
        if isinstance(named, GraphQLEnumType):
            missing += [
                f"{name}.{v}"
                for v, value in named.values.items()
                if not value.description and name != "OperationMessageKind"
            ]
    assert missing == []
