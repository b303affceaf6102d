"""Cost counts work: no field runs SQL for each object it is selected on (the optimizer joins or
prefetches it, or a per-definition cache serves it), a field doing work of its own per value
declares it in the estimate (``Workflow.mermaid``), and fields that load the same relation can
be selected together (#17 items 3 and 10)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, is_leaf_type

from django_steps.models import WorkflowStep
from django_steps.services import start_workflow_instance, update_workflow_step_status
from django_steps.versions import publish_workflow
from graphql_api.schema import schema
from tests.graphql_api.conftest import submitted_claims

pytestmark = pytest.mark.django_db


#: Where each object type is reached in a query over a page of ``$n`` instances or events.
PATHS = {
    "WorkflowInstance": "workflowInstances(first: $n) { edges { node { %s } } }",
    "Workflow": "workflowInstances(first: $n) { edges { node { workflow { %s } } } }",
    "WorkflowStep": "workflowInstances(first: $n) { edges { node { currentStep { %s } } } }",
    "WorkflowStepStatus": "workflowInstances(first: $n) { edges { node { currentStepStatus { %s } "
    "} } }",
    "WorkflowInstanceActions": "workflowInstances(first: $n) { edges { node { viewerCan { %s } } "
    "} }",
    "WorkflowEvent": "workflowEvents(first: $n) { edges { node { %s } } }",
    "WorkflowTransition": "workflowEvents(first: $n) { edges { node { transition { %s } } } }",
    "User": "workflowEvents(first: $n) { edges { node { actor { %s } } } }",
    "EventStep": "workflowEvents(first: $n) { edges { node { toStep { %s } } } }",
    "EventWorkflow": "workflowEvents(first: $n) { edges { node { workflow { %s } } } }",
    "EventInstance": "workflowEvents(first: $n) { edges { node { instance { %s } } } }",
    "WorkflowVersion": "workflowInstances(first: $n) { edges { node { workflow { versions(first: "
    "3) { edges { node { %s } } } } } } }",
}
TYPE_OF = {
    "EventStep": "WorkflowStep",
    "EventWorkflow": "Workflow",
    "EventInstance": "WorkflowInstance",
}


def _selection(field) -> str:
    type_ = field.type
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        type_ = type_.of_type
    if is_leaf_type(type_):
        return ""
    if type_.name.endswith("Connection"):
        return "(first: 2) { edges { node { id } } }"
    if isinstance(type_, GraphQLObjectType) and "id" in type_.fields:
        return " { id }"
    leaves = [n for n, f in type_.fields.items() if is_leaf_type(_named(f.type))]
    return " { %s }" % (leaves[0] if leaves else "__typename")


def _named(type_):
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        type_ = type_.of_type
    return type_


def _cases():
    for where, template in PATHS.items():
        type_ = schema._schema.get_type(TYPE_OF.get(where, where))
        for name, field in type_.fields.items():
            if any(isinstance(a.type, GraphQLNonNull) for a in field.args.values()):
                continue
            yield pytest.param(
                "query($n: Int!) { %s }" % (template % (name + _selection(field))),
                id=f"{where}.{name}",
            )


@pytest.fixture
def pages(claim_workflow, operator):
    submitted_claims(8, operator)


# ------------------------------------------------------------------- every field, audited


@pytest.mark.parametrize("query", list(_cases()))
def test_no_field_runs_sql_per_object(as_viewer, pages, query):
    """Every field of every object type, on a page of 2 and of 8 instances (or events): the same
    number of SQL queries."""

    def count(n: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            result = as_viewer(query, {"n": n})
        assert "errors" not in result, result["errors"]
        return len(queries)

    count(2)  # warm the per-process caches
    assert count(2) == count(8), query


# ------------------------------------------------------------- item 10: prefetch conflicts


def test_available_statuses_next_to_the_current_steps_counts_answers(as_viewer, pages):
    """#17 item 10: this answered INTERNAL_SERVER_ERROR (a prefetch lookup conflict)."""
    query = (
        "{ workflowInstances(first: 1) { edges { node { availableStatuses { name } currentStep { "
        "instanceCounts { total } } } } } }"
    )
    [edge] = as_viewer.data(query)["workflowInstances"]["edges"]
    assert [s["name"] for s in edge["node"]["availableStatuses"]] == [
        "Under Review",
        "Approved",
        "Rejected",
    ]
    assert edge["node"]["currentStep"]["instanceCounts"]["total"] == 8


#: Fields whose hints name the same relation (prefetched for one, joined for the other).
TOGETHER = [
    "availableStatuses { name } currentStep { instanceCounts { total } }",
    "currentStep { instanceCounts { total } } availableStatuses { name }",
    "availableStatuses { name } currentStep { name }",
    "viewerCan { statuses { name } } currentStep { instanceCounts { total } }",
    "currentStep { instanceCounts { total } } viewerCan { statuses { name } }",
    "viewerCan { cancel } availableStatuses { id } workflow { instanceCounts { total } }",
    "currentStepStatus { step { instanceCounts { total } } } availableStatuses { id }",
]


@pytest.mark.parametrize("selection", TOGETHER)
def test_fields_that_load_the_same_relation_can_be_selected_together(as_viewer, pages, selection):
    query = (
        "query($n: Int!) "
        f"{{ workflowInstances(first: $n) {{ edges {{ node {{ {selection} }} }} }} }}"
    )

    def count(n: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            result = as_viewer(query, {"n": n})
        assert "errors" not in result, result["errors"]
        assert len(result["data"]["workflowInstances"]["edges"]) == n
        return len(queries)

    count(2)
    assert count(2) == count(8), query


# ---------------------------------------------------------------------- Workflow.mermaid

MERMAID_ALIASES = "{{ {} }}".format(
    " ".join(
        f"a{i}: workflowInstances(first: 100) {{ edges {{ node {{ workflow {{ mermaid }} }} }} }}"
        for i in range(30)
    )
)


def test_thirty_aliases_of_a_page_of_diagrams_are_refused_before_running(as_viewer, pages):
    """#17 item 3: 30 aliases of 100 instances' diagrams are 3,000 diagrams (2 queries each)
    unless the cost estimate counts them."""
    with CaptureQueriesContext(connection) as queries:
        result = as_viewer(MERMAID_ALIASES)
    assert result.get("data") is None
    [error] = result["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["cost"] > error["extensions"]["maxCost"]
    assert len(queries) <= 2  # the session and its user: no resolver ran


def test_diagrams_under_the_limit_are_rendered_once_per_definition(as_viewer, pages, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "MAX_COST": 0}
    as_viewer.data('{ workflow(name: "Claim Processing") { mermaid } }')  # rendered, kept
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        data = as_viewer.data(MERMAID_ALIASES)
    elapsed = time.perf_counter() - started
    diagrams = {e["node"]["workflow"]["mermaid"] for a in data.values() for e in a["edges"]}
    assert len(diagrams) == 1 and "Review Claim" in diagrams.pop()
    assert len(queries) <= 2 + 30 * 2  # session + user, then per alias: page + workflows
    print(f"\n30 aliases x 8 diagrams, limit off: {elapsed:.3f} s, {len(queries)} queries")


def test_a_diagram_follows_published_versions_and_renames(as_viewer, claim_workflow):
    query = "query($name: String!) { workflow(name: $name) { mermaid } }"
    before = as_viewer.data(query, {"name": "Claim Processing"})["workflow"]["mermaid"]
    assert before.startswith("%% Workflow: Claim Processing\n")
    step = WorkflowStep.objects.get(workflow=claim_workflow, name="Review Claim")
    step.name = "Second Look"
    step.save()  # a draft: the diagram is the published version's until it is published
    assert as_viewer.data(query, {"name": "Claim Processing"})["workflow"]["mermaid"] == before
    publish_workflow(claim_workflow, validate=False)
    claim_workflow.refresh_from_db()
    claim_workflow.name = "Claims"
    claim_workflow.save()
    after = as_viewer.data(query, {"name": "Claims"})["workflow"]["mermaid"]
    assert after.startswith("%% Workflow: Claims\n")
    assert "Second Look" in after and "Review Claim" not in after


# ------------------------------------------------------- a claimant: per-object permissions

CLAIMANT_CASES = [
    "workflowInstances(first: $n) { edges { node { viewerCan { statuses { name } hold cancel } } } "
    "}",
    "workflowEvents(first: $n) { edges { node { instance { viewerCan { cancel } } } } }",
    "workflowEvents(first: $n) { edges { node { context } } }",
    "workflowInstances(first: $n) { edges { node { history(first: 3) { edges { node { context } } "
    "} } } }",
]

#: Queries per object that a case may still run (none: under the default rule the instance's
#: visibility, decided in SQL for the page, already answers whether its object may be viewed).
PER_OBJECT: dict = {}


@pytest.fixture
def claimant_pages(db):
    """The demo's alice (a claimant: she sees her own claims only, django-rules decides per
    object) with 8 more claims of her own on the demo's workflow."""
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from claims.models import Claim
    from django_steps.models import WorkflowEvent
    from tests.graphql_api.conftest import client_for

    call_command("demo_setup", stdout=StringIO())
    alice = get_user_model().objects.get(username="alice")
    for i in range(8):
        claim = Claim.objects.create(
            title=f"c{i}", claimant="Alice", amount=Decimal(i), owner=alice
        )
        instance = start_workflow_instance("Claim Triage", claim)
        update_workflow_step_status(instance, "Triaged")  # routed by amount: context stored
    assert WorkflowEvent.objects.exclude(context=None).count() >= 8
    rita = get_user_model().objects.get(username="rita")
    return {"alice": client_for(alice), "rita": client_for(rita)}


@pytest.mark.parametrize("selection", CLAIMANT_CASES)
@pytest.mark.parametrize("username", ["alice", "rita"])
def test_per_object_permissions_run_no_query_per_object(claimant_pages, username, selection):
    """As the demo's claimant and its reviewer, on events whose context is stored."""
    query = f"query($n: Int!) {{ {selection} }}"

    def count(n: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            result = claimant_pages[username](query, {"n": n})
        assert "errors" not in result, result["errors"]
        return len(queries)

    count(8)  # warm the per-process caches (the definitions of every workflow on the page)
    per_object = PER_OBJECT.get((username, selection), 0)
    assert count(8) - count(2) == per_object * 6, query
