"""Deadlines benchmark: firing throughput, due → fired latency, and what an armed timer adds to a
status change.

    python bench/deadlines.py [--quick] [--json]

SQLite in memory by default; with ``DATABASE_URL=postgres://…`` a scratch database of its own
(see bench/_common.py).

Figures (never pass/fail on time):
- 100,000 armed timers (10,000 with ``--quick``) of which 10,000 (1,000) are due: timers fired
  per second by one worker (``fire_due`` batches of ``WORKER_BATCH_SIZE``, each timer a
  ``DEADLINE_PASSED`` note in its savepoint);
- the same number falling due spread over one minute (10 s with ``--quick``) with the worker
  loop running (``WORKER_POLL_SECONDS``): the p99 of ``fired_at - due_at``. Target ≤ 1 s;
- a status change of an instance with armed timers vs one without (within the step: the write
  path looks the step's deadline up in the compiled definition, no query), and the change that
  enters a step with a deadline (it arms the timers: on PostgreSQL inside the change's one
  statement, on SQLite one more INSERT) vs one entering a step without, each measured in
  interleaved rounds (A/B, then B/A) as the ratio of the medians. Target ≤ 1.1×.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import run_backend_bench  # noqa: E402

LATENCY_TARGET = 1.0  # seconds
COST_TARGET = 1.1


def document(name: str, deadline: dict | None) -> dict:
    """Two steps; the second has ``deadline`` (or none)."""
    statuses = [
        {"name": "Open", "is_default_status": True},
        {"name": "Working"},
        {"name": "Done", "is_completion_status": True},
    ]
    return {
        "name": name,
        "content_types": ["testapp.document"],
        "steps": [
            {"name": "First", "is_initial_step": True, "statuses": statuses},
            {"name": "Second", "deadline": deadline, "statuses": statuses},
            {"name": "Last", "is_final_step": True, "statuses": statuses},
        ],
        "transitions": [
            {"from_step": "First", "to_step": "Second"},
            {"from_step": "Second", "to_step": "Last"},
        ],
    }


def on_first_step(name: str, count: int) -> list:
    from bench.engine import new_document
    from django_steps.services import start_workflow_instance

    return [start_workflow_instance(name, new_document()) for _ in range(count)]


def armed(count: int, due: int) -> list:
    """``due`` instances on a step with a deadline (one timer each), and ``count - due`` more
    timers of the same step far in the future (what a large installation keeps armed)."""
    from django.utils import timezone

    from django_steps.models import WorkflowTimer
    from django_steps.services import update_workflow_step_status

    instances = [update_workflow_step_status(i, "Done") for i in on_first_step("Timed", due)]
    far = timezone.now() + dt.timedelta(days=30)
    template = WorkflowTimer.objects.first()
    WorkflowTimer.objects.bulk_create(
        [
            WorkflowTimer(
                instance_id=instances[i % due].pk,
                step_id=template.step_id,
                kind=WorkflowTimer.Kind.REMINDER,
                due_at=far + dt.timedelta(seconds=i),
                armed_version=1,
            )
            for i in range(count - due)
        ],
        batch_size=5000,
    )
    return instances


def fall_due(start: dt.datetime, spread: float) -> None:
    """The instances' deadlines fall due one after another from ``start`` over ``spread``
    seconds."""
    from django_steps.models import WorkflowTimer

    timers = list(WorkflowTimer.objects.filter(kind="DEADLINE", fired_at__isnull=True))
    step = spread / max(len(timers), 1)
    for i, timer in enumerate(timers):
        timer.due_at = start + dt.timedelta(seconds=i * step)
    WorkflowTimer.objects.bulk_update(timers, ["due_at"], batch_size=5000)


def rearm() -> None:
    """Unfire the deadlines (their notes stay): the next measurement fires them again."""
    from django_steps.models import WorkflowTimer

    WorkflowTimer.objects.filter(kind="DEADLINE").update(fired_at=None)


def throughput(due: int) -> float:
    from django.utils import timezone

    from django_steps import deadlines
    from django_steps.models import WorkflowTimer

    WorkflowTimer.objects.filter(kind="DEADLINE").update(due_at=timezone.now())
    started = time.perf_counter()
    fired = deadlines.run_once()
    elapsed = time.perf_counter() - started
    assert fired == due, fired
    return due / elapsed


def latencies(due: int, spread: float) -> list[float]:
    """The worker loop of ``steps_worker`` (in this process: SQLite in memory is per
    connection) while ``due`` deadlines fall due over ``spread`` seconds."""
    from django.utils import timezone

    from django_steps import deadlines
    from django_steps.conf import steps_setting
    from django_steps.models import WorkflowTimer

    rearm()
    # Writing 10,000 due times takes seconds: they start falling due once that is done, so
    # what is measured is the worker keeping up, not a backlog left by the set-up.
    started = time.perf_counter()
    fall_due(timezone.now() + dt.timedelta(days=1), spread)
    setup = time.perf_counter() - started
    start = timezone.now() + dt.timedelta(seconds=2 * setup + 1)
    fall_due(start, spread)
    while timezone.now() < start:
        time.sleep(0.05)
    poll, batch = (
        float(steps_setting("WORKER_POLL_SECONDS")),
        int(steps_setting("WORKER_BATCH_SIZE")),
    )
    pending = WorkflowTimer.objects.filter(kind="DEADLINE", fired_at__isnull=True)
    while pending.exists():
        if deadlines.fire_due(limit=batch) < batch:  # as steps_worker does
            time.sleep(deadlines.seconds_to_wait(poll))
    return [
        (fired - due_at).total_seconds()
        for fired, due_at in WorkflowTimer.objects.filter(kind="DEADLINE").values_list(
            "fired_at", "due_at"
        )
    ]


def interleaved(a_items: list, b_items: list, status: str, rounds: int, per_round: int) -> tuple:
    """Seconds per change setting ``status`` on the A instances and on the B instances, in
    interleaved rounds (A/B, then B/A): the medians and the sorted per-round ratios."""
    from bench.engine import receivers_disconnected
    from django_steps.services import update_workflow_step_status

    for items in (a_items, b_items):  # warm up
        for instance in items[-5:]:
            update_workflow_step_status(instance, status)
    ta, tb = [], []
    with receivers_disconnected():
        for r in range(rounds):
            order = ((a_items, ta), (b_items, tb)) if r % 2 == 0 else ((b_items, tb), (a_items, ta))
            for items, out in order:
                batch = items[r * per_round : (r + 1) * per_round]
                started = time.perf_counter()
                for instance in batch:
                    update_workflow_step_status(instance, status)
                out.append((time.perf_counter() - started) / len(batch))
    ratios = sorted(a / b for a, b in zip(ta, tb, strict=True))
    return statistics.median(ta), statistics.median(tb), ratios


def cost_row(figure: str, measured: tuple) -> dict:
    from bench.engine import row

    a, b, ratios = measured
    q = statistics.quantiles(ratios, n=4)
    return row(
        f"{figure} (per-round ratio median {statistics.median(ratios):.3f}, "
        f"IQR {q[0]:.3f}-{q[2]:.3f})",
        round(a * 1e6, 1),
        "µs",
        floor=round(b * 1e6, 1),
        ratio=round(a / b, 3),
        target=f"<= {COST_TARGET:g}x",
        met=a / b <= COST_TARGET,
    )


def bench(quick: bool) -> list[dict]:
    from bench.engine import receivers_disconnected, row
    from django_steps.definitions import import_workflow
    from django_steps.services import update_workflow_step_status

    count, due = (10_000, 1_000) if quick else (100_000, 10_000)
    spread = 10.0 if quick else 60.0
    import_workflow(document("Timed", {"after": "P1D"}))
    import_workflow(document("Armed", {"after": "P1D", "remind_before": "PT4H"}))
    import_workflow(document("Plain", None))

    with receivers_disconnected():
        armed(count, due)
        per_second = throughput(due)
        waited = sorted(latencies(due, spread))
    p99 = waited[min(len(waited) - 1, int(len(waited) * 0.99))]
    rounds, per_round = (12, 20) if quick else (30, 60)
    n = rounds * per_round + 5
    # A status change of an instance whose step has armed timers (within the step) vs one whose
    # step has none; then the change that enters the step (and arms them) vs one that arms none.
    entering = interleaved(
        on_first_step("Armed", n), on_first_step("Plain", n), "Done", rounds, per_round
    )
    with receivers_disconnected():
        timed = [update_workflow_step_status(i, "Done") for i in on_first_step("Armed", n)]
        plain = [update_workflow_step_status(i, "Done") for i in on_first_step("Plain", n)]
    within = interleaved(timed, plain, "Working", rounds, per_round)
    return [
        row(
            f"firing throughput, one worker ({due:,} due among {count:,} armed timers)",
            round(per_second),
            "timers/s",
        ),
        row(
            f"due → fired latency p99, worker running ({due:,} falling due over {spread:g} s)",
            round(p99, 3),
            "s",
            target=f"<= {LATENCY_TARGET:g} s",
            met=p99 <= LATENCY_TARGET,
        ),
        cost_row("status change with armed timers (deadline, reminder) vs without", within),
        cost_row(
            "entering a step with a deadline and reminder (arms them) vs one without", entering
        ),
    ]


def main() -> int:
    return run_backend_bench(__doc__, "deadlines", bench, "django-steps deadlines benchmark")


if __name__ == "__main__":
    sys.exit(main())
