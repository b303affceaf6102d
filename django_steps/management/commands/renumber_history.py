"""``manage.py renumber_history``: re-key the stored history after a restore into another
cluster."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, transaction

from django_steps import history


class Command(BaseCommand):
    help = (
        "Give every stored workflow event a plain position (1, 2, 3…) in its current order, "
        "so that events written from now on sort after them. Run it once after restoring a dump "
        "into another PostgreSQL cluster (its transaction ids start again from low numbers), "
        "before serving; "
        "clients' cursors from before mean nothing afterwards: have them reload."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, **options):
        using = options["database"]
        with transaction.atomic(using=using):
            count = history.renumber(using)
        self.stdout.write(self.style.SUCCESS(f"Renumbered {count} workflow events."))
