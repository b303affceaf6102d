"""Due times outside the calendar's safe range, held a day inside its ends.

An earlier release stored due times no read, or no local time zone, could handle:

* on PostgreSQL, resuming an instance whose deadline was at the very end of the calendar (an
  ``at`` of ``timestamp("9999-12-31T23:59:59Z")``, a common "never") stored one in the year
  10000: every read of that instance's ``dueAt`` failed, and so did the worker once the timer
  was the earliest;
* on any database, an ``at`` on the calendar's last (or first) day, which a page showing it in
  a time zone east (or west) of UTC cannot convert.

Due times are now held within :data:`django_steps.deadlines.EARLIEST` …
:data:`~django_steps.deadlines.LATEST`; this puts the rows already written there too (the
bounds are written out here: a migration does not follow later code).
"""

import datetime as dt

from django.db import migrations

EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=dt.UTC)


def clamp(apps, schema_editor):
    db = schema_editor.connection.alias
    for name in ("WorkflowTimer", "WorkItem"):
        rows = apps.get_model("django_steps", name).objects.using(db)
        rows.filter(due_at__gt=LATEST).update(due_at=LATEST)
        rows.filter(due_at__lt=EARLIEST).update(due_at=EARLIEST)


class Migration(migrations.Migration):
    dependencies = [("django_steps", "0001_squashed_0012_stats_indexes")]

    operations = [migrations.RunPython(clamp, migrations.RunPython.noop, elidable=True)]
