"""The data migrations of existing rows: every workflow gets its first published version, and
every event its own version and the state before it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("django_steps", "0005_paging_indexes")]


@pytest.mark.django_db(transaction=True)
def test_existing_workflows_get_a_version_their_instances_and_events_point_at():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Workflow = apps.get_model("django_steps", "Workflow")
    Step = apps.get_model("django_steps", "WorkflowStep")
    Status = apps.get_model("django_steps", "WorkflowStepStatus")
    Transition = apps.get_model("django_steps", "WorkflowTransition")
    Instance = apps.get_model("django_steps", "WorkflowInstance")
    Event = apps.get_model("django_steps", "WorkflowEvent")
    ContentType = apps.get_model("contenttypes", "ContentType")

    claim_type = ContentType.objects.get(app_label="claims", model="claim")
    workflow = Workflow.objects.create(name="Old", definition_version=7)
    workflow.content_types.add(claim_type)
    first = Step.objects.create(workflow=workflow, name="First", order=1, is_initial_step=True)
    last = Step.objects.create(workflow=workflow, name="Last", order=2, is_final_step=True)
    new = Status.objects.create(step=first, name="New", is_default_status=True)
    Status.objects.create(step=first, name="Done", is_completion_status=True)
    Status.objects.create(
        step=last, name="Closed", is_default_status=True, is_completion_status=True
    )
    Transition.objects.create(workflow=workflow, from_step=first, to_step=last, condition="true")
    instance = Instance.objects.create(
        workflow=workflow,
        current_step=first,
        current_step_status=new,
        version=1,
        content_type=claim_type,
        object_id="1",
    )
    for n, kind, state, from_step, from_status in (
        (1, "STARTED", "ACTIVE", None, None),
        (2, "ON_HOLD", "ON_HOLD", first, new),
    ):
        Event.objects.create(
            instance=instance,
            workflow=workflow,
            sequence=n,
            position=n,
            kind=kind,
            state=state,
            from_step=from_step,
            from_status=from_status,
            to_step=first,
            to_status=new,
        )
    Instance.objects.filter(pk=instance.pk).update(version=2, state="ON_HOLD")
    empty = Workflow.objects.create(name="Empty")

    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("django_steps"))

    from django_steps import compiled
    from django_steps.definitions import export_workflow
    from django_steps.models import Workflow as Current
    from django_steps.models import WorkflowEvent, WorkflowInstance
    from django_steps.versions import publish_workflow

    old = Current.objects.get(name="Old")
    (version,) = old.versions.all()
    assert (version.number, old.definition_version, old.definition_hash) == (
        7,
        7,
        version.content_hash,
    )
    assert WorkflowInstance.objects.get(pk=instance.pk).definition_version == version
    events = WorkflowEvent.objects.filter(instance_id=instance.pk).order_by("sequence")
    assert {event.definition_version for event in events} == {version}
    assert [(e.sequence, e.version, e.from_state, e.state) for e in events] == [
        (1, 1, None, "ACTIVE"),
        (2, 2, "ACTIVE", "ON_HOLD"),
    ]
    assert WorkflowInstance.objects.get(pk=instance.pk).last_sequence == 2
    definition = compiled.for_version(version)
    assert definition.steps[first.pk].transitions[0].condition == "true"
    assert definition.content_type_ids == {claim_type.pk}
    # Publishing the unchanged rows again makes no new version: the hash is the same.
    assert publish_workflow(old) == version
    assert export_workflow(old)["steps"][0]["statuses"][0]["name"] == "New"
    assert Current.objects.get(name="Empty").versions.get().number == 1
    assert empty.pk
