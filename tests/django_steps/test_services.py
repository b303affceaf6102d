"""The documented behaviour of the engine, through the services (the public surface)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser

from django_steps.choices import EventKind, InstanceState
from django_steps.exceptions import WorkflowError
from django_steps.models import WorkflowEvent, WorkflowInstance, WorkflowStep, WorkflowTransition
from django_steps.services import (
    advance_workflow_instance,
    cancel_workflow_instance,
    evaluate_transitions,
    get_workflow_instance_for_object,
    resume_workflow_instance,
    set_workflow_on_hold,
    start_workflow_instance,
    update_workflow_step_status,
)
from tests.conftest import make_workflow, statuses, two_steps
from tests.graphql_api.conftest import make_user
from tests.testapp.models import CodeThing, Document, UUIDThing

pytestmark = pytest.mark.django_db


def routing(transitions, *, intake_extra=(), fast_statuses=None):
    """A workflow on Document: Intake → Fast / Slow / Manual → End.

    ``transitions`` are (to_step, condition, priority) tuples out of Intake, created in the
    given order (so priority, not creation order, must decide)."""
    done = {"name": "Done", "is_completion_status": True}
    return {
        "steps": [
            {
                "name": "Intake",
                "is_initial_step": True,
                "statuses": [
                    {"name": "New", "is_default_status": True},
                    {"name": "Checking"},
                    done,
                    {"name": "Paused", "is_on_hold_status": True},
                    {"name": "Dropped", "is_cancellation_status": True},
                    *intake_extra,
                ],
            },
            {
                "name": "Fast",
                "statuses": fast_statuses
                or [{"name": "Open", "is_default_status": True}, {"name": "Waiting"}, done],
            },
            {"name": "Slow", "statuses": [{"name": "Open", "is_default_status": True}, done]},
            {"name": "Manual", "statuses": [{"name": "Open", "is_default_status": True}, done]},
            {
                "name": "End",
                "is_final_step": True,
                "statuses": [{"name": "Open", "is_default_status": True}, done],
            },
        ],
        "transitions": [
            *(
                {"from_step": "Intake", "to_step": to, "condition": cond, "priority": prio}
                for to, cond, prio in transitions
            ),
            {"from_step": "Fast", "to_step": "End"},
            {"from_step": "Slow", "to_step": "End"},
            {"from_step": "Manual", "to_step": "End"},
        ],
    }


def codes(excinfo) -> str:
    assert isinstance(excinfo.value, WorkflowError)
    return excinfo.value.code


def history(instance) -> list[WorkflowEvent]:
    return list(WorkflowEvent.objects.filter(instance_id=instance.pk).order_by("sequence"))


def state_of(instance) -> tuple:
    fresh = WorkflowInstance.objects.get(pk=instance.pk)
    return (
        fresh.current_step.name,
        fresh.current_step_status.name,
        fresh.state,
        fresh.version,
        fresh.completed_at,
    )


@pytest.fixture
def user(db):
    """A user who may change every instance (an acting user needs the whole rule)."""
    return make_user(
        "ada",
        "django_steps.view_workflowinstance",
        "django_steps.change_workflowinstance",
        "testapp.view_document",
        groups=("reviewers",),  # the demo's rules: sees every claim
    )


# --------------------------------------------------------------------------- start


def test_start_puts_the_instance_on_the_initial_step_with_its_default_status(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)

    instance = WorkflowInstance.objects.get(pk=instance.pk)
    assert instance.workflow == claim_workflow
    assert instance.current_step.name == "Submit Claim"
    assert instance.current_step_status.name == "Draft"
    assert instance.state == InstanceState.ACTIVE
    assert instance.version == 1
    assert instance.started_at is not None
    assert instance.completed_at is None
    assert instance.content_object == claim
    assert not instance.is_completed()
    [event] = history(instance)
    assert (event.kind, event.sequence, event.to_status.name, event.from_step) == (
        EventKind.STARTED,
        1,
        "Draft",
        None,
    )


def test_starting_again_returns_the_existing_unfinished_instance(claim_workflow, claim):
    first = start_workflow_instance("Claim Processing", claim)
    update_workflow_step_status(first, "Submitted")  # moves on, still unfinished
    again = start_workflow_instance("Claim Processing", claim)

    assert again.pk == first.pk
    assert again.current_step.name == "Review Claim"
    assert WorkflowInstance.objects.count() == 1
    assert len(history(first)) == 2  # starting again wrote nothing


def test_starting_again_while_on_hold_returns_the_held_instance(claim_workflow, claim):
    first = set_workflow_on_hold(start_workflow_instance("Claim Processing", claim))
    again = start_workflow_instance("Claim Processing", claim)
    assert again.pk == first.pk
    assert again.state == InstanceState.ON_HOLD


@pytest.mark.parametrize("finish", ["complete", "cancel"])
def test_a_finished_instance_can_be_started_again_as_a_new_one(claim_workflow, claim, finish):
    first = start_workflow_instance("Claim Processing", claim)
    if finish == "complete":
        update_workflow_step_status(first, "Submitted")
        update_workflow_step_status(first, "Approved")
        update_workflow_step_status(first, "Approved")
        assert first.state == InstanceState.COMPLETED
    else:
        cancel_workflow_instance(first)

    second = start_workflow_instance("Claim Processing", claim)

    assert second.pk != first.pk
    assert (second.current_step.name, second.current_step_status.name, second.version) == (
        "Submit Claim",
        "Draft",
        1,
    )
    assert WorkflowInstance.objects.filter(object_id=str(claim.pk)).count() == 2
    assert get_workflow_instance_for_object(claim).pk == second.pk


def test_start_of_an_unknown_workflow_is_refused(db, claim):
    with pytest.raises(WorkflowError) as excinfo:
        start_workflow_instance("No Such Workflow", claim)
    assert codes(excinfo) == "WORKFLOW_NOT_FOUND"
    assert "No Such Workflow" not in excinfo.value.message  # the caller's value: in details only
    assert excinfo.value.details["workflow_name"] == "No Such Workflow"
    assert not WorkflowInstance.objects.exists()


def test_start_for_an_unsaved_object_is_refused(claim_workflow):
    from claims.models import Claim

    with pytest.raises(WorkflowError) as excinfo:
        start_workflow_instance("Claim Processing", Claim(title="x", claimant="y", amount=1))
    assert codes(excinfo) == "OBJECT_NOT_FOUND"


def test_start_without_a_default_status_on_the_initial_step_is_an_invalid_definition(db):
    make_workflow(
        "Broken",
        {
            "steps": [
                {
                    "name": "Only",
                    "is_initial_step": True,
                    "is_final_step": True,
                    "statuses": [{"name": "X"}],
                }
            ]
        },
    )
    with pytest.raises(WorkflowError) as excinfo:
        start_workflow_instance("Broken", Document.objects.create())
    assert codes(excinfo) == "INVALID_DEFINITION"
    assert excinfo.value.problems
    assert not WorkflowInstance.objects.exists()
    assert not WorkflowEvent.objects.exists()


def test_start_without_an_initial_step_is_an_invalid_definition(db):
    make_workflow(
        "No Start",
        {
            "steps": [
                {
                    "name": "End",
                    "is_final_step": True,
                    "statuses": [{"name": "X", "is_default_status": True}],
                }
            ]
        },
    )
    with pytest.raises(WorkflowError) as excinfo:
        start_workflow_instance("No Start", Document.objects.create())
    assert codes(excinfo) == "INVALID_DEFINITION"


# --------------------------------------------------------------------------- primary keys


@pytest.mark.parametrize(
    "make_object",
    [
        lambda: Document.objects.create(),
        lambda: UUIDThing.objects.create(),
        lambda: CodeThing.objects.create(code="INV-2024/007 é"),
    ],
    ids=["integer", "uuid", "string"],
)
def test_integer_uuid_and_string_primary_keys(db, make_object):
    make_workflow("Routing", routing([("Manual", "", 0)]))
    obj = make_object()
    other = (
        make_object() if not isinstance(obj, CodeThing) else CodeThing.objects.create(code="other")
    )

    instance = start_workflow_instance("Routing", obj)
    start_workflow_instance("Routing", other)

    assert instance.object_id == str(obj.pk)
    found = get_workflow_instance_for_object(obj)
    assert found.pk == instance.pk
    assert found.content_object == obj
    assert get_workflow_instance_for_object(obj, "Routing").pk == instance.pk
    assert start_workflow_instance("Routing", obj).pk == instance.pk
    update_workflow_step_status(found, "Done")
    assert found.current_step.name == "Manual"


def test_get_workflow_instance_for_object(db):
    make_workflow("Routing", routing([("Manual", "", 0)]))
    make_workflow("Other", routing([("Manual", "", 0)]))
    doc = Document.objects.create()
    assert get_workflow_instance_for_object(doc) is None
    assert get_workflow_instance_for_object(None) is None

    first = cancel_workflow_instance(start_workflow_instance("Routing", doc))
    assert get_workflow_instance_for_object(doc).pk == first.pk  # the latest, finished one
    second = start_workflow_instance("Routing", doc)
    assert get_workflow_instance_for_object(doc).pk == second.pk  # the unfinished one wins
    other = start_workflow_instance("Other", doc)
    assert get_workflow_instance_for_object(doc, "Routing").pk == second.pk
    assert get_workflow_instance_for_object(doc, "Other").pk == other.pk
    assert get_workflow_instance_for_object(doc, "Nope") is None


# --------------------------------------------------------------------------- statuses and advancing


def test_setting_a_plain_status_keeps_the_step(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    make_workflow("Routing", routing([("Manual", "", 0)]))
    doc = Document.objects.create()
    other = start_workflow_instance("Routing", doc)

    update_workflow_step_status(other, "Checking")

    assert (other.current_step.name, other.current_step_status.name, other.version) == (
        "Intake",
        "Checking",
        2,
    )
    assert history(other)[-1].kind == EventKind.STATUS_CHANGED
    assert instance.version == 1


def test_completion_status_advances_through_the_original_claim_workflow(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)

    update_workflow_step_status(instance, "Submitted")
    assert (instance.current_step.name, instance.current_step_status.name) == (
        "Review Claim",
        "Under Review",
    )
    update_workflow_step_status(instance, "Approved")
    assert (instance.current_step.name, instance.current_step_status.name) == (
        "Approve/Reject",
        "Awaiting Decision",
    )
    assert instance.completed_at is None and not instance.is_completed()

    update_workflow_step_status(instance, "Rejected")

    assert instance.state == InstanceState.COMPLETED
    assert instance.current_step_status.name == "Rejected"
    assert instance.completed_at is not None
    assert instance.is_completed()
    assert [e.kind for e in history(instance)] == ["STARTED", "ADVANCED", "ADVANCED", "COMPLETED"]
    fresh = WorkflowInstance.objects.get(pk=instance.pk)
    assert fresh.is_completed() and fresh.completed_at == instance.completed_at


def test_transitions_are_tried_by_priority_highest_first(db):
    # Created lowest priority first: priority, not id order, decides.
    make_workflow(
        "Routing", routing([("Manual", "", 1), ("Slow", "true", 5), ("Fast", "true", 10)])
    )
    instance = start_workflow_instance("Routing", Document.objects.create())
    update_workflow_step_status(instance, "Done")
    assert instance.current_step.name == "Fast"
    assert instance.current_step_status.name == "Open"
    event = history(instance)[-1]
    assert event.kind == EventKind.ADVANCED
    assert event.transition.to_step.name == "Fast"
    assert event.requested_status.name == "Done"


def test_negative_priorities_come_after_zero(db):
    make_workflow("Routing", routing([("Slow", "", -5), ("Fast", "", 0)]))
    instance = start_workflow_instance("Routing", Document.objects.create())
    assert update_workflow_step_status(instance, "Done").current_step.name == "Fast"


def test_first_match_wins_and_an_empty_condition_always_matches(db):
    make_workflow(
        "Routing",
        routing([("Fast", "document.amount > 1000", 10), ("Slow", "", 5), ("Manual", "true", 1)]),
    )
    small = start_workflow_instance("Routing", Document.objects.create(amount=Decimal("10")))
    big = start_workflow_instance("Routing", Document.objects.create(amount=Decimal("5000")))
    assert update_workflow_step_status(small, "Done").current_step.name == "Slow"
    assert update_workflow_step_status(big, "Done").current_step.name == "Fast"


def test_whitespace_only_condition_is_unconditional(db):
    make_workflow("Routing", routing([("Fast", "  \n ", 0)]))
    instance = start_workflow_instance("Routing", Document.objects.create())
    assert update_workflow_step_status(instance, "Done").current_step.name == "Fast"


def test_no_matching_transition_keeps_the_status_and_can_be_retried_with_new_context(db, user):
    make_workflow(
        "Routing",
        routing(
            [
                ("Fast", "has(input.amount) && input.amount > 1000", 10),
                ("Slow", "has(input.urgent) && input.urgent", 5),
            ]
        ),
    )
    instance = start_workflow_instance("Routing", Document.objects.create(amount=Decimal("10")))

    result = update_workflow_step_status(instance, "Done")

    assert result is instance
    assert (instance.current_step.name, instance.current_step_status.name) == ("Intake", "Done")
    assert instance.state == InstanceState.ACTIVE and instance.version == 2
    assert instance.is_awaiting_transition
    assert instance.last_event.kind == EventKind.NO_TRANSITION
    assert instance.last_event.transition is None

    # Still nothing: another NO_TRANSITION, visible.
    advance_workflow_instance(instance, {"amount": 5, "urgent": False})
    assert (instance.current_step.name, instance.version, instance.last_event.kind) == (
        "Intake",
        3,
        "NO_TRANSITION",
    )
    # the conditions read the caller's input only: the object was not read, nor stored
    assert instance.last_event.context == {"input": {"amount": 5, "urgent": False}}

    advance_workflow_instance(instance, {"amount": 2000, "urgent": False}, actor=user)

    assert (instance.current_step.name, instance.current_step_status.name) == ("Fast", "Open")
    assert not instance.is_awaiting_transition
    event = instance.last_event
    assert (event.kind, event.actor, event.sequence) == (EventKind.ADVANCED, user, 4)
    assert event.transition.to_step.name == "Fast"
    assert [e.kind for e in history(instance)] == [
        "STARTED",
        "NO_TRANSITION",
        "NO_TRANSITION",
        "ADVANCED",
    ]


def test_retry_uses_the_object_fields_when_no_context_is_given(db):
    make_workflow("Routing", routing([("Fast", "document.amount > 1000", 10)]))
    doc = Document.objects.create(amount=Decimal("10"))
    instance = update_workflow_step_status(start_workflow_instance("Routing", doc), "Done")
    assert instance.current_step.name == "Intake"
    Document.objects.filter(pk=doc.pk).update(amount=Decimal("1000.01"))
    assert advance_workflow_instance(instance).current_step.name == "Fast"


def test_advancing_an_instance_that_is_not_waiting_is_refused(db):
    make_workflow("Routing", routing([("Fast", "", 0)]))
    instance = start_workflow_instance("Routing", Document.objects.create())
    with pytest.raises(WorkflowError) as excinfo:
        advance_workflow_instance(instance)
    assert codes(excinfo) == "NOT_AWAITING_TRANSITION"
    assert len(history(instance)) == 1


def test_advancing_to_a_final_step_whose_default_is_a_completion_status_completes(db):
    spec = routing([("Fast", "", 0)])
    spec["steps"][1] = {
        "name": "Fast",
        "is_final_step": True,
        "statuses": [{"name": "Closed", "is_default_status": True, "is_completion_status": True}],
    }
    spec["transitions"] = [t for t in spec["transitions"] if t["from_step"] != "Fast"]
    make_workflow("Routing", spec)
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", Document.objects.create()), "Done"
    )
    assert instance.state == InstanceState.COMPLETED
    assert instance.completed_at is not None
    assert instance.last_event.kind == EventKind.COMPLETED
    assert instance.last_event.transition is not None


def test_a_target_step_without_default_status_is_an_invalid_definition_and_changes_nothing(db):
    make_workflow("Routing", routing([("Fast", "", 0)], fast_statuses=[{"name": "Waiting"}]))
    instance = start_workflow_instance("Routing", Document.objects.create())
    before = state_of(instance)

    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(instance, "Done")

    assert codes(excinfo) == "INVALID_DEFINITION"
    assert "Fast" in excinfo.value.message
    assert state_of(instance) == before
    assert instance.version == 1
    assert len(history(instance)) == 1


# --------------------------------------------------------------------------- errors


def test_unknown_status_names_the_step_and_its_statuses(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(instance, "Under Review")  # a status of another step
    assert codes(excinfo) == "UNKNOWN_STATUS"
    assert "Under Review" not in excinfo.value.message  # the caller's value: in details only
    assert "Submit Claim" in excinfo.value.message and '"Submitted"' in excinfo.value.message
    assert excinfo.value.details["status_name"] == "Under Review"
    assert excinfo.value.details["step_name"] == "Submit Claim"
    assert state_of(instance)[:4] == ("Submit Claim", "Draft", "ACTIVE", 1)


def test_version_conflict(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    stale = WorkflowInstance.objects.get(pk=instance.pk)
    update_workflow_step_status(instance, "Submitted", expected_version=1)
    assert instance.version == 2

    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(stale, "Submitted", expected_version=stale.version)
    assert codes(excinfo) == "VERSION_CONFLICT"
    assert excinfo.value.details["expected_version"] == 1
    assert excinfo.value.details["actual_version"] == 2
    assert state_of(instance)[:4] == ("Review Claim", "Under Review", "ACTIVE", 2)

    for call in (set_workflow_on_hold, cancel_workflow_instance, advance_workflow_instance):
        with pytest.raises(WorkflowError) as excinfo:
            call(stale, expected_version=1)
        assert codes(excinfo) == "VERSION_CONFLICT"
    set_workflow_on_hold(stale, expected_version=2)
    with pytest.raises(WorkflowError) as excinfo:
        resume_workflow_instance(stale, expected_version=2)
    assert codes(excinfo) == "VERSION_CONFLICT"
    assert resume_workflow_instance(stale, expected_version=3).version == 4
    assert len(history(instance)) == 4


def test_a_conflict_with_the_callers_own_change_says_what_happened_not_who(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    set_workflow_on_hold(instance, expected_version=1)  # the caller's own change: 1 -> 2
    with pytest.raises(WorkflowError) as excinfo:
        cancel_workflow_instance(instance, expected_version=1)  # the same version, again
    assert codes(excinfo) == "VERSION_CONFLICT"
    message = excinfo.value.message
    assert "someone else" not in message
    assert f"Workflow instance {instance.pk} is at version 2, not the expected one: " in message
    assert "it changed since that version was read (by this caller or another)" in message
    assert excinfo.value.details["expected_version"] == 1  # the caller's value: details only
    assert state_of(instance)[2] == "ON_HOLD"


@pytest.mark.parametrize(
    "condition,reason",
    [
        ("document.missing > 1", "NO_SUCH_KEY"),
        ("document.title > 5", "NO_MATCHING_OVERLOAD"),
        ("no_such_variable", "NO_SUCH_VARIABLE"),
        ("document.amount", "NOT_A_BOOLEAN"),
    ],
    ids=["missing-key", "type-error", "unbound-name", "not-a-boolean"],
)
def test_a_condition_that_fails_names_transition_expression_cause_and_changes_nothing(
    db, condition, reason, django_capture_on_commit_callbacks
):
    from django_steps.signals import workflow_event_committed

    make_workflow("Routing", routing([("Fast", condition, 10), ("Slow", "", 5)]))
    instance = start_workflow_instance("Routing", Document.objects.create(amount=Decimal("5")))
    before = state_of(instance)
    sent = []
    receiver = lambda **kw: sent.append(kw)  # noqa: E731
    workflow_event_committed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with pytest.raises(WorkflowError) as excinfo:
                update_workflow_step_status(instance, "Done")
    finally:
        workflow_event_committed.disconnect(receiver)

    assert codes(excinfo) == "CONDITION_ERROR"
    error = excinfo.value
    assert condition in error.message
    assert '"Intake"' in error.message and '"Fast"' in error.message
    assert error.details["expression"] == condition
    assert error.details["reason"] == reason
    assert error.details["transition_id"] == WorkflowTransition.objects.get(to_step__name="Fast").pk
    # Nothing changed: not even the lower-priority unconditional transition fired.
    assert state_of(instance) == before
    assert instance.version == 1
    assert len(history(instance)) == 1
    assert callbacks == [] and sent == []


def test_a_condition_error_on_retry_also_changes_nothing(db):
    make_workflow("Routing", routing([("Fast", "amount > 1000 || input.amount > 1000", 10)]))
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", Document.objects.create()), "Done", {"amount": 1}
    )
    with pytest.raises(WorkflowError) as excinfo:
        advance_workflow_instance(instance, {"other": 1})  # no input.amount
    assert codes(excinfo) == "CONDITION_ERROR"
    assert state_of(instance)[:4] == ("Intake", "Done", "ACTIVE", 2)


def test_a_stored_condition_that_does_not_compile_is_a_condition_error_naming_the_transition(db):
    make_workflow("Routing", routing([("Fast", "", 10)]))
    WorkflowTransition.objects.filter(to_step__name="Fast").update(
        condition="amount >>> 1"
    )  # bypasses validation
    from django_steps.models import Workflow
    from django_steps.versions import publish_workflow

    publish_workflow(Workflow.objects.get(name="Routing"), validate=False)  # the trusted path
    instance = start_workflow_instance("Routing", Document.objects.create())
    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(instance, "Done")
    assert codes(excinfo) == "CONDITION_ERROR"
    assert "amount >>> 1" in excinfo.value.message
    assert state_of(instance)[:4] == ("Intake", "New", "ACTIVE", 1)


def test_a_condition_that_does_not_compile_is_refused_by_full_clean(db):
    from django.core.exceptions import ValidationError

    workflow = make_workflow("Routing", routing([]))
    intake, fast = WorkflowStep.objects.get(name="Intake"), WorkflowStep.objects.get(name="Fast")
    transition = WorkflowTransition(
        workflow=workflow, from_step=intake, to_step=fast, condition="amount > ", priority=3
    )
    with pytest.raises(ValidationError) as excinfo:
        transition.full_clean()
    [error] = excinfo.value.error_dict["condition"]
    assert error.code == "CONDITION_SYNTAX_ERROR"
    message = error.message % error.params
    assert '"Intake" → "Fast"' in message and "amount > " in message

    transition.condition = "amount > 1"
    transition.full_clean()  # valid now


def test_a_transition_to_another_workflows_step_is_refused_by_full_clean(db):
    from django.core.exceptions import ValidationError

    workflow = make_workflow("Routing", routing([]))
    other = make_workflow("Other", routing([]))
    transition = WorkflowTransition(
        workflow=workflow,
        from_step=workflow.steps.get(name="Intake"),
        to_step=other.steps.get(name="Fast"),
    )
    with pytest.raises(ValidationError) as excinfo:
        transition.full_clean()
    assert "to_step" in excinfo.value.error_dict


# --------------------------------------------------------------------------- hold, resume, cancel


def test_hold_moves_to_the_on_hold_status_and_refuses_updates(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    set_workflow_on_hold(instance)

    assert instance.state == InstanceState.ON_HOLD and instance.is_on_hold
    assert instance.current_step_status.name == "On Hold"
    assert instance.last_event.kind == EventKind.ON_HOLD
    assert not instance.is_completed()

    for call, args in (
        (update_workflow_step_status, ("Submitted",)),
        (update_workflow_step_status, ("Draft",)),
        (advance_workflow_instance, ()),
        (set_workflow_on_hold, ()),
    ):
        with pytest.raises(WorkflowError) as excinfo:
            call(instance, *args)
        assert codes(excinfo) == "INSTANCE_ON_HOLD", call
    assert state_of(instance)[:4] == ("Submit Claim", "On Hold", "ON_HOLD", 2)


def test_resume_from_the_on_hold_status_returns_to_the_default_status(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    update_workflow_step_status(instance, "On Hold")  # setting the on-hold status holds
    assert instance.state == InstanceState.ON_HOLD

    resume_workflow_instance(instance)

    assert instance.state == InstanceState.ACTIVE
    assert instance.current_step_status.name == "Draft"
    assert instance.last_event.kind == EventKind.RESUMED
    update_workflow_step_status(instance, "Submitted")
    assert instance.current_step.name == "Review Claim"


def test_hold_and_resume_keep_the_status_on_a_step_without_on_hold_status(db):
    make_workflow("Routing", routing([("Fast", "", 0)]))
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", Document.objects.create()), "Done"
    )
    update_workflow_step_status(instance, "Waiting")

    set_workflow_on_hold(instance)
    assert (instance.state, instance.current_step_status.name) == ("ON_HOLD", "Waiting")
    resume_workflow_instance(instance)
    assert (instance.state, instance.current_step_status.name) == ("ACTIVE", "Waiting")


def test_resume_of_an_instance_not_on_hold_is_refused(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    with pytest.raises(WorkflowError) as excinfo:
        resume_workflow_instance(instance)
    assert codes(excinfo) == "NOT_ON_HOLD"
    assert len(history(instance)) == 1


@pytest.mark.parametrize("hold_first", [False, True])
def test_cancel(claim_workflow, claim, hold_first, user):
    instance = start_workflow_instance("Claim Processing", claim)
    if hold_first:
        set_workflow_on_hold(instance)

    cancel_workflow_instance(instance, actor=user)

    assert instance.state == InstanceState.CANCELLED
    assert instance.current_step_status.name == "Withdrawn"
    assert instance.completed_at is not None
    assert instance.is_completed()
    assert (instance.last_event.kind, instance.last_event.actor) == (EventKind.CANCELLED, user)
    assert WorkflowInstance.objects.get(pk=instance.pk).is_completed()


def test_setting_the_cancellation_status_cancels(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    update_workflow_step_status(instance, "Withdrawn")
    assert instance.state == InstanceState.CANCELLED and instance.completed_at is not None


def test_cancel_keeps_the_status_on_a_step_without_cancellation_status(claim_workflow, claim):
    instance = update_workflow_step_status(
        start_workflow_instance("Claim Processing", claim), "Submitted"
    )
    cancel_workflow_instance(instance)
    assert (instance.state, instance.current_step.name, instance.current_step_status.name) == (
        "CANCELLED",
        "Review Claim",
        "Under Review",
    )


@pytest.mark.parametrize("finish", ["complete", "cancel"])
def test_finished_instances_refuse_everything(claim_workflow, claim, finish):
    instance = start_workflow_instance("Claim Processing", claim)
    if finish == "complete":
        for status in ("Submitted", "Approved", "Approved"):
            update_workflow_step_status(instance, status)
    else:
        cancel_workflow_instance(instance)
    before = state_of(instance)
    events = len(history(instance))

    for call, args in (
        (update_workflow_step_status, ("Approved",)),
        (update_workflow_step_status, ("Nope",)),
        (advance_workflow_instance, ()),
        (set_workflow_on_hold, ()),
        (resume_workflow_instance, ()),
        (cancel_workflow_instance, ()),
    ):
        with pytest.raises(WorkflowError) as excinfo:
            call(instance, *args)
        assert codes(excinfo) == "INSTANCE_FINISHED", call
    assert state_of(instance) == before
    assert len(history(instance)) == events


def test_a_deleted_instance_is_reported(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    WorkflowInstance.objects.filter(pk=instance.pk).delete()
    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(instance, "Submitted")
    assert codes(excinfo) == "INSTANCE_NOT_FOUND"


def test_the_callers_object_is_updated_and_related_objects_are_fresh(claim_workflow, claim):
    instance = start_workflow_instance("Claim Processing", claim)
    assert instance.current_step.name == "Submit Claim"  # cache the related object
    update_workflow_step_status(instance, "Submitted")
    assert instance.current_step.name == "Review Claim"
    assert instance.current_step_status.name == "Under Review"


# --------------------------------------------------------------------------- actor


def test_the_actor_is_recorded_and_an_event_without_one_is_the_systems(claim_workflow, claim, user):
    instance = start_workflow_instance("Claim Processing", claim, actor=user)
    update_workflow_step_status(instance, "Submitted")  # trusted code: the system
    set_workflow_on_hold(instance, actor=user)
    resume_workflow_instance(instance, actor=user)
    assert [e.actor for e in history(instance)] == [user, None, user, user]


def test_an_anonymous_or_inactive_actor_is_refused_never_recorded_as_the_system(
    claim_workflow, claim, user
):
    instance = start_workflow_instance("Claim Processing", claim)
    user.is_active = False
    for actor in (AnonymousUser(), user):
        with pytest.raises(WorkflowError) as excinfo:
            update_workflow_step_status(instance, "Submitted", actor=actor)
        assert codes(excinfo) == "PERMISSION_DENIED"
    assert [e.kind for e in history(instance)] == ["STARTED"]


# --------------------------------------------------------------------------- CEL context and values


@pytest.mark.parametrize(
    "field", ["amount", "ratio", "count"], ids=["DecimalField", "FloatField", "IntegerField"]
)
@pytest.mark.parametrize("value,expected", [(1500, "Fast"), (1000, "Slow"), (999, "Slow")])
def test_amount_greater_than_an_integer_literal_for_every_numeric_field(db, field, value, expected):
    make_workflow("Routing", routing([("Fast", f"document.{field} > 1000", 10), ("Slow", "", 0)]))
    doc = Document.objects.create(**{field: Decimal(value) if field == "amount" else value})
    instance = update_workflow_step_status(start_workflow_instance("Routing", doc), "Done")
    assert instance.current_step.name == expected


@pytest.mark.parametrize(
    "condition",
    [
        "document.amount > 1000.5",
        "document.amount >= 1000.75",
        "document.amount == 1000.75",
        "document.ratio < 2000",
    ],
)
def test_decimal_and_double_literals(db, condition):
    make_workflow("Routing", routing([("Fast", condition, 10), ("Slow", "", 0)]))
    doc = Document.objects.create(amount=Decimal("1000.75"), ratio=1000.75)
    assert (
        update_workflow_step_status(
            start_workflow_instance("Routing", doc), "Done"
        ).current_step.name
        == "Fast"
    )


@pytest.mark.parametrize("count,expected", [(3, "Fast"), (2, "Slow")])
def test_integer_field_against_a_double_literal(db, count, expected):
    make_workflow("Routing", routing([("Fast", "document.count > 2.5", 10), ("Slow", "", 0)]))
    doc = Document.objects.create(count=count)
    assert (
        update_workflow_step_status(
            start_workflow_instance("Routing", doc), "Done"
        ).current_step.name
        == expected
    )


@pytest.mark.parametrize(
    "condition,expected",
    [
        ("document.due < timestamp('2025-01-01T00:00:00Z')", "Fast"),
        ("document.due == timestamp('2024-06-30T00:00:00Z')", "Fast"),
        ("document.due > timestamp('2024-06-30T00:00:00Z')", "Slow"),
        ("document.submitted_at >= timestamp('2024-06-30T12:00:00Z')", "Fast"),
        ("document.submitted_at > timestamp('2024-06-30T12:00:01Z')", "Slow"),
        ("document.submitted_at - document.due > duration('11h')", "Fast"),
        ("document.submitted_at.getFullYear() == 2024", "Fast"),
    ],
)
def test_dates_and_datetimes_compare_as_timestamps(db, condition, expected):
    make_workflow("Routing", routing([("Fast", condition, 10), ("Slow", "", 0)]))
    doc = Document.objects.create(
        due=dt.date(2024, 6, 30),
        submitted_at=dt.datetime(2024, 6, 30, 12, 0, tzinfo=dt.UTC),
    )
    assert (
        update_workflow_step_status(
            start_workflow_instance("Routing", doc), "Done"
        ).current_step.name
        == expected
    )


def test_uuid_is_a_string_and_booleans_are_booleans(db):
    ref = uuid.UUID("12345678-1234-5678-1234-567812345678")
    make_workflow(
        "Routing",
        routing(
            [("Fast", f"document.reference == '{ref}' && document.urgent", 10), ("Slow", "", 0)]
        ),
    )
    hit = Document.objects.create(reference=ref, urgent=True)
    miss = Document.objects.create(reference=ref, urgent=False)
    assert (
        update_workflow_step_status(
            start_workflow_instance("Routing", hit), "Done"
        ).current_step.name
        == "Fast"
    )
    assert (
        update_workflow_step_status(
            start_workflow_instance("Routing", miss), "Done"
        ).current_step.name
        == "Slow"
    )


def test_object_fields_are_at_the_top_level_and_under_the_model_name(claim_workflow, claim):
    make_workflow(
        "Claims",
        two_steps(
            second_statuses=statuses("Open"),
            condition="claim.amount > 1000 && amount == claim.amount && claimant == 'Ada'",
        ),
    )
    instance = update_workflow_step_status(start_workflow_instance("Claims", claim), "Done")
    assert instance.current_step.name == "B"
    context = instance.last_event.context
    assert set(context) == {"object"}  # what the condition read, and nothing from a caller
    assert context["object"]["amount"] == "1500.00"
    assert context["object"]["title"] == "Broken window"


def test_context_data_is_read_as_input_and_never_replaces_the_objects_fields(db):
    make_workflow(
        "Routing",
        routing([("Fast", "amount > 1000 && document.amount > 1000", 10), ("Slow", "", 0)]),
    )
    doc = Document.objects.create(amount=Decimal("5000"))
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", doc),
        "Done",
        {"amount": 10, "document": {"amount": 10}},  # trusted code or not: shadows nothing
    )
    assert instance.current_step.name == "Fast"
    context = instance.last_event.context
    assert context["input"] == {"amount": 10, "document": {"amount": 10}}
    assert context["object"]["amount"] == "5000.00"

    make_workflow("Routing2", routing([("Fast", "input.amount > 1000", 10), ("Slow", "", 0)]))
    other = start_workflow_instance("Routing2", doc)
    assert update_workflow_step_status(other, "Done", {"amount": 10}).current_step.name == "Slow"
    assert other.last_event.context == {"input": {"amount": 10}}  # the object was not read


def test_input_is_an_empty_map_without_context_data(db):
    make_workflow(
        "Routing", routing([("Fast", "has(input.rush) && input.rush", 10), ("Slow", "", 0)])
    )
    doc = Document.objects.create()
    instance = update_workflow_step_status(start_workflow_instance("Routing", doc), "Done")
    assert instance.current_step.name == "Slow"
    assert instance.last_event.context is None  # neither the object nor a caller's context


def test_context_data_values_of_python_types(db):
    make_workflow(
        "Routing",
        routing(
            [
                (
                    "Fast",
                    "input.total > 100 && input.when < timestamp('2030-01-01T00:00:00Z') && "
                    "input.ref == '12345678-1234-5678-1234-567812345678' && input.tags.exists(t, t "
                    "== 'vip') && input.nested.level >= 2.0",
                    10,
                ),
                ("Slow", "", 0),
            ]
        ),
    )
    instance = start_workflow_instance("Routing", Document.objects.create())
    update_workflow_step_status(
        instance,
        "Done",
        {
            "total": Decimal("100.01"),
            "when": dt.date(2029, 12, 31),
            "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "tags": ("vip", "x"),
            "nested": {"level": 2},
        },
    )
    assert instance.current_step.name == "Fast"
    assert instance.last_event.context["input"]["total"] == "100.01"
    assert instance.last_event.context["input"]["ref"] == "12345678-1234-5678-1234-567812345678"


def test_a_context_that_refers_to_itself_is_refused_not_a_hang(db):
    make_workflow("Routing", routing([("Fast", "a.b == 1", 10)]))
    instance = start_workflow_instance("Routing", Document.objects.create())
    context: dict = {}
    context["a"] = context
    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(instance, "Done", context)
    assert codes(excinfo) == "INVALID_CONTEXT"  # too deep (test_cel_limits.py)
    assert instance.version == 1


def test_a_context_that_is_not_a_mapping_is_refused(db):
    make_workflow("Routing", routing([("Fast", "a == 1", 10)]))
    instance = start_workflow_instance("Routing", Document.objects.create())
    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(instance, "Done", ["a"])
    assert codes(excinfo) == "INVALID_CONTEXT"


# --------------------------------------------------------------------------- dry run


def test_dry_run_lists_candidates_and_changes_nothing(db):
    make_workflow(
        "Routing",
        routing(
            [
                ("Fast", "document.amount > 1000 && input.rush", 10),
                ("Slow", "document.count > 2.5", 5),
                ("Manual", "", 0),
            ]
        ),
    )
    doc = Document.objects.create(amount=Decimal("10"), count=3)
    instance = start_workflow_instance("Routing", doc)

    dry = evaluate_transitions(instance)

    assert [
        (e.transition.to_step.name, e.priority, e.result, e.would_fire) for e in dry.evaluations
    ] == [
        ("Fast", 10, False, False),
        ("Slow", 5, True, True),
        ("Manual", 0, True, False),
    ]
    assert dry.fired.transition.to_step.name == "Slow"
    assert dry.error is None
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 1
    assert len(history(instance)) == 1

    # The dry run reads the object from the database, as the change would: now `input.rush`
    # is read, and missing.
    Document.objects.filter(pk=doc.pk).update(amount=Decimal("5000"))
    erroring = evaluate_transitions(instance, {"count": 1})
    assert erroring.evaluations[0].error and erroring.evaluations[0].result is None
    assert erroring.fired is None
    assert erroring.error == erroring.evaluations[0].error
    assert erroring.evaluations[2].result is True  # evaluated, but would not fire: the error aborts
    assert erroring.evaluations[1].result is True  # `count` is the object's: input shadows nothing
    rushed = evaluate_transitions(instance, {"rush": True})
    assert rushed.fired.transition.to_step.name == "Fast" and rushed.error is None
