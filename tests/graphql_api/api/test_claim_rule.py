"""Claiming takes a step's work: only a candidate who may complete the step (set one of its
completion statuses, as ``viewerCan`` would show once claimed) may claim its work item, or be
handed it. Otherwise a claimant who can do nothing with the step would lock everyone else out.

The demo's Claim Triage names the claim's owner a candidate of "Intake" (so the owner may
withdraw there), while only reviewers may triage it: the owner must not be able to claim it —
nor pick its reviewer by handing the unclaimed item to one: delegating an unclaimed item needs
to be one who may claim it (or the override)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from claims.models import Claim
from django_steps import services
from django_steps.definitions import import_workflow
from django_steps.exceptions import NotPermitted
from django_steps.models import WorkItem
from tests.django_steps.test_definitions import load_example
from tests.graphql_api.api.test_inbox_api import CLAIM, DELEGATE, SET_STATUS
from tests.graphql_api.conftest import client_for, codes, gid, make_user

pytestmark = pytest.mark.django_db

ACT = ("django_steps.view_workflowinstance", "django_steps.change_workflowinstance")

VIEWER_CAN = """query ($id: ID!) { workflowInstance(id: $id) {
  viewerCan { claim release delegate statuses { name } } } }"""


@pytest.fixture
def triage(db):
    """The demo's Claim Triage with alice's claim on Intake; rita and rex review."""
    import_workflow(load_example("claim_triage.yaml"))
    alice = make_user("alice", *ACT)
    rita = make_user("rita", *ACT, groups=("reviewers",))
    rex = make_user("rex", *ACT, groups=("reviewers",))
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("50"), owner=alice)
    instance = services.start_workflow_instance("Claim Triage", claim)
    return instance, alice, rita, rex


def item_id(instance) -> str:
    return gid("WorkItem", WorkItem.objects.get(instance=instance, closed_at__isnull=True).pk)


def instance_id(instance) -> str:
    return gid("WorkflowInstance", instance.pk)


def test_the_owner_may_not_claim_the_intake_reviewers_triage(triage):
    instance, alice, rita, _ = triage
    owner = client_for(alice)
    can = owner.data(VIEWER_CAN, {"id": instance_id(instance)})["workflowInstance"]["viewerCan"]
    assert can["claim"] is False
    assert {"name": "Withdrawn"} in can["statuses"]  # still a candidate: may withdraw
    assert codes(owner(CLAIM, {"id": item_id(instance)})["data"]["claimWorkItem"]) == [
        "PERMISSION_DENIED"
    ]
    reviewer = client_for(rita)
    assert (
        reviewer(SET_STATUS, {"id": instance_id(instance), "status": "Waiting for Documents"})[
            "data"
        ]["updateWorkflowStepStatus"]["__typename"]
        == "WorkflowInstance"
    )


def test_a_reviewer_claims_and_triages_and_the_owner_is_not_handed_the_item(triage):
    instance, alice, rita, rex = triage
    reviewer = client_for(rita)
    can = reviewer.data(VIEWER_CAN, {"id": instance_id(instance)})["workflowInstance"]["viewerCan"]
    assert can["claim"] is True
    claimed = reviewer.data(CLAIM, {"id": item_id(instance)})["claimWorkItem"]
    assert claimed["claimedBy"] == {"username": "rita"}
    handed = reviewer(DELEGATE, {"id": item_id(instance), "to": gid("User", alice.pk)})
    assert codes(handed["data"]["delegateWorkItem"]) == ["PERMISSION_DENIED"]
    handed = reviewer.data(DELEGATE, {"id": item_id(instance), "to": gid("User", rex.pk)})
    assert handed["delegateWorkItem"]["claimedBy"] == {"username": "rex"}
    moved = client_for(rex).data(SET_STATUS, {"id": instance_id(instance), "status": "Triaged"})
    assert moved["updateWorkflowStepStatus"]["currentStep"] == {"name": "Fast Track"}


def test_the_owner_may_not_claim_through_the_service_either(triage):
    instance, alice, _, _ = triage
    item = WorkItem.objects.get(instance=instance, closed_at__isnull=True)
    with pytest.raises(NotPermitted):
        services.claim_work_item(item, alice)
    item.refresh_from_db()
    assert item.claimed_by is None


def test_the_owner_may_not_pick_the_reviewer_by_delegating_the_unclaimed_item(triage):
    instance, alice, rita, rex = triage
    owner = client_for(alice)
    can = owner.data(VIEWER_CAN, {"id": instance_id(instance)})["workflowInstance"]["viewerCan"]
    assert can["delegate"] is False
    handed = owner(DELEGATE, {"id": item_id(instance), "to": gid("User", rita.pk)})
    assert codes(handed["data"]["delegateWorkItem"]) == ["PERMISSION_DENIED"]
    claimed = client_for(rex).data(CLAIM, {"id": item_id(instance)})["claimWorkItem"]
    assert claimed["claimedBy"] == {"username": "rex"}


def test_a_reviewer_may_hand_the_unclaimed_item_to_another(triage):
    instance, _, rita, rex = triage
    reviewer = client_for(rita)
    can = reviewer.data(VIEWER_CAN, {"id": instance_id(instance)})["workflowInstance"]["viewerCan"]
    assert can["delegate"] is True
    handed = reviewer.data(DELEGATE, {"id": item_id(instance), "to": gid("User", rex.pk)})
    assert handed["delegateWorkItem"]["claimedBy"] == {"username": "rex"}
    # once claimed, only the claimant (or the override) hands it on
    can = reviewer.data(VIEWER_CAN, {"id": instance_id(instance)})["workflowInstance"]["viewerCan"]
    assert can["delegate"] is False
    assert codes(
        reviewer(DELEGATE, {"id": item_id(instance), "to": gid("User", rita.pk)})["data"][
            "delegateWorkItem"
        ]
    ) == ["PERMISSION_DENIED"]
