"""``manage.py export_workflow NAME [--format yaml|json]``: print a workflow's definition."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from django_steps.definitions import dump_document, export_workflow
from django_steps.models import Workflow


class Command(BaseCommand):
    help = "Print the definition document of a workflow (YAML by default)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The workflow's name.")
        parser.add_argument("--format", choices=("yaml", "json"), default="yaml")

    def handle(self, *args, **options):
        workflow = Workflow.objects.filter(name=options["name"]).first()
        if workflow is None:
            raise CommandError(f'No workflow is named "{options["name"]}".')
        self.stdout.write(
            dump_document(export_workflow(workflow), format=options["format"]), ending=""
        )
