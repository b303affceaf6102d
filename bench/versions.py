"""Versions benchmark: an update's cost does not grow with the number of published versions,
and how fast instances migrate from one version to another.

    python bench/versions.py [--quick] [--json]

SQLite in memory by default; with ``DATABASE_URL=postgres://…`` a scratch database of its own
(see bench/_common.py).

Figures (never pass/fail on time):
- an advancing update (CEL condition on the object) on a workflow with 50 published versions
  vs the same update on a workflow with 1, measured in interleaved rounds (A/B, then B/A); the
  figure is the ratio of the medians, with the interquartile range of the per-round ratios.
  Target: ≤ 1.05 (the compiled definition is keyed by the instance's version, so the number
  of other versions plays no part);
- migrating instances to a new version (10,000; 1,000 with ``--quick``): the dry run
  (``plan_migration``) and the migration itself (``migrate_instances``, one transaction and one
  MIGRATED event per instance), in instances per second.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import run_backend_bench, versus  # noqa: E402

TARGET = 1.05


def republish(workflow, times: int) -> None:
    """Publish ``times`` more versions, each with another description of a status."""
    from django_steps.models import WorkflowStepStatus
    from django_steps.versions import publish_workflow

    status = WorkflowStepStatus.objects.get(step__workflow=workflow, step__order=5, name="Working")
    for i in range(times):
        status.description = f"revision {i + 2}"
        status.save()
        publish_workflow(workflow)


def ready_instances(name: str, count: int) -> list:
    """``count`` instances on Step 2, whose way out has a condition on the object."""
    from bench.engine import new_document
    from django_steps.services import start_workflow_instance, update_workflow_step_status

    ready = []
    for _ in range(count):
        instance = start_workflow_instance(name, new_document())
        update_workflow_step_status(instance, "Done")
        ready.append(instance)
    return ready


def bench(quick: bool) -> list[dict]:
    from bench.engine import create_workflow, new_document, receivers_disconnected, row
    from django_steps.models import Workflow
    from django_steps.services import start_workflow_instance, update_workflow_step_status
    from django_steps.versions import migrate_instances, plan_migration, publish_workflow

    rounds = 12 if quick else 30
    per_round = 20 if quick else 60
    n_migrate = 1000 if quick else 10_000

    one = create_workflow()
    Workflow.objects.filter(pk=one.pk).update(name="One version")
    fifty = create_workflow()
    Workflow.objects.filter(pk=fifty.pk).update(name="Fifty versions")
    publish_workflow(Workflow.objects.get(name="One version"))
    publish_workflow(Workflow.objects.get(name="Fifty versions"))
    republish(Workflow.objects.get(name="Fifty versions"), 49)
    assert Workflow.objects.get(name="Fifty versions").definition_version == 50

    # Instances on every version of the fifty: the caches hold many versions, as in production.
    workflow = Workflow.objects.get(name="Fifty versions")
    for version in workflow.versions.all():
        instance = start_workflow_instance("Fifty versions", new_document())
        instance.definition_version = version
        instance.save(update_fields=["definition_version"])
        update_workflow_step_status(instance, "Done")

    a_items = ready_instances("Fifty versions", rounds * per_round + 5)
    b_items = ready_instances("One version", rounds * per_round + 5)
    for items in (a_items, b_items):  # warm up
        for instance in items[-5:]:
            update_workflow_step_status(instance, "Done")

    ta, tb = [], []
    with receivers_disconnected():
        for r in range(rounds):
            batches = (
                ((a_items, ta), (b_items, tb)) if r % 2 == 0 else ((b_items, tb), (a_items, ta))
            )
            for items, out in batches:
                batch = items[r * per_round : (r + 1) * per_round]
                started = time.perf_counter()
                for instance in batch:
                    update_workflow_step_status(instance, "Done")
                out.append((time.perf_counter() - started) / len(batch))
    assert all(i.current_step.name == "Step 3" for i in a_items + b_items)
    a, b = statistics.median(ta), statistics.median(tb)
    ratios = sorted(x / y for x, y in zip(ta, tb, strict=False))
    q = statistics.quantiles(ratios, n=4)
    rows = [
        versus(
            "advancing update, workflow with 50 published versions vs 1 "
            f"(per-round ratio median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f})",
            *(a, b, "µs"),
            scale=1e6,
            digits=1,
            ratio_digits=3,
            target=f"<= {TARGET:g}x",
            met=a / b <= TARGET,
        )
    ]

    # ---- migration
    migrating = create_workflow()
    Workflow.objects.filter(pk=migrating.pk).update(name="Migrating")
    for _ in range(n_migrate):
        start_workflow_instance("Migrating", new_document())
    workflow = Workflow.objects.get(name="Migrating")
    republish(workflow, 1)  # version 2
    started = time.perf_counter()
    plan = plan_migration("Migrating", 2)
    planned = time.perf_counter() - started
    assert len(plan.movable) == n_migrate
    started = time.perf_counter()
    with receivers_disconnected():
        result = migrate_instances(workflow, 2, plan=plan, batch_size=1000)
    applied = time.perf_counter() - started
    assert len(result.migrated) == n_migrate, result.failed
    rows += [
        row(
            f"dry run of a migration of {n_migrate:,} instances",
            round(n_migrate / planned),
            "instances/s",
        ),
        row(
            f"migrating {n_migrate:,} instances (one transaction and one MIGRATED event each)",
            round(n_migrate / applied),
            "instances/s",
        ),
    ]
    return rows


def main() -> int:
    return run_backend_bench(__doc__, "versions", bench, "django-steps versions benchmark")


if __name__ == "__main__":
    sys.exit(main())
