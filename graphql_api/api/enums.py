"""GraphQL enums mirroring :mod:`django_steps.choices`."""

from __future__ import annotations

import enum

import strawberry

from django_steps.choices import EventKind, InstanceState


@strawberry.enum(
    name="WorkflowInstanceState", description="Lifecycle state of a workflow instance."
)
class WorkflowInstanceState(enum.Enum):
    ACTIVE = strawberry.enum_value(
        InstanceState.ACTIVE.value, description="Running; its status can be changed."
    )
    ON_HOLD = strawberry.enum_value(
        InstanceState.ON_HOLD.value,
        description="Paused; status changes are refused until it is resumed.",
    )
    COMPLETED = strawberry.enum_value(
        InstanceState.COMPLETED.value,
        description="Finished on a final step; accepts no further changes.",
    )
    CANCELLED = strawberry.enum_value(
        InstanceState.CANCELLED.value, description="Cancelled; accepts no further changes."
    )


@strawberry.enum(name="WorkflowEventKind", description="What one history row records.")
class WorkflowEventKind(enum.Enum):
    STARTED = strawberry.enum_value(
        EventKind.STARTED.value,
        description="The instance was created on the initial step with its default status.",
    )
    STATUS_CHANGED = strawberry.enum_value(
        EventKind.STATUS_CHANGED.value,
        description="A status of the current step was set; the step did not change.",
    )
    ADVANCED = strawberry.enum_value(
        EventKind.ADVANCED.value,
        description="A completion status fired a transition to another step.",
    )
    NO_TRANSITION = strawberry.enum_value(
        EventKind.NO_TRANSITION.value,
        description="A completion status was set but no transition matched; retry with "
        "`advanceWorkflowInstance`.",
    )
    ON_HOLD = strawberry.enum_value(
        EventKind.ON_HOLD.value, description="The instance was put on hold."
    )
    RESUMED = strawberry.enum_value(
        EventKind.RESUMED.value, description="The instance was resumed."
    )
    CANCELLED = strawberry.enum_value(
        EventKind.CANCELLED.value, description="The instance was cancelled."
    )
    COMPLETED = strawberry.enum_value(
        EventKind.COMPLETED.value, description="The instance finished on a final step."
    )
    MIGRATED = strawberry.enum_value(
        EventKind.MIGRATED.value,
        description="The instance was moved to another published version of its workflow.",
    )
    REMINDER = strawberry.enum_value(
        EventKind.REMINDER.value,
        description="A note: the deadline of the current step is near. Changes nothing.",
    )
    DEADLINE_PASSED = strawberry.enum_value(
        EventKind.DEADLINE_PASSED.value,
        description="A note: the deadline of the current step passed (a deadline that names no "
        "status). Changes nothing.",
    )
    DEADLINE_ERROR = strawberry.enum_value(
        EventKind.DEADLINE_ERROR.value,
        description="A note: the deadline of the current step could not be computed (its `at` "
        "expression gave no timestamp). Changes nothing.",
    )
    CLAIMED = strawberry.enum_value(
        EventKind.CLAIMED.value,
        description="A note: a user claimed the work item of the current step.",
    )
    RELEASED = strawberry.enum_value(
        EventKind.RELEASED.value,
        description="A note: the work item of the current step went back to its candidates.",
    )
    DELEGATED = strawberry.enum_value(
        EventKind.DELEGATED.value,
        description="A note: the work item of the current step was handed to another user.",
    )
