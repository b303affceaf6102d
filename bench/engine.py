"""Engine benchmark: queries and time per start, per advancing update and per full run.

    python bench/engine.py [--quick] [--json]

SQLite in memory by default; with ``DATABASE_URL=postgres://…`` a scratch database of its own
is created on that server (and always dropped), so nothing else is touched.

Figures (never pass/fail on time; ``met`` only says whether a target was reached):
- queries per start, per advancing update, per full run through a 5-step workflow
  (counted with ``CaptureQueriesContext``);
- full runs per second;
- the advancing update's time as a ratio to a plain single-row ORM ``update()`` (the floor),
  with the ``workflow_event_committed`` receivers (the GraphQL publisher) disconnected and
  connected, and (PostgreSQL) with the connection preparing no statement (Django's default,
  for poolers in transaction mode; the demo settings prepare after 5 uses): the four are
  measured in the same process, on the same database, in alternating batches;
- CEL: compiling a new condition vs evaluating a cached one, in µs;
- round trips per advancing update on the trusted path (no ``actor``): on PostgreSQL counted
  from libpq's trace of the connection (the server's ``ReadyForQuery`` messages, one per request,
  BEGIN and COMMIT included: psycopg sends BEGIN as a request of its own though Django logs
  none, so ``CaptureQueriesContext`` alone would undercount a transaction); on SQLite, which
  runs in this process, the statements Django logs;
- Python CPU per advancing update on the trusted path (receivers disconnected), unconditional
  and through a CEL condition on the object, in interleaved rounds (see :func:`cpu_rounds`),
  each as the median with the [min–max] of the rounds: user CPU (the interpreter's work, the
  figure the target is about; on SQLite the database's work too, in this process), system CPU
  (the kernel's on our behalf: on PostgreSQL mostly the round trips' socket calls, which vary
  with where the scheduler puts the server) and their sum, each its own row. On PostgreSQL the
  server's work runs in its own processes and the time spent waiting for it is no CPU of ours;
- what ``actor=`` (a user with the permissions, cache warm), entering a step with a deadline
  and reminder (arms two timers) and entering an assigned step (opens a work item) add, each as
  its own row against the same trusted change, with their round trips.
Targets: an advancing update in ≤ 5 queries and, on PostgreSQL, 2 round trips; ≤ 6× the floor
on SQLite in memory, ≤ 4× on PostgreSQL; Python CPU ≤ 0.8 ms per change (the user CPU rows;
the user + system rows are held to it too); with the publisher connected ≤ 1.3× the engine
alone.
"""

from __future__ import annotations

import contextlib
import gc
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_arguments, versus  # noqa: E402
from bench.deadlines import document as deadline_document  # noqa: E402

FIVE_STEPS = [f"Step {i}" for i in range(1, 6)]

#: An advancing update's time as a multiple of the plain single-row UPDATE, at most.
TARGET_RATIO = {"SQLite (in memory)": 6.0, "PostgreSQL": 4.0}
#: With the publish receiver connected, at most this multiple of the engine alone.
TARGET_RECEIVERS = 1.3


def setup_database() -> str:
    """Point Django at SQLite in memory or a scratch PostgreSQL database (see bench/_common.py);
    migrate."""
    from bench._common import setup_django

    backend = setup_django("tests.settings", "engine")
    return "PostgreSQL" if backend == "postgresql" else "SQLite (in memory)"


def create_workflow():
    """Five steps; every step has Open (default), Working and Done (completion). The transition
    out of Step 2 has a CEL condition on the content object, the others are unconditional."""
    from django.contrib.contenttypes.models import ContentType

    from django_steps.models import Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition
    from tests.testapp.models import Document

    workflow = Workflow.objects.create(name="Bench five steps")
    workflow.content_types.add(ContentType.objects.get_for_model(Document))
    steps = []
    for order, name in enumerate(FIVE_STEPS, start=1):
        step = WorkflowStep.objects.create(
            workflow=workflow,
            name=name,
            order=order,
            is_initial_step=order == 1,
            is_final_step=order == 5,
        )
        WorkflowStepStatus.objects.create(step=step, name="Open", is_default_status=True)
        WorkflowStepStatus.objects.create(step=step, name="Working")
        WorkflowStepStatus.objects.create(step=step, name="Done", is_completion_status=True)
        steps.append(step)
    for i, (src, dst) in enumerate(zip(steps, steps[1:], strict=False), start=1):
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


TX_CONTROL = (
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE SAVEPOINT",
    "ROLLBACK TO SAVEPOINT",
)


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


def round_trips(fn) -> int:
    """Requests ``fn`` sends the database and waits for. PostgreSQL: libpq's trace of the
    connection, counting the server's ``ReadyForQuery`` messages — one per request cycle,
    BEGIN and COMMIT included (psycopg sends BEGIN as a request of its own before a
    transaction's first statement, though Django logs none). SQLite runs in this process: the
    statements Django logs, BEGIN/COMMIT included."""
    import tempfile

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        with CaptureQueriesContext(connection) as ctx:
            fn()
        return len(ctx.captured_queries)
    from psycopg.pq import Trace

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile(mode="w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            fn()
        finally:
            pgconn.untrace()
        trace.seek(0)
        return sum(1 for line in trace if "\tReadyForQuery\t" in line)


def cpu_rounds(
    make: dict[str, Callable[[int], list]], fn: Callable, rounds: int, per_round: int
) -> dict[str, dict[str, list[float]]]:
    """This process's CPU seconds per ``fn(item)``, per variant, in ``rounds`` rounds of
    ``per_round`` calls each, the variants alternating (the order rotating every round) so all
    see the same machine. Each round's items are made by ``make[variant](per_round)`` just
    before its batch, outside the measure, and dropped after it: the heap stays the same from
    round to round, as in a server that forgets a request's objects. A full collection runs
    before each batch; the collections the batch's own garbage triggers are counted.

    Per variant and round: ``user`` (the interpreter's work; SQLite's too, in this process),
    ``system`` (the kernel's on this process's behalf: on PostgreSQL mostly the socket sends and
    receives of the round trips) and ``total``, from ``getrusage``. The total is exact (the
    scheduler's run time); its split into user and system is the kernel's tick sample (one tick
    every few ms), scaled to the total, hence the rounds of many calls. The database server's
    work, in its own processes, and the time spent waiting for it are in none of them."""
    per_call: dict[str, dict[str, list[float]]] = {
        name: {"user": [], "system": [], "total": []} for name in make
    }
    names = list(make)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            items = make[name](per_round)
            gc.collect()
            before = resource.getrusage(resource.RUSAGE_SELF)
            for item in items:
                fn(item)
            after = resource.getrusage(resource.RUSAGE_SELF)
            del items
            user = (after.ru_utime - before.ru_utime) / per_round
            system = (after.ru_stime - before.ru_stime) / per_round
            figures = per_call[name]
            figures["user"].append(user)
            figures["system"].append(system)
            figures["total"].append(user + system)
    return per_call


def interleaved_per_op_seconds(variants: list[tuple], rounds: int) -> list[float]:
    """Mean time per call of each variant ``(fn, items, context)``, measured in alternating
    batches (the order rotates every round) so all see the same machine load; the median batch
    of each is returned. ``context`` is a context manager factory entered around each batch."""
    lists = [list(items) for _, items, _ in variants]
    sizes = [max(1, len(items) // rounds) for items in lists]
    means: list[list[float]] = [[] for _ in variants]
    for r in range(rounds):
        order = list(range(len(variants)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for v in order:
            fn, _, context = variants[v]
            batch = lists[v][r * sizes[v] : (r + 1) * sizes[v]]
            with context():
                started = time.perf_counter()
                for item in batch:
                    fn(item)
                means[v].append((time.perf_counter() - started) / len(batch))
    return [statistics.median(m) for m in means]


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


def prepare_threshold():
    """The connection's psycopg ``prepare_threshold`` (None: it prepares nothing; SQLite: None)."""
    from django.db import connection

    connection.ensure_connection()
    return getattr(connection.connection, "prepare_threshold", None)


@contextlib.contextmanager
def statements_not_prepared():
    """The connection prepares nothing while measuring (Django's default, as behind a pooler in
    transaction mode): the engine's read and write then run through Django's own cursor and are
    planned each time."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    saved = getattr(raw, "prepare_threshold", None)
    if saved is not None:
        raw.prepare_threshold = None
    try:
        yield
    finally:
        if saved is not None:
            raw.prepare_threshold = saved


#: Seconds shown in µs with one decimal.
MICROSECONDS = {"scale": 1e6, "digits": 1}


def row(figure, value, unit="", floor=None, ratio=None, target=None, met=None):
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "floor": floor,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def bench(quick: bool, backend: str) -> list[dict]:
    from django.db.models import F

    from django_steps import cel
    from django_steps.services import start_workflow_instance, update_workflow_step_status
    from tests.testapp.models import Document

    create_workflow()
    name = "Bench five steps"
    rounds = 5 if quick else 12
    # Three variants share the instances, each in ``rounds`` equal batches: a multiple of
    # 3 × rounds, so every instance is advanced exactly once (checked after the timing).
    n_updates = (300 if quick else 2376) // (3 * rounds) * (3 * rounds)
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
    advance_cond_queries, cond_sql = count_queries(
        lambda: update_workflow_step_status(instance, "Done")
    )
    print("# advancing update:\n#   " + "\n#   ".join(q[:160] for q in cond_sql), file=sys.stderr)
    assert instance.current_step.name == "Step 3"
    advance_plain_queries, _ = count_queries(lambda: update_workflow_step_status(instance, "Done"))
    assert instance.current_step.name == "Step 4"
    status_queries, _ = count_queries(lambda: update_workflow_step_status(instance, "Working"))
    run_queries, _ = count_queries(lambda: full_run(new_document()))

    rows += [
        row("queries per start", start_queries, "queries"),
        row(
            "queries per advancing update (CEL condition on the object)",
            advance_cond_queries,
            "queries",
            target="<= 5",
            met=advance_cond_queries <= 5,
        ),
        row("statements per advancing update incl. BEGIN/COMMIT", len(cond_sql), "statements"),
        row(
            "queries per advancing update (unconditional)",
            advance_plain_queries,
            "queries",
            target="<= 5",
            met=advance_plain_queries <= 5,
        ),
        row("queries per plain status update", status_queries, "queries"),
        row("queries per full run (start + 5 completions, 5 steps)", run_queries, "queries"),
    ]

    # ---- time: advancing update vs a plain single-row ORM update(), and with the receivers
    ready = []
    for _ in range(n_updates):
        inst = start_workflow_instance(name, new_document())
        update_workflow_step_status(inst, "Done")  # on Step 2, its way out has a condition
        ready.append(inst)
    target_doc = new_document()
    third = len(ready) // 3
    from django_steps.signals import workflow_event_committed

    receivers = len(workflow_event_committed.receivers)
    threshold = prepare_threshold()

    @contextlib.contextmanager
    def unprepared_engine():
        with receivers_disconnected(), statements_not_prepared():
            yield

    floor, advancing, with_receivers, unprepared = interleaved_per_op_seconds(
        [
            (
                lambda _: Document.objects.filter(pk=target_doc.pk).update(count=F("count") + 1),
                range(third),
                contextlib.nullcontext,
            ),
            (
                lambda inst: update_workflow_step_status(inst, "Done"),
                ready[:third],
                receivers_disconnected,
            ),
            (
                lambda inst: update_workflow_step_status(inst, "Done"),
                ready[third : 2 * third],
                contextlib.nullcontext,
            ),
            (
                lambda inst: update_workflow_step_status(inst, "Done"),
                ready[2 * third :],
                unprepared_engine,
            ),
        ],
        rounds,
    )
    assert all(i.current_step.name == "Step 3" for i in ready)
    ratio = advancing / floor
    target = TARGET_RATIO[backend]
    rows += [
        row("plain single-row ORM update() (floor)", round(floor * 1e6, 1), "µs"),
        versus(
            "advancing update (CEL condition on the object), engine only",
            *(advancing, floor, "µs"),
            **MICROSECONDS,
            target=f"<= {target:g}x floor ({backend})",
            met=ratio <= target,
        ),
        versus(
            f"advancing update with the {receivers} connected workflow_event_committed "
            "receiver(s) vs engine only",
            *(with_receivers, advancing, "µs"),
            **MICROSECONDS,
            target=f"<= {TARGET_RECEIVERS:g}x engine only",
            met=with_receivers / advancing <= TARGET_RECEIVERS,
        ),
        versus(
            "advancing update with the receiver(s) vs the floor",
            *(with_receivers, floor, "µs"),
            **MICROSECONDS,
        ),
    ]
    if backend == "PostgreSQL":
        rows += [
            row(
                "the engine's statements prepared on the server (connection's prepare_threshold)",
                "no" if threshold is None else f"after {threshold} uses",
            ),
            versus(
                "advancing update, engine only, statements not prepared (prepare_threshold "
                "None, Django's default, as behind a pooler in transaction mode)",
                *(unprepared, floor, "µs"),
                **MICROSECONDS,
            ),
        ]

    # ---- full runs per second
    docs = [new_document() for _ in range(n_runs)]
    started = time.perf_counter()
    for d in docs:
        full_run(d)
    elapsed = time.perf_counter() - started
    rows.append(
        row("full runs per second (5 steps, 6 changes each)", round(n_runs / elapsed, 1), "runs/s")
    )

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
        row(
            "CEL evaluate of a cached condition",
            round(eval_us, 1),
            "µs",
            floor=round(compile_us, 1),
            ratio=round(eval_us / compile_us, 2),
        ),
    ]
    return rows


#: Python CPU per advancing update on the trusted path, at most (ms).
TARGET_CPU_MS = 0.8
#: Changes per variant and round of the CPU rows (``--quick`` too): a round of fewer has too few
#: of the kernel's ticks to split its CPU time into user and system (see :func:`cpu_rounds`).
CPU_PER_ROUND = 100
#: Round trips per advancing update on the trusted path (PostgreSQL).
TARGET_ROUND_TRIPS = 2


def extras_document(name: str, second: dict) -> dict:
    """bench/deadlines.py's three steps (unconditional transitions); the second carries
    ``second`` (a deadline, assignees, or nothing)."""
    spec = deadline_document(name, None)
    spec["steps"][1].update(second)
    return spec


def acting_user():
    """A user with the permissions a change over the API needs (change and view instances, view
    documents): ``actor=`` runs the whole rule for them. One object, its permission cache warm
    after the first change, as within one request."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("bench-actor")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["change_workflowinstance", "view_workflowinstance", "view_document"]
        )
    )
    return User.objects.get(pk=user.pk)


def costs(quick: bool, backend: str) -> list[dict]:
    """The trusted path's round trips and Python CPU per advancing update, then what ``actor=``,
    armed timers and work items add, each as its own row against the same trusted change."""
    from django_steps.definitions import import_workflow
    from django_steps.services import start_workflow_instance, update_workflow_step_status

    variants = {
        "plain": {},
        "timed": {"deadline": {"after": "P1D", "remind_before": "PT1H"}},
        "assigned": {"assignees": {"groups": ["reviewers"]}},
    }
    for key, second in variants.items():
        import_workflow(extras_document(f"Bench {key}", second))
    actor = acting_user()
    n = 200 if quick else 1200
    rounds = 5 if quick else 12

    def started(key: str, count: int) -> list:
        return [start_workflow_instance(f"Bench {key}", new_document()) for _ in range(count)]

    def advance(instance, by=None):
        update_workflow_step_status(instance, "Done", actor=by)

    rows: list[dict] = []
    with receivers_disconnected():
        for key in variants:  # warm up: definitions, CEL, content types, permission cache
            for instance in started(key, 3):
                advance(instance, actor if key == "plain" else None)
        plain, other, timed_one, assigned_one = (
            started(key, 1)[0] for key in ("plain", "plain", "timed", "assigned")
        )
        trips = {
            "trusted": round_trips(lambda: advance(plain)),
            "actor": round_trips(lambda: advance(other, actor)),
            "timed": round_trips(lambda: advance(timed_one)),
            "assigned": round_trips(lambda: advance(assigned_one)),
        }

        def conditional(count: int) -> list:
            """Instances on Step 2 of the five, whose way out reads the object in a CEL
            condition."""
            instances = [
                start_workflow_instance("Bench five steps", new_document()) for _ in range(count)
            ]
            for instance in instances:
                advance(instance)
            return instances

        cpu = cpu_rounds(
            {"plain": lambda count: started("plain", count), "condition": conditional},
            advance,
            rounds,
            CPU_PER_ROUND,
        )
        trusted, acting, timed, assigned = interleaved_per_op_seconds(
            [
                (advance, started("plain", n), contextlib.nullcontext),
                (lambda i: advance(i, actor), started("plain", n), contextlib.nullcontext),
                (advance, started("timed", n), contextlib.nullcontext),
                (advance, started("assigned", n), contextlib.nullcontext),
            ],
            rounds,
        )
    where = (
        "PostgreSQL: requests incl. BEGIN/COMMIT"
        if backend == "PostgreSQL"
        else ("SQLite in process: statements incl. BEGIN/COMMIT")
    )
    rows.append(
        row(
            f"round trips per advancing update, trusted path ({where})",
            trips["trusted"],
            "round trips",
            target=f"{TARGET_ROUND_TRIPS} (PostgreSQL)" if backend == "PostgreSQL" else None,
            met=trips["trusted"] <= TARGET_ROUND_TRIPS if backend == "PostgreSQL" else None,
        )
    )
    postgres = backend == "PostgreSQL"
    parts = (
        ("user", "user CPU, the interpreter's work" + ("" if postgres else " and SQLite's")),
        (
            "system",
            "system CPU, the kernel's work for this process"
            + (" (the round trips' sockets)" if postgres else ""),
        ),
        ("total", "user + system CPU of this process (the database server's work excluded)"),
    )
    for label, key in (
        ("unconditional transition", "plain"),
        ("CEL condition on the object", "condition"),
    ):
        for part, what in parts:
            per_round = sorted(cpu[key][part])
            median = statistics.median(per_round) * 1e3
            rows.append(
                row(
                    f"Python CPU per advancing update, trusted path, {label}: {what} "
                    f"(median of {rounds} interleaved rounds × {CPU_PER_ROUND} changes, "
                    f"[min–max] {per_round[0] * 1e3:.3f}–{per_round[-1] * 1e3:.3f})",
                    round(median, 3),
                    "ms",
                    target=None if part == "system" else f"<= {TARGET_CPU_MS:g} ms",
                    met=None if part == "system" else median <= TARGET_CPU_MS,
                )
            )
    for label, key, seconds in (
        ("with actor= (permission, visibility and move checks)", "actor", acting),
        ("entering a step with a deadline and reminder (arms 2 timers)", "timed", timed),
        ("entering an assigned step (opens a work item)", "assigned", assigned),
    ):
        rows.append(
            versus(
                f"advancing update {label} vs trusted "
                f"[{trips[key]} round trips vs {trips['trusted']}]",
                *(seconds, trusted, "µs"),
                **MICROSECONDS,
            )
        )
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
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *body, strict=False)]

    def line(cells):
        return (
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"
        )

    return "\n".join(
        [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]
    )


def main() -> int:
    args = bench_arguments(__doc__, "small sizes (a few seconds)").parse_args()

    backend = setup_database()
    rows = bench(args.quick, backend) + costs(args.quick, backend)
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
