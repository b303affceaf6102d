"""Independent writers: changes per second with 1, 2, 4 and 8 threads, each on its own instance,
next to a plain single-row ``UPDATE`` with the same threads, each on its own row (PostgreSQL).

The history's global order used to come from one counter row locked until commit: with 8
threads on 8 instances, changes/s fell below the 1-thread figure and most backends waited on
that row. Now nothing is shared between writers (see ``django_steps/history.py``), so the
engine should scale with threads as far as a plain ``UPDATE`` does on the same machine.

Both sides: Django's ORM, one connection per thread held for the whole measurement (the
settings' psycopg pool), autocommit (the engine's change is two statements, each its own
transaction: one read, one compare-and-set write; the floor is one autocommitted ``UPDATE``).
The engine's change is a status change (``update_workflow_step_status``, Working/Open in turn:
no condition), with the ``workflow_event_committed`` receivers disconnected (the writers
alone). Each measurement runs all threads for a fixed window; rounds alternate floor and engine
at every thread count, and each figure is the median round. A sampler reads
``pg_stat_activity`` during the engine's 8-thread windows: how many of our backends wait on a
lock.

Target: the engine's 8-thread / 1-thread scaling ≥ 80 % of the floor's; beside it, this
process's CPU per change (``time.process_time`` over the window, all threads) at 1 and 8
threads, the engine's and the floor's. All threads are in one Python process: both sides share
its GIL, so neither scales past what one core of Python allows; the 2-core machine also runs
PostgreSQL.

On SQLite it prints a row saying it needs PostgreSQL (SQLite lets one transaction write at a time).

    python bench/writers.py [--quick] [--json]
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_arguments, emit, setup_django

THREADS = [1, 2, 4, 8]
TARGET = 0.8


def measure(
    kind: str, threads: int, window: float, op, targets: list, sampler=None
) -> tuple[float, float]:
    """Changes per second of ``threads`` threads running ``op(target)`` for ``window`` seconds,
    each on its own target, and this process's CPU seconds per change meanwhile
    (``time.process_time``, all threads: PostgreSQL's work, in its own processes, is left
    out)."""
    from django.db import connection

    counts = [0] * threads
    start = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        target = targets[i]
        try:
            op(target, 1)  # connection taken: not counted
            start.wait()
            end = time.perf_counter() + window
            n = 0
            while time.perf_counter() < end:
                op(target, n)
                n += 1
            counts[i] = n
        finally:
            connection.close()  # back to the pool

    pool = [threading.Thread(target=work, args=(i,), name=f"{kind}-{i}") for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    cpu = time.process_time()
    if sampler is not None:
        sampler.start(window)
    for t in pool:
        t.join()
    cpu = time.process_time() - cpu
    if sampler is not None:
        sampler.stop()
    # The last change of each thread may end after the window: counted, so divide by the
    # window plus at most one change's time (negligible next to a window of seconds).
    return sum(counts) / window, cpu / max(1, sum(counts))


class LockSampler:
    """Samples ``pg_stat_activity`` of our database every 5 ms: backends waiting on a lock."""

    def __init__(self, url: str, dbname: str) -> None:
        self.url, self.dbname = url, dbname
        self.samples: list[int] = []  # backends waiting on a lock, per sample
        self.row_locks: list[int] = []  # of those: on a row or a transaction (tuple, transactionid)
        self.active: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, window: float) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(window,), daemon=True)
        self._thread.start()

    def _run(self, window: float) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            end = time.perf_counter() + window
            while not self._stop.is_set() and time.perf_counter() < end:
                waiting, rows, active = conn.execute(
                    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), "
                    "count(*) FILTER (WHERE wait_event_type = 'Lock' "
                    "AND wait_event IN ('tuple', 'transactionid')), "
                    "count(*) FILTER (WHERE state = 'active') "
                    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self.dbname],
                ).fetchone()
                self.samples.append(waiting)
                self.row_locks.append(rows)
                self.active.append(active)
                time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def main() -> None:
    args = bench_arguments(__doc__).parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        emit(
            [
                {
                    "figure": "writers: changes/s with 1-8 threads vs a plain UPDATE",
                    "value": "needs PostgreSQL (DATABASE_URL=postgres://…); "
                    "SQLite writes one transaction at a time",
                    "target": "engine 8/1-thread scaling >= 80 % of the floor's",
                }
            ],
            args.json,
            "Independent writers",
        )
        return
    window, rounds = (0.6, 1) if args.quick else (3.0, 3)
    setup_django("tests.settings", "writers")

    from django.db import connection
    from django.db.models import F

    from bench.engine import create_workflow, new_document, receivers_disconnected
    from django_steps.services import start_workflow_instance, update_workflow_step_status
    from tests.testapp.models import Document

    create_workflow()
    n = max(THREADS)
    rows_for_floor = [new_document().pk for _ in range(n)]
    instances = [start_workflow_instance("Bench five steps", new_document()) for _ in range(n)]
    dbname = connection.settings_dict["NAME"]
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)

    def floor_op(pk, i):
        Document.objects.filter(pk=pk).update(count=F("count") + 1)

    def engine_op(instance, i):
        update_workflow_step_status(instance, "Working" if i % 2 == 0 else "Open")

    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    sampler = LockSampler(url, dbname)
    with receivers_disconnected():
        for r in range(rounds):
            for threads in THREADS:
                order = [("floor", floor_op, rows_for_floor), ("engine", engine_op, instances)]
                if (r + threads) % 2:
                    order.reverse()
                for kind, op, targets in order:
                    s = sampler if (kind == "engine" and threads == max(THREADS)) else None
                    results.setdefault((kind, threads), []).append(
                        measure(kind, threads, window, op, targets, s)
                    )
    cps = {key: statistics.median(r[0] for r in v) for key, v in results.items()}
    cpu = {key: statistics.median(r[1] for r in v) for key, v in results.items()}

    rows: list[dict] = []
    for threads in THREADS:
        f, e = cps[("floor", threads)], cps[("engine", threads)]
        rows.append(
            {
                "figure": f"{threads} thread(s), separate rows: "
                "plain single-row UPDATE (floor) changes/s",
                "value": round(f),
                "unit": "1/s",
            }
        )
        rows.append(
            {
                "figure": f"{threads} thread(s), separate instances: engine changes/s",
                "value": round(e),
                "unit": "1/s",
                "floor": round(f),
                "ratio": round(e / f, 3),
            }
        )
    top = max(THREADS)
    floor_scaling = cps[("floor", top)] / cps[("floor", 1)]
    engine_scaling = cps[("engine", top)] / cps[("engine", 1)]
    rows.append(
        {
            "figure": f"engine {top}-thread / 1-thread scaling vs the floor's",
            "value": round(engine_scaling, 3),
            "unit": "x",
            "floor": round(floor_scaling, 3),
            "ratio": round(engine_scaling / floor_scaling, 3),
            "target": f">= {TARGET:g} of the floor's scaling",
            "met": engine_scaling / floor_scaling >= TARGET,
        }
    )
    for threads in (1, top):
        rows.append(
            {
                "figure": f"engine CPU per change, {threads} thread(s) (this process, "
                "process_time; the server's work excluded) vs the floor's",
                "value": round(cpu[("engine", threads)] * 1e3, 3),
                "unit": "ms",
                "floor": round(cpu[("floor", threads)] * 1e3, 3),
                "ratio": round(cpu[("engine", threads)] / cpu[("floor", threads)], 2),
            }
        )
    if sampler.samples:
        rows.append(
            {
                "figure": f"engine, {top} threads: backends waiting on a row or transaction lock "
                f"(mean / max of {len(sampler.samples)} samples)",
                "value": f"{statistics.mean(sampler.row_locks):.2f} / {max(sampler.row_locks)}",
                "unit": "backends",
                "target": "none: writers share no row",
                "met": max(sampler.row_locks) == 0,
            }
        )
        rows.append(
            {
                "figure": f"engine, {top} threads: backends waiting on any lock, "
                "incl. relation extension (mean / max)",
                "value": f"{statistics.mean(sampler.samples):.2f} / {max(sampler.samples)}",
                "unit": "backends",
            }
        )
        rows.append(
            {
                "figure": f"engine, {top} threads: active backends (mean of samples)",
                "value": round(statistics.mean(sampler.active), 2),
                "unit": "backends",
            }
        )
    emit(
        rows,
        args.json,
        f"Independent writers (PostgreSQL, {window:g} s windows, {rounds} round(s), medians)",
    )


if __name__ == "__main__":
    main()
