"""The append-only history: one row per change, cursors, and signals sent only after commit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction

from django_steps import selectors, writes
from django_steps.choices import EventKind
from django_steps.exceptions import WorkflowError
from django_steps.models import WorkflowEvent, WorkflowInstance
from django_steps.services import (
    advance_workflow_instance,
    cancel_workflow_instance,
    resume_workflow_instance,
    set_workflow_on_hold,
    start_workflow_instance,
    update_workflow_step_status,
)
from django_steps.signals import workflow_event_committed
from tests.conftest import make_workflow
from tests.django_steps.test_services import routing
from tests.graphql_api.conftest import make_user
from tests.testapp.models import Document

CHANGE = "django_steps.change_workflowinstance"


@pytest.fixture
def received():
    """Every ``workflow_event_committed`` sent during the test, as (event, instance) pairs."""
    got = []

    def receiver(sender, event, instance, **kwargs):
        got.append((event, instance))

    workflow_event_committed.connect(receiver)
    yield got
    workflow_event_committed.disconnect(receiver)


@pytest.fixture
def routing_workflow(db):
    return make_workflow(
        "Routing",
        routing(
            [
                ("Fast", "has(input.amount) && input.amount > 1000", 10),
                ("Slow", "has(input.amount) && input.amount > 100", 5),
            ]
        ),
    )


#: The kinds of event of a started instance after its `changes`, in order.
EVERY_KIND = [
    "STARTED",
    "STATUS_CHANGED",
    "ON_HOLD",
    "RESUMED",
    "NO_TRANSITION",
    "ADVANCED",
    "ADVANCED",
    "COMPLETED",
]


def changes(instance, user) -> list:
    """Every kind of change of one instance of the routing workflow, one callable each."""
    return [
        lambda: update_workflow_step_status(instance, "Checking", actor=user),
        lambda: set_workflow_on_hold(instance, actor=user),
        lambda: resume_workflow_instance(instance, actor=user),
        lambda: update_workflow_step_status(instance, "Done", {"amount": 1}, actor=user),
        lambda: advance_workflow_instance(instance, {"amount": 5000}, actor=user),
        lambda: update_workflow_step_status(instance, "Done", actor=user),
        lambda: update_workflow_step_status(instance, "Done", actor=user),
    ]


def every_change(instance, user):
    """Drive one instance through every kind of change; returns the kinds written."""
    for change in changes(instance, user):
        change()
    return EVERY_KIND


@pytest.mark.django_db
def test_exactly_one_event_per_change_with_its_version_and_the_state_before_it(routing_workflow):
    user = make_user("ada", "django_steps.view_workflowinstance", CHANGE, "testapp.view_document")
    instance = start_workflow_instance("Routing", Document.objects.create(), actor=user)
    versions = [instance.version]
    kinds = ["STARTED"]
    for step in changes(instance, user):
        count = WorkflowEvent.objects.count()
        step()
        assert WorkflowEvent.objects.count() == count + 1
        assert instance.last_event.sequence == instance.version
        versions.append(instance.version)
        kinds.append(instance.last_event.kind)

    events = list(selectors.history(instance))
    assert kinds == EVERY_KIND
    assert [e.kind for e in events] == kinds
    assert [e.sequence for e in events] == versions == list(range(1, 9))
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 8
    assert all(e.actor == user for e in events)
    assert events[-1].state == "COMPLETED" and events[2].state == "ON_HOLD"
    assert [e.from_state for e in events] == [None, *(e.state for e in events[:-1])]
    assert [e.version for e in events] == versions

    # from/to chain: each event starts where the previous one ended.
    for before, after in zip(events, events[1:], strict=False):
        assert (after.from_step_id, after.from_status_id) == (
            before.to_step_id,
            before.to_status_id,
        )
    advanced = events[5]
    assert (advanced.from_step.name, advanced.from_status.name) == ("Intake", "Done")
    assert (advanced.to_step.name, advanced.to_status.name) == ("Fast", "Open")
    assert advanced.transition.to_step.name == "Fast"
    assert advanced.context == {"input": {"amount": 5000}}  # the caller's, said to be
    assert events[4].context == {"input": {"amount": 1}}
    assert events[1].context is None  # no condition was evaluated


@pytest.mark.django_db(transaction=True)
def test_a_note_is_history_that_changes_nothing_and_never_makes_a_change_conflict(
    routing_workflow, received
):
    instance = start_workflow_instance("Routing", Document.objects.create())
    update_workflow_step_status(instance, "Checking")
    with transaction.atomic():
        locked = writes._lock(instance, None)
        note = writes.note(locked, EventKind.REMINDER, detail={"due_at": "2026-12-08T09:00:00Z"})
    stored = WorkflowInstance.objects.get(pk=instance.pk)
    assert (stored.version, stored.current_step_status.name, stored.state) == (
        2,
        "Checking",
        "ACTIVE",
    )
    assert (note.sequence, note.version, note.kind) == (3, 2, "REMINDER")
    assert (note.from_state, note.state) == ("ACTIVE", "ACTIVE")
    assert note.from_status_id == note.to_status_id == stored.current_step_status_id
    assert received[-1][0].pk == note.pk  # published after commit, like any event

    # A client that read version 2 before the note still changes the instance.
    changed = update_workflow_step_status(instance, "Done", {"amount": 1}, expected_version=2)
    assert (changed.version, changed.last_event.sequence, changed.last_event.version) == (3, 4, 3)
    events = list(selectors.history(instance))
    assert [(e.sequence, e.version, e.kind) for e in events] == [
        (1, 1, "STARTED"),
        (2, 2, "STATUS_CHANGED"),
        (3, 2, "REMINDER"),
        (4, 3, "NO_TRANSITION"),
    ]
    assert [e.cursor for e in events] == sorted(e.cursor for e in events)

    with transaction.atomic(), pytest.raises(ValueError):
        writes.note(writes._lock(instance, None), EventKind.ADVANCED)


@pytest.mark.django_db(
    transaction=True
)  # readers of the global history see committed, final events
def test_cursors_increase_in_commit_order_across_instances(routing_workflow):
    a = start_workflow_instance("Routing", Document.objects.create())
    b = start_workflow_instance("Routing", Document.objects.create())
    for _ in range(3):
        update_workflow_step_status(a, "Checking")
        update_workflow_step_status(b, "New")
    cursors = [
        e.cursor for e in WorkflowEvent.objects.order_by("id")
    ]  # committed one after the other
    assert cursors == sorted(set(cursors)) and len(cursors) == 8
    if connection.vendor == "sqlite":  # one writer at a time: plain positions, no gap
        positions = [e.position for e in WorkflowEvent.objects.order_by("id")]
        assert positions == list(range(positions[0], positions[0] + 8))

    cursor = cursors[2]
    after = list(selectors.events_after(cursor))
    assert [e.cursor for e in after] == cursors[3:]
    assert [e.cursor for e in selectors.events_after(cursor, instance_id=a.pk)] == [
        e.cursor for e in after if e.instance_id == a.pk
    ]
    assert [e.cursor for e in selectors.events_after(0, until=cursors[1])] == cursors[:2]
    assert len(list(selectors.events_after(0, limit=3))) == 3
    assert list(selectors.events_after(cursors[-1])) == []
    assert selectors.newest_cursor() == cursors[-1]
    assert selectors.newest_cursor(instance_id=a.pk) == cursors[-2]
    other = make_workflow("Other", routing([]))
    start_workflow_instance("Other", Document.objects.create())
    assert [e.workflow_id for e in selectors.events_after(cursors[-1], workflow_id=other.pk)] == [
        other.pk
    ]


@pytest.mark.django_db
def test_events_are_append_only(routing_workflow):
    instance = start_workflow_instance("Routing", Document.objects.create())
    event = WorkflowEvent.objects.get(instance=instance)
    event.kind = EventKind.CANCELLED
    with pytest.raises(ValueError):
        event.save()
    assert WorkflowEvent.objects.get(pk=event.pk).kind == EventKind.STARTED


@pytest.mark.django_db
def test_signal_is_sent_only_when_the_transaction_commits(
    routing_workflow, received, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        instance = start_workflow_instance("Routing", Document.objects.create())
        update_workflow_step_status(instance, "Checking")
    assert received == []  # not committed yet: nothing sent
    assert len(callbacks) == 2
    for callback in callbacks:
        callback()
    assert [(event.kind, event.sequence) for event, _ in received] == [
        ("STARTED", 1),
        ("STATUS_CHANGED", 2),
    ]
    assert all(sent_instance.pk == instance.pk for _, sent_instance in received)
    assert received[1][1].version == 2


@pytest.mark.django_db(transaction=True)
def test_committed_changes_send_one_signal_each(routing_workflow, received):
    instance = start_workflow_instance("Routing", Document.objects.create())
    kinds = every_change(instance, None)
    assert [event.kind for event, _ in received] == kinds
    assert [event.sequence for event, _ in received] == list(range(1, len(kinds) + 1))
    assert [event.pk for event, _ in received] == list(
        WorkflowEvent.objects.filter(instance=instance)
        .order_by("sequence")
        .values_list("pk", flat=True)
    )
    # Refused changes send nothing.
    with pytest.raises(WorkflowError):
        update_workflow_step_status(instance, "Done")
    assert len(received) == len(kinds)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_leaves_no_history_row_and_sends_nothing(routing_workflow, received):
    instance = start_workflow_instance("Routing", Document.objects.create())
    first = WorkflowEvent.objects.get(instance=instance)
    received.clear()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with transaction.atomic():
            update_workflow_step_status(instance, "Checking")
            set_workflow_on_hold(instance)
            assert WorkflowEvent.objects.filter(instance=instance).count() == 3
            raise Boom

    assert received == []
    assert WorkflowEvent.objects.filter(instance=instance).count() == 1
    fresh = WorkflowInstance.objects.get(pk=instance.pk)
    assert (fresh.version, fresh.state, fresh.current_step_status.name) == (1, "ACTIVE", "New")

    update_workflow_step_status(fresh, "Checking")
    event = fresh.last_event
    assert event.sequence == 2 and event.cursor > first.cursor
    assert [e.pk for e in selectors.events_after(first.cursor)] == [event.pk]
    if connection.vendor == "sqlite":  # the rolled-back position is handed out again: no gap
        assert event.position == first.position + 1
    assert [e.kind for e, _ in received] == ["STATUS_CHANGED"]


@pytest.mark.django_db(transaction=True)
def test_signals_of_an_outer_transaction_wait_for_its_commit(routing_workflow, received):
    instance = start_workflow_instance("Routing", Document.objects.create())
    received.clear()
    with transaction.atomic():
        update_workflow_step_status(instance, "Checking")
        cancel_workflow_instance(instance)
        assert received == []
    assert [e.kind for e, _ in received] == ["STATUS_CHANGED", "CANCELLED"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_does_not_fail_the_committed_change(routing_workflow, received, caplog):
    def broken(sender, **kwargs):
        raise ConnectionError("channel layer down")

    workflow_event_committed.connect(broken)
    try:
        instance = start_workflow_instance("Routing", Document.objects.create(amount=Decimal("1")))
        update_workflow_step_status(instance, "Checking")
    finally:
        workflow_event_committed.disconnect(broken)
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 2
    assert [e.kind for e, _ in received] == [
        "STARTED",
        "STATUS_CHANGED",
    ]  # the other receiver still ran
    assert "channel layer down" in caplog.text


@pytest.mark.django_db
def test_model_save_signals_still_fire_for_code_that_listens_to_them(routing_workflow):
    """A project's code may listen to post_save of instances: then the engine saves through the
    ORM (on PostgreSQL it otherwise writes one combined statement), so the signal still fires."""
    from django.db.models.signals import post_save

    saved = []

    def on_save(sender, instance, created, **kwargs):
        saved.append((sender.__name__, created))

    post_save.connect(on_save, sender=WorkflowInstance)
    post_save.connect(on_save, sender=WorkflowEvent)
    try:
        instance = start_workflow_instance("Routing", Document.objects.create())
        update_workflow_step_status(instance, "Checking")
    finally:
        post_save.disconnect(on_save, sender=WorkflowInstance)
        post_save.disconnect(on_save, sender=WorkflowEvent)
    assert saved == [
        ("WorkflowInstance", True),
        ("WorkflowEvent", True),
        ("WorkflowInstance", False),
        ("WorkflowEvent", True),
    ]
    events = list(selectors.history(instance))
    assert [(e.sequence, e.kind) for e in events] == [(1, "STARTED"), (2, "STATUS_CHANGED")]
    assert events[1].cursor > events[0].cursor
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 2
