"""Optimistic changes on PostgreSQL: one read and one compare-and-set write per change, no lost
update when writers in separate processes race on one instance, a gap-free commit-ordered
history, and a change overtaken between its read and its write decided again on the new state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_steps.exceptions import VersionConflict
from django_steps.models import WorkflowEvent, WorkflowInstance
from django_steps.services import start_workflow_instance, update_workflow_step_status
from django_steps.signals import workflow_event_committed
from tests.conftest import make_workflow
from tests.django_steps.test_services import routing
from tests.graphql_api.live.live import ROOT, database_url
from tests.testapp.models import Document

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workflow(db):
    return make_workflow("Routing", routing([("Fast", "", 0)]))


WRITER = """
import json, sys, django
django.setup()
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_steps.models import WorkflowInstance
from django_steps.services import update_workflow_step_status

pk, changes, offset = (int(a) for a in sys.argv[1:4])
mine = WorkflowInstance.objects.get(pk=pk)  # soon stale: the other process moves it on
print("ready", flush=True)
sys.stdin.readline()  # both processes start together
events = []
with CaptureQueriesContext(connection) as statements:
    for i in range(changes):
        changed = update_workflow_step_status(mine, "Checking" if (i + offset) % 2 else "New")
        events.append(changed.last_event.pk)
print(json.dumps({"events": events, "statements": len(statements.captured_queries)}), flush=True)
"""


def test_writers_in_two_processes_racing_on_one_instance_lose_no_update(workflow):
    instance = start_workflow_instance("Routing", Document.objects.create())
    per_process = 150
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(ROOT),
    }
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(instance.pk), str(per_process)]
            + [str(offset)],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for offset in (0, 1)
    ]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready"
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    outputs = [writer.communicate(timeout=300)[0] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], outputs
    reports = [json.loads(output.strip().splitlines()[-1]) for output in outputs]

    total = 2 * per_process
    final = WorkflowInstance.objects.get(pk=instance.pk)
    assert final.version == final.last_sequence == total + 1  # + the STARTED event
    events = WorkflowEvent.objects.filter(instance=instance)
    # each change's event is there once, and nothing else is
    returned = [pk for report in reports for pk in report["events"]]
    assert len(set(returned)) == total
    assert set(returned) == set(events.exclude(kind="STARTED").values_list("pk", flat=True))
    # gap-free, commit-ordered: sequences 1..n, the global cursor order is the sequence order
    assert sorted(events.values_list("sequence", flat=True)) == list(range(1, total + 2))
    in_cursor_order = sorted(events, key=lambda e: e.cursor)  # the order readers get them in
    assert [e.sequence for e in in_cursor_order] == list(range(1, total + 2))
    assert [e.version for e in in_cursor_order] == list(range(1, total + 2))
    # each change was decided on the state the previous one left: no stale read was written
    chain = [(e.from_status_id, e.to_status_id) for e in in_cursor_order]
    assert all(prev[1] == cur[0] for prev, cur in zip(chain, chain[1:], strict=False))
    statements = sum(report["statements"] for report in reports)
    print(f"\n{total} changes from 2 processes in {statements} statements")
    assert statements >= 2 * total


def test_an_advancing_update_is_one_read_and_one_write(workflow):
    instance = start_workflow_instance("Routing", Document.objects.create())
    with CaptureQueriesContext(connection) as statements:
        update_workflow_step_status(instance, "Checking")
    sql = [q["sql"] for q in statements.captured_queries]
    assert len(sql) == 2, sql  # no BEGIN, no COMMIT: each statement is its own transaction
    assert sql[0].startswith("SELECT") and "FOR UPDATE" not in sql[0]
    assert sql[1].startswith("WITH u AS (UPDATE")


def test_the_read_and_the_write_of_a_change_are_prepared_when_the_connection_prepares(workflow):
    # the demo settings set OPTIONS["prepare_threshold"] (5): psycopg prepares a statement
    # after five uses on a connection, and the server plans it no more
    assert connection.settings_dict["OPTIONS"].get("prepare_threshold") == 5
    instance = start_workflow_instance("Routing", Document.objects.create())
    for i in range(7):
        update_workflow_step_status(instance, "Checking" if i % 2 == 0 else "New")
    assert instance.version == 8
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(s.startswith("SELECT") and "django_steps_workflowinstance" in s for s in prepared)
    assert any(s.startswith("WITH u AS (UPDATE") for s in prepared)
    # prepared or not, the history is the same: one event per change, in order
    events = WorkflowEvent.objects.filter(instance=instance).order_by("sequence")
    assert [e.version for e in events] == list(range(1, 9))


def _overtake_once(instance_pk: int, status: str):
    """Patch the read so that, after the first optimistic read, another change of the instance
    commits (in another thread, on its own connection) before the write."""
    from django_steps import statements

    real, done = statements.read_for_change, []

    def read_then_overtaken(*args, **kwargs):
        read = real(*args, **kwargs)
        if not done:
            done.append(True)

            def other():
                try:
                    update_workflow_step_status(WorkflowInstance(pk=instance_pk), status)
                finally:
                    connection.close()

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(30)
        return read

    return read_then_overtaken


def test_a_change_overtaken_after_its_read_is_decided_again_on_the_new_state(workflow, monkeypatch):
    from django_steps import statements

    instance = start_workflow_instance("Routing", Document.objects.create())
    published = []

    def receiver(event, **kwargs):
        published.append(event.pk)

    workflow_event_committed.connect(receiver, dispatch_uid="test_compare_and_set")
    try:
        monkeypatch.setattr(statements, "read_for_change", _overtake_once(instance.pk, "Checking"))
        changed = update_workflow_step_status(instance, "New")
    finally:
        workflow_event_committed.disconnect(dispatch_uid="test_compare_and_set")
    assert changed.version == 3
    events = list(WorkflowEvent.objects.filter(instance=instance).order_by("sequence"))
    assert [(e.sequence, e.kind) for e in events] == [
        (1, "STARTED"),
        (2, "STATUS_CHANGED"),
        (3, "STATUS_CHANGED"),
    ]
    # the second change starts where the one that overtook it ended
    assert events[2].from_status_id == events[1].to_status_id
    # each committed change announced once; the attempt that wrote nothing, never
    assert sorted(published) == [events[1].pk, events[2].pk]
    assert changed.last_event.pk == events[2].pk


def test_with_an_expected_version_an_overtaken_change_is_a_version_conflict(workflow, monkeypatch):
    from django_steps import statements

    instance = start_workflow_instance("Routing", Document.objects.create())
    monkeypatch.setattr(statements, "read_for_change", _overtake_once(instance.pk, "Checking"))
    with pytest.raises(VersionConflict) as caught:
        update_workflow_step_status(instance, "New", expected_version=1)
    assert caught.value.code == "VERSION_CONFLICT"
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 2
    assert WorkflowEvent.objects.filter(instance=instance).count() == 2
