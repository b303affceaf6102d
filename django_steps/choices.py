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
    """What one history row records. Every change to an instance writes exactly one; notes
    (:data:`NOTE_KINDS`) record something that happened to it without changing it."""

    STARTED = "STARTED", "Started"  # created on the initial step with its default status
    STATUS_CHANGED = "STATUS_CHANGED", "Status changed"  # a status set, no step change
    ADVANCED = "ADVANCED", "Advanced"  # a completion status fired a transition
    NO_TRANSITION = "NO_TRANSITION", "No transition"  # completion status set, nothing matched
    ON_HOLD = "ON_HOLD", "On hold"
    RESUMED = "RESUMED", "Resumed"
    CANCELLED = "CANCELLED", "Cancelled"
    COMPLETED = "COMPLETED", "Completed"  # finished on a final step
    MIGRATED = "MIGRATED", "Migrated"  # moved to another published version of its workflow
    # Notes: history rows that change nothing on the instance (neither its position nor its
    # ``version``, so they never make a status change conflict). See ``NOTE_KINDS``.
    REMINDER = "REMINDER", "Reminder"  # a step's deadline is near
    DEADLINE_PASSED = "DEADLINE_PASSED", "Deadline passed"  # a deadline that names no status
    DEADLINE_ERROR = "DEADLINE_ERROR", "Deadline error"  # a deadline could not be computed
    CLAIMED = "CLAIMED", "Claimed"  # a user took the step's work item
    RELEASED = "RELEASED", "Released"  # the work item went back to its candidates
    DELEGATED = "DELEGATED", "Delegated"  # the work item was handed to another user


#: Event kinds that record something about an instance without changing it.
NOTE_KINDS = frozenset(
    {
        EventKind.REMINDER,
        EventKind.DEADLINE_PASSED,
        EventKind.DEADLINE_ERROR,
        EventKind.CLAIMED,
        EventKind.RELEASED,
        EventKind.DELEGATED,
    }
)
