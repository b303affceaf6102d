"""Engine benchmark: queries and time per start, per advancing update and per full run.

    python bench/engine.py [--quick] [--json]

SQLite in memory by default; with ``DATABASE_URL=postgres://…`` a scratch database
``bench_engine`` is created on that server (and dropped afterwards), so nothing else is touched.

Figures (never pass/fail on time; ``met`` only says whether a target was reached):
- queries per start, per advancing update, per full run through a 5-step workflow
  (counted with ``CaptureQueriesContext``);
- full runs per second;
- the advancing update's time as a ratio to a plain single-row ORM ``update()`` (the floor),
  measured in the same process on the same database;
- CEL: compiling a new condition vs evaluating a cached one, in µs.
Targets: an advancing update in ≤ 5 queries and ≤ 10× the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCRATCH_DB = "bench_engine"

FIVE_STEPS = [f"Step {i}" for i in range(1, 6)]


def setup_database() -> tuple[str, str | None]:
    """Point Django at SQLite in memory or a fresh scratch PostgreSQL database; migrate."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    url = os.environ.get("DATABASE_URL", "")
    admin_url = None
    if url.startswith(("postgres://", "postgresql://", "pgsql://")):
        import psycopg

        parts = urlsplit(url)
        admin_url = urlunsplit(parts._replace(scheme="postgresql"))
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{SCRATCH_DB}"')
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{SCRATCH_DB}"))
        backend = "PostgreSQL"
    else:
        os.environ["DATABASE_URL"] = "sqlite://:memory:"
        backend = "SQLite (in memory)"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return backend, admin_url


def drop_scratch(admin_url: str | None) -> None:
    if not admin_url:
        return
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')


def create_workflow():
    """Five steps; every step has Open (default), Working and Done (completion). The transition
    out of Step 2 has a CEL condition on the content object, the others are unconditional."""
    from django_steps.models import Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition

    from django.contrib.contenttypes.models import ContentType

    from tests.testapp.models import Document

    workflow = Workflow.objects.create(name="Bench five steps")
    workflow.content_types.add(ContentType.objects.get_for_model(Document))
    steps = []
    for order, name in enumerate(FIVE_STEPS, start=1):
        step = WorkflowStep.objects.create(
            workflow=workflow, name=name, order=order, is_initial_step=order == 1, is_final_step=order == 5
        )
        WorkflowStepStatus.objects.create(step=step, name="Open", is_default_status=True)
        WorkflowStepStatus.objects.create(step=step, name="Working")
        WorkflowStepStatus.objects.create(step=step, name="Done", is_completion_status=True)
        steps.append(step)
    for i, (src, dst) in enumerate(zip(steps, steps[1:]), start=1):
        WorkflowTransition.objects.create(
            workflow=workflow,
            from_step=src,
            to_step=dst,
            condition="document.amount > 10 && document.count >= 1" if i == 2 else "",
            priority=1,
        )
    return workflow


def new_document():
    from tests.testapp.models import Document

    return Document.objects.create(amount=1000, count=3)


TX_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


def count_queries(fn) -> tuple[int, list[str]]:
    """Statements run by ``fn``, counted with ``CaptureQueriesContext``. Transaction control
    (BEGIN/COMMIT/SAVEPOINT, which SQLite's backend logs and psycopg's does not) is left out
    so both databases count the same work; the second value lists every statement."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        fn()
    sql = [q["sql"] for q in ctx.captured_queries]
    return sum(1 for s in sql if not s.upper().startswith(TX_CONTROL)), sql


def interleaved_per_op_seconds(fn_a, items_a, fn_b, items_b, rounds: int = 5) -> tuple[float, float]:
    """Mean time per call of ``fn_a`` and ``fn_b``, measured in alternating batches so both see
    the same machine load; the median batch of each is returned."""
    items_a, items_b = list(items_a), list(items_b)
    size_a, size_b = max(1, len(items_a) // rounds), max(1, len(items_b) // rounds)
    means_a, means_b = [], []
    for r in range(rounds):
        for fn, items, size, means in ((fn_a, items_a, size_a, means_a), (fn_b, items_b, size_b, means_b)):
            batch = items[r * size : (r + 1) * size]
            started = time.perf_counter()
            for item in batch:
                fn(item)
            means.append((time.perf_counter() - started) / len(batch))
    return statistics.median(means_a), statistics.median(means_b)


@contextlib.contextmanager
def receivers_disconnected():
    """The engine alone: ``workflow_event_committed`` receivers (the GraphQL publisher, when its
    app is installed) are disconnected while measuring; yields how many there were."""
    from django_steps.signals import workflow_event_committed as signal

    with signal.lock:
        saved = list(signal.receivers)
        signal.receivers[:] = []
        signal.sender_receivers_cache.clear()
    try:
        yield len(saved)
    finally:
        with signal.lock:
            signal.receivers[:] = saved
            signal.sender_receivers_cache.clear()


def row(figure, value, unit="", floor=None, ratio=None, target=None, met=None):
    return {"figure": figure, "value": value, "unit": unit, "floor": floor, "ratio": ratio, "target": target, "met": met}


def bench(quick: bool) -> list[dict]:
    from django.db.models import F

    from django_steps import cel
    from django_steps.services import start_workflow_instance, update_workflow_step_status
    from tests.testapp.models import Document

    create_workflow()
    name = "Bench five steps"
    n_updates = 300 if quick else 1500
    n_runs = 40 if quick else 300
    n_cel = 200 if quick else 2000

    def full_run(doc):
        instance = start_workflow_instance(name, doc)
        for _ in range(5):
            update_workflow_step_status(instance, "Done")
        assert instance.state == "COMPLETED", instance.state
        return instance

    # Warm up: definition cache, CEL programs, content types, connection.
    for _ in range(3):
        full_run(new_document())

    rows: list[dict] = []

    # ---- queries
    doc = new_document()
    start_queries, _ = count_queries(lambda: start_workflow_instance(name, doc))
    instance = start_workflow_instance(name, doc)
    update_workflow_step_status(instance, "Done")  # now on Step 2 (conditional way out)
    advance_cond_queries, cond_sql = count_queries(lambda: update_workflow_step_status(instance, "Done"))
    print("# advancing update:\n#   " + "\n#   ".join(q[:160] for q in cond_sql), file=sys.stderr)
    assert instance.current_step.name == "Step 3"
    advance_plain_queries, _ = count_queries(lambda: update_workflow_step_status(instance, "Done"))
    assert instance.current_step.name == "Step 4"
    status_queries, _ = count_queries(lambda: update_workflow_step_status(instance, "Working"))
    run_queries, _ = count_queries(lambda: full_run(new_document()))

    rows += [
        row("queries per start", start_queries, "queries"),
        row("queries per advancing update (CEL condition on the object)", advance_cond_queries, "queries",
            target="<= 5", met=advance_cond_queries <= 5),
        row("statements per advancing update incl. BEGIN/COMMIT", len(cond_sql), "statements"),
        row("queries per advancing update (unconditional)", advance_plain_queries, "queries",
            target="<= 5", met=advance_plain_queries <= 5),
        row("queries per plain status update", status_queries, "queries"),
        row("queries per full run (start + 5 completions, 5 steps)", run_queries, "queries"),
    ]

    # ---- time: advancing update vs a plain single-row ORM update()
    ready = []
    for _ in range(n_updates):
        inst = start_workflow_instance(name, new_document())
        update_workflow_step_status(inst, "Done")  # on Step 2, its way out has a condition
        ready.append(inst)
    target_doc = new_document()
    half = len(ready) // 2
    with receivers_disconnected() as receivers:
        floor, advancing = interleaved_per_op_seconds(
            lambda _: Document.objects.filter(pk=target_doc.pk).update(count=F("count") + 1),
            range(half),
            lambda inst: update_workflow_step_status(inst, "Done"),
            ready[:half],
        )
    floor_2, with_receivers = interleaved_per_op_seconds(
        lambda _: Document.objects.filter(pk=target_doc.pk).update(count=F("count") + 1),
        range(half),
        lambda inst: update_workflow_step_status(inst, "Done"),
        ready[half:],
    )
    assert all(i.current_step.name == "Step 3" for i in ready)
    ratio = advancing / floor
    rows += [
        row("plain single-row ORM update() (floor)", round(floor * 1e6, 1), "µs"),
        row("advancing update (CEL condition on the object), engine only", round(advancing * 1e6, 1), "µs",
            floor=round(floor * 1e6, 1), ratio=round(ratio, 2), target="<= 10x floor", met=ratio <= 10),
        row(f"advancing update with the {receivers} connected workflow_event_committed receiver(s)",
            round(with_receivers * 1e6, 1), "µs", floor=round(floor_2 * 1e6, 1),
            ratio=round(with_receivers / floor_2, 2)),
    ]

    # ---- full runs per second
    docs = [new_document() for _ in range(n_runs)]
    started = time.perf_counter()
    for d in docs:
        full_run(d)
    elapsed = time.perf_counter() - started
    rows.append(row("full runs per second (5 steps, 6 changes each)", round(n_runs / elapsed, 1), "runs/s"))

    # ---- CEL: compile a new condition vs evaluate a cached one
    expressions = [f"document.amount > {i} && document.count >= {i % 7}" for i in range(n_cel)]
    compiled_before = cel.stats["compiled"]
    started = time.perf_counter()
    for e in expressions:
        cel.compile_condition(e)
    compile_us = (time.perf_counter() - started) / n_cel * 1e6
    assert cel.stats["compiled"] - compiled_before == n_cel
    activation = cel.activation({"document": {"amount": 1000, "count": 3}})
    expression = expressions[5]
    started = time.perf_counter()
    for _ in range(n_cel):
        cel.evaluate(expression, activation)
    eval_us = (time.perf_counter() - started) / n_cel * 1e6
    assert cel.stats["compiled"] - compiled_before == n_cel  # evaluating never recompiles
    rows += [
        row("CEL compile of a new condition", round(compile_us, 1), "µs"),
        row("CEL evaluate of a cached condition", round(eval_us, 1), "µs", floor=round(compile_us, 1),
            ratio=round(eval_us / compile_us, 2)),
    ]
    return rows


def table(rows: list[dict]) -> str:
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "NO"
        return str(v)

    headers = ["figure", "value", "unit", "floor", "ratio", "target", "met"]
    body = [[fmt(r[h]) if h != "figure" else r[h] for h in headers] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *body)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object {rows: [...]}")
    args = parser.parse_args()

    backend, admin_url = setup_database()
    try:
        rows = bench(args.quick)
    finally:
        drop_scratch(admin_url)
    for r in rows:
        r["backend"] = backend
    if args.json:
        print(json.dumps({"backend": backend, "rows": rows}))
    else:
        print(f"django-steps engine benchmark — {backend}{' (quick)' if args.quick else ''}\n")
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
