"""Deadlines at the edges: due times at either end of the calendar, a timer whose firing fails,
and deadlines that would move an instance back and forth forever. None of them may stop the
worker, nor keep it busy for nothing; each is recorded on its instance."""

from __future__ import annotations

import datetime as dt
import importlib
from types import SimpleNamespace

import pytest
import time_machine
from django.apps import apps
from django.db import connection
from django.db.models.signals import post_save
from django.template import Context, Template
from django.utils import timezone

from django_steps import deadlines
from django_steps.choices import EventKind, InstanceState
from django_steps.definitions import import_workflow
from django_steps.models import WorkflowEvent, WorkflowTimer
from django_steps.services import (
    resume_workflow_instance,
    set_workflow_on_hold,
    start_workflow_instance,
)
from tests.conftest import statuses
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
CLAMP = importlib.import_module("django_steps.migrations.0002_clamp_due_times")
YEAR_1 = 'timestamp("0001-01-01T00:00:00Z")'
NEVER = 'timestamp("9999-12-31T23:59:59Z")'  # a common "never"


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def chain(first: dict, second: dict, *, name: str = "Chain") -> None:
    """One → Two (→ One again when Two's deadline completes it) → End, on Document."""
    step_statuses = [*statuses("Wait", "Go", hold="Held"), {"name": "Late"}]
    import_workflow(
        {
            "name": name,
            "content_types": ["testapp.document"],
            "steps": [
                {
                    "name": "One",
                    "is_initial_step": True,
                    "deadline": first,
                    "statuses": step_statuses,
                },
                {"name": "Two", "deadline": second, "statuses": step_statuses},
                {"name": "End", "is_final_step": True, "statuses": statuses("Open", "Done")},
            ],
            "transitions": [
                {"from_step": "One", "to_step": "Two"},
                {"from_step": "Two", "to_step": "One", "priority": 10},
                {"from_step": "Two", "to_step": "End", "priority": 0},
            ],
        }
    )


def kinds(instance) -> list[str]:
    return list(instance.events.order_by("sequence").values_list("kind", flat=True))


# --------------------------------------------------------------------------- the calendar's ends


@pytest.mark.parametrize("on_object", [False, True])
def test_a_reminder_before_a_deadline_in_the_year_1_fires_at_once(clock, on_object):
    """`at` in the year 1 (a constant, or a user-entered date of the object) with a reminder a
    day before: entering the step succeeds, both fire at once, the worker goes on."""
    at = "document.submitted_at" if on_object else YEAR_1
    chain({"after": "PT1H", "status": "Go"}, {"at": at, "remind_before": "P1D"})
    year_1 = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    instance = start_workflow_instance("Chain", Document.objects.create(submitted_at=year_1))
    clock.shift(dt.timedelta(hours=1))
    assert deadlines.run_once() == 3  # One's deadline, then Two's reminder and deadline
    assert kinds(instance)[:2] == ["STARTED", "ADVANCED"]
    notes = {event.kind: event.detail for event in instance.events.order_by("sequence")[2:]}
    assert notes == {
        # held a day inside the calendar's start, as every due time is
        EventKind.REMINDER: {"dueAt": deadlines.EARLIEST.isoformat()},
        EventKind.DEADLINE_PASSED: {"dueAt": deadlines.EARLIEST.isoformat()},
    }
    assert deadlines.seconds_to_wait(0.5) == 0.5  # nothing left to fire


def test_resuming_a_deadline_of_9999_12_31_keeps_it_within_the_calendar(clock):
    chain({"at": NEVER, "status": "Go", "remind_before": "P36500D"}, {"after": "PT1H"})
    instance = start_workflow_instance("Chain", Document.objects.create())
    clock.shift(dt.timedelta(days=1))
    set_workflow_on_hold(instance)
    clock.shift(dt.timedelta(days=2))
    resume_workflow_instance(instance)
    due = dict(WorkflowTimer.objects.values_list("kind", "due_at"))
    assert due["DEADLINE"] == deadlines.LATEST  # held at the end, not past it
    armed = deadlines.LATEST  # the `at` itself was held there when the step was entered
    assert due["REMINDER"] == armed - dt.timedelta(days=36500) + dt.timedelta(days=2)
    assert deadlines.seconds_to_wait(0.5) == 0.5
    assert deadlines.run_once() == 0


# --------------------------------------------------------------------------- a failing timer


def test_a_timer_whose_firing_fails_is_recorded_and_the_others_still_fire(clock, caplog):
    """A host's receiver that raises on one instance's change (a bug outside the engine): that
    timer's effect is undone, recorded as a DEADLINE_ERROR and logged, never retried; the
    other instance's deadline fires in the same sweep."""
    chain({"after": "PT1M", "status": "Go"}, {"after": "P1D"})
    poisoned = start_workflow_instance("Chain", Document.objects.create(title="poison"))
    healthy = start_workflow_instance("Chain", Document.objects.create(title="fine"))

    def explode(sender, instance, created, **kwargs):
        if instance.instance_id == poisoned.pk and instance.kind == EventKind.ADVANCED:
            raise RuntimeError("a bug in the host's receiver")

    post_save.connect(explode, sender=WorkflowEvent, weak=False)
    try:
        clock.shift(dt.timedelta(minutes=1))
        assert deadlines.run_once() == 2
        assert deadlines.run_once() == 0  # used up: not retried at every sweep
    finally:
        post_save.disconnect(explode, sender=WorkflowEvent)

    assert kinds(healthy) == ["STARTED", "ADVANCED"]
    assert kinds(poisoned) == ["STARTED", "DEADLINE_ERROR"]
    poisoned.refresh_from_db()
    assert poisoned.current_step.name == "One"  # its failed change was undone
    assert poisoned.last_event.detail == {"reason": "INTERNAL_ERROR"}
    timer = WorkflowTimer.objects.get(instance=poisoned)
    assert timer.fired_at is not None
    assert timer.detail == {"reason": "INTERNAL_ERROR"}
    logged = [r for r in caplog.records if r.name == "django_steps"]
    assert any(r.exc_info and f"instance {poisoned.pk} " in r.getMessage() for r in logged)


# --------------------------------------------------------------------------- loops


def test_deadlines_moving_an_instance_back_and_forth_at_once_stop_after_the_cap(clock, caplog):
    chain({"after": "PT0S", "status": "Go"}, {"after": "PT0S", "status": "Go"})
    instance = start_workflow_instance("Chain", Document.objects.create())
    sweeps = [deadlines.fire_due() for _ in range(2 * deadlines.LOOP_CHANGES)]  # bounded
    assert sum(sweeps) == deadlines.LOOP_CHANGES + 1  # then nothing: the loop is cut
    assert kinds(instance)[1:] == ["ADVANCED"] * deadlines.LOOP_CHANGES + ["DEADLINE_ERROR"]
    instance.refresh_from_db()
    assert instance.last_event.detail == {"reason": "DEADLINE_LOOP", "status": "Go"}
    assert instance.state == InstanceState.ACTIVE  # left where it is, for a user to move on
    assert deadlines.run_once() == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("DEADLINE_LOOP" in message for message in warned)


def test_a_deadline_cycling_slower_than_the_cap_goes_on(clock):
    chain({"after": "PT10S", "status": "Go"}, {"after": "PT10S", "status": "Go"})
    instance = start_workflow_instance("Chain", Document.objects.create())
    for _ in range(3 * deadlines.LOOP_CHANGES):
        clock.shift(dt.timedelta(seconds=10))
        assert deadlines.run_once() == 1
    assert kinds(instance).count(EventKind.ADVANCED) == 3 * deadlines.LOOP_CHANGES
    assert EventKind.DEADLINE_ERROR not in kinds(instance)


@pytest.mark.parametrize(
    "stored",
    [
        # an earlier release's resume on PostgreSQL: no read could make it a datetime
        pytest.param("10000-01-01 00:00:01+00", marks=pytest.mark.postgres, id="year-10000"),
        # an `at` of the calendar's last instant, which no zone east of UTC can show
        pytest.param(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC), id="9999-12-31"),
    ],
)
def test_migrating_holds_due_times_an_earlier_release_wrote_past_the_range(clock, stored):
    """Migration 0002 puts the rows an earlier release wrote outside the range at its end."""
    chain({"at": NEVER, "status": "Go"}, {"after": "PT1H"})
    start_workflow_instance("Chain", Document.objects.create())
    if not isinstance(stored, str):
        stored = connection.ops.adapt_datetimefield_value(stored)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {WorkflowTimer._meta.db_table} SET due_at = %s", [stored])
    # What `migrate` runs (the migrations cannot go back and forth inside a test's transaction
    # on SQLite): with today's models, which it would see as the migration's state.
    CLAMP.clamp(apps, SimpleNamespace(connection=connection))
    assert list(WorkflowTimer.objects.values_list("due_at", flat=True)) == [deadlines.LATEST]
    assert deadlines.seconds_to_wait(0.5) == 0.5


@pytest.mark.parametrize(
    ("at", "zone"),
    [(NEVER, "Pacific/Kiritimati"), (YEAR_1, "America/New_York")],  # east, west of UTC
)
def test_a_due_time_at_either_end_of_the_calendar_can_be_shown_in_any_time_zone(
    clock, settings, at, zone
):
    """A host page showing due times in its own zone (``localtime``, a template's ``date``
    filter) works for an ``at`` on the calendar's first or last day: held a day inside."""
    chain({"at": at, "status": "Go"}, {"after": "PT1H"})
    start_workflow_instance("Chain", Document.objects.create())
    settings.TIME_ZONE = zone
    due = WorkflowTimer.objects.get().due_at
    assert due in (deadlines.EARLIEST, deadlines.LATEST)
    shown = Template("{{ due|date:'Y-m-d' }}").render(Context({"due": due}))
    assert shown == timezone.localtime(due).date().isoformat()
