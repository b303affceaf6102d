"""The definition's shape (django_steps.shape) is what every layer reads: a key declared there
travels through documents, the database, the compiled snapshot, GraphQL and the admin — and
where a layer cannot derive it (model fields, GraphQL types), these tests name what is missing."""

from __future__ import annotations

import dataclasses

import pytest
from django.db.models import Field
from strawberry.utils.str_converters import to_camel_case

from django_steps import compiled
from django_steps.definitions import export_workflow, import_workflow
from django_steps.models import Workflow
from django_steps.shape import STATUS, STEP, TRANSITION, WORKFLOW
from graphql_api.schema import schema
from tests.conftest import camel
from tests.graphql_api.conftest import client_for, make_user

PARTS = (WORKFLOW, STEP, STATUS, TRANSITION)

#: Model fields that are not keys of the definition document: ids, the part's parent, the
#: workflow's version bookkeeping, timestamps, and the flag of rows retired from the definition.
NOT_DEFINITION = {
    "Workflow": {"id", "definition_version", "definition_hash", "created_at", "updated_at"},
    "WorkflowStep": {"id", "workflow", "retired"},
    "WorkflowStepStatus": {"id", "step", "retired"},
    "WorkflowTransition": {"id", "workflow", "retired"},
}

#: One document that gives every key of the shape a value other than its default.
EVERY_KEY = {
    "name": "Shape",
    "description": "Every key of the shape, none at its default.",
    "content_types": ["claims.claim"],
    "steps": [
        {
            "name": "Open",
            "description": "Where it starts.",
            "order": 10,
            "is_initial_step": True,
            "is_final_step": False,
            "assignees": {"groups": ["reviewers"], "expression": "claim.owner"},
            "deadline": {"after": "P2D", "status": "Dropped", "remind_before": "PT4H"},
            "statuses": [
                {"name": "New", "description": "Just in.", "is_default_status": True},
                {
                    "name": "Ready",
                    "description": "Moves on.",
                    "is_completion_status": True,
                    "permission": "claims.decide_claim",
                },
                {"name": "Waiting", "is_on_hold_status": True},
                {"name": "Dropped", "is_cancellation_status": True},
            ],
        },
        {
            "name": "Done",
            "order": 20,
            "is_final_step": True,
            "statuses": [
                {"name": "Closed", "is_default_status": True, "is_completion_status": True}
            ],
        },
    ],
    "transitions": [
        {
            "from_step": "Open",
            "to_step": "Done",
            "condition": "amount > 1",
            "priority": 7,
            "description": "Onwards.",
        }
    ],
}


def _parts_of(document: dict):
    yield WORKFLOW, document
    for step in document["steps"]:
        yield STEP, step
        for status in step["statuses"]:
            yield STATUS, status
    for transition in document["transitions"]:
        yield TRANSITION, transition


def test_the_document_of_these_tests_sets_every_key_of_the_shape():
    unset = {
        (part.name, key.name)
        for part in PARTS
        for key in part
        if not any(
            p is part and key.name in value and value[key.name] != key.default
            for p, value in _parts_of(EVERY_KEY)
        )
    }
    assert unset == set(), "give these keys a non-default value in EVERY_KEY"


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_every_definition_field_of_a_model_is_a_key_of_the_shape(part):
    fields = {f.name for f in part.model._meta.get_fields() if isinstance(f, Field) and f.concrete}
    # Relations are keys by the same name too (a transition's from_step, a workflow's
    # content_types), written as names in documents.
    assert fields - NOT_DEFINITION[part.model_name] - set(part.names) == set()
    assert set(part.columns) - fields == set(), "a column of the shape has no model field"


@pytest.mark.parametrize(
    ("part", "snapshot", "extra"),
    [
        (STEP, compiled.StepDef, {"id", "transitions"}),
        (STATUS, compiled.StatusDef, {"id"}),
        (TRANSITION, compiled.TransitionDef, {"id", "from_step_id", "to_step_id"}),
    ],
    ids=lambda v: getattr(v, "name", getattr(v, "__name__", "")),
)
def test_the_compiled_snapshot_holds_every_column(part, snapshot, extra):
    names = {f.name for f in dataclasses.fields(snapshot)}
    assert names == set(part.columns) | set(part.children) | extra


@pytest.mark.parametrize(
    ("part", "input_type", "output_type"),
    [
        (WORKFLOW, "WorkflowDefinitionInput", "Workflow"),
        (STEP, "WorkflowStepInput", "WorkflowStep"),
        (STATUS, "WorkflowStepStatusInput", "WorkflowStepStatus"),
        (TRANSITION, "WorkflowTransitionInput", "WorkflowTransition"),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_graphql_inputs_and_types_carry_every_key(part, input_type, output_type):
    types = schema._schema.type_map
    keys = {to_camel_case(name) for name in part.names}
    assert keys - set(types[input_type].fields) == set()
    # On the output types a step's name is a relation (fromStep { name }), content types are
    # listed as `models`.
    shown = {to_camel_case(name) for name in part.columns}
    assert shown - set(types[output_type].fields) == set()


@pytest.mark.parametrize(
    ("part", "output_type"),
    [
        (WORKFLOW, "Workflow"),
        (STEP, "WorkflowStep"),
        (STATUS, "WorkflowStepStatus"),
        (TRANSITION, "WorkflowTransition"),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_graphql_types_describe_a_described_key_as_the_shape_does(part, output_type):
    fields = schema._schema.type_map[output_type].fields
    described = {to_camel_case(key.name): key.description for key in part if key.description}
    assert described
    assert {name: fields[name].description for name in described} == described


def test_every_key_survives_a_document_import_and_export(db):
    workflow = import_workflow(EVERY_KEY)
    assert export_workflow(workflow) == EVERY_KEY | {
        "steps": [
            {
                **step,
                "statuses": [
                    {key.name: status.get(key.name, key.default) for key in STATUS}
                    for status in step["statuses"]
                ],
                **{
                    k.name: step.get(k.name, k.default)
                    for k in STEP
                    if k.name != "statuses" and (k.name in step or not k.optional)
                },
            }
            for step in EVERY_KEY["steps"]
        ]
    }
    # The compiled snapshot reads them too.
    definition = compiled.load(workflow)
    open_step = next(s for s in definition.steps.values() if s.name == "Open")
    assert (open_step.description, open_step.order) == ("Where it starts.", 10)
    assert open_step.statuses["Ready"].description == "Moves on."
    assert open_step.statuses["Ready"].permission == "claims.decide_claim"
    assert open_step.transitions[0].priority == 7
    assert open_step.deadline == {"after": "P2D", "status": "Dropped", "remind_before": "PT4H"}


def test_every_key_survives_the_graphql_definition_input(db):
    gql = client_for(make_user("shaper", "django_steps.view_workflow", "django_steps.add_workflow"))
    result = gql.data(
        """mutation($input: WorkflowDefinitionInput!) {
             createWorkflow(input: $input) { __typename ... on Workflow { name } } }""",
        {"input": camel(EVERY_KEY)},
    )
    assert result["createWorkflow"] == {"__typename": "Workflow", "name": "Shape"}
    from_graphql = export_workflow(Workflow.objects.get(name="Shape"))
    Workflow.objects.filter(name="Shape").delete()
    assert from_graphql == export_workflow(import_workflow(EVERY_KEY))
