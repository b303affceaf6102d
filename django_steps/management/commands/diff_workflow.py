"""``manage.py diff_workflow WORKFLOW FROM TO``: what changed between two published versions."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from django_steps.exceptions import InvalidDefinition
from django_steps.models import Workflow
from django_steps.versions import diff_versions, get_version


class Command(BaseCommand):
    help = (
        "Print the steps, statuses, transitions (conditions, permissions, roles…) added, removed "
        "or changed between two published versions of a workflow."
    )

    def add_arguments(self, parser):
        parser.add_argument("workflow", help="The workflow's name.")
        parser.add_argument("from_version", type=int)
        parser.add_argument("to_version", type=int)

    def handle(self, *args, **options):
        workflow = Workflow.objects.filter(name=options["workflow"]).first()
        if workflow is None:
            raise CommandError(f'No workflow is named "{options["workflow"]}".')
        try:
            old = get_version(workflow, options["from_version"])
            new = get_version(workflow, options["to_version"])
        except InvalidDefinition as exc:
            raise CommandError(exc.message) from exc
        changes = diff_versions(old, new)
        self.stdout.write(f"{workflow.name}: version {old.number} -> {new.number}")
        if not changes:
            self.stdout.write("No changes.")
        signs = {"added": "+", "removed": "-", "changed": "~"}
        for change in changes:
            self.stdout.write(f"{signs[change.action]} {change.part} {change.name}")
            for key, (before, after) in change.changes.items():
                self.stdout.write(f"    {key}: {before!r} -> {after!r}")
