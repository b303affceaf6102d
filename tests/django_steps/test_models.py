"""Model constraints: what the database itself refuses."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from django_steps import models
from django_steps.choices import InstanceState
from django_steps.models import WorkflowInstance, WorkflowStep, WorkflowStepStatus
from django_steps.services import (
    cancel_workflow_instance,
    start_workflow_instance,
    update_workflow_step_status,
)
from tests.conftest import make_workflow
from tests.django_steps.test_services import routing
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db


@pytest.fixture
def workflow(db):
    return make_workflow("Routing", routing([("Fast", "", 10), ("Slow", "", 0)]))


@pytest.mark.parametrize(
    "flag", ["is_default_status", "is_cancellation_status", "is_on_hold_status"]
)
def test_one_default_cancellation_and_on_hold_status_per_step(workflow, flag):
    step = workflow.steps.get(name="Intake")  # already has one of each
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkflowStepStatus.objects.create(step=step, name="Second", **{flag: True})
    # Another step may have its own.
    WorkflowStepStatus.objects.create(
        step=workflow.steps.get(name="Slow"), name="Second", **{flag: flag != "is_default_status"}
    )


def test_names_are_unique_per_workflow_and_per_step(workflow):
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkflowStep.objects.create(workflow=workflow, name="Intake")
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkflowStepStatus.objects.create(step=workflow.steps.get(name="Intake"), name="New")
    with pytest.raises(IntegrityError), transaction.atomic():
        models.Workflow.objects.create(name="Routing")
    other = make_workflow("Other", routing([]))
    assert other.steps.filter(name="Intake").exists()  # same names in another workflow are fine


def test_one_unfinished_instance_per_workflow_and_object(workflow):
    doc = Document.objects.create()
    first = start_workflow_instance("Routing", doc)
    fields = {
        "workflow": workflow,
        "definition_version_id": first.definition_version_id,
        "current_step_id": first.current_step_id,
        "current_step_status_id": first.current_step_status_id,
        "content_type_id": first.content_type_id,
        "object_id": first.object_id,
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkflowInstance.objects.create(state=InstanceState.ON_HOLD, **fields)
    # Finished ones do not count.
    WorkflowInstance.objects.create(state=InstanceState.COMPLETED, **fields)
    WorkflowInstance.objects.create(state=InstanceState.CANCELLED, **fields)
    cancel_workflow_instance(first)
    WorkflowInstance.objects.create(state=InstanceState.ACTIVE, **fields)


def test_steps_and_statuses_in_use_cannot_be_deleted(workflow):
    instance = update_workflow_step_status(
        start_workflow_instance("Routing", Document.objects.create()), "Done"
    )
    # The instance sits on Fast/Open; the history references Intake/New and Intake/Done.
    for obj in (
        WorkflowStep.objects.get(workflow=workflow, name="Fast"),
        WorkflowStepStatus.objects.get(step__workflow=workflow, step__name="Fast", name="Open"),
        WorkflowStep.objects.get(workflow=workflow, name="Intake"),
        WorkflowStepStatus.objects.get(step__workflow=workflow, step__name="Intake", name="New"),
        WorkflowStepStatus.objects.get(step__workflow=workflow, step__name="Intake", name="Done"),
        workflow,
    ):
        with pytest.raises(ProtectedError), transaction.atomic():
            obj.delete()
    assert WorkflowStep.objects.filter(workflow=workflow).count() == 5
    assert models.WorkflowEvent.objects.filter(instance=instance).count() == 2

    # Unused ones can go.
    WorkflowStepStatus.objects.get(
        step__workflow=workflow, step__name="Intake", name="Checking"
    ).delete()
    WorkflowStep.objects.get(workflow=workflow, name="Manual").delete()


def test_deleting_an_unused_workflow_deletes_its_definition(workflow):
    workflow.delete()
    assert not WorkflowStep.objects.exists()
    assert not WorkflowStepStatus.objects.exists()
    assert not models.WorkflowTransition.objects.exists()


def test_transitions_of_a_step_come_highest_priority_first(workflow):
    intake = workflow.steps.get(name="Intake")
    assert [t.to_step.name for t in intake.outgoing_transitions.all()] == ["Fast", "Slow"]
    assert workflow.get_initial_step().name == "Intake"
    assert intake.get_default_status().name == "New"
