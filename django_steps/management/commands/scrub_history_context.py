"""``manage.py scrub_history_context [--dry-run]``: remove fields conditions may not read from
the contexts stored with past events."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, transaction

from django_steps.context import INPUT, readable_fields
from django_steps.models import WorkflowEvent, WorkflowInstance


def scrub(context: Any, hidden: frozenset[str], model_name: str) -> Any:
    """``context`` without the fields named in ``hidden``, wherever an object's fields are kept:
    under ``object`` (how events store them now) and, for events written by earlier versions,
    at the top level and under the model's name. A caller's ``input`` is left as it was."""
    if not isinstance(context, dict):
        return context
    kept = {key: value for key, value in context.items() if key == INPUT or key not in hidden}
    for key in ("object", model_name):
        if key != INPUT and isinstance(kept.get(key), dict):
            kept[key] = {name: value for name, value in kept[key].items() if name not in hidden}
    return kept


class Command(BaseCommand):
    help = (
        "Remove from the contexts stored with past workflow events every field of the attached "
        "model that conditions may not read now: password fields, CONTEXT_SECRET_FIELDS and "
        "CONTEXT_FIELDS (settings.DJANGO_STEPS). Run it once after upgrading from a version that "
        "stored every field, and after narrowing those settings. History is otherwise never "
        "changed: this only takes values out."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the events it would change; change none."
        )

    def handle(self, *args, **options):
        using, dry_run = options["database"], options["dry_run"]
        attached = (
            WorkflowInstance.objects.using(using).values("content_type").order_by().distinct()
        )
        changed = 0
        for content_type in ContentType.objects.using(using).filter(pk__in=attached):
            model = content_type.model_class()
            if model is None:  # the model's app was removed: nothing says which fields it had
                continue
            hidden = frozenset(f.name for f in model._meta.concrete_fields) - frozenset(
                f.name for f in readable_fields(model)
            )
            if not hidden:
                continue
            events = (
                WorkflowEvent.objects.using(using)
                .filter(instance__content_type=content_type, context__isnull=False)
                .only("pk", "context")
                .order_by("pk")
            )
            with transaction.atomic(using=using):
                for event in events.iterator(chunk_size=500):
                    cleaned = scrub(event.context, hidden, model._meta.model_name)
                    if cleaned == event.context:
                        continue
                    changed += 1
                    if not dry_run:
                        # The history is append-only (WorkflowEvent.save refuses a change): this
                        # takes values out of one column, and changes nothing that happened.
                        WorkflowEvent.objects.using(using).filter(pk=event.pk).update(
                            context=cleaned
                        )
        verb = "Would scrub" if dry_run else "Scrubbed"
        self.stdout.write(self.style.SUCCESS(f"{verb} the stored context of {changed} events."))
