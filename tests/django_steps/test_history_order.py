"""django_steps.history: the global order of events, cursors, and the tools around them.

The concurrency cases (writers that never wait, readers that never skip) are in
tests/django_steps/test_concurrency.py, on PostgreSQL.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from django_steps import history, selectors
from django_steps.models import WorkflowEvent
from django_steps.services import start_workflow_instance, update_workflow_step_status
from tests.conftest import make_workflow
from tests.django_steps.test_services import routing
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def workflow(db):
    return make_workflow("Routing", routing([("Fast", "", 0)]))


def _changes(count: int) -> list[WorkflowEvent]:
    instance = start_workflow_instance("Routing", Document.objects.create())
    for i in range(count):
        update_workflow_step_status(instance, "Checking" if i % 2 == 0 else "New")
    return list(WorkflowEvent.objects.filter(instance=instance).order_by("sequence"))


def test_a_cursor_is_one_number_that_splits_back_into_its_parts():
    for txid, position in [(0, 0), (0, 42), (7, 256), (2**40, 2**62)]:
        assert history.split_cursor(history.cursor_of(txid, position)) == (txid, position)
    assert history.cursor_of(1, 0) > history.cursor_of(0, 2**62)  # a later transaction sorts after


def test_cursors_of_the_first_version_keep_working(workflow):
    """Rows written before this version keep txid 0 and their plain position; the cursor a client
    holds from then ("42") is the same number."""
    old = _changes(2)
    for n, event in enumerate(old, start=1):
        WorkflowEvent.objects.filter(pk=event.pk).update(txid=0, position=n)
    new = _changes(1)
    assert [e.pk for e in selectors.events_after(1)] == [old[1].pk, old[2].pk, *[e.pk for e in new]]
    assert [e.pk for e in selectors.events_after(3)] == [e.pk for e in new]


def test_a_cursor_this_history_never_handed_out_is_recognised(workflow):
    events = _changes(2)
    using = connection.alias
    assert not history.is_ahead(0, using)
    assert not history.is_ahead(events[-1].cursor, using)
    assert history.is_ahead(history.cursor_of(2**40, 0), using)


def test_renumbering_keeps_the_order_and_later_events_sort_after(workflow, tmp_path):
    before = [e.pk for e in selectors.events_after(0)] + [e.pk for e in _changes(3)]
    call_command("renumber_history", stdout=open(tmp_path / "out", "w"))
    assert set(WorkflowEvent.objects.values_list("txid", flat=True)) == {0}
    assert [e.pk for e in selectors.events_after(0)] == before
    assert [e.position for e in selectors.events_after(0)] == list(range(1, len(before) + 1))
    later = _changes(1)
    assert [e.pk for e in selectors.events_after(0)] == before + [e.pk for e in later]


def test_one_instance_changed_twice_in_one_transaction_keeps_its_order(workflow):
    from django.db import transaction

    instance = start_workflow_instance("Routing", Document.objects.create())
    other = start_workflow_instance("Routing", Document.objects.create())
    with transaction.atomic():
        update_workflow_step_status(instance, "Checking")
        update_workflow_step_status(other, "Checking")
        update_workflow_step_status(instance, "New")
    events = list(selectors.events_after(0))
    mine = [e.sequence for e in events if e.instance_id == instance.pk]
    assert mine == [1, 2, 3]
    if connection.vendor == "postgresql":
        txids = {e.txid for e in events[-3:]}
        assert len(txids) == 1  # one transaction: one id, positions STRIDE apart
        assert [e.position % history.STRIDE for e in events[-3:]] == [0, 0, 0]
