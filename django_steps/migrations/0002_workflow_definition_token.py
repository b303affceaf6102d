import uuid

from django.db import migrations, models


def give_each_workflow_its_own_token(apps, schema_editor):
    Workflow = apps.get_model("django_steps", "Workflow")
    for pk in Workflow.objects.using(schema_editor.connection.alias).values_list("pk", flat=True):
        Workflow.objects.using(schema_editor.connection.alias).filter(pk=pk).update(
            definition_token=uuid.uuid4()
        )


class Migration(migrations.Migration):
    dependencies = [("django_steps", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="workflow",
            name="definition_token",
            field=models.UUIDField(default=uuid.uuid4, editable=False),
        ),
        migrations.RunPython(give_each_workflow_its_own_token, migrations.RunPython.noop),
    ]
