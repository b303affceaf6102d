"""Concurrent changes on PostgreSQL: no lost update, no deadlock, one instance per object, and
history positions that follow commit order (a reader never sees N+1 without N).

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
from tests.test_services import routing
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
        except BaseException as exc:  # noqa: BLE001 - reported by the test
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


@pytest.fixture
def workflow(db):
    return make_workflow("Routing", routing([("Fast", "", 0)]))


def test_32_threads_x_50_status_updates_on_one_instance_lose_nothing(workflow):
    instance = start_workflow_instance("Routing", Document.objects.create())
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
    positions = sorted(WorkflowEvent.objects.values_list("position", flat=True))
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    # Each history row starts where the previous one ended: no update was based on a stale read.
    chain = list(events.order_by("sequence").values_list("from_status_id", "to_status_id"))
    assert all(prev[1] == cur[0] for prev, cur in zip(chain, chain[1:]))
    print(f"\n{successes} updates by {threads} threads in {elapsed:.1f}s; version {final.version}")


def test_compare_and_set_under_contention(workflow):
    instance = start_workflow_instance("Routing", Document.objects.create())

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


def test_positions_follow_commit_order_not_start_order(workflow):
    a = start_workflow_instance("Routing", Document.objects.create())
    b = start_workflow_instance("Routing", Document.objects.create())
    base = WorkflowEvent.objects.order_by("-position").values_list("position", flat=True).first()

    t1_began, t1_go, t1_has_position, t1_commit = (threading.Event() for _ in range(4))
    outcome: dict = {}

    def first_to_start():
        """Begins its transaction first (locks A), takes its position later, commits last."""
        try:
            with transaction.atomic():
                WorkflowInstance.objects.select_for_update().get(pk=a.pk)
                t1_began.set()
                assert t1_go.wait(30)
                outcome["t1"] = update_workflow_step_status(WorkflowInstance(pk=a.pk), "Checking").last_event.position
                t1_has_position.set()
                assert t1_commit.wait(30)
        except BaseException as exc:  # noqa: BLE001
            outcome["t1_error"] = exc
        finally:
            t1_has_position.set()
            connection.close()

    def later(key):
        try:
            outcome[key] = update_workflow_step_status(WorkflowInstance(pk=b.pk), "Checking").last_event.position
            outcome[f"{key}_at"] = time.monotonic()
        except BaseException as exc:  # noqa: BLE001
            outcome[f"{key}_error"] = exc
        finally:
            connection.close()

    t1 = threading.Thread(target=first_to_start, daemon=True)
    t1.start()
    assert t1_began.wait(30)

    # T2 starts after T1 but commits before it: it gets the earlier position.
    t2 = threading.Thread(target=later, args=("t2",), daemon=True)
    t2.start()
    t2.join(30)
    assert not t2.is_alive() and "t2_error" not in outcome
    assert outcome["t2"] == base + 1
    assert [e.position for e in selectors.events_after(base)] == [base + 1]

    # T1 takes the next position and holds it uncommitted; T3 must wait for T1's commit.
    t1_go.set()
    assert t1_has_position.wait(30)
    assert "t1_error" not in outcome
    assert outcome["t1"] == base + 2
    t3 = threading.Thread(target=later, args=("t3",), daemon=True)
    t3.start()
    t3.join(0.5)
    assert t3.is_alive(), "T3 took a position while T1 still held an uncommitted one"
    # A reader sees neither T1's nor T3's event yet: no gap can ever be observed.
    assert [e.position for e in selectors.events_after(base)] == [base + 1]

    committed_at = time.monotonic()
    t1_commit.set()
    t1.join(30)
    t3.join(30)
    assert not t1.is_alive() and not t3.is_alive()
    assert "t3_error" not in outcome
    assert outcome["t3"] == base + 3 and outcome["t3_at"] >= committed_at

    events = list(selectors.events_after(base))
    assert [e.position for e in events] == [base + 1, base + 2, base + 3]
    assert [e.instance_id for e in events] == [b.pk, a.pk, b.pk]


def test_a_reader_never_sees_a_gap_while_writers_commit(workflow):
    instances = [start_workflow_instance("Routing", Document.objects.create()).pk for _ in range(6)]
    start = WorkflowEvent.objects.order_by("-position").values_list("position", flat=True).first()
    writers_done = threading.Event()
    gaps: list = []
    seen: list[int] = []

    def reader():
        cursor = start
        try:
            while True:
                finished = writers_done.is_set()
                batch = list(selectors.events_after(cursor).values_list("position", flat=True))
                if batch:
                    expected = list(range(cursor + 1, cursor + 1 + len(batch)))
                    if batch != expected:
                        gaps.append((cursor, batch[:5]))
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
    assert gaps == []
    assert seen == list(range(start + 1, start + 1 + sum(results)))
