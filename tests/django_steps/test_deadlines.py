"""Deadlines and reminders (django_steps.deadlines): armed with the change that enters a step,
fired once by a worker at their time, through the public services and the worker's sweep."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_steps import deadlines
from django_steps.choices import EventKind, InstanceState
from django_steps.definitions import import_workflow
from django_steps.exceptions import InvalidDefinition, VersionConflict
from django_steps.models import WorkflowEvent, WorkflowInstance, WorkflowTimer
from django_steps.services import (
    cancel_workflow_instance,
    resume_workflow_instance,
    set_workflow_on_hold,
    start_workflow_instance,
    update_workflow_step_status,
)
from django_steps.versions import migrate_instances
from tests.conftest import statuses
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def review(deadline: dict | None, *, name: str = "Review", permission: str = "") -> dict:
    """Intake → Review (with ``deadline``) → Done, on Document."""
    return {
        "name": name,
        "content_types": ["testapp.document"],
        "steps": [
            {
                "name": "Intake",
                "is_initial_step": True,
                "statuses": statuses("New", "Sent"),
            },
            {
                "name": "Review",
                "deadline": deadline,
                "statuses": [
                    *statuses("Open", "Approved", hold="Parked", cancellation="Dropped"),
                    {"name": "Looking"},
                    {"name": "Escalated", "permission": permission},
                ],
            },
            {
                "name": "Done",
                "is_final_step": True,
                "statuses": [
                    {"name": "Closed", "is_default_status": True, "is_completion_status": True}
                ],
            },
        ],
        "transitions": [
            {"from_step": "Intake", "to_step": "Review"},
            {"from_step": "Review", "to_step": "Done"},
        ],
    }


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def in_review(deadline: dict | None, **kwargs) -> WorkflowInstance:
    import_workflow(review(deadline, **kwargs))
    instance = start_workflow_instance(kwargs.get("name", "Review"), Document.objects.create())
    return update_workflow_step_status(instance, "Sent")


def kinds(instance: WorkflowInstance) -> list[str]:
    return list(instance.events.order_by("sequence").values_list("kind", flat=True))


def fire() -> int:
    return deadlines.run_once()


# --------------------------------------------------------------------------- firing on time


def test_a_deadline_fires_at_its_due_time_and_not_before(clock):
    instance = in_review({"after": "P2D", "status": "Escalated"})
    clock.shift(dt.timedelta(days=2) - dt.timedelta(seconds=1))
    assert fire() == 0
    instance.refresh_from_db()
    assert instance.current_step_status.name == "Open"

    clock.shift(dt.timedelta(seconds=1))
    assert fire() == 1
    instance.refresh_from_db()
    assert instance.current_step_status.name == "Escalated"
    event = instance.last_event
    assert event.kind == EventKind.STATUS_CHANGED
    assert event.actor is None  # the system
    assert event.detail == {"reason": "DEADLINE", "dueAt": (T0 + dt.timedelta(days=2)).isoformat()}
    assert fire() == 0  # fired once


def test_a_deadline_naming_a_completion_status_advances_and_one_naming_cancellation_cancels(clock):
    advancing = in_review({"after": "PT4H30M", "status": "Approved"})
    cancelling = in_review({"after": "P1DT1H", "status": "Dropped"}, name="Other")
    clock.shift(dt.timedelta(days=1, hours=1))
    assert fire() == 2
    advancing.refresh_from_db()
    cancelling.refresh_from_db()
    assert (advancing.state, advancing.current_step.name) == (InstanceState.COMPLETED, "Done")
    assert cancelling.state == InstanceState.CANCELLED
    assert cancelling.last_event.detail["reason"] == "DEADLINE"


def test_the_system_sets_the_status_the_deadline_names_even_when_it_needs_a_permission(clock):
    instance = in_review({"after": "PT1H", "status": "Escalated"}, permission="testapp.escalate")
    clock.shift(dt.timedelta(hours=1))
    fire()
    instance.refresh_from_db()
    assert instance.current_step_status.name == "Escalated"


def test_a_deadline_without_status_records_deadline_passed_without_moving_the_version(clock):
    instance = in_review({"after": "PT1H"})
    version = instance.version
    assert deadlines.is_overdue(WorkflowTimer.objects.get(kind="DEADLINE").due_at) is False
    clock.shift(dt.timedelta(hours=1))
    assert fire() == 1
    instance.refresh_from_db()
    assert kinds(instance)[-1] == EventKind.DEADLINE_PASSED
    assert instance.version == version
    assert list(deadlines.overdue_instances().values_list("instance_id", flat=True)) == [
        instance.pk
    ]
    # a change with the version read before the note does not conflict
    update_workflow_step_status(instance, "Looking", expected_version=version)


def test_a_step_left_before_its_deadline_fires_nothing(clock):
    instance = in_review({"after": "P2D", "status": "Escalated", "remind_before": "P1D"})
    update_workflow_step_status(instance, "Approved")
    assert not WorkflowTimer.objects.exists()
    clock.shift(dt.timedelta(days=3))
    assert fire() == 0
    assert kinds(instance) == ["STARTED", "ADVANCED", "COMPLETED"]


def test_a_status_change_within_the_step_keeps_the_deadline(clock):
    instance = in_review({"after": "PT2H", "status": "Escalated"})
    clock.shift(dt.timedelta(hours=1))
    update_workflow_step_status(instance, "Looking")
    clock.shift(dt.timedelta(hours=1))
    assert fire() == 1
    instance.refresh_from_db()
    assert instance.current_step_status.name == "Escalated"


def test_cancelling_disarms(clock):
    instance = in_review({"after": "PT2H"})
    cancel_workflow_instance(instance)
    assert not WorkflowTimer.objects.exists()


def test_a_rollback_arms_nothing(clock):
    import_workflow(review({"after": "PT1H"}))
    instance = start_workflow_instance("Review", Document.objects.create())
    with pytest.raises(RuntimeError), transaction.atomic():
        update_workflow_step_status(instance, "Sent")
        assert WorkflowTimer.objects.count() == 1
        raise RuntimeError("the caller's transaction fails")
    assert not WorkflowTimer.objects.exists()
    clock.shift(dt.timedelta(hours=2))
    assert fire() == 0


def test_a_reminder_fires_once_before_the_deadline(clock):
    instance = in_review({"after": "P2D", "remind_before": "PT4H"})
    version = instance.version
    clock.shift(dt.timedelta(days=2) - dt.timedelta(hours=4, seconds=1))
    assert fire() == 0
    clock.shift(dt.timedelta(seconds=1))
    assert fire() == 1
    assert fire() == 0
    instance.refresh_from_db()
    assert kinds(instance)[-1] == EventKind.REMINDER
    assert instance.last_event.detail == {"dueAt": (T0 + dt.timedelta(days=2)).isoformat()}
    assert instance.version == version
    clock.shift(dt.timedelta(hours=4))
    assert fire() == 1
    assert kinds(instance).count(EventKind.REMINDER) == 1
    assert kinds(instance)[-1] == EventKind.DEADLINE_PASSED


# --------------------------------------------------------------------------- hold


def test_hold_pauses_the_clock_and_resume_continues_with_the_time_left(clock):
    instance = in_review({"after": "PT10H", "status": "Escalated"})
    clock.shift(dt.timedelta(hours=4))
    set_workflow_on_hold(instance)
    clock.shift(dt.timedelta(days=5))
    assert fire() == 0
    resume_workflow_instance(instance)
    assert WorkflowTimer.objects.get().due_at == T0 + dt.timedelta(days=5, hours=10)
    clock.shift(dt.timedelta(hours=6) - dt.timedelta(seconds=1))
    assert fire() == 0
    clock.shift(dt.timedelta(seconds=1))
    assert fire() == 1
    instance.refresh_from_db()
    assert instance.current_step_status.name == "Escalated"


def test_a_deadline_naming_the_on_hold_status_holds(clock):
    instance = in_review({"after": "PT1H", "status": "Parked"})
    clock.shift(dt.timedelta(hours=1))
    fire()
    instance.refresh_from_db()
    assert instance.state == InstanceState.ON_HOLD
    assert instance.last_event.kind == EventKind.ON_HOLD


# --------------------------------------------------------------------------- versions


def test_each_version_keeps_its_own_deadline_and_migrating_arms_the_new_ones(clock):
    import_workflow(review({"after": "PT1H"}))
    old = start_workflow_instance("Review", Document.objects.create())
    import_workflow(review({"after": "PT5H", "status": "Escalated"}), replace=True)  # version 2
    new = start_workflow_instance("Review", Document.objects.create())
    update_workflow_step_status(old, "Sent")  # on version 1: its deadline
    update_workflow_step_status(new, "Sent")
    due = dict(WorkflowTimer.objects.values_list("instance_id", "due_at"))
    assert due == {old.pk: T0 + dt.timedelta(hours=1), new.pk: T0 + dt.timedelta(hours=5)}

    clock.shift(dt.timedelta(hours=2))
    migrate_instances("Review", 2, filters={"ids": [old.pk]})
    assert WorkflowTimer.objects.get(instance=old).due_at == T0 + dt.timedelta(hours=7)


# --------------------------------------------------------------------------- at


def test_at_reads_a_timestamp_from_the_object(clock):
    import_workflow(review({"at": "document.submitted_at + duration('24h')"}))
    document = Document.objects.create(submitted_at=T0 + dt.timedelta(hours=1))
    instance = update_workflow_step_status(start_workflow_instance("Review", document), "Sent")
    assert WorkflowTimer.objects.get().due_at == T0 + dt.timedelta(hours=25)
    clock.shift(dt.timedelta(hours=25))
    assert fire() == 1
    assert kinds(instance)[-1] == EventKind.DEADLINE_PASSED


def test_an_at_that_gives_no_timestamp_is_recorded_as_an_error_never_a_crash(clock, caplog):
    import_workflow(review({"at": "document.submitted_at", "status": "Escalated"}))
    instance = start_workflow_instance("Review", Document.objects.create(submitted_at=None))
    instance = update_workflow_step_status(instance, "Sent")  # the change succeeds
    assert fire() == 1
    instance.refresh_from_db()
    event = instance.last_event
    assert event.kind == EventKind.DEADLINE_ERROR
    assert event.detail == {"reason": "NOT_A_TIMESTAMP", "key": "at"}
    assert instance.current_step_status.name == "Open"
    # whoever runs the worker is told: the timer is used up
    warned = [r for r in caplog.records if r.name == "django_steps" and r.levelname == "WARNING"]
    assert [f"instance {instance.pk} " in r.getMessage() for r in warned] == [True]
    assert "reason NOT_A_TIMESTAMP" in warned[0].getMessage()


def test_a_deadline_whose_status_change_fails_records_an_error(clock, caplog):
    spec = review({"after": "PT1H", "status": "Approved"})
    spec["transitions"][1]["condition"] = "document.missing_field > 1"
    import_workflow(spec)
    instance = start_workflow_instance("Review", Document.objects.create())
    instance = update_workflow_step_status(instance, "Sent")
    clock.shift(dt.timedelta(hours=1))
    assert fire() == 1
    instance.refresh_from_db()
    assert instance.last_event.kind == EventKind.DEADLINE_ERROR
    assert instance.last_event.detail == {"reason": "CONDITION_ERROR", "status": "Approved"}
    assert instance.current_step.name == "Review"
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"instance {instance.pk} " in m and "CONDITION_ERROR" in m for m in warned)


# --------------------------------------------------------------------------- racing


def test_a_users_change_after_a_firing_with_the_old_version_conflicts(clock):
    instance = in_review({"after": "PT1H", "status": "Escalated"})
    seen = instance.version
    clock.shift(dt.timedelta(hours=1))
    fire()
    with pytest.raises(VersionConflict):
        update_workflow_step_status(instance, "Approved", expected_version=seen)
    assert kinds(instance).count(EventKind.STATUS_CHANGED) == 1


def test_a_timer_whose_instance_left_its_step_is_discarded_not_applied(clock):
    instance = in_review({"after": "PT1H", "status": "Escalated"})
    timer = WorkflowTimer.objects.get()
    update_workflow_step_status(instance, "Approved")
    WorkflowTimer.objects.bulk_create([timer])  # as if the disarming had not been seen
    clock.shift(dt.timedelta(hours=1))
    assert fire() == 1
    assert not WorkflowTimer.objects.exists()
    assert kinds(instance) == ["STARTED", "ADVANCED", "COMPLETED"]


# --------------------------------------------------------------------------- the worker


def test_a_worker_that_caught_up_sleeps_until_the_next_timer_at_most_a_poll(clock):
    assert deadlines.seconds_to_wait(0.5) == 0.5  # nothing armed
    in_review({"after": "PT1M"})
    assert deadlines.seconds_to_wait(0.5) == 0.5  # not due within a poll
    clock.shift(dt.timedelta(seconds=59.75))
    assert deadlines.seconds_to_wait(0.5) == pytest.approx(0.25)
    clock.shift(dt.timedelta(seconds=1))
    assert deadlines.seconds_to_wait(0.5) == 0.02  # overdue: sweep again at once


def test_steps_worker_once_fires_everything_due(clock, capsys):
    for name in ("A", "B", "C"):
        in_review({"after": "PT1M"}, name=name)
    clock.shift(dt.timedelta(minutes=1))
    call_command("steps_worker", "--once", "--batch", "2")
    assert "3 timer(s) handled." in capsys.readouterr().out
    assert WorkflowEvent.objects.filter(kind=EventKind.DEADLINE_PASSED).count() == 3


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("deadline", "path"),
    [
        ({"after": "P2D", "status": "Nope"}, "steps[1].deadline.status"),
        ({"after": "P1M"}, "steps[1].deadline.after"),
        ({"after": "P1Y"}, "steps[1].deadline.after"),
        ({"after": "2 days"}, "steps[1].deadline.after"),
        ({"after": "P"}, "steps[1].deadline.after"),
        ({"after": "P2D", "remind_before": "soon"}, "steps[1].deadline.remind_before"),
        ({"after": "P2D", "at": "document.due"}, "steps[1].deadline"),
        ({"status": "Escalated"}, "steps[1].deadline"),
        ({"at": "'tomorrow'"}, "steps[1].deadline.at"),
        ({"at": "1 + 1"}, "steps[1].deadline.at"),
        ({"at": "document.due >"}, "steps[1].deadline.at"),
        ({"after": "P2D", "when": "later"}, "steps[1].deadline.when"),
    ],
)
def test_a_bad_deadline_is_a_definition_problem(deadline, path):
    with pytest.raises(InvalidDefinition) as excinfo:
        import_workflow(review(deadline))
    assert path in {problem["path"] for problem in excinfo.value.problems}


def test_a_good_deadline_is_accepted_and_exported():
    from django_steps.definitions import export_workflow

    deadline = {"at": "timestamp('2030-01-01T00:00:00Z')", "remind_before": "PT4H"}
    workflow = import_workflow(review(deadline))
    assert export_workflow(workflow)["steps"][1]["deadline"] == deadline
    assert "deadline" not in export_workflow(workflow)["steps"][0]


def test_a_change_between_steps_without_deadline_costs_no_query_more(clock):
    import_workflow(review(None))
    instance = start_workflow_instance("Review", Document.objects.create())
    with CaptureQueriesContext(connection) as queries:
        update_workflow_step_status(instance, "Sent")
        update_workflow_step_status(instance, "Looking")
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "workflowtimer" in q["sql"]]


@pytest.mark.postgres
def test_on_postgresql_timers_cost_no_statement_more_than_a_step_without_deadline(clock):
    """Arming, pausing, resuming and disarming are written in the change's one statement."""
    import_workflow(review({"after": "PT10H", "remind_before": "PT1H"}, name="Timed"))
    import_workflow(review(None, name="Plain"))
    H9 = dt.timedelta(hours=9)

    def statements(name: str) -> tuple[list[int], list[list]]:
        instance = start_workflow_instance(name, Document.objects.create())
        counts, timers = [], []
        for change in (
            lambda: update_workflow_step_status(instance, "Sent"),  # enters Review
            lambda: set_workflow_on_hold(instance),
            lambda: resume_workflow_instance(instance),
            lambda: update_workflow_step_status(instance, "Approved"),  # leaves it
        ):
            with CaptureQueriesContext(connection) as queries:
                change()
            counts.append(len(queries.captured_queries))
            rows = WorkflowTimer.objects.filter(instance=instance).order_by("kind")
            timers.append(list(rows.values_list("kind", "due_at", "remaining")))
        return counts, timers

    timed, plain = statements("Timed"), statements("Plain")
    assert timed[0] == plain[0]
    assert timed[1] == [
        [("DEADLINE", T0 + dt.timedelta(hours=10), None), ("REMINDER", T0 + H9, None)],
        [("DEADLINE", None, dt.timedelta(hours=10)), ("REMINDER", None, H9)],
        [("DEADLINE", T0 + dt.timedelta(hours=10), None), ("REMINDER", T0 + H9, None)],
        [],
    ]
