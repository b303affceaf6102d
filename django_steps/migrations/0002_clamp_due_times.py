"""Due times beyond the year 9999, held back to its last instant.

An earlier release, resuming an instance whose deadline was at the very end of the calendar (an
``at`` of ``timestamp("9999-12-31T23:59:59Z")``, a common "never"), stored a due time in the
year 10000 on PostgreSQL. Python cannot read such a value back: every read of that instance's
``dueAt`` failed, and so did the worker once the timer was the earliest. Resuming now holds due
times at :data:`django_steps.deadlines.LATEST`; this puts the rows already written there too.
SQLite never stored one (the same computation raised in Python before the write).
"""

from django.db import migrations

#: datetime.max in UTC, as PostgreSQL spells it.
LATEST = "9999-12-31 23:59:59.999999+00"


def clamp(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in ("WorkflowTimer", "WorkItem"):
        table = schema_editor.quote_name(apps.get_model("django_steps", name)._meta.db_table)
        schema_editor.execute(f"UPDATE {table} SET due_at = %s WHERE due_at > %s", (LATEST, LATEST))


class Migration(migrations.Migration):
    dependencies = [("django_steps", "0001_squashed_0012_stats_indexes")]

    operations = [migrations.RunPython(clamp, migrations.RunPython.noop, elidable=True)]
