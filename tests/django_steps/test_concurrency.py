"""Concurrent changes on PostgreSQL: no lost update, no deadlock, one instance per object,
writers of different instances that never wait for each other, and a history whose readers
never skip an event (see django_steps/history.py).

SQLite serialises writers (BEGIN IMMEDIATE) and ignores row locks, so these only mean
something on PostgreSQL.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from django_steps import selectors
from django_steps.exceptions import VersionConflict
from django_steps.models import WorkflowEvent, WorkflowInstance
from django_steps.services import start_workflow_instance, update_workflow_step_status
from tests.conftest import make_workflow
from tests.django_steps.test_services import routing
from tests.testapp.models import Document

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JOIN_TIMEOUT = 240  # seconds; a thread still alive after this is reported as a deadlock/hang


def run_threads(count, target):
    """Run ``target(index)`` in ``count`` threads released together; return (results, errors)."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def body(index):
        try:
            barrier.wait(timeout=60)
            results[index] = target(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [t for t in threads if t.is_alive()]
    assert not hung, f"{len(hung)} threads still running after {JOIN_TIMEOUT}s (deadlock?)"
    return results, errors


def recorded(outcome: dict, key: str, body, *args, done: threading.Event | None = None):
    """A daemon thread (not started) running ``body(*args)`` on its own connection: an error
    is kept as ``outcome[key + "_error"]``, and ``done`` is set when it ends, however."""

    def run():
        try:
            body(*args)
        except BaseException as exc:
            outcome[f"{key}_error"] = exc
        finally:
            if done is not None:
                done.set()
            connection.close()

    return threading.Thread(target=run, daemon=True)


@pytest.fixture
def workflow(db):
    return make_workflow("Routing", routing([("Fast", "", 0)]))


def new_instance() -> WorkflowInstance:
    return start_workflow_instance("Routing", Document.objects.create())


def change(instance: WorkflowInstance, status: str) -> WorkflowInstance:
    """Set ``status`` as a request of its own would: from the instance's primary key alone."""
    return update_workflow_step_status(WorkflowInstance(pk=instance.pk), status)


def change_and_stay_open(
    instance: WorkflowInstance,
    changed: threading.Event,
    release: threading.Event,
    *,
    then=None,
) -> int:
    """In one transaction: change ``instance`` (status "Checking"), set ``changed``, wait for
    ``release``, run ``then()`` if given, commit. Returns the change's cursor."""
    with transaction.atomic():
        cursor = change(instance, "Checking").last_event.cursor
        changed.set()
        assert release.wait(30)
        if then is not None:
            then()
    return cursor


def test_32_threads_x_50_status_updates_on_one_instance_lose_nothing(workflow):
    instance = new_instance()
    threads, per_thread = 32, 50

    def worker(index):
        mine = WorkflowInstance.objects.get(pk=instance.pk)
        done = 0
        for i in range(per_thread):
            update_workflow_step_status(mine, "Checking" if (index + i) % 2 else "New")
            done += 1
        return done

    started = time.monotonic()
    results, errors = run_threads(threads, worker)
    elapsed = time.monotonic() - started

    assert errors == []
    successes = sum(results)
    assert successes == threads * per_thread
    final = WorkflowInstance.objects.get(pk=instance.pk)
    events = WorkflowEvent.objects.filter(instance=instance)
    assert final.version == events.count() == successes + 1  # + the STARTED event
    assert sorted(events.values_list("sequence", flat=True)) == list(range(1, successes + 2))
    # The instance's history sorts in version order (some writers had older transaction ids).
    by_cursor = [e.sequence for e in sorted(events, key=lambda e: e.cursor)]
    assert by_cursor == list(range(1, successes + 2))
    # Each history row starts where the previous one ended: no update was based on a stale read.
    chain = list(events.order_by("sequence").values_list("from_status_id", "to_status_id"))
    assert all(prev[1] == cur[0] for prev, cur in zip(chain, chain[1:], strict=False))
    print(f"\n{successes} updates by {threads} threads in {elapsed:.1f}s; version {final.version}")


def test_compare_and_set_under_contention(workflow):
    instance = new_instance()

    def worker(index):
        ok = conflicts = 0
        for i in range(25):
            mine = WorkflowInstance.objects.get(pk=instance.pk)
            try:
                update_workflow_step_status(
                    mine, "Checking" if i % 2 else "New", expected_version=mine.version
                )
                ok += 1
            except VersionConflict as exc:
                assert exc.code == "VERSION_CONFLICT"
                conflicts += 1
        return ok, conflicts

    results, errors = run_threads(8, worker)
    assert errors == []
    successes = sum(ok for ok, _ in results)
    assert successes >= 25  # at least one writer wins each round
    final = WorkflowInstance.objects.get(pk=instance.pk)
    assert final.version == WorkflowEvent.objects.filter(instance=instance).count() == successes + 1
    assert successes + sum(c for _, c in results) == 8 * 25


def test_concurrent_starts_for_one_object_yield_one_instance(workflow):
    doc = Document.objects.create()

    def worker(index):
        return start_workflow_instance("Routing", Document.objects.get(pk=doc.pk)).pk

    results, errors = run_threads(16, worker)
    assert errors == []
    assert len(set(results)) == 1
    assert WorkflowInstance.objects.filter(object_id=str(doc.pk)).count() == 1
    assert WorkflowEvent.objects.filter(instance_id=results[0]).count() == 1


def test_a_change_of_b_commits_while_a_change_of_a_is_open_and_no_reader_skips_either(workflow):
    a, b = new_instance(), new_instance()
    base = selectors.newest_cursor()

    t1_changed, t1_commit = threading.Event(), threading.Event()
    outcome: dict = {}

    def change_a_and_wait():
        outcome["t1"] = change_and_stay_open(a, t1_changed, t1_commit)

    def change_b(key):
        outcome[key] = change(b, "Checking").last_event.cursor

    t1 = recorded(outcome, "t1", change_a_and_wait, done=t1_changed)
    t1.start()
    assert t1_changed.wait(30) and "t1_error" not in outcome

    # A's change is written and uncommitted: two changes of B commit meanwhile, without waiting.
    for key in ("t2", "t3"):
        writer = recorded(outcome, key, change_b, key)
        writer.start()
        writer.join(10)
        assert not writer.is_alive(), f"{key} waited for the open change of another instance"
        assert f"{key}_error" not in outcome
    assert t1.is_alive()

    # A reader must not move past A's change while it may still commit: it sees none of them yet.
    assert list(selectors.events_after(base)) == []
    assert selectors.newest_cursor() == base

    t1_commit.set()
    t1.join(30)
    assert not t1.is_alive() and "t1_error" not in outcome
    events = list(selectors.events_after(base))
    assert [e.cursor for e in events] == sorted([outcome["t1"], outcome["t2"], outcome["t3"]])
    assert [(e.instance_id, e.sequence) for e in events] == [(a.pk, 2), (b.pk, 2), (b.pk, 3)]


def test_an_outer_transaction_changing_a_then_b_does_not_deadlock_with_a_change_of_b(workflow):
    """History positions taken from one row locked until commit would deadlock here: the outer
    transaction would hold it while it locked B, and a single change of B would hold B while it
    waited for the row. The single change commits at once and the outer one follows it, and
    B's history still sorts in version order (the outer transaction's id is the older)."""
    a, b = new_instance(), new_instance()
    base = selectors.newest_cursor()
    outer_has_a, single_done = threading.Event(), threading.Event()
    outcome: dict = {}

    def outer():
        change_and_stay_open(a, outer_has_a, single_done, then=lambda: change(b, "New"))

    def single():
        assert outer_has_a.wait(30)
        change(b, "Checking")

    threads = [
        recorded(outcome, "outer", outer, done=outer_has_a),
        recorded(outcome, "single", single, done=single_done),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert outcome == {}
    events = list(selectors.events_after(base))
    assert [(e.instance_id, e.sequence, e.kind) for e in events] == [
        (a.pk, 2, "STATUS_CHANGED"),
        (b.pk, 2, "STATUS_CHANGED"),
        (b.pk, 3, "STATUS_CHANGED"),
    ]
    assert WorkflowInstance.objects.get(pk=b.pk).current_step_status.name == "New"


def test_a_reader_never_skips_an_event_while_writers_commit(workflow):
    instances = [new_instance().pk for _ in range(6)]
    start = selectors.newest_cursor()
    writers_done = threading.Event()
    disorder: list = []
    seen: list[int] = []

    def reader():
        cursor = start
        try:
            while True:
                finished = writers_done.is_set()
                batch = [e.cursor for e in selectors.events_after(cursor)]
                if batch:
                    if batch != sorted(batch) or batch[0] <= cursor:
                        disorder.append((cursor, batch[:5]))
                        return
                    seen.extend(batch)
                    cursor = batch[-1]
                elif finished:
                    return
        finally:
            connection.close()

    reader_thread = threading.Thread(target=reader, daemon=True)
    reader_thread.start()

    def writer(index):
        mine = WorkflowInstance(pk=instances[index % len(instances)])
        for i in range(30):
            update_workflow_step_status(mine, "Checking" if i % 2 else "New")
        return 30

    try:
        results, errors = run_threads(12, writer)
    finally:
        writers_done.set()
        reader_thread.join(60)
    assert errors == []
    assert not reader_thread.is_alive()
    assert disorder == []
    # Every event once: a reader that had skipped one would never have read it.
    everything = [e.cursor for e in selectors.events_after(start)]
    assert len(everything) == sum(results)
    assert seen == everything
    # And each instance's events in version order.
    for pk in instances:
        sequences = [e.sequence for e in selectors.events_after(start, instance_id=pk)]
        assert sequences == sorted(sequences)
