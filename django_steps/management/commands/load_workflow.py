"""``manage.py load_workflow FILE [--replace] [--check]``: import a JSON or YAML definition."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from django_steps.definitions import import_workflow, load_document, validate_definition
from django_steps.exceptions import InvalidDefinition, WorkflowInUse


def problems_text(exc: InvalidDefinition) -> str:
    lines = [f"{len(exc.problems) or 1} problem(s) in the workflow definition:"]
    for problem in exc.problems or [{"path": "", "message": exc.message}]:
        lines.append(f"  - {problem['path'] or '(document)'}: {problem['message']}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Create a workflow from a JSON or YAML definition document (use - to read stdin)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the .yaml/.yml/.json document, or - for stdin.")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Update the existing workflow of that name in place and publish it as a new "
            "version (running instances stay on theirs; removed parts are retired).",
        )
        parser.add_argument("--check", action="store_true", help="Only validate; change nothing.")

    def handle(self, *args, **options):
        path = options["file"]
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        try:
            document = load_document(text)
            warnings = validate_definition(document)
            for warning in warnings:
                self.stderr.write(self.style.WARNING(f"warning: {warning}"))
            if options["check"]:
                self.stdout.write(self.style.SUCCESS(f'Workflow "{document["name"]}" is valid.'))
                return
            workflow = import_workflow(document, replace=options["replace"])
        except InvalidDefinition as exc:
            raise CommandError(problems_text(exc)) from exc
        except WorkflowInUse as exc:
            raise CommandError(f"[{exc.code}] {exc.message}") from exc
        steps = workflow.steps.count()
        transitions = workflow.transitions.count()
        self.stdout.write(
            self.style.SUCCESS(
                f'Loaded workflow "{workflow.name}" ({steps} steps, {transitions} transitions, '
                f"published version {workflow.definition_version})."
            )
        )
