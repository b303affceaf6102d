"""A compiled, per-process cached view of one workflow definition.

The services read steps, statuses and transitions from here instead of querying them on
every change. The cache key is ``(workflow.pk, workflow.definition_version)``; saving or
deleting a step, status or transition bumps the version (see ``signals.py``), so a stale
entry is never used. Bulk ``QuerySet.update()`` on definition tables bypasses the signals:
call :func:`bump_definition_version` after one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from django.db.models import F

from .models import Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition


@dataclass(frozen=True)
class StatusDef:
    id: int
    name: str
    is_default_status: bool
    is_completion_status: bool
    is_cancellation_status: bool
    is_on_hold_status: bool


@dataclass(frozen=True)
class TransitionDef:
    id: int
    from_step_id: int
    to_step_id: int
    condition: str
    priority: int
    description: str


@dataclass
class StepDef:
    id: int
    name: str
    order: int
    is_initial_step: bool
    is_final_step: bool
    statuses: dict[str, StatusDef] = field(default_factory=dict)
    transitions: list[TransitionDef] = field(default_factory=list)  # highest priority first

    @property
    def default_status(self) -> StatusDef | None:
        return next((s for s in self.statuses.values() if s.is_default_status), None)

    @property
    def on_hold_status(self) -> StatusDef | None:
        return next((s for s in self.statuses.values() if s.is_on_hold_status), None)

    @property
    def cancellation_status(self) -> StatusDef | None:
        return next((s for s in self.statuses.values() if s.is_cancellation_status), None)


@dataclass
class CompiledWorkflow:
    id: int
    name: str
    definition_version: int
    steps: dict[int, StepDef]
    statuses: dict[int, StatusDef]

    @property
    def initial_step(self) -> StepDef | None:
        return next((s for s in self.steps.values() if s.is_initial_step), None)

    def step_name(self, step_id: int) -> str:
        step = self.steps.get(step_id)
        return step.name if step else f"#{step_id}"


_lock = threading.Lock()
_cache: OrderedDict[tuple[int, int], CompiledWorkflow] = OrderedDict()
_MAX = 512
stats = {"loads": 0}


def load(workflow: Workflow) -> CompiledWorkflow:
    """Return the compiled definition of ``workflow`` (3 queries on a cache miss, 0 on a hit)."""
    key = (workflow.pk, workflow.definition_version)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    steps = {
        s.id: StepDef(s.id, s.name, s.order, s.is_initial_step, s.is_final_step)
        for s in WorkflowStep.objects.filter(workflow_id=workflow.pk).order_by("order", "id")
    }
    statuses: dict[int, StatusDef] = {}
    for st in WorkflowStepStatus.objects.filter(step__workflow_id=workflow.pk).order_by("id"):
        status = StatusDef(
            st.id,
            st.name,
            st.is_default_status,
            st.is_completion_status,
            st.is_cancellation_status,
            st.is_on_hold_status,
        )
        statuses[st.id] = status
        steps[st.step_id].statuses[st.name] = status
    for t in WorkflowTransition.objects.filter(workflow_id=workflow.pk).order_by("-priority", "id"):
        if t.from_step_id in steps:
            steps[t.from_step_id].transitions.append(
                TransitionDef(t.id, t.from_step_id, t.to_step_id, t.condition or "", t.priority, t.description)
            )
    compiled = CompiledWorkflow(workflow.pk, workflow.name, workflow.definition_version, steps, statuses)
    with _lock:
        stats["loads"] += 1
        _cache[key] = compiled
        while len(_cache) > _MAX:
            _cache.popitem(last=False)
    return compiled


def bump_definition_version(workflow_id: int) -> None:
    Workflow.objects.filter(pk=workflow_id).update(definition_version=F("definition_version") + 1)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
