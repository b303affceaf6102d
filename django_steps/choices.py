from django.db import models


class InstanceState(models.TextChoices):
    """Lifecycle of a workflow instance, independent of its step and custom status."""

    ACTIVE = "ACTIVE", "Active"
    ON_HOLD = "ON_HOLD", "On hold"
    COMPLETED = "COMPLETED", "Completed"
    CANCELLED = "CANCELLED", "Cancelled"


FINISHED_STATES = (InstanceState.COMPLETED, InstanceState.CANCELLED)
UNFINISHED_STATES = (InstanceState.ACTIVE, InstanceState.ON_HOLD)


class EventKind(models.TextChoices):
    """What one history row records. Every change to an instance writes exactly one."""

    STARTED = "STARTED", "Started"  # created on the initial step with its default status
    STATUS_CHANGED = "STATUS_CHANGED", "Status changed"  # a status set, no step change
    ADVANCED = "ADVANCED", "Advanced"  # a completion status fired a transition
    NO_TRANSITION = "NO_TRANSITION", "No transition"  # completion status set, nothing matched
    ON_HOLD = "ON_HOLD", "On hold"
    RESUMED = "RESUMED", "Resumed"
    CANCELLED = "CANCELLED", "Cancelled"
    COMPLETED = "COMPLETED", "Completed"  # finished on a final step
    MIGRATED = "MIGRATED", "Migrated"  # moved to another published version of its workflow
