"""The README's GraphQL examples are valid against schema.graphql and work as written."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from graphql import build_schema, parse, validate

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```graphql\n(.*?)```", README, flags=re.S)


def block(start: str) -> str:
    return next(b for b in BLOCKS if b.lstrip().startswith(start))


def test_readme_has_a_query_a_mutation_and_a_subscription():
    kinds = {b.lstrip().split(None, 1)[0] for b in BLOCKS}
    assert {"query", "mutation", "subscription"} <= kinds


@pytest.mark.parametrize("text", BLOCKS)
def test_readme_operations_validate_against_the_committed_schema(text):
    schema = build_schema((ROOT / "schema.graphql").read_text())
    assert validate(schema, parse(text)) == []


@pytest.mark.django_db
def test_readme_login_query_and_mutation_work_as_written(client):
    from claims.models import Claim
    from django_steps.services import start_workflow_instance

    call_command("demo_setup", stdout=open("/dev/null", "w"))
    client.get("/graphql/")

    def post(query, variables=None):
        response = client.post(
            "/graphql/",
            json.dumps({"query": query, "variables": variables or {}}),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
        )
        assert response.status_code == 200, response.content
        return response.json()

    assert post(block("mutation {\n  login"))["data"]["login"] == {"username": "demo"}
    page = post(block("query {"))["data"]["workflowInstances"]
    assert page["totalCount"] >= 1
    assert all(edge["node"]["state"] == "ACTIVE" for edge in page["edges"])

    claim = Claim.objects.create(title="README", claimant="Ada", amount=Decimal("5600.00"))
    instance = start_workflow_instance("Claim Triage", claim)
    from strawberry.relay import to_base64

    result = post(block("mutation Update"), {"id": to_base64("WorkflowInstance", instance.pk)})
    moved = result["data"]["updateWorkflowStepStatus"]
    assert moved["version"] == 2
    assert moved["currentStep"]["name"] == "Senior Review"  # the CEL branch: 5600 > 1000
