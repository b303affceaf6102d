"""``manage.py register_documents [paths]``: register the GraphQL documents clients send, for
``DJANGO_STEPS_GRAPHQL["PERSISTED_QUERIES"] = "only"`` (see
:mod:`graphql_api.security.persisted`)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from graphql import GraphQLError, parse, validate

from graphql_api.schemas import load_schema
from graphql_api.security.persisted import operation_hashes, read_documents, write_documents


class Command(BaseCommand):
    help = (
        "Register the operations of GraphQL documents (.graphql files, or folders of them) as "
        'the ones a server with PERSISTED_QUERIES = "only" runs. Each is validated against the '
        "schema first; the registered list is written to PERSISTED_QUERIES_DOCUMENTS (deploy it "
        "with the code)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "paths",
            nargs="*",
            help="Files or folders of .graphql documents (default: client/ under BASE_DIR). "
            "Fragments may be in any of them.",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Register exactly these documents (drop those registered before).",
        )
        parser.add_argument(
            "--schema",
            default=None,
            help='The schema they are validated against, as a dotted path ("mysite.schema:schema"; '
            "default: django-steps' own).",
        )

    def handle(self, *args, paths: list[str], replace: bool, schema: str | None, **options):
        files = _graphql_files(paths or [str(Path(getattr(settings, "BASE_DIR", ".")) / "client")])
        sources = []
        for path in files:
            text = path.read_text(encoding="utf-8")
            try:
                parse(text, no_location=True)
            except GraphQLError as error:
                raise CommandError(f"{path}: {error.message}") from error
            sources.append(text)
        document = parse("\n".join(sources))
        problems = validate(load_schema(schema)._schema, document)
        if problems:
            raise CommandError("\n".join(problem.message for problem in problems))
        operations = operation_hashes(document)
        registered = {} if replace else read_documents()
        added = len(set(operations) - set(registered))
        path = write_documents({**registered, **operations})
        self.stdout.write(
            f"{len(operations)} operations from {len(files)} files ({added} new); "
            f"{len({**registered, **operations})} registered in {path}."
        )


def _graphql_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(path.glob("*.graphql")))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{name}: no such file or folder.")
    if not files:
        raise CommandError("No .graphql document found.")
    return files
