"""The document of a workflow's current rows, with each row's id: what a published version
stores (:mod:`django_steps.versions`), what a never-published workflow compiles from
(:mod:`django_steps.compiled`) and, without the ids, what :mod:`django_steps.definitions` exports.

It reads rows and nothing else, so the modules above can all import it at their top.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .models import WorkflowStep, WorkflowStepStatus, WorkflowTransition
from .shape import STATUS, STEP, TRANSITION, WORKFLOW

__all__ = ["snapshot_workflow", "strip_ids"]


def snapshot_workflow(workflow: Any) -> dict:
    """The definition document of ``workflow``'s current rows (retired ones left out), each
    step, status and transition with its row ``id``: what a published version stores."""
    steps = list(
        WorkflowStep._base_manager.filter(workflow_id=workflow.pk, retired=False).order_by(
            "order", "id"
        )
    )
    names = {s.id: s.name for s in steps}
    statuses: dict[int, list[Any]] = defaultdict(list)
    for status in WorkflowStepStatus._base_manager.filter(
        step_id__in=list(names), retired=False
    ).order_by("id"):
        statuses[status.step_id].append(status)
    position = {s.id: i for i, s in enumerate(steps)}
    transitions = sorted(
        (
            t
            for t in WorkflowTransition._base_manager.filter(workflow_id=workflow.pk, retired=False)
            if t.from_step_id in names and t.to_step_id in names
        ),
        key=lambda t: (position[t.from_step_id], -t.priority, t.id),
    )
    content_types = sorted(f"{ct.app_label}.{ct.model}" for ct in workflow.content_types.all())
    return {
        **WORKFLOW.values_of(workflow),
        "content_types": content_types,
        "steps": [
            {
                "id": step.id,
                **STEP.values_of(step),
                "statuses": [{"id": st.id, **STATUS.values_of(st)} for st in statuses[step.id]],
            }
            for step in steps
        ],
        "transitions": [
            {
                "id": t.id,
                **TRANSITION.values_of(
                    t,
                    from_step=names[t.from_step_id],
                    to_step=names[t.to_step_id],
                    condition=t.condition or "",
                ),
            }
            for t in transitions
        ],
    }


def strip_ids(document: dict) -> dict:
    """A version's document without its row ids: a definition document."""
    return {
        **{k: v for k, v in document.items() if k not in ("steps", "transitions")},
        "steps": [
            {
                **{k: v for k, v in step.items() if k not in ("id", "statuses")},
                "statuses": [{k: v for k, v in st.items() if k != "id"} for st in step["statuses"]],
            }
            for step in document["steps"]
        ],
        "transitions": [{k: v for k, v in t.items() if k != "id"} for t in document["transitions"]],
    }
