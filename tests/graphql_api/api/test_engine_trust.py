"""What a client can no longer do to the engine, as the demo's users meet it over HTTP
(``demo_setup``: alice and bob own claims, rita reviews, demo is a superuser):

- a client's ``context`` is read as ``input``: it never replaces what a guard reads from the
  database, and the history says which values were the object's and which the client's;
- a decision sticks: a status that names no permission cannot undo one that does;
- ``viewerCan`` is exactly what the services accept, for every demo role and every state.
"""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from claims.models import Claim
from django_steps import compiled, services
from django_steps.choices import InstanceState
from django_steps.exceptions import WorkflowError
from django_steps.models import WorkflowEvent, WorkflowInstance
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import client_for, codes, gid

pytestmark = pytest.mark.django_db

User = get_user_model()

CAN = """query Can($id: ID!) {
  workflowInstance(id: $id) {
    currentStep { name }
    currentStepStatus { name }
    viewerCan { statuses { name } hold resume cancel advance }
  }
}"""

HISTORY = """query History($id: ID!) {
  workflowInstance(id: $id) {
    history(first: 10) { edges { node { kind actor { username } context toStep { name } } } }
  }
}"""


@pytest.fixture
def demo(db):
    call_command("demo_setup", stdout=StringIO())
    return {name: User.objects.get(username=name) for name in ("alice", "bob", "rita", "demo")}


def instance_of(title: str) -> WorkflowInstance:
    claim = Claim.objects.get(title=title)
    return WorkflowInstance.objects.get(object_id=str(claim.pk))


# ------------------------------------------------------------------- 5. guards read the database


def test_a_client_context_cannot_move_a_large_claim_to_the_fast_track(demo):
    """The hostile tester's request: a reviewer triages the 5,600.00 claim sending the amount
    she would like it to have. The guard `claim.amount > 1000` reads the claim's amount."""
    instance = instance_of("Roof leak after storm")  # 5600.00, Claim Triage, Intake / New
    assert Claim.objects.get(title="Roof leak after storm").amount == Decimal("5600.00")
    rita = client_for(demo["rita"])
    i = gid("WorkflowInstance", instance.pk)
    fake = {"claim": {"amount": 1}, "amount": 1}

    # The dry run agrees with the change, with the client's values and without them.
    for context in (None, fake):
        dry = rita.data(ops.EVALUATE, {"instanceId": i, "context": context})
        assert dry["evaluateTransitions"]["fired"]["transition"]["toStep"]["name"] == (
            "Senior Review"
        )
        assert dry["evaluateTransitions"]["error"] is None

    moved = rita.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "Triaged", "context": fake}}
    )["updateWorkflowStepStatus"]
    assert moved["__typename"] == "WorkflowInstance", moved
    assert moved["currentStep"]["name"] == "Senior Review"

    # History keeps the object's values and the client's apart: nothing fake is stored as true.
    stored = moved["lastEvent"]["context"]
    assert stored["object"]["amount"] == "5600.00"
    assert stored["input"] == fake
    assert WorkflowEvent.objects.get(instance=instance, kind="ADVANCED").context == stored
    # The claim's owner reads the same history (and may view the claim).
    events = ops.events(client_for(demo["bob"]).data(HISTORY, {"id": i})["workflowInstance"])
    assert events[-1]["context"] == stored and events[-1]["toStep"]["name"] == "Senior Review"


def test_a_small_claim_still_takes_the_fast_track_whatever_the_client_claims(demo):
    instance = instance_of("Cracked phone screen")  # 150.00, Intake / Waiting for Documents
    rita = client_for(demo["rita"])
    i = gid("WorkflowInstance", instance.pk)
    moved = rita.data(
        ops.UPDATE_STATUS,
        {
            "input": {
                "instanceId": i,
                "statusName": "Triaged",
                "context": {"claim": {"amount": 10**6}, "amount": 10**6},
            }
        },
    )["updateWorkflowStepStatus"]
    assert moved["currentStep"]["name"] == "Fast Track"
    assert moved["lastEvent"]["context"]["object"]["amount"] == "150.00"


# --------------------------------------------------------------------------- 7. decisions stick


def _triage(owner) -> tuple[WorkflowInstance, str]:
    claim = Claim.objects.create(title="Fresh", claimant="Alice", amount=Decimal("10"), owner=owner)
    instance = services.start_workflow_instance("Claim Triage", claim)
    return instance, gid("WorkflowInstance", instance.pk)


def test_a_claimant_cannot_undo_a_reviewers_decision_with_the_default_status(demo):
    alice, rita = client_for(demo["alice"]), client_for(demo["rita"])
    instance, i = _triage(demo["alice"])
    waiting = rita.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "Waiting for Documents"}}
    )["updateWorkflowStepStatus"]
    assert waiting["currentStepStatus"]["name"] == "Waiting for Documents"
    version = waiting["version"]

    # "New" names no permission, but leaving "Waiting for Documents" needs decide_claim.
    refused = alice.data(ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "New"}})[
        "updateWorkflowStepStatus"
    ]
    assert codes(refused) == ["PERMISSION_DENIED"]
    assert refused["messages"][0]["kind"] == "PERMISSION"
    for operation, field in ((ops.HOLD, "setWorkflowOnHold"),):
        assert codes(alice.data(operation, {"input": {"instanceId": i}})[field]) == [
            "PERMISSION_DENIED"
        ]
    instance.refresh_from_db()
    assert (instance.current_step_status.name, instance.version) == (
        "Waiting for Documents",
        version,
    )

    # What she may do says so: withdraw (the claimant's own permission), nothing else.
    hers = alice.data(CAN, {"id": i})["workflowInstance"]["viewerCan"]
    assert hers == {
        "statuses": [{"name": "Withdrawn"}],
        "hold": False,
        "resume": False,
        "cancel": True,
        "advance": False,
    }
    withdrawn = alice.data(ops.CANCEL, {"input": {"instanceId": i}})["cancelWorkflowInstance"]
    assert withdrawn["state"] == "CANCELLED"
    assert withdrawn["currentStepStatus"]["name"] == "Withdrawn"


def test_the_reviewer_may_revise_her_own_decision_and_the_system_is_exempt(demo):
    rita = client_for(demo["rita"])
    instance, i = _triage(demo["alice"])
    rita.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "Waiting for Documents"}}
    )
    back = rita.data(ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "New"}})[
        "updateWorkflowStepStatus"
    ]
    assert back["currentStepStatus"]["name"] == "New"
    rita.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "Waiting for Documents"}}
    )
    # Trusted code (a job, a migration: no actor) is not held to it, and is recorded as such.
    services.update_workflow_step_status(instance, "New")
    events = ops.events(rita.data(HISTORY, {"id": i})["workflowInstance"])
    assert [(e["kind"], (e["actor"] or {}).get("username")) for e in events] == [
        ("STARTED", None),
        ("STATUS_CHANGED", "rita"),
        ("STATUS_CHANGED", "rita"),
        ("STATUS_CHANGED", "rita"),
        ("STATUS_CHANGED", None),
    ]


def test_a_hold_through_a_reviewers_status_is_released_only_by_a_reviewer(demo):
    alice, rita = client_for(demo["alice"]), client_for(demo["rita"])
    _instance, i = _triage(demo["alice"])
    assert rita.data(ops.HOLD, {"input": {"instanceId": i}})["setWorkflowOnHold"]["state"] == (
        "ON_HOLD"
    )
    assert alice.data(CAN, {"id": i})["workflowInstance"]["viewerCan"]["resume"] is False
    refused = alice.data(ops.RESUME, {"input": {"instanceId": i}})["resumeWorkflowInstance"]
    assert codes(refused) == ["PERMISSION_DENIED"]
    # Withdrawing from the hold is still hers ("Withdrawn" names the claimant's permission).
    withdrawn = alice.data(
        ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "Withdrawn"}}
    )["updateWorkflowStepStatus"]
    assert withdrawn["state"] == "CANCELLED"


# --------------------------------------------------------------------------- viewerCan == services


class _Undo(Exception):
    """Rolls a tried change back."""


def _accepted(call) -> bool | str:
    """True if the change would succeed (it is rolled back), else the refusal's code."""
    try:
        with transaction.atomic():
            call()
            raise _Undo
    except _Undo:
        return True
    except WorkflowError as error:
        return error.code


def _every_state(instance: WorkflowInstance):
    """Put ``instance`` in every position its workflow allows (each status of each step,
    active, or on hold when it is an on-hold status; then finished), yielding a label."""
    definition = compiled.load(instance.workflow)
    for step in definition.steps.values():
        for status in step.statuses.values():
            if status.is_cancellation_status:
                continue
            state = InstanceState.ON_HOLD if status.is_on_hold_status else InstanceState.ACTIVE
            WorkflowInstance.objects.filter(pk=instance.pk).update(
                current_step_id=step.id, current_step_status_id=status.id, state=state
            )
            yield f"{step.name} / {status.name} ({state})"
    for state in (InstanceState.COMPLETED, InstanceState.CANCELLED):
        WorkflowInstance.objects.filter(pk=instance.pk).update(state=state)
        yield f"finished ({state})"


def test_viewer_can_is_exactly_what_the_services_accept_for_every_role_and_state(demo):
    users = {name: User.objects.get(pk=user.pk) for name, user in demo.items()}
    clients = {name: client_for(user) for name, user in users.items()}
    checked, states, answers = 0, 0, set()
    for workflow in ("Claim Processing", "Claim Triage"):
        claim = Claim.objects.create(title="Matrix", claimant="A", amount=Decimal("50"))
        claim.owner = users["alice"]
        claim.save()
        instance = services.start_workflow_instance(workflow, claim)
        i = gid("WorkflowInstance", instance.pk)
        for label in _every_state(instance):
            states += 1
            fresh = WorkflowInstance.objects.get(pk=instance.pk)
            step = compiled.load(fresh.workflow).steps[fresh.current_step_id]
            for name, user in users.items():
                found = clients[name].data(CAN, {"id": i})["workflowInstance"]
                tried = {
                    "statuses": [
                        status
                        for status in step.statuses
                        if _accepted(
                            lambda s=status: services.update_workflow_step_status(
                                fresh, s, actor=user
                            )
                        )
                        is True
                    ],
                    "hold": services.set_workflow_on_hold,
                    "resume": services.resume_workflow_instance,
                    "cancel": services.cancel_workflow_instance,
                    "advance": services.advance_workflow_instance,
                }
                for action in ("hold", "resume", "cancel", "advance"):
                    tried[action] = _accepted(lambda a=tried[action]: a(fresh, actor=user)) is True
                if found is None:  # bob: alice's claim is hidden from him
                    assert name == "bob", (workflow, label, name)
                    assert tried == {
                        "statuses": [],
                        "hold": False,
                        "resume": False,
                        "cancel": False,
                        "advance": False,
                    }
                    assert _accepted(
                        lambda: services.cancel_workflow_instance(fresh, actor=user)
                    ) == ("INSTANCE_NOT_FOUND")
                    continue
                can = found["viewerCan"]
                offered = {**can, "statuses": [s["name"] for s in can["statuses"]]}
                assert offered == tried, (workflow, label, name)
                checked += 1
                answers.add(repr(offered))
    # alice, rita and demo in every state of both workflows; the answers differ by role and state
    assert checked == 3 * states and states > 20
    assert len(answers) > 10
