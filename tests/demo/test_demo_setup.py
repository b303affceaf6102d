"""`manage.py demo_setup`: what `make demo` relies on, run twice."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from claims.models import Claim
from django_steps.choices import InstanceState
from django_steps.models import Workflow, WorkflowEvent, WorkflowInstance

pytestmark = pytest.mark.django_db


def run_setup() -> str:
    out = StringIO()
    call_command("demo_setup", stdout=out)
    return out.getvalue()


def positions() -> dict[str, tuple[str, str, str]]:
    return {
        str(i.content_object): (i.workflow.name, i.current_step.name, i.current_step_status.name)
        for i in WorkflowInstance.objects.select_related(
            "workflow", "current_step", "current_step_status"
        )
    }


def test_setup_loads_both_examples_and_creates_the_four_users():
    output = run_setup()

    assert set(Workflow.objects.values_list("name", flat=True)) == {
        "Claim Processing",
        "Claim Triage",
    }
    users = get_user_model().objects
    for username in ("demo", "alice", "bob", "rita"):
        assert username in output
        assert users.get(username=username).check_password(username)
    assert "password = username" in output
    assert users.get(username="demo").is_superuser
    alice, bob, rita = (users.get(username=name) for name in ("alice", "bob", "rita"))
    own = Claim.objects.filter(owner=alice).first()
    assert own is not None and Claim.objects.filter(owner=bob).exists()
    for user in (alice, bob, rita):
        assert not user.is_superuser and not user.is_staff
        for perm in (
            "django_steps.view_workflow",
            "django_steps.view_workflowinstance",
            "django_steps.change_workflowinstance",
        ):
            assert user.has_perm(perm), (user, perm)
    # The object-level rules (django-rules): alice's own claim, rita's every claim.
    assert alice.has_perm("claims.view_claim", own) and alice.has_perm("claims.submit_claim", own)
    assert not bob.has_perm("claims.view_claim", own) and not bob.has_perm(
        "claims.submit_claim", own
    )
    assert not alice.has_perm("claims.decide_claim", own)
    assert rita.has_perm("claims.view_claim", own) and rita.has_perm("claims.decide_claim", own)
    assert not rita.has_perm("claims.submit_claim", own)


def test_example_claims_stand_at_different_steps_and_the_cel_branch_routed_them():
    run_setup()
    where = positions()

    steps = {(workflow, step) for workflow, step, _status in where.values()}
    assert len(steps) >= 5, where
    # Claim Triage: "Triaged" routes by amount through the CEL-guarded transition.
    assert where["Water damage in kitchen (2400.00)"][:2] == ("Claim Triage", "Senior Review")
    assert where["Stolen bicycle (800.00)"][:2] == ("Claim Triage", "Fast Track")
    assert WorkflowInstance.objects.filter(state=InstanceState.ON_HOLD).exists()
    assert WorkflowInstance.objects.filter(state=InstanceState.ACTIVE).count() >= 5


def test_running_twice_changes_nothing():
    run_setup()
    before = (
        Claim.objects.count(),
        sorted(WorkflowInstance.objects.values_list("id", "version")),
        WorkflowEvent.objects.count(),
        dict(Workflow.objects.values_list("name", "definition_version")),
    )
    output = run_setup()
    after = (
        Claim.objects.count(),
        sorted(WorkflowInstance.objects.values_list("id", "version")),
        WorkflowEvent.objects.count(),
        dict(Workflow.objects.values_list("name", "definition_version")),
    )
    assert after == before
    assert "up to date" in output


def test_a_changed_example_definition_is_updated_in_place():
    run_setup()
    triage = Workflow.objects.get(name="Claim Triage")
    step = triage.steps.get(name="Fast Track")
    step.description = "edited by hand"
    step.save()
    instance_ids = sorted(WorkflowInstance.objects.values_list("id", flat=True))

    output = run_setup()

    step.refresh_from_db()
    assert step.description == "An automated check for small claims."
    assert "'Claim Triage': updated" in output
    assert sorted(WorkflowInstance.objects.values_list("id", flat=True)) == instance_ids


def test_user_password_is_reset_to_the_printed_one():
    run_setup()
    user = get_user_model().objects.get(username="demo")
    user.set_password("something else")
    user.save()

    run_setup()

    user.refresh_from_db()
    assert user.check_password("demo")
