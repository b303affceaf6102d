"""Shared set-up for the benchmark scripts: Django on a scratch database, seeded data, timing.

Scratch databases (PostgreSQL) have a name no other run can have and are always dropped: on
normal exit, on an exception, on Ctrl-C and on SIGTERM (run.py's timeout sends SIGTERM first).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The demo settings want a secret key when DEBUG is off (benchmarks measure with DEBUG off); the
# servers a benchmark starts inherit it.
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret-" + "x" * 40)


def _raise_exit(signum, frame):
    # Drop the scratch databases first: the exception below may land in code that swallows it
    # (a broad ``except`` in a library) or the process may be killed before ``atexit`` runs.
    # WITH (FORCE) ends this process's own connections; the names are this process's alone.
    import psycopg

    while _SCRATCH:
        admin_url, name = _SCRATCH.pop()
        with contextlib.suppress(Exception), psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    raise SystemExit(128 + signum)


def handle_termination() -> None:
    """SIGTERM / SIGHUP (run.py's timeout, a closed terminal): the scratch databases are dropped
    at once, then the process unwinds like Ctrl-C does, so every ``finally`` runs (servers are
    stopped)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)


_SCRATCH: list[tuple[str, str]] = []  # (admin URL, database name) created by this process


def scratch_database(label: str) -> str | None:
    """With ``DATABASE_URL=postgres://…``: create a database of a name no other run can have
    (``bench_<label>_<pid>_<random>``), dropped when this process exits (normally, on an
    exception, Ctrl-C or SIGTERM), and return its URL. None on SQLite."""
    url = os.environ.get("BENCH_ORIGINAL_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return None
    import psycopg

    os.environ["BENCH_ORIGINAL_DATABASE_URL"] = url
    parts = urlsplit(url)
    admin_url = urlunsplit(parts._replace(scheme="postgresql"))
    name = f"bench_{label}_{os.getpid()}_{secrets.token_hex(4)}"
    handle_termination()
    if not _SCRATCH:
        atexit.register(drop_scratch_databases)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _SCRATCH.append((admin_url, name))
    return urlunsplit(parts._replace(path=f"/{name}"))


def close_django_connections() -> None:
    """Close this process's connections, and the psycopg pools that keep them open."""
    if "django.db" not in sys.modules:
        return
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()
        if conn.alias in getattr(conn, "_connection_pools", {}):  # a pool was opened (PostgreSQL)
            conn.close_pool()


def drop_scratch_databases() -> None:
    """Drop the databases :func:`scratch_database` created. Our servers have been stopped by
    then; a connection still closing is waited for. Only as a last resort ``WITH (FORCE)``:
    the name is this process's alone, so that can only end our own stragglers."""
    import psycopg

    with contextlib.suppress(Exception):
        close_django_connections()
    while _SCRATCH:
        admin_url, name = _SCRATCH.pop()
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                for _attempt in range(50):
                    try:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                        break
                    except psycopg.errors.ObjectInUse:
                        time.sleep(0.2)
                else:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as error:
            print(f"could not drop the scratch database {name}: {error}", file=sys.stderr)


def setup_django(settings_module: str, label: str) -> str:
    """Configure Django and migrate. SQLite in memory by default; with DATABASE_URL=postgres://…
    a scratch database (see :func:`scratch_database`) so a benchmark never touches real data."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    url = scratch_database(label)
    if url:
        os.environ["DATABASE_URL"] = url
        backend = "postgresql"
    else:
        os.environ["DATABASE_URL"] = "sqlite://:memory:"
        backend = "sqlite"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return backend


FIVE_STEPS = {
    "steps": [
        {
            "name": f"Step {i}",
            "order": i,
            "is_initial_step": i == 1,
            "is_final_step": i == 5,
            "statuses": [
                {"name": "Open", "is_default_status": True},
                {"name": "Working"},
                {"name": "Done", "is_completion_status": True},
                {"name": "Paused", "is_on_hold_status": True},
            ],
        }
        for i in range(1, 6)
    ],
    "transitions": [
        {
            "from_step": f"Step {i}",
            "to_step": f"Step {i + 1}",
            "condition": "claim.amount > 10" if i == 2 else "",
        }
        for i in range(1, 5)
    ],
}


def create_workflow(name: str, spec: dict = FIVE_STEPS):
    from django.contrib.contenttypes.models import ContentType

    from claims.models import Claim
    from django_steps.models import Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition

    workflow = Workflow.objects.create(name=name)
    workflow.content_types.add(ContentType.objects.get_for_model(Claim))
    steps = {}
    for step in spec["steps"]:
        statuses = step["statuses"]
        fields = {k: v for k, v in step.items() if k != "statuses"}
        steps[step["name"]] = WorkflowStep.objects.create(workflow=workflow, **fields)
        for status in statuses:
            WorkflowStepStatus.objects.create(step=steps[step["name"]], **status)
    for t in spec["transitions"]:
        WorkflowTransition.objects.create(
            workflow=workflow,
            from_step=steps[t["from_step"]],
            to_step=steps[t["to_step"]],
            condition=t.get("condition", ""),
        )
    workflow.refresh_from_db()
    return workflow


def seed_instances(workflow_name: str, count: int) -> None:
    """``count`` claims, each with an instance moved to step 2 (3 history rows each)."""
    from decimal import Decimal

    from claims.models import Claim
    from django_steps.services import start_workflow_instance, update_workflow_step_status

    for i in range(count):
        claim = Claim.objects.create(
            title=f"Claim {i}", claimant=f"C{i % 17}", amount=Decimal(100 + i)
        )
        instance = start_workflow_instance(workflow_name, claim)
        update_workflow_step_status(instance, "Working")
        update_workflow_step_status(instance, "Done")


def superuser_client(workflow_name: str, count: int) -> tuple:
    """A new workflow with ``count`` seeded instances, a test client logged in as a superuser
    (any host allowed), and the global ID of one of the instances (after :func:`setup_django`)."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client
    from strawberry.relay import to_base64

    from django_steps.models import WorkflowInstance

    settings.ALLOWED_HOSTS = ["*"]
    create_workflow(workflow_name)
    seed_instances(workflow_name, count)
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "x"))
    pk = WorkflowInstance.objects.values_list("pk", flat=True).first()
    return client, to_base64("WorkflowInstance", pk)


def median_seconds(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def alternate(
    a: Callable[[], object], b: Callable[[], object], rounds: int, warmup: int = 1
) -> tuple[list[float], list[float]]:
    """Seconds of ``a()`` and of ``b()``, ``rounds`` calls each, alternating A/B then B/A next
    round so that drift (a warming cache, a neighbour's load) falls on both alike."""
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for index in range(rounds):
        for fn, samples in ((a, ta), (b, tb)) if index % 2 == 0 else ((b, tb), (a, ta)):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
    return ta, tb


def bench_arguments(doc: str | None, quick: str = "smaller sizes, fewer rounds"):
    """The options every benchmark script takes, ``--quick`` and ``--json``; a script adds its
    own to the parser returned."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", action="store_true", help="print one JSON object {rows: [...]}")
    return parser


def run_backend_bench(
    doc: str | None, label: str, bench: Callable[[bool], list[dict]], title: str
) -> int:
    """The whole ``main()`` of a script that measures in one process on :func:`setup_django`'s
    database (``tests.settings``): its options, ``bench(quick)``'s rows tagged with the backend,
    printed under ``title — <backend>``."""
    args = bench_arguments(doc, "small sizes").parse_args()
    backend = setup_django("tests.settings", label)
    rows = bench(args.quick)
    for row in rows:
        row["backend"] = backend
    emit(rows, args.json, f"{title} — {backend}")
    return 0


def versus(
    figure: str,
    value: float,
    floor: float,
    unit: str,
    *,
    scale: float = 1.0,
    digits: int = 2,
    ratio_digits: int = 2,
    target: str | None = None,
    met: bool | None = None,
) -> dict:
    """A row measuring ``value`` against its ``floor`` (both shown in ``unit`` once multiplied by
    ``scale``, e.g. seconds in µs with 1e6), with their ratio."""
    return {
        "figure": figure,
        "value": round(value * scale, digits),
        "unit": unit,
        "floor": round(floor * scale, digits),
        "ratio": round(value / floor, ratio_digits),
        "target": target,
        "met": met,
    }


def emit(rows: list[dict], as_json: bool, title: str) -> None:
    import json

    if as_json:
        print(json.dumps({"rows": rows}, default=str))
        return
    print(title)
    for row in rows:
        extra = ""
        if row.get("floor") is not None or row.get("peer") is not None:
            extra = f"  (vs {row.get('floor', row.get('peer'))}, ratio {row.get('ratio')})"
        met = "" if row.get("met") is None else ("  met" if row["met"] else "  NOT met")
        print(
            f"  {row['figure']}: {row['value']} {row.get('unit', '')}{extra}  "
            f"target {row.get('target') or '-'}{met}"
        )
