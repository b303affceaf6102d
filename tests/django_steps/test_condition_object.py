"""A condition reads the attached object as committed when the change reads it, whatever
objects the caller holds: their instance's cached object, edited or stale, is never read."""

from __future__ import annotations

from decimal import Decimal

import pytest

from django_steps.exceptions import WorkflowError
from django_steps.models import WorkflowEvent, WorkflowInstance
from django_steps.selectors import evaluate_transitions
from django_steps.services import start_workflow_instance, update_workflow_step_status
from tests.conftest import fork, make_workflow
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db


@pytest.fixture
def started():
    """An instance on Intake, its object (amount 5000) cached on it as the start left it;
    Intake → Fast when ``document.amount > 1000``, else Slow."""
    make_workflow("Routing", fork("Intake", "Fast", "Slow", "document.amount > 1000", priority=10))
    doc = Document.objects.create(amount=Decimal("5000"))
    instance = start_workflow_instance("Routing", doc)
    assert instance.content_object is doc
    return instance


def read_amount(instance) -> Decimal:
    return Decimal(WorkflowEvent.objects.get(pk=instance.last_event.pk).context["object"]["amount"])


def test_an_unsaved_edit_of_the_callers_object_is_not_read(started):
    started.content_object.amount = Decimal("1")  # never saved
    assert evaluate_transitions(started).fired.transition.to_step.name == "Fast"
    changed = update_workflow_step_status(started, "Done")
    assert changed.current_step.name == "Fast"
    assert read_amount(changed) == 5000


def test_a_value_committed_since_the_caller_read_the_object_is_read(started):
    Document.objects.filter(pk=started.object_id).update(amount=Decimal("7"))
    assert started.content_object.amount == Decimal("5000")  # the caller's copy is stale
    assert evaluate_transitions(started).fired.transition.to_step.name == "Slow"
    changed = update_workflow_step_status(started, "Done")
    assert changed.current_step.name == "Slow"
    assert read_amount(changed) == 7


def test_an_object_deleted_since_is_read_as_absent_never_from_the_callers_copy(started):
    Document.objects.filter(pk=started.object_id).delete()
    assert started.content_object is not None  # the caller still holds it
    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(started, "Done")
    assert excinfo.value.code == "CONDITION_ERROR"
    assert WorkflowInstance.objects.get(pk=started.pk).current_step.name == "Intake"


@pytest.mark.parametrize(
    "handle",
    [
        lambda instance: WorkflowInstance(pk=instance.pk),  # no content type: read alone
        lambda instance: WorkflowInstance.objects.get(pk=instance.pk),  # nothing cached
    ],
    ids=["by primary key", "fresh from the database"],
)
def test_an_instance_without_its_object_cached_reads_it_as_committed(started, handle):
    Document.objects.filter(pk=started.object_id).update(amount=Decimal("7"))
    changed = update_workflow_step_status(handle(started), "Done")
    assert changed.current_step.name == "Slow"
    assert read_amount(changed) == 7


def test_an_unknown_variable_names_the_variables_there_are_and_no_value(db):
    """An author who wrote the model's name with an underscore is told which names exist — the
    same words in the change's error and the dry run's — but never a value of the object."""
    make_workflow("Misspelt", fork("Intake", "Fast", "Slow", "docu_ment.amount > 10", priority=10))
    instance = start_workflow_instance(
        "Misspelt", Document.objects.create(amount=Decimal("4321"), title="Top secret")
    )

    dry_run = evaluate_transitions(instance)
    with pytest.raises(WorkflowError) as excinfo:
        update_workflow_step_status(instance, "Done")

    error = excinfo.value
    assert error.code == "CONDITION_ERROR" and error.details["reason"] == "NO_SUCH_VARIABLE"
    assert "no variable 'docu_ment' in the context" in error.message
    available = "available: amount, count, document, due, id, input, ratio, reference, "
    assert available + "submitted_at, title, urgent" in error.message
    assert dry_run.error == error.message
    assert "4321" not in error.message and "Top secret" not in error.message
