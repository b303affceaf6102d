"""GraphQL enums mirroring :mod:`django_steps.choices`."""

from __future__ import annotations

import enum

import strawberry
from django.db import models

from django_steps.choices import EventKind, InstanceState


def _mirror(
    choices: type[models.TextChoices], *, name: str, description: str, members: dict[str, str]
) -> type[enum.Enum]:
    """The GraphQL enum ``name`` with one value per domain choice, in the domain's order, each
    with its description from ``members``. A choice added to the domain without a description
    here (or a description for a choice that is gone) fails at import, so the enum cannot drift
    from the domain."""
    if set(members) != set(choices.names):
        raise ValueError(f"{name} must describe exactly the members of {choices.__name__}")
    values = {
        choice.name: strawberry.enum_value(choice.value, description=members[choice.name])
        for choice in choices
    }
    return strawberry.enum(enum.Enum(name, values), name=name, description=description)


WorkflowInstanceState = _mirror(
    InstanceState,
    name="WorkflowInstanceState",
    description="Lifecycle state of a workflow instance.",
    members={
        "ACTIVE": "Running; its status can be changed.",
        "ON_HOLD": "Paused; status changes are refused until it is resumed.",
        "COMPLETED": "Finished on a final step; accepts no further changes.",
        "CANCELLED": "Cancelled; accepts no further changes.",
    },
)

WorkflowEventKind = _mirror(
    EventKind,
    name="WorkflowEventKind",
    description="What one history row records.",
    members={
        "STARTED": "The instance was created on the initial step with its default status.",
        "STATUS_CHANGED": "A status of the current step was set; the step did not change.",
        "ADVANCED": "A completion status fired a transition to another step.",
        "NO_TRANSITION": "A completion status was set but no transition matched; retry with "
        "`advanceWorkflowInstance`.",
        "ON_HOLD": "The instance was put on hold.",
        "RESUMED": "The instance was resumed.",
        "CANCELLED": "The instance was cancelled.",
        "COMPLETED": "The instance finished on a final step.",
        "MIGRATED": "The instance was moved to another published version of its workflow.",
        "REMINDER": "A note: the deadline of the current step is near. Changes nothing.",
        "DEADLINE_PASSED": "A note: the deadline of the current step passed (a deadline that "
        "names no status). Changes nothing.",
        "DEADLINE_ERROR": "A note: the deadline of the current step could not be computed (its "
        "`at` expression gave no timestamp). Changes nothing.",
        "CLAIMED": "A note: a user claimed the work item of the current step.",
        "RELEASED": "A note: the work item of the current step went back to its candidates.",
        "DELEGATED": "A note: the work item of the current step was handed to another user.",
    },
)
