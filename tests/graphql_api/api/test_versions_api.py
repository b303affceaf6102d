"""What clients read of published versions today: a migrated instance's history over GraphQL,
and every kind of event the engine writes has a value in the schema's enum."""

from __future__ import annotations

from decimal import Decimal

import pytest

from claims.models import Claim
from django_steps import services
from django_steps.choices import EventKind
from django_steps.definitions import import_workflow
from django_steps.versions import migrate_instances
from graphql_api.api.enums import WorkflowEventKind
from tests.conftest import statuses, two_steps
from tests.graphql_api.conftest import gid

pytestmark = pytest.mark.django_db

DOC = two_steps(
    "Open",
    "Closed",
    first_statuses=statuses("New", "Done"),
    second_statuses=[{"name": "Archived", "is_default_status": True, "is_completion_status": True}],
    name="Moves",
    content_types=["claims.claim"],
)

HISTORY = """query($id: ID!) { workflowInstance(id: $id) {
  history(first: 10) { edges { node { kind toStatus { name } } } } } }"""


def test_every_event_kind_the_engine_writes_is_a_value_of_the_schema():
    assert {kind.value for kind in EventKind} == {member.value for member in WorkflowEventKind}


def test_a_migrated_instance_reads_its_history_across_both_versions(as_operator):
    import_workflow(DOC)
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"))
    instance = services.start_workflow_instance("Moves", claim)
    v2 = {**DOC, "steps": [dict(DOC["steps"][0]), DOC["steps"][1]]}
    v2["steps"][0]["statuses"] = [*DOC["steps"][0]["statuses"], {"name": "Parked"}]
    workflow = import_workflow(v2, replace=True)
    result = migrate_instances(workflow, workflow.definition_version)
    assert len(result.migrated) == 1
    data = as_operator.data(HISTORY, {"id": gid("WorkflowInstance", instance.pk)})
    kinds = [edge["node"]["kind"] for edge in data["workflowInstance"]["history"]["edges"]]
    assert kinds == ["STARTED", "MIGRATED"]
