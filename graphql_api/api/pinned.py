"""The statuses an instance offers, as the published version it runs on defines them (for
``WorkflowInstance.availableStatuses`` and ``viewerCan``; moved out of :mod:`types`, which
holds the types)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from django_steps import compiled, models
from django_steps.compiled import StatusDef

__all__ = ["PINNED", "pinned_statuses"]


#: What :func:`pinned_statuses` reads of an instance (the version it runs on, its document
#: left deferred: the compiled version is cached per process).
PINNED = [
    "state",
    "current_step_id",
    "definition_version__id",
    "definition_version__number",
    "definition_version__content_hash",
    "definition_version__workflow_id",
]


def pinned_statuses(
    instance: models.WorkflowInstance, keep: Callable[[StatusDef], bool]
) -> list[models.WorkflowStepStatus]:
    """The statuses of ``instance``'s current step, as the version it runs on defines them (a
    status added later is not there; one removed later still is), those ``keep`` accepts. They
    are built from the cached version, not read: no query per instance. Each keeps its row's
    id, so its global ID is the one other versions give it."""
    step = compiled.for_instance(instance).steps.get(instance.current_step_id)
    rows = []
    for status in step.statuses.values() if step else ():
        if keep(status):
            row = models.WorkflowStepStatus(step=instance.current_step, **asdict(status))
            row._state.adding, row._state.db = False, instance._state.db
            rows.append(row)
    return rows
