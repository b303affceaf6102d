"""Every existing workflow gets its current definition as a published version (numbered as its
``definition_version``), and every instance and history event points at it."""

from django.db import migrations


def publish_existing(apps, schema_editor):
    from django_steps.definitions import snapshot_workflow
    from django_steps.versions import content_hash

    db = schema_editor.connection.alias
    Workflow = apps.get_model("django_steps", "Workflow")
    models = tuple(
        apps.get_model("django_steps", name)
        for name in ("WorkflowStep", "WorkflowStepStatus", "WorkflowTransition")
    )
    WorkflowVersion = apps.get_model("django_steps", "WorkflowVersion")
    WorkflowInstance = apps.get_model("django_steps", "WorkflowInstance")
    WorkflowEvent = apps.get_model("django_steps", "WorkflowEvent")
    for workflow in Workflow.objects.using(db).order_by("pk"):
        document = snapshot_workflow(workflow, models)
        digest = content_hash(document)
        version = WorkflowVersion.objects.using(db).create(
            workflow=workflow,
            number=workflow.definition_version or 1,
            document=document,
            content_hash=digest,
        )
        Workflow.objects.using(db).filter(pk=workflow.pk).update(
            definition_version=version.number, definition_hash=digest
        )
        WorkflowInstance.objects.using(db).filter(workflow=workflow).update(
            definition_version=version
        )
        WorkflowEvent.objects.using(db).filter(workflow=workflow).update(definition_version=version)


def unpublish(apps, schema_editor):
    db = schema_editor.connection.alias
    for name in ("WorkflowInstance", "WorkflowEvent"):
        apps.get_model("django_steps", name).objects.using(db).update(definition_version=None)
    apps.get_model("django_steps", "WorkflowVersion").objects.using(db).all().delete()


class Migration(migrations.Migration):
    dependencies = [("django_steps", "0006_versions")]

    operations = [migrations.RunPython(publish_existing, unpublish)]
