"""The one error hierarchy of the engine. Every error has a stable ``code`` clients can switch on:
a member of :class:`~django_steps.error_codes.ErrorCode`."""

from __future__ import annotations

from typing import Any

from .error_codes import ErrorCode


class WorkflowError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = ErrorCode.WORKFLOW_ERROR

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class WorkflowNotFound(WorkflowError):
    """Raised when no workflow has the given name."""

    code = ErrorCode.WORKFLOW_NOT_FOUND


class InstanceNotFound(WorkflowError):
    """Raised when a workflow instance does not exist (any more)."""

    code = ErrorCode.INSTANCE_NOT_FOUND


class ContentObjectNotFound(WorkflowError):
    """Raised when the object an instance should be attached to cannot be found."""

    code = ErrorCode.OBJECT_NOT_FOUND


class UnknownStatus(WorkflowError):
    """Raised when a status name does not exist on the instance's current step."""

    code = ErrorCode.UNKNOWN_STATUS


class InstanceFinished(WorkflowError):
    """Raised when a completed or cancelled instance is asked to change."""

    code = ErrorCode.INSTANCE_FINISHED


class InstanceOnHold(WorkflowError):
    """Raised when an instance on hold is asked to change status or to hold again."""

    code = ErrorCode.INSTANCE_ON_HOLD


class NotOnHold(WorkflowError):
    """Raised when resuming an instance that is not on hold."""

    code = ErrorCode.NOT_ON_HOLD


class NotAwaitingTransition(WorkflowError):
    """Raised when retrying the advance of an instance that is not waiting for a transition."""

    code = ErrorCode.NOT_AWAITING_TRANSITION


class VersionConflict(WorkflowError):
    """Raised when ``expected_version`` no longer matches: someone else changed the instance."""

    code = ErrorCode.VERSION_CONFLICT


class ConditionError(WorkflowError):
    """Raised when a transition's CEL condition fails to evaluate (or runs over its evaluation
    budget); nothing was changed. ``details["reason"]`` names the kind of failure."""

    code = ErrorCode.CONDITION_ERROR
    #: The failure alone, without transition or expression (set by django_steps.cel).
    description: str | None = None


class ConditionSyntaxError(WorkflowError):
    """Raised when a CEL condition does not compile or is over a definition-time limit (length,
    nesting, size, estimated cost); ``details["reason"]`` says which."""

    code = ErrorCode.CONDITION_SYNTAX_ERROR
    #: The problem alone, without the expression (set by django_steps.cel).
    description: str | None = None


class InvalidContext(WorkflowError):
    """Raised when a client-supplied CEL context is not a mapping, is too large or too deeply
    nested, holds a number CEL cannot represent (NaN, ±Infinity, an integer beyond 64 bits) or
    text no database stores (NUL, an unpaired surrogate); nothing was changed."""

    code = ErrorCode.INVALID_CONTEXT


class InvalidDefinition(WorkflowError):
    """Raised when a workflow definition is inconsistent; ``problems`` lists every issue found."""

    code = ErrorCode.INVALID_DEFINITION

    def __init__(
        self, message: str, problems: list[dict[str, str]] | None = None, **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.problems = problems or []


class WorkflowInUse(WorkflowError):
    """Raised when deleting a workflow that has instances (their history refers to it). Parts
    removed from a definition are retired instead (see :mod:`django_steps.versions`)."""

    code = ErrorCode.WORKFLOW_IN_USE


class ModelNotAllowed(WorkflowError):
    """Raised when a workflow is started on an object of a model its definition does not list."""

    code = ErrorCode.MODEL_NOT_ALLOWED


class NotPermitted(WorkflowError):
    """Raised when the acting user lacks the permission a status names; nothing was changed."""

    code = ErrorCode.PERMISSION_DENIED


class WorkItemNotFound(WorkflowError):
    """Raised when a work item is closed, missing, or on an instance the actor may not see."""

    code = ErrorCode.WORK_ITEM_NOT_FOUND


class WorkItemClaimed(WorkflowError):
    """Raised when claiming a work item someone has claimed (e.g. two claims at once)."""

    code = ErrorCode.ALREADY_CLAIMED


class WorkItemNotClaimed(WorkflowError):
    """Raised when releasing a work item nobody has claimed."""

    code = ErrorCode.NOT_CLAIMED
