"""Deadline workers on PostgreSQL: several worker processes fire each timer exactly once, a
worker killed mid-batch loses nothing, and a user's change racing a firing gives one effect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction

from django_steps import deadlines
from django_steps.choices import EventKind
from django_steps.definitions import import_workflow
from django_steps.exceptions import VersionConflict
from django_steps.models import WorkflowEvent, WorkflowInstance, WorkflowTimer
from django_steps.services import start_workflow_instance, update_workflow_step_status
from tests.conftest import statuses
from tests.graphql_api.live.live import ROOT, database_url
from tests.testapp.models import Document

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def workflow(deadline: dict) -> None:
    import_workflow(
        {
            "name": "Timed",
            "content_types": ["testapp.document"],
            "steps": [
                {
                    "name": "Open",
                    "is_initial_step": True,
                    "deadline": deadline,
                    "statuses": [*statuses("New", "Done"), {"name": "Late"}],
                },
                {
                    "name": "Closed",
                    "is_final_step": True,
                    "statuses": [
                        {"name": "End", "is_default_status": True, "is_completion_status": True}
                    ],
                },
            ],
            "transitions": [{"from_step": "Open", "to_step": "Closed"}],
        }
    )


def started(n: int) -> list[WorkflowInstance]:
    documents = Document.objects.bulk_create([Document(title=f"d{i}") for i in range(n)])
    return [start_workflow_instance("Timed", document) for document in documents]


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(ROOT),
    }


def test_two_worker_processes_fire_each_of_1000_due_timers_exactly_once():
    workflow({"after": "PT0S"})  # due as soon as armed
    instances = started(1000)
    command = [sys.executable, "manage.py", "steps_worker", "--once", "--batch", "25"]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=environment(), stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    handled = [int(output.split()[0]) for output in outputs]
    assert sum(handled) == 1000, outputs
    passed = WorkflowEvent.objects.filter(kind=EventKind.DEADLINE_PASSED)
    assert passed.count() == 1000
    assert set(passed.values_list("instance_id", flat=True)) == {i.pk for i in instances}
    assert not WorkflowTimer.objects.filter(fired_at__isnull=True).exists()


KILLED_MID_BATCH = """
import os, signal, django
django.setup()
from django_steps import deadlines
fire, fired = deadlines._fire, []
def fire_then_die(*args):
    if len(fired) == 5:  # five timers fired in this batch's transaction: die, uncommitted
        os.kill(os.getpid(), signal.SIGKILL)
    fired.append(fire(*args))
    return fired[-1]
deadlines._fire = fire_then_die
deadlines.fire_due(limit=50)
"""


def test_a_worker_killed_mid_batch_loses_nothing():
    workflow({"after": "PT0S", "status": "Late"})
    instances = started(20)
    script = textwrap.dedent(KILLED_MID_BATCH)
    worker = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment(), timeout=120, check=False
    )
    assert worker.returncode == -9
    assert WorkflowTimer.objects.filter(fired_at__isnull=True).count() == 20
    assert not WorkflowEvent.objects.filter(kind=EventKind.STATUS_CHANGED).exists()

    assert deadlines.run_once() == 20  # the next worker fires them all, once
    changed = WorkflowEvent.objects.filter(kind=EventKind.STATUS_CHANGED)
    assert sorted(changed.values_list("instance_id", flat=True)) == sorted(i.pk for i in instances)
    assert all(event.detail["reason"] == "DEADLINE" for event in changed)


def test_a_users_change_racing_a_firing_gives_exactly_one_effect():
    """The user locks the instance first: the worker leaves it alone; the user's change leaves
    the step, and the timer goes with it. Then the other way round: the worker fires first, and
    the user's change, made with the version read before, conflicts."""
    workflow({"after": "PT0S", "status": "Late"})
    first, second = started(2)
    locked, release = threading.Event(), threading.Event()

    def users_change() -> None:
        try:
            with transaction.atomic():
                update_workflow_step_status(first, "Done")  # locks, leaves the step
                locked.set()
                release.wait(30)
        finally:
            close_old_connections()

    user = threading.Thread(target=users_change)
    user.start()
    assert locked.wait(30)
    handled_while_locked = deadlines.fire_due()  # `first` is skipped (locked), `second` fires
    release.set()
    user.join(30)
    assert handled_while_locked == 1
    assert deadlines.run_once() == 0  # the user's commit took `first`'s timer away
    assert [e.kind for e in WorkflowEvent.objects.filter(instance=first).order_by("sequence")] == [
        EventKind.STARTED,
        EventKind.COMPLETED,
    ]

    seen = second.version  # read before the firing above
    with pytest.raises(VersionConflict):
        update_workflow_step_status(second, "Done", expected_version=seen)
    assert [e.kind for e in WorkflowEvent.objects.filter(instance=second).order_by("sequence")] == [
        EventKind.STARTED,
        EventKind.STATUS_CHANGED,
    ]


def test_the_worker_fires_what_falls_due_while_it_runs_and_stops_cleanly_on_sigterm():
    workflow({"after": "PT0S"})
    command = [sys.executable, "manage.py", "steps_worker", "--poll", "0.1"]
    worker = subprocess.Popen(
        command, cwd=ROOT, env=environment(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert "firing due timers every 0.1 s" in worker.stdout.readline()
        (instance,) = started(1)
        for _ in range(300):  # until the running worker fired it (or 30 s passed)
            if WorkflowEvent.objects.filter(kind=EventKind.DEADLINE_PASSED).exists():
                break
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0
    assert "stopped" in out
    assert (
        WorkflowEvent.objects.filter(instance=instance, kind=EventKind.DEADLINE_PASSED).count() == 1
    )


WORKER_WITH_A_FAILING_RECEIVER = """
import django
django.setup()
from django.core.management import call_command
from django.db.models.signals import post_save
from django_steps.models import WorkflowEvent
def explode(sender, instance, **kwargs):  # a bug in the host's code, for one instance
    if instance.instance_id == {poisoned} and instance.kind == "STATUS_CHANGED":
        raise RuntimeError("a bug in the host's receiver")
post_save.connect(explode, sender=WorkflowEvent, weak=False)
call_command("steps_worker", "--poll", "0.1")
"""


def test_the_running_worker_outlives_poisoned_timers_and_fires_the_others():
    """Three instances: one whose deadline's change a host receiver makes fail, one whose
    timer an older release left due in the year 10000 (PostgreSQL holds it, Python cannot
    read it), one ordinary. The worker, running, fires the ordinary one, records the failed
    one, and is still running until SIGTERM."""
    workflow({"after": "PT1S", "status": "Late"})
    poisoned, far, healthy = started(3)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {WorkflowTimer._meta.db_table} SET due_at = '10000-01-01T00:00:00Z' "
            "WHERE instance_id = %s",
            [far.pk],
        )
    script = textwrap.dedent(WORKER_WITH_A_FAILING_RECEIVER.format(poisoned=poisoned.pk))
    worker = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "firing due timers every 0.1 s" in worker.stdout.readline()
        for _ in range(300):  # until both were handled (or 30 s passed)
            if WorkflowTimer.objects.filter(fired_at__isnull=False).count() == 2:
                break
            time.sleep(0.1)
        time.sleep(1)  # a few more sweeps with the poisoned timers still there
        assert worker.poll() is None  # still running
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "stopped" in out
    kinds = dict(WorkflowEvent.objects.filter(sequence=2).values_list("instance_id", "kind"))
    assert kinds == {healthy.pk: EventKind.STATUS_CHANGED, poisoned.pk: EventKind.DEADLINE_ERROR}
    assert f"instance {poisoned.pk} could not fire" in err  # logged, with its traceback
    assert "RuntimeError" in err


def test_deadlines_moving_an_instance_back_and_forth_stop_the_worker_no_longer_than_the_cap():
    step_statuses = statuses("Wait", "Go")
    import_workflow(
        {
            "name": "Loop",
            "content_types": ["testapp.document"],
            "steps": [
                {
                    "name": "One",
                    "is_initial_step": True,
                    "deadline": {"after": "PT0S", "status": "Go"},
                    "statuses": step_statuses,
                },
                {
                    "name": "Two",
                    "deadline": {"after": "PT0S", "status": "Go"},
                    "statuses": step_statuses,
                },
                {"name": "End", "is_final_step": True, "statuses": statuses("Open", "Done")},
            ],
            "transitions": [
                {"from_step": "One", "to_step": "Two"},
                {"from_step": "Two", "to_step": "One", "priority": 10},
                {"from_step": "Two", "to_step": "End", "priority": 0},
            ],
        }
    )
    instance = start_workflow_instance("Loop", Document.objects.create())
    command = [sys.executable, "manage.py", "steps_worker", "--once"]
    worker = subprocess.run(  # fires everything due, then exits: the loop is cut
        command, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=120
    )
    assert worker.returncode == 0, worker.stderr
    assert f"{deadlines.LOOP_CHANGES + 1} timer(s) handled." in worker.stdout
    last = WorkflowEvent.objects.filter(instance=instance).order_by("sequence").last()
    assert (last.kind, last.detail) == (
        EventKind.DEADLINE_ERROR,
        {"reason": "DEADLINE_LOOP", "status": "Go"},
    )
