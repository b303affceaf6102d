"""``manage.py workflow_diagram NAME``: print a workflow as a Mermaid flowchart."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from django_steps.diagram import workflow_to_mermaid
from django_steps.models import Workflow


class Command(BaseCommand):
    help = "Print a workflow as a Mermaid flowchart (paste into any Mermaid renderer)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The workflow's name.")

    def handle(self, *args, **options):
        workflow = Workflow.objects.filter(name=options["name"]).first()
        if workflow is None:
            raise CommandError(f'No workflow is named "{options["name"]}".')
        self.stdout.write(workflow_to_mermaid(workflow), ending="")
