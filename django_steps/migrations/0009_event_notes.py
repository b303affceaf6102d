"""History rows that record without changing: an event's own ``version`` (a note leaves the
instance's unchanged, so ``sequence`` and ``version`` part), the state before each event, and a
``detail`` for what else an event records. Existing rows: ``version`` is their ``sequence`` and
``from_state`` the state of the event before them, as it always was."""

from django.db import migrations, models

import django_steps.choices


def fill(apps, schema_editor):
    Event = apps.get_model("django_steps", "WorkflowEvent")
    Instance = apps.get_model("django_steps", "WorkflowInstance")
    qn = schema_editor.connection.ops.quote_name
    events, instances = qn(Event._meta.db_table), qn(Instance._meta.db_table)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"UPDATE {events} SET {qn('version')} = {qn('sequence')}")
        cursor.execute(
            f"UPDATE {events} SET {qn('from_state')} = (SELECT p.{qn('state')} FROM {events} p "
            f"WHERE p.{qn('instance_id')} = {events}.{qn('instance_id')} "
            f"AND p.{qn('sequence')} = {events}.{qn('sequence')} - 1)"
        )
        cursor.execute(f"UPDATE {instances} SET {qn('last_sequence')} = {qn('version')}")


class Migration(migrations.Migration):
    dependencies = [("django_steps", "0008_versions_required")]

    operations = [
        migrations.AddField(
            model_name="workflowinstance",
            name="last_sequence",
            field=models.PositiveIntegerField(
                default=0,
                editable=False,
                help_text="The sequence number of its newest history row (changes and notes).",
            ),
        ),
        migrations.AddField(
            model_name="workflowevent",
            name="version",
            field=models.PositiveIntegerField(
                default=0, help_text="The instance's version after the event."
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="workflowevent",
            name="from_state",
            field=models.CharField(
                blank=True,
                choices=django_steps.choices.InstanceState.choices,
                help_text="The instance's state before the event (null for STARTED).",
                max_length=16,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="workflowevent",
            name="detail",
            field=models.JSONField(
                blank=True,
                help_text='What else the event records, e.g. {"reason": "DEADLINE"} for a change '
                "the system made, or the user a work item was delegated to.",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="workflowevent",
            name="kind",
            field=models.CharField(choices=django_steps.choices.EventKind.choices, max_length=20),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
