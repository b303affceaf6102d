"""System checks of ``django_steps`` that read the database."""

from __future__ import annotations

import importlib
from typing import Any

from django.core import checks
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

SQUASHED = "0001_squashed_0012_stats_indexes"


def check_migrations_squashed(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``django_steps.E010``: the database applied some, not all, of the migrations that
    django-steps 0.2.0 squashed. Django then silently ignores the squashed migration (``migrate``
    says there is nothing to apply and the tables stay old), so say what to do instead."""
    if not databases:
        return []
    module = importlib.import_module(f"django_steps.migrations.{SQUASHED}")
    replaced = {name for _, name in module.Migration.replaces}
    errors = []
    for using in databases:
        try:
            applied = {
                name
                for app, name in MigrationRecorder(connections[using]).applied_migrations()
                if app == "django_steps"
            }
        except DatabaseError:  # no database to read: nothing to tell
            continue
        done = applied & replaced
        if done and done != replaced:
            errors.append(
                checks.Error(
                    f"The database {using!r} has django_steps migrations up to {max(done)}: "
                    "django-steps 0.2.0 cannot migrate it from there.",
                    hint="Install django-steps 0.1.0 and run `manage.py migrate django_steps` "
                    "first, then install this version and migrate again.",
                    id="django_steps.E010",
                )
            )
    return errors
