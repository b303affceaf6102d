"""Deadlines in the API: a step's ``deadline`` (input and output), an instance's ``dueAt`` and
``isOverdue``. The rules (what is due, what is overdue) are :mod:`django_steps.deadlines`'s."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import strawberry
import strawberry_django

from django_steps import deadlines, models

#: The annotation ``dueAt`` is read from when the optimizer loaded the instance.
DUE_AT = "_steps_due_at"


@strawberry.input(
    name="WorkflowDeadlineInput",
    description="When a step is due: give `after` or `at` (not both).",
)
class WorkflowDeadlineInput:
    after: Optional[str] = strawberry.field(
        default=None,
        description='ISO-8601 duration counted from entering the step: days and time ("P2D", '
        '"PT4H30M"), no years or months.',
    )
    at: Optional[str] = strawberry.field(
        default=None,
        description='CEL expression over the object giving a timestamp (e.g. "claim.due_date"), '
        "read when the instance enters the step.",
    )
    status: Optional[str] = strawberry.field(
        default=None,
        description="A status of the step the system sets when the deadline passes (a completion "
        "status advances, an on-hold status holds, a cancellation status cancels); none: a "
        "`DEADLINE_PASSED` event is recorded.",
    )
    remind_before: Optional[str] = strawberry.field(
        default=None, description='ISO-8601 duration: a `REMINDER` event that long before ("PT4H").'
    )

    def document(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in deadlines.KEYS if getattr(self, key) is not None}


@strawberry.type(name="WorkflowDeadline", description="When a step is due (see its definition).")
class WorkflowDeadlineType:
    after: Optional[str] = strawberry.field(
        description="ISO-8601 duration counted from entering the step."
    )
    at: Optional[str] = strawberry.field(description="CEL expression giving a timestamp.")
    status: Optional[str] = strawberry.field(
        description="The status the system sets when it passes (null: a `DEADLINE_PASSED` event)."
    )
    remind_before: Optional[str] = strawberry.field(
        description="How long before it a `REMINDER` event is recorded."
    )


def step_deadline(step: models.WorkflowStep) -> Optional[WorkflowDeadlineType]:
    if not step.deadline:
        return None
    return WorkflowDeadlineType(**{key: step.deadline.get(key) for key in deadlines.KEYS})


def step_deadline_field() -> Any:
    def deadline(root: strawberry.Parent[models.WorkflowStep]) -> Optional[WorkflowDeadlineType]:
        return step_deadline(root)

    return strawberry_django.field(
        resolver=deadline,
        only=["deadline"],
        description="When an instance on this step is due (null: never).",
    )


def _due_at(root: models.WorkflowInstance) -> Optional[datetime]:
    if hasattr(root, DUE_AT):
        return getattr(root, DUE_AT)
    # not loaded through the optimizer (a mutation's payload): one query
    return (
        models.WorkflowInstance.objects.filter(pk=root.pk)
        .values_list(deadlines.due_at_expression(), flat=True)
        .first()
    )


def due_at_field() -> Any:
    def due_at(root: strawberry.Parent[models.WorkflowInstance]) -> Optional[datetime]:
        return _due_at(root)

    return strawberry_django.field(
        resolver=due_at,
        annotate={DUE_AT: lambda info: deadlines.due_at_expression()},
        description="When the deadline of its current step passes or passed (null: no deadline, "
        "or the clock is paused while on hold).",
    )


def is_overdue_field() -> Any:
    def is_overdue(root: strawberry.Parent[models.WorkflowInstance]) -> bool:
        return deadlines.is_overdue(_due_at(root))

    return strawberry_django.field(
        resolver=is_overdue,
        annotate={DUE_AT: lambda info: deadlines.due_at_expression()},
        description="True when the deadline of its current step has passed.",
    )
