"""``manage.py migrate_instances WORKFLOW --to N [--mapping FILE] [--dry-run] [--batch-size K]``:
move running instances to another published version (see :mod:`django_steps.versions`)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from django_steps.definitions import load_document
from django_steps.exceptions import InvalidDefinition, WorkflowError
from django_steps.versions import migrate_instances, plan_migration


class Command(BaseCommand):
    help = (
        "Migrate the running instances of a workflow to a published version: --dry-run prints "
        "where each would land or why it cannot move; without it, each movable instance is "
        "migrated in its own transaction (one MIGRATED event each)."
    )

    def add_arguments(self, parser):
        parser.add_argument("workflow", help="The workflow's name.")
        parser.add_argument("--to", type=int, required=True, help="The target version number.")
        parser.add_argument(
            "--mapping",
            help='A JSON or YAML file: {"steps": {"Old": "New"}, "statuses": {"Old step": '
            '{"Old status": "New status"}}} (names kept map to themselves).',
        )
        parser.add_argument(
            "--from-version",
            type=int,
            action="append",
            dest="from_versions",
            help="Only instances on this version (repeatable).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the plan; change nothing."
        )
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Progress every K instances."
        )

    def handle(self, *args, **options):
        mapping = {}
        if options["mapping"]:
            try:
                with open(options["mapping"], encoding="utf-8") as fh:
                    mapping = load_document(fh.read())
            except OSError as exc:
                raise CommandError(
                    f"Cannot read {options['mapping']}: {exc.strerror or exc}"
                ) from exc
            except InvalidDefinition as exc:
                raise CommandError(f"The mapping file: {exc.message}") from exc
        filters = {}
        if options["from_versions"]:
            filters["from_versions"] = options["from_versions"]
        try:
            plan = plan_migration(options["workflow"], options["to"], mapping, filters)
        except InvalidDefinition as exc:
            lines = [exc.message] + [f"  - {p['path']}: {p['message']}" for p in exc.problems]
            raise CommandError("\n".join(lines)) from exc
        except WorkflowError as exc:
            raise CommandError(f"[{exc.code}] {exc.message}") from exc
        target = plan.to_version.number
        for move in plan.moves:
            origin = f"v{move.from_version} {move.from_step} / {move.from_status}"
            if move.can_move:
                self.stdout.write(
                    f"instance {move.instance_id}: {origin} -> v{target} "
                    f"{move.to_step} / {move.to_status}"
                )
            else:
                self.stdout.write(
                    f"instance {move.instance_id}: {origin} cannot move: "
                    f"{move.blocked}: {move.reason}"
                )
        summary = f"{len(plan.movable)} can move, {len(plan.blocked)} cannot"
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {summary}. Nothing was changed.")
            return

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"migrated {done}/{total}")

        result = migrate_instances(
            plan.workflow,
            plan.to_version,
            batch_size=options["batch_size"],
            progress=progress,
            plan=plan,
        )
        for pk, code in sorted(result.failed.items()):
            self.stdout.write(f"instance {pk}: not migrated: {code}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(result.migrated)} instance(s) migrated to version {target}; "
                f"{len(result.failed)} changed meanwhile or failed; "
                f"{len(plan.blocked)} cannot move."
            )
        )
