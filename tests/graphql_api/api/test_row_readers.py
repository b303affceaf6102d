"""Fields that only read their row (a column, a forward relation, an event's ``cursor``) are read
in place when the row holds them, and answer the same when it does not: a host resolver that
returns a bare instance (its columns deferred, no relation loaded) gets what the optimized page
gets, and a page of 100 answers with no query per row."""

from __future__ import annotations

import pytest
import strawberry
from django.contrib.auth.models import User
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from strawberry.django.context import StrawberryDjangoContext
from strawberry.extensions import SchemaExtension

from django_steps import services
from django_steps.models import WorkflowInstance
from graphql_api.composition import WorkflowInstanceType, compose_schema
from tests.graphql_api.conftest import submitted_claims

pytestmark = pytest.mark.django_db

FIELDS = """id state version startedAt workflow { name } currentStep { name }
  currentStepStatus { name } history(first: 5) { edges { cursor node { kind cursor createdAt
  fromStep { name } } } }"""


@strawberry.type
class HostQuery:
    @strawberry.field
    def bare_instance(self, pk: int) -> WorkflowInstanceType:
        # deferred columns, no relation loaded, not through the optimizer
        return WorkflowInstance.objects.only("pk").get(pk=pk)


def test_a_bare_row_answers_what_the_optimized_page_answers(claim_workflow, operator):
    submitted_claims(3, operator)
    instance = WorkflowInstance.objects.order_by("pk").first()
    services.update_workflow_step_status(instance, "Approved")
    schema = compose_schema(query=HostQuery)
    request = RequestFactory().post("/graphql/")
    request.user = User.objects.create_superuser("boss", "b@example.com", "pw")

    def run(query: str, **variables) -> dict:
        result = schema.execute_sync(
            query, variables, context_value=StrawberryDjangoContext(request, None)
        )
        assert result.errors is None, result.errors
        return result.data

    bare = run(f"query($pk: Int!) {{ bareInstance(pk: $pk) {{ {FIELDS} }} }}", pk=instance.pk)
    page = run(f"{{ workflowInstances(first: 10) {{ edges {{ node {{ {FIELDS} }} }} }} }}")
    nodes = {e["node"]["id"]: e["node"] for e in page["workflowInstances"]["edges"]}
    assert bare["bareInstance"] == nodes[bare["bareInstance"]["id"]]
    assert bare["bareInstance"]["state"] == "ACTIVE"
    assert [e["node"]["kind"] for e in bare["bareInstance"]["history"]["edges"]][-1] == "ADVANCED"
    cursors = [e["cursor"] for e in bare["bareInstance"]["history"]["edges"]]
    assert cursors == [e["node"]["cursor"] for e in bare["bareInstance"]["history"]["edges"]]
    assert all(c.isdigit() for c in cursors)

    submitted_claims(100, operator)
    run(f"{{ workflowInstances(first: 2) {{ edges {{ node {{ {FIELDS} }} }} }} }}")
    with CaptureQueriesContext(connection) as few:
        run(f"{{ workflowInstances(first: 2) {{ edges {{ node {{ {FIELDS} }} }} }} }}")
    with CaptureQueriesContext(connection) as many:
        data = run(f"{{ workflowInstances(first: 100) {{ edges {{ node {{ {FIELDS} }} }} }} }}")
    assert len(data["workflowInstances"]["edges"]) == 100
    assert len(many) == len(few)


def test_a_host_extension_with_a_resolve_hook_sees_every_field(claim_workflow, operator):
    """Our schema runs no per-field middleware of its own; a host's ``resolve`` hook still wraps
    every field, those read off the row included."""
    submitted_claims(2, operator)
    seen: list[str] = []

    class Seeing(SchemaExtension):
        def resolve(self, _next, root, info, *args, **kwargs):
            seen.append(f"{info.parent_type.name}.{info.field_name}")
            return _next(root, info, *args, **kwargs)

    schema = compose_schema(query=HostQuery, extensions=[Seeing])
    request = RequestFactory().post("/graphql/")
    request.user = User.objects.create_superuser("boss", "b@example.com", "pw")
    result = schema.execute_sync(
        "{ workflowInstances(first: 2) { edges { node { state workflow { name } "
        "history(first: 1) { edges { node { cursor } } } } } } }",
        context_value=StrawberryDjangoContext(request, None),
    )
    assert result.errors is None, result.errors
    for field in ("WorkflowInstance.state", "WorkflowInstance.workflow", "Workflow.name"):
        assert seen.count(field) == 2
    assert seen.count("WorkflowEvent.cursor") == 2
