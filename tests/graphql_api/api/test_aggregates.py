"""Dashboard aggregates: ``Workflow.instanceCounts`` and ``WorkflowStep.instanceCounts`` count the
instances the viewer may see, by state, in the query that loads the workflows or their steps: a
dashboard header costs the same SQL for 1 workflow or 5, for 10 instances or 100."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from claims.models import Claim
from django_steps import services
from django_steps.models import WorkflowInstance
from tests.conftest import CLAIM_PROCESSING, make_workflow
from tests.graphql_api.conftest import VIEW, client_for, make_user

pytestmark = pytest.mark.django_db

COUNTS = "total active onHold completed cancelled"

HEADER = f"""query Header {{
  workflows(first: 20) {{
    edges {{ node {{
      name
      instanceCounts {{ {COUNTS} }}
      steps {{ name instanceCounts {{ {COUNTS} }} }}
    }} }}
  }}
}}"""


def start(workflow: str = "Claim Processing", owner=None) -> WorkflowInstance:
    claim = Claim.objects.create(title="c", claimant="x", amount=Decimal("1"), owner=owner)
    return services.start_workflow_instance(workflow, claim)


def spread(workflow: str = "Claim Processing", owner=None, times: int = 1) -> None:
    """Instances in every state, on more than one step."""
    for _ in range(times):
        start(workflow, owner)  # ACTIVE on Submit Claim
        services.update_workflow_step_status(
            start(workflow, owner), "Submitted"
        )  # ACTIVE on Review Claim
        services.set_workflow_on_hold(start(workflow, owner))  # ON_HOLD on Submit Claim
        services.cancel_workflow_instance(start(workflow, owner))  # CANCELLED on Submit Claim
        done = start(workflow, owner)
        services.update_workflow_step_status(done, "Submitted")
        services.update_workflow_step_status(done, "Approved")
        services.update_workflow_step_status(done, "Approved")  # COMPLETED on Approve/Reject


def truth(rows) -> dict:
    """The counts, straight from the table."""
    states = Counter(rows.values_list("state", flat=True))
    found = {
        "active": states["ACTIVE"],
        "onHold": states["ON_HOLD"],
        "completed": states["COMPLETED"],
        "cancelled": states["CANCELLED"],
    }
    return {"total": sum(found.values()), **found}


def header(gql) -> dict:
    return {edge["node"]["name"]: edge["node"] for edge in gql.data(HEADER)["workflows"]["edges"]}


def test_counts_by_state_per_workflow_and_per_current_step(as_viewer, claim_workflow):
    make_workflow("Second", CLAIM_PROCESSING)
    spread(times=2)
    spread("Second")
    seen = header(as_viewer)
    for name in ("Claim Processing", "Second"):
        rows = WorkflowInstance.objects.filter(workflow__name=name)
        assert seen[name]["instanceCounts"] == truth(rows)
        for step in seen[name]["steps"]:
            assert step["instanceCounts"] == truth(rows.filter(current_step__name=step["name"])), (
                step["name"]
            )
    claims = seen["Claim Processing"]
    assert claims["instanceCounts"] == {
        "total": 10,
        "active": 4,
        "onHold": 2,
        "completed": 2,
        "cancelled": 2,
    }
    assert [s["instanceCounts"]["total"] for s in claims["steps"]] == [6, 2, 2]


def test_counts_cover_only_what_the_viewer_may_see(claim_workflow):
    ada = make_user(
        "ada", *VIEW
    )  # a claimant: sees the instances of her own claims (claims/visibility.py)
    spread(owner=ada)
    spread(times=3)  # other people's claims
    own = header(client_for(ada))["Claim Processing"]
    assert own["instanceCounts"] == truth(
        WorkflowInstance.objects.filter(object_id__in=_claims_of(ada))
    )
    assert own["instanceCounts"]["total"] == 5
    assert sum(step["instanceCounts"]["total"] for step in own["steps"]) == 5
    # With the definitions but not the instances, everything counts zero.
    blind = header(client_for(make_user("blind", "django_steps.view_workflow")))["Claim Processing"]
    assert blind["instanceCounts"]["total"] == 0
    assert all(step["instanceCounts"]["total"] == 0 for step in blind["steps"])


def _claims_of(user) -> list[str]:
    return [str(pk) for pk in Claim.objects.filter(owner=user).values_list("pk", flat=True)]


def _queries(gql) -> int:
    with CaptureQueriesContext(connection) as queries:
        gql.data(HEADER)
    return len(queries)


def test_a_dashboard_header_costs_the_same_sql_for_more_workflows_and_instances(
    as_viewer, claim_workflow
):
    spread()
    small = _queries(as_viewer)
    for n in range(4):
        make_workflow(f"More {n}", CLAIM_PROCESSING)
        spread(f"More {n}", times=2)
    spread(times=9)
    large = _queries(as_viewer)
    print(
        f"\nSQL queries for the dashboard header: 1 workflow, 5 instances -> {small}; 5 workflows, "
        f"90 instances -> {large}"
    )
    assert small == large


def test_counts_on_a_step_reached_through_an_instance(as_viewer, claim_workflow):
    spread(times=2)
    data = as_viewer.data(
        "{ workflowInstances(first: 20) { edges { node { currentStep { name "
        "instanceCounts { total active } } } } } }"
    )
    for edge in data["workflowInstances"]["edges"]:
        step = edge["node"]["currentStep"]
        rows = WorkflowInstance.objects.filter(
            current_step__name=step["name"], workflow__name="Claim Processing"
        )
        assert step["instanceCounts"]["total"] == rows.count(), step["name"]


def test_counts_in_a_mutation_payload(as_admin, claim_workflow):
    """A payload is not loaded through the optimizer: the counts are read with one grouped query."""
    spread()
    claim = Claim.objects.create(title="new", claimant="x", amount=Decimal("1"))
    result = as_admin.data(
        """mutation Start($id: ID!) { startWorkflowInstance(input: {
              workflowName: "Claim Processing", contentType: "claims.claim", objectId: $id}) {
            __typename ... on WorkflowInstance {
              workflow { instanceCounts { total active cancelled } }
              currentStep { instanceCounts { total active onHold cancelled } } } } }""",
        {"id": str(claim.pk)},
    )["startWorkflowInstance"]
    assert result["workflow"]["instanceCounts"] == {"total": 6, "active": 3, "cancelled": 1}
    assert result["currentStep"]["instanceCounts"] == {
        "total": 4,
        "active": 2,
        "onHold": 1,
        "cancelled": 1,
    }
