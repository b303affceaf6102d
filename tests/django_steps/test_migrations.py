"""The squashed migration (django-steps 0.2.0): it matches the models, a database migrated to the
end of 0.1.0's chain needs nothing more, and one part-way through that chain is refused with a
stable check id instead of Django's silence."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from django_steps.checks import SQUASHED

pytestmark = pytest.mark.django_db


def squashed_checks() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(databases=["default"]) if m.id == "django_steps.E010"]


def test_the_migrations_describe_the_models_exactly():
    out = StringIO()
    call_command("makemigrations", "django_steps", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_a_database_migrated_to_the_end_of_0_1_0_needs_nothing_and_counts_as_squashed():
    recorder = MigrationRecorder(connection)
    recorder.record_unapplied("django_steps", SQUASHED)  # as 0.1.0 left it: 0001…0012 only
    assert not squashed_checks()
    out = StringIO()
    call_command("migrate", "django_steps", stdout=out, skip_checks=False)
    assert "No migrations to apply." in out.getvalue()
    assert ("django_steps", SQUASHED) in recorder.applied_migrations()
    out = StringIO()
    call_command("showmigrations", "django_steps", stdout=out)
    assert f"[X] {SQUASHED}" in out.getvalue()


def test_a_database_part_way_through_0_1_0_s_migrations_is_refused_by_name():
    recorder = MigrationRecorder(connection)
    for name in (SQUASHED, "0012_stats_indexes", "0011_work_items"):
        recorder.record_unapplied("django_steps", name)
    with pytest.raises(SystemCheckError, match=r"django_steps\.E010") as refused:
        call_command("migrate", "django_steps", verbosity=0, skip_checks=False)  # as manage.py does
    assert "0010_deadlines" in str(refused.value)
    assert "django-steps 0.1.0" in str(refused.value)
